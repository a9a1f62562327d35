import type { ParsedKey } from "ssh2";
import type { PreparedAuth } from "./credentials.ts";
import { type Client, sendCertificateAuth, wrapAuthPK } from "./ssh2.ts";

// Hash per RSA signature algorithm, as ssh2 chooses them from the server's sig-algs.
const RSA_HASH: Record<string, string> = {
  "rsa-sha2-256": "sha256",
  "rsa-sha2-512": "sha512",
  "ssh-rsa": "sha1",
};

/**
 * Makes ssh2 send the signed publickey request at once instead of its unsigned "would you
 * accept this key?" query followed by the signed request (RFC 4252 §7 allows both). OpenSSH
 * pads every non-`none` auth attempt to a minimum time (5–9 ms, auth2.c
 * `ensure_minimum_time_since`), so the query costs a whole extra padded round trip: auth
 * drops from ~14 ms to ~8 ms against sshd 9.2 (docs/benchmarks.md).
 *
 * ssh2 has no option for this, so it wraps the client's private `authPK` (ssh2.ts); installed
 * right after `client.connect()`, before any auth request can be sent. A failed signature
 * (never expected with a parsed private key) is reported through `onSignError`.
 *
 * A certificate (`auth.type === "certificate"`) goes through the same hook: ssh2 1.17 cannot
 * write a certificate's request (mscdex/ssh2#551), so `sendCertificateAuth` writes it in place
 * of ssh2's, signed at once like the others.
 */
export function signFirstAttempt(
  client: Client,
  auth: Extract<PreparedAuth, { key: ParsedKey }>,
  onSignError: (err: Error) => void,
): void {
  const { key } = auth;
  wrapAuthPK(client, (authPK) => (username, pubKey, keyAlgo, cbSign) => {
    if (auth.type === "certificate") {
      const { minted } = auth;
      let sent = false;
      try {
        sent = sendCertificateAuth(
          client,
          username,
          auth.algorithm,
          minted.certificate,
          auth.signatureAlgorithm,
          (data) => minted.sign(data),
        );
      } catch (err) {
        onSignError(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (!sent) onSignError(new Error("this ssh2 version lacks the internals certificates need"));
      return;
    }
    if (cbSign !== undefined || typeof keyAlgo === "function") {
      authPK(username, pubKey, keyAlgo, cbSign);
      return;
    }
    const hash = typeof keyAlgo === "string" ? RSA_HASH[keyAlgo] : undefined;
    authPK(username, pubKey, keyAlgo, (data, done) => {
      const signature = key.sign(data, hash);
      if (signature instanceof Error) onSignError(signature);
      else done(signature);
    });
  });
}
