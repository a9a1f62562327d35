import { hasControlCharacter } from "./control-chars.ts";
import { ValidationError } from "./errors.ts";
import { REQUEST_LIMITS } from "./request-schema.ts";
import { validateApiRequest, validateEngineRequest } from "./request-validator.generated.ts";

/** One error of the generated validator (ajv's error object, the part used here). */
interface SchemaError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** The generated code is untyped (`@ts-nocheck`): this is its contract. */
interface SchemaValidator {
  (data: unknown): boolean;
  errors: SchemaError[] | null;
}

/**
 * Which limits apply: `api`, the published SPEC §4 schema the handlers enforce; `engine`, the
 * same fields, types and formats without the limits of the deployment's transport (stdin
 * size, `maxOutputBytes` and `timeoutMs` maxima): what `runCommand` enforces.
 */
export type RequestLimits = "api" | "engine";

const VALIDATORS: Record<RequestLimits, SchemaValidator> = {
  api: validateApiRequest as unknown as SchemaValidator,
  engine: validateEngineRequest as unknown as SchemaValidator,
};

import { isValidPin } from "./session/host-keys.ts";
import type { RunRequest } from "./types.ts";

// Names echoed back from hostile input are shortened and JSON-quoted, so a message never
// carries control characters or kilobytes of attacker text into a log or a response.
function quoteName(name: string): string {
  const short = name.length > 64 ? `${name.slice(0, 64)}…` : name;
  return JSON.stringify(short);
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** Turns the first schema error into a message that names the field. */
function messageOf(error: SchemaError, input: unknown): string {
  // A nested field is named with dots: `via.host`.
  const segments = error.instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  const field = segments.join(".");
  let value: unknown = input;
  for (const segment of segments) {
    value =
      value && typeof value === "object" ? (value as Record<string, unknown>)[segment] : undefined;
  }
  const f = quoteName(field);
  const limit = error.params.limit;
  const inside = field ? `${field}.` : "";
  switch (error.keyword) {
    case "additionalProperties":
      return `unknown field ${quoteName(inside + String(error.params.additionalProperty))}`;
    case "required":
      return `missing required field ${quoteName(inside + String(error.params.missingProperty))}`;
    case "type":
      if (!field) return `request must be a JSON object, got ${describeType(input)}`;
      return `field ${f} must be ${error.params.type === "integer" ? "an integer" : `a ${String(error.params.type)}`}, got ${describeType(value)}`;
    case "minimum":
    case "maximum":
      return `field ${f} must be ${String(error.params.comparison)} ${String(limit)}`;
    case "minLength":
      return `field ${f} must not be empty`;
    case "maxLength":
      return `field ${f} is longer than ${String(limit)} characters`;
    case "pattern":
      return patternMessage(field, value);
    default:
      return `field ${f} ${error.message ?? "is invalid"}`;
  }
}

function patternMessage(field: string, value: unknown): string {
  const f = quoteName(field);
  const text = typeof value === "string" ? value : "";
  if (field === "command") return `field ${f} must not contain NUL bytes`;
  if (hasControlCharacter(text)) return `field ${f} must not contain control characters`;
  switch (field.replace(/^via\./, "")) {
    case "host":
      return `field ${f} must be a DNS name or an IP literal (letters, digits, '.', '-', '_', ':')`;
    case "username":
      return `field ${f} must not contain whitespace`;
    case "credential":
      return `field ${f} must be a credential name (letters, digits, '/_+=.@-', no '..')`;
    case "idempotencyKey":
      return `field ${f} must be letters, digits and '._:/@=+-' (at most 128)`;
    default:
      return `field ${f} has an invalid format`;
  }
}

/**
 * Checks an untrusted value against the SPEC §4 request contract and returns it typed.
 * Throws `ValidationError` (phase `request`) naming the first offending field; never anything
 * else, whatever the input (prototype keys, huge strings, wrong types). The handlers and
 * `runCommand` share the schema and the messages; `limits` picks the deployment's transport
 * limits (`"api"`, the default) or none of them (`"engine"`).
 *
 * @param input - Anything: a parsed JSON body, a Step Functions payload, `undefined`.
 * @param limits - `"api"` (default): the §4 limits of the deployment's transport too (`stdin`
 *   size, `maxOutputBytes` ≤ 1048576, `timeoutMs` ≤ 900000); `"engine"`: the schema without
 *   them, as `runCommand` checks.
 * @returns The same value, typed as a {@link RunRequest}.
 * @throws {ValidationError} Phase `request`, `hop: "via"` when the field is in `via`; its
 *   message names the field and what is wrong (`field "port" must be <= 65535`).
 *
 * @example
 * ```ts
 * import { EngineError, validateRequest } from "bounded-ssh";
 *
 * function parse(body: string) {
 *   try {
 *     return { request: validateRequest(JSON.parse(body)) };
 *   } catch (err) {
 *     // JSON.parse's SyntaxError is yours to map; validateRequest throws only ValidationError.
 *     if (err instanceof EngineError) return { status: 400, error: err.toJSON() };
 *     return { status: 400, error: { name: "ValidationError", message: "body is not JSON" } };
 *   }
 * }
 * console.log(parse('{"host":"10.0.3.7","username":"deploy","command":"uptime","port":70000}'));
 * ```
 */
export function validateRequest(input: unknown, limits: RequestLimits = "api"): RunRequest {
  const validate = VALIDATORS[limits];
  if (!validate(input)) {
    const first = validate.errors?.[0];
    const message = first ? messageOf(first, input) : "request is invalid";
    const err = new ValidationError(message, { phase: "request" });
    if (first?.instancePath.startsWith("/via")) err.hop = "via";
    throw err;
  }
  const request = input as RunRequest;
  const commandBytes = Buffer.byteLength(request.command, "utf8");
  if (commandBytes > REQUEST_LIMITS.commandBytes) {
    throw new ValidationError(
      `field "command" is ${commandBytes} bytes; the limit is ${REQUEST_LIMITS.commandBytes}`,
      { phase: "request" },
    );
  }
  if (limits === "api" && request.stdin !== undefined) {
    const stdinBytes = Buffer.byteLength(request.stdin, "utf8");
    if (stdinBytes > REQUEST_LIMITS.stdinBytes) {
      throw new ValidationError(
        `field "stdin" is ${stdinBytes} bytes; the limit is ${REQUEST_LIMITS.stdinBytes}`,
        { phase: "request" },
      );
    }
  }
  if (request.hostKey !== undefined && !isValidPin(request.hostKey)) {
    throw new ValidationError(
      'field "hostKey" must be a "SHA256:<base64>" fingerprint or an OpenSSH public key line',
      { phase: "request" },
    );
  }
  if (request.via?.hostKey !== undefined && !isValidPin(request.via.hostKey)) {
    throw new ValidationError(
      'field "via.hostKey" must be a "SHA256:<base64>" fingerprint or an OpenSSH public key line',
      { phase: "request", hop: "via" },
    );
  }
  return request;
}
