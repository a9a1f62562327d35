/**
 * The request contract (SPEC §4) as a JSON Schema, and the limits the schema cannot express:
 * the ONE schema that `runCommand` and the Lambda handlers both enforce
 * (`validate-request.ts`), so a library caller and an API caller are refused alike.
 *
 * The schema is compiled AHEAD of time into `request-validator.generated.ts` by
 * `scripts/generate-validator.ts` (ajv standalone code, committed). Why: ajv's runtime
 * compiler builds code with `new Function` on every cold start (tens of ms) and the engine
 * would have to ship the whole compiler as a dependency; standalone code is plain JS with no
 * import, works offline and under a CSP-free bundler, and a test proves the committed file
 * matches this schema. `@middy/validator/transpile` was not used: it compiles at cold start.
 */

/** Size limits of a request, in bytes unless named otherwise. */
export const REQUEST_LIMITS = {
  /** Whole API body (after base64 decoding). */
  bodyBytes: 131_072,
  /** `command`, UTF-8 bytes (SPEC §4: 1 byte – 16 KiB). */
  commandBytes: 16_384,
  /** `stdin`, UTF-8 bytes. */
  stdinBytes: 65_536,
  /** `host`: a DNS name is at most 253 characters. */
  hostChars: 253,
  usernameChars: 128,
  credentialChars: 128,
  idempotencyKeyChars: 128,
  /** `hostKey`: an RSA-16384 public key line is about 2.8 KB. */
  hostKeyChars: 8_192,
  /** `timeoutMs`: the Lambda maximum (15 min). */
  timeoutMs: 900_000,
  /**
   * `maxOutputBytes` per stream on the API path. A stream costs at most 4/3 of it in the JSON
   * response (control bytes and escape-heavy text go out as base64), so two streams stay far
   * below Lambda's 6 MB response limit.
   */
  maxOutputBytes: 1_048_576,
  /**
   * `maxOutputBytes` per stream on the Step Functions path: 2 × 4/3 × 92,160 bytes plus the
   * rest of the result stays under the 256 KiB state payload limit.
   */
  taskMaxOutputBytes: 92_160,
} as const;

/** The request fields, in SPEC §4 order. */
export const REQUEST_FIELDS = [
  "host",
  "port",
  "username",
  "command",
  "credential",
  "hostKey",
  "via",
  "timeoutMs",
  "maxOutputBytes",
  "stdin",
  "failOnNonZeroExit",
  "idempotencyKey",
  "spill",
] as const;

// No C0/C1 control characters, no whitespace: such a host or user name is either an attack on
// the logs (forged audit lines) or a mistake, never a real target.
const PRINTABLE_NO_SPACE = "^[^\\u0000-\\u0020\\u007f-\\u009f]+$";

const HOST = {
  type: "string",
  minLength: 1,
  maxLength: REQUEST_LIMITS.hostChars,
  // DNS names (letters, digits, '-', '_', '.') and IPv4/IPv6 literals.
  pattern: "^[A-Za-z0-9._:-]+$",
} as const;
const PORT = { type: "integer", minimum: 1, maximum: 65_535 } as const;
const USERNAME = {
  type: "string",
  minLength: 1,
  maxLength: REQUEST_LIMITS.usernameChars,
  pattern: PRINTABLE_NO_SPACE,
} as const;
const CREDENTIAL = {
  type: "string",
  minLength: 1,
  maxLength: REQUEST_LIMITS.credentialChars,
  // A Secrets Manager name suffix; no "..", so a local store can never be walked out of.
  pattern: "^(?!.*\\.\\.)[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]*$",
} as const;
const HOST_KEY = {
  type: "string",
  minLength: 1,
  maxLength: REQUEST_LIMITS.hostKeyChars,
  pattern: "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
} as const;

/** JSON Schema (draft-07 subset understood by ajv 8) of the request. */
export const REQUEST_SCHEMA = {
  $id: "https://bounded-ssh/request.json",
  type: "object",
  additionalProperties: false,
  required: ["host", "username", "command"],
  properties: {
    host: HOST,
    port: PORT,
    username: USERNAME,
    command: {
      type: "string",
      minLength: 1,
      // Characters never outnumber UTF-8 bytes: a cheap first cut, the byte count is checked after.
      maxLength: REQUEST_LIMITS.commandBytes,
      pattern: "^[^\\u0000]+$",
    },
    credential: CREDENTIAL,
    hostKey: HOST_KEY,
    // One jump host: the same fields, limits and defaults as the target's.
    via: {
      type: "object",
      additionalProperties: false,
      required: ["host", "username"],
      properties: {
        host: HOST,
        port: PORT,
        username: USERNAME,
        credential: CREDENTIAL,
        hostKey: HOST_KEY,
      },
    },
    timeoutMs: { type: "integer", minimum: 1, maximum: REQUEST_LIMITS.timeoutMs },
    maxOutputBytes: { type: "integer", minimum: 0, maximum: REQUEST_LIMITS.maxOutputBytes },
    stdin: { type: "string", maxLength: REQUEST_LIMITS.stdinBytes },
    failOnNonZeroExit: { type: "boolean" },
    idempotencyKey: {
      type: "string",
      minLength: 1,
      maxLength: REQUEST_LIMITS.idempotencyKeyChars,
      pattern: "^[A-Za-z0-9._:/@=+-]+$",
    },
    spill: { type: "boolean" },
  },
} as const;

/**
 * The same schema without the three limits that exist only because of the deployment's
 * transport (`stdin` ≤ 64 KiB: the API body; `maxOutputBytes` ≤ 1 MiB: the Lambda response;
 * `timeoutMs` ≤ 15 min: the Lambda timeout). Fields, types, formats and every other limit are
 * the API's: this is what `runCommand` enforces for library callers.
 */
export const ENGINE_REQUEST_SCHEMA = {
  ...REQUEST_SCHEMA,
  $id: "https://bounded-ssh/engine-request.json",
  properties: {
    ...REQUEST_SCHEMA.properties,
    timeoutMs: { type: "integer", minimum: 1 },
    maxOutputBytes: { type: "integer", minimum: 0 },
    stdin: { type: "string" },
  },
} as const;
