import { ValidationError } from "./errors.ts";
import { isValidPin } from "./session/host-keys.ts";
import type { RunRequest } from "./types.ts";

/** Longest command accepted (SPEC §4). */
export const MAX_COMMAND_BYTES = 16 * 1024;

/** C0 controls and DEL: never part of a host name or a user name. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function fail(field: string, why: string): never {
  throw new ValidationError(`${field}: ${why}`, { phase: "request" });
}

function positiveInteger(value: unknown, field: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) <= 0)) {
    fail(field, "must be a positive integer");
  }
}

/**
 * The engine's own check of a request, for library callers (the Lambda handlers validate
 * the full SPEC §4 schema first, so this never fires behind them). Throws a
 * `ValidationError` naming the field: bad input becomes `result.error`, never a crash or a
 * connection attempt.
 */
export function checkRequest(req: RunRequest): void {
  if (req === null || typeof req !== "object") fail("request", "must be an object");
  if (typeof req.host !== "string" || req.host.length === 0 || req.host.length > 253) {
    fail("host", "must be a DNS name or IP literal of 1-253 characters");
  }
  if (hasControl(req.host) || /\s/.test(req.host))
    fail("host", "contains whitespace or control characters");
  if (
    req.port !== undefined &&
    (!Number.isInteger(req.port) || (req.port as number) < 1 || (req.port as number) > 65535)
  ) {
    fail("port", "must be an integer 1-65535");
  }
  if (typeof req.username !== "string" || req.username.length === 0) {
    fail("username", "must be a non-empty string");
  }
  if (hasControl(req.username)) fail("username", "contains control characters");
  if (typeof req.command !== "string" || req.command.length === 0) {
    fail("command", "must be a non-empty string");
  }
  if (Buffer.byteLength(req.command) > MAX_COMMAND_BYTES) {
    fail("command", `longer than ${MAX_COMMAND_BYTES} bytes`);
  }
  if (req.command.includes("\u0000")) fail("command", "contains a NUL byte");
  if (req.hostKey !== undefined && (typeof req.hostKey !== "string" || !isValidPin(req.hostKey))) {
    fail("hostKey", "must be a SHA256:<base64> fingerprint or an OpenSSH public key line");
  }
  positiveInteger(req.timeoutMs, "timeoutMs");
  positiveInteger(req.maxOutputBytes, "maxOutputBytes");
  if (req.stdin !== undefined && typeof req.stdin !== "string") fail("stdin", "must be a string");
}
