/**
 * What of an unexpected error may go to the log: name, message, stack and cause chain, with
 * anything that looks like key material cut out. On-call reads the stack (docs/runbooks,
 * InternalErrors); a cause may still carry a secret — a key parser's message quoting its
 * input, a store's error echoing a secret string, a thrown object holding the credential — and
 * a log line is readable by far more principals than the secret.
 */

import { sourceMappedStack } from "./source-mapped-stack.ts";

// A PEM block (even cut short), an OpenSSH key body, and any long base64 run (key bytes) with
// the short line that may close it (the last line of a key body quoted without its armour).
const PEM =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const OPENSSH_BODY = /b3BlbnNzaC1rZXktdjE[A-Za-z0-9+/=\s]*/g;
const LONG_BASE64 =
  /[A-Za-z0-9+/]{60,}={0,2}(?:\r?\n[A-Za-z0-9+/]{1,59}={0,2}(?![A-Za-z0-9+/=]))?/g;

/**
 * Whether a long base64-alphabet run is part of a file path rather than key bytes. `/` is in
 * both alphabets, so a stack frame's path (`/tmp/<40-hex commit>/p/test/functions/audit`) makes
 * a run as long as a key line. The run is judged by the token around it (up to whitespace,
 * quotes, brackets): a path to a file — from `/`, `./`, `../`, `~/` or `file://`, ending in a
 * file name with an extension and maybe `:line:column`, as every stack frame does — or an
 * absolute directory path whose names are no random mix: no name mixes upper case, lower case
 * and digits, and a name over 24 characters (a commit, a hash) is in one letter case. Key bytes
 * quoted in a message (a PEM or OpenSSH body line, a key stored base64) are none of these:
 * measured 0 of 2,000,000 random 60-character lines kept (docs/api.md, the unexpected-error log;
 * test/functions/redact-secrets.test.ts).
 */
function isPath(token: string): boolean {
  if (FILE_PATH.test(token)) return true;
  if (!token.startsWith("/") || token.endsWith("=")) return false;
  return token.split(/[^A-Za-z0-9+]+/).every((name) => {
    const upper = /[A-Z]/.test(name);
    const lower = /[a-z]/.test(name);
    if (upper && lower && /[0-9]/.test(name)) return false;
    return name.length <= 24 || !(upper && lower);
  });
}
const FILE_PATH = /^(?:file:\/\/|~|\.{1,2})?\/\S*\/[^/\s]*\.[A-Za-z0-9]{1,8}(?::\d+){0,2}$/;
/** What ends the token around a run: whitespace, quotes, brackets, separators. */
const TOKEN_END = /[\s'"`()<>[\]{},;]/;

function tokenAround(text: string, start: number, end: number): string {
  let from = start;
  while (from > 0 && !TOKEN_END.test(text[from - 1] ?? " ")) from--;
  let to = end;
  while (to < text.length && !TOKEN_END.test(text[to] ?? " ")) to++;
  return text.slice(from, to);
}

/**
 * `text` with private keys and long base64 runs replaced by `[redacted]`; a run that is part of
 * a file path stays (see {@link isPath}).
 */
export function redactSecrets(text: string): string {
  return text
    .replace(PEM, "[redacted private key]")
    .replace(OPENSSH_BODY, "[redacted]")
    .replace(LONG_BASE64, (run: string, offset: number, whole: string) => {
      const firstLine = run.split(/\r?\n/)[0] ?? "";
      return isPath(tokenAround(whole, offset, offset + firstLine.length)) ? run : "[redacted]";
    });
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
