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
  const err = new ValidationError(`${field}: ${why}`, { phase: "request" });
  if (field.startsWith("via")) err.hop = "via";
  throw err;
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
  checkEndpoint(req, "");
  if (typeof req.command !== "string" || req.command.length === 0) {
    fail("command", "must be a non-empty string");
  }
  if (Buffer.byteLength(req.command) > MAX_COMMAND_BYTES) {
    fail("command", `longer than ${MAX_COMMAND_BYTES} bytes`);
  }
  if (req.command.includes("\u0000")) fail("command", "contains a NUL byte");
  if (req.via !== undefined) {
    if (req.via === null || typeof req.via !== "object" || Array.isArray(req.via)) {
      fail("via", "must be an object { host, port?, username, credential?, hostKey? }");
    }
    checkEndpoint(req.via, "via.");
    if (
      req.via.credential !== undefined &&
      (typeof req.via.credential !== "string" || req.via.credential.length === 0)
    ) {
      fail("via.credential", "must be a non-empty string");
    }
  }
  positiveInteger(req.timeoutMs, "timeoutMs");
  positiveInteger(req.maxOutputBytes, "maxOutputBytes");
  if (req.stdin !== undefined && typeof req.stdin !== "string") fail("stdin", "must be a string");
}

/** host, port, username and hostKey of the target or of the jump host (`via.`). */
function checkEndpoint(
  req: Pick<RunRequest, "host" | "port" | "username" | "hostKey">,
  prefix: "" | "via.",
): void {
  if (typeof req.host !== "string" || req.host.length === 0 || req.host.length > 253) {
    fail(`${prefix}host`, "must be a DNS name or IP literal of 1-253 characters");
  }
  if (hasControl(req.host) || /\s/.test(req.host))
    fail(`${prefix}host`, "contains whitespace or control characters");
  if (
    req.port !== undefined &&
    (!Number.isInteger(req.port) || (req.port as number) < 1 || (req.port as number) > 65535)
  ) {
    fail(`${prefix}port`, "must be an integer 1-65535");
  }
  if (typeof req.username !== "string" || req.username.length === 0) {
    fail(`${prefix}username`, "must be a non-empty string");
  }
  if (hasControl(req.username)) fail(`${prefix}username`, "contains control characters");
  if (req.hostKey !== undefined && (typeof req.hostKey !== "string" || !isValidPin(req.hostKey))) {
    fail(`${prefix}hostKey`, "must be a SHA256:<base64> fingerprint or an OpenSSH public key line");
  }
}
