/**
 * What of an unexpected error may go to the log: name, message, stack and cause chain, with
 * anything that looks like key material cut out. On-call reads the stack (docs/runbooks,
 * InternalErrors); a cause may still carry a secret — a key parser's message quoting its
 * input, a store's error echoing a secret string, a thrown object holding the credential — and
 * a log line is readable by far more principals than the secret.
 */

import { sourceMappedStack } from "./source-mapped-stack.ts";

// A PEM block (even cut short), an OpenSSH key body, and any long base64 run (key bytes).
const PEM =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const OPENSSH_BODY = /b3BlbnNzaC1rZXktdjE[A-Za-z0-9+/=\s]*/g;
const LONG_BASE64 = /[A-Za-z0-9+/]{60,}={0,2}/g;

/** `text` with private keys and long base64 runs replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  return text
    .replace(PEM, "[redacted private key]")
    .replace(OPENSSH_BODY, "[redacted]")
    .replace(LONG_BASE64, "[redacted]");
}

const MAX_CAUSE_DEPTH = 5;

/**
 * A copy of `err` safe to log: an `Error` whose message, stack and causes (to a few levels)
 * are redacted; a cause that is not an `Error` is described by its type only, never dumped.
 */
export function loggableError(err: unknown, depth = 0): Error {
  if (!(err instanceof Error)) {
    const copy = new Error(`non-error thrown (${err === null ? "null" : typeof err})`);
    copy.stack = undefined;
    return copy;
  }
  const copy = new Error(redactSecrets(err.message));
  copy.name = err.name;
  copy.stack = err.stack === undefined ? undefined : redactSecrets(sourceMappedStack(err.stack));
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) {
    copy.cause = loggableError(err.cause, depth + 1);
  }
  return copy;
}
