import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
} from "aws-lambda";
import { type EngineError, ValidationError } from "../../lib/errors.ts";
import { ERRORS, type ErrorName, type StatusClass } from "../../lib/names.ts";
import type { RunResult } from "../../lib/types.ts";

/** Either API Gateway payload: REST API (v1) or HTTP API (v2). */
export type ApiEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2;

/** When API Gateway received the request (epoch ms): its integration timeout runs from here. */
export function apiEdgeStart(event: unknown): number | undefined {
  const ctx = (event as { requestContext?: Record<string, unknown> } | undefined)?.requestContext;
  const epoch = ctx?.requestTimeEpoch ?? ctx?.timeEpoch;
  return typeof epoch === "number" ? epoch : undefined;
}

/** API Gateway's own request id (what the caller can quote). */
export function apiRequestId(event: unknown): string | undefined {
  const id = (event as { requestContext?: { requestId?: unknown } } | undefined)?.requestContext
    ?.requestId;
  return typeof id === "string" ? id : undefined;
}

/** The HTTP status of each status class of lib's error table (SPEC §6). */
export const STATUS_OF_CLASS: Readonly<Record<StatusClass, number>> = {
  invalid: 400,
  forbidden: 403,
  conflict: 409,
  internal: 500,
  upstream: 502,
  unavailable: 503,
  timeout: 504,
};

/** The HTTP status of every error name (SPEC §6), derived from lib's error table. */
export const HTTP_STATUS = Object.fromEntries(
  (Object.keys(ERRORS) as ErrorName[]).map((name) => [name, STATUS_OF_CLASS[ERRORS[name].status]]),
) as Readonly<Record<ErrorName, number>>;

// Statuses that refine a ValidationError's 400 (413, 415) without a new error name.
const statusOverrides = new WeakMap<EngineError, number>();

/** Marks an error with the HTTP status the API answers instead of its default. */
export function withHttpStatus<E extends EngineError>(error: E, status: number): E {
  statusOverrides.set(error, status);
  return error;
}

/** The HTTP status of an error (SPEC §6), honouring {@link withHttpStatus}. */
export function httpStatusOf(error: EngineError): number {
  return statusOverrides.get(error) ?? HTTP_STATUS[error.name];
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;.*)?$/i;

/**
 * The request body of an API event as a JSON value. Rejects (`ValidationError`, phase
 * `request`) a wrong content type (415), an oversized body (413), an empty body or invalid
 * JSON (400). Headers must already be lower-cased (http-header-normalizer).
 */
export function parseApiBody(
  event: ApiEvent,
  limitBytes: number,
): { value: unknown; bytes: number } {
  const bad = (message: string, status = 400) =>
    withHttpStatus(new ValidationError(message, { phase: "request" }), status);
  const headers = (event.headers ?? {}) as Record<string, string | undefined>;
  const type = headers["content-type"];
  if (type === undefined || !JSON_TYPE.test(type)) {
    throw bad(
      `content type must be application/json, got ${type === undefined ? "none" : JSON.stringify(type.slice(0, 100))}`,
      415,
    );
  }
  const raw = event.body;
  if (raw === null || raw === undefined || raw === "") throw bad("request body is empty");
  if (typeof raw !== "string") throw bad("request body must be a string");
  // Cheap bound before decoding: base64 is 4/3 of the bytes, a JS string at most 3 bytes/char.
  if (raw.length > limitBytes * 4) throw bad(`request body exceeds ${limitBytes} bytes`, 413);
  const text = event.isBase64Encoded ? Buffer.from(raw, "base64").toString("utf8") : raw;
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > limitBytes)
    throw bad(`request body is ${bytes} bytes; the limit is ${limitBytes}`, 413);
  try {
    return { value: JSON.parse(text), bytes };
  } catch (err) {
    const detail = err instanceof SyntaxError ? err.message.slice(0, 120) : "parse error";
    throw bad(`request body is not valid JSON: ${detail}`);
  }
}

/** A JSON response in the shape both payload versions accept. */
export function jsonResponse(statusCode: number, body: unknown): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
    body: JSON.stringify(body),
  };
}

/** The error body of SPEC §6: `{error, result}` (result when one exists). */
export function errorBody(error: EngineError, result: RunResult | undefined): unknown {
  const body: { error: unknown; result?: RunResult } = { error: error.toJSON() };
  if (result) body.result = result;
  return body;
}
