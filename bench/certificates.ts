/**
 * The cost of a certificate credential (issue 25): minting (a fresh ed25519 key pair + the
 * CA's signature, `prepareAuth` exactly as a session does it) per invocation, and a whole
 * session logging in with a minted certificate next to the same session with a stored key,
 * interleaved against one sshd that trusts the CA (`TrustedUserCAKeys`).
 */
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { ed25519PublicKeyLine, opensshPrivateKeyText } from "../lib/session/certificate.ts";
import { prepareAuth } from "../lib/session/credentials.ts";
import { startSshd } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";

export interface CertificateResult {
  /** ms per mint (key pair + certificate), in-process. */
  mint: number[];
  /** ms per session: minted certificate / stored key, interleaved. */
  certSession: number[];
  keySession: number[];
}

export async function measureCertificates(
  engine: Engine,
  rounds: number,
): Promise<CertificateResult> {
  const ca = generateKeyPairSync("ed25519").privateKey;
  const caKey = opensshPrivateKeyText(ca);
  const secret = { certificateAuthority: { privateKey: caKey } };
  const mint: number[] = [];
  for (let i = 0; i < 20; i++) mintOnce(secret); // warm-up: parse cache, JIT
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    mintOnce(secret);
    mint.push(performance.now() - t0);
  }
  const srv = await startSshd({
    passwordAuthentication: false,
    trustedUserCAKeys: [ed25519PublicKeyLine(ca)],
  });
  const certSession: number[] = [];
  const keySession: number[] = [];
  try {
    const once = async (certified: boolean) => {
      const t0 = performance.now();
      const r = await engine.runCommand(
        { host: srv.host, port: srv.port, username: srv.username, command: "true" },
        {
          budgetMs: 20_000,
          secret: certified ? secret : { privateKey: srv.keys.ed25519.privateKey },
          knownHosts: srv.knownHostsLine,
        },
      );
      if (r.status !== "succeeded") throw new Error(`session failed: ${JSON.stringify(r.error)}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 3; i++) {
      await once(true);
      await once(false);
    }
    for (let i = 0; i < rounds; i++) {
      certSession.push(await once(true));
      keySession.push(await once(false));
    }
  } finally {
    await srv.stop();
  }
  return { mint, certSession, keySession };
}

function mintOnce(secret: { certificateAuthority: { privateKey: string } }): void {
  prepareAuth(secret, "bench-ca", {
    username: "bench",
    command: "true",
    requestId: randomUUID(),
    deadlineEpochMs: Date.now() + 10_000,
  });
}
