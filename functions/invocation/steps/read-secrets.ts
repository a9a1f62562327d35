import { CredentialUnavailable } from "../../../lib/errors.ts";
import { keyIdFor, serialFor } from "../../../lib/session/certificate-format.ts";
import type { RunResult, Secret } from "../../../lib/types.ts";
import type { Next, RunContext } from "./run-context.ts";

/**
 * Step: the credential (and the jump host's, `via.credential`, from the same store) and the
 * operator's known hosts, read together within the budget. Known hosts are read whether or
 * not the request pins a key: a pin only narrows them (SPEC §9).
 */
export async function readSecrets(ctx: RunContext, next: Next): Promise<RunResult> {
  const { credentials, knownHosts } = ctx.runtime;
  const { credential, via } = ctx.authorization;
  const signal = ctx.readSignal();
  const [secret, hosts, viaSecret] = await Promise.all([
    credentials.get(credential, { signal }) as Promise<Secret>,
    knownHosts.get({ signal }).catch((err: unknown) => {
      throw new CredentialUnavailable("known hosts could not be read", {
        phase: "credentials",
        cause: err,
      });
    }),
    via === undefined
      ? undefined
      : (credentials.get(via.credential, { signal }) as Promise<Secret>),
  ]);
  // A certificate authority signs this session's certificate with a key id and serial
  // derived from the request id (lib/session/certificate.ts): the audit line carries them.
  if (secret.certificateAuthority !== undefined) {
    const { requestId } = ctx.invocation;
    ctx.invocation.audit.certificate = {
      keyId: keyIdFor(requestId),
      serial: serialFor(requestId).toString(),
    };
  }
  ctx.secrets = {
    secret,
    ...(viaSecret !== undefined ? { viaSecret } : {}),
    ...(hosts !== undefined ? { knownHosts: hosts } : {}),
  };
  return next();
}
