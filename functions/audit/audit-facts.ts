import { createHash } from "node:crypto";
import type { HostKeySource } from "../../lib/session/host-keys.ts";
import type { RunRequest } from "../../lib/types.ts";

/** What a refused body named, as far as it parsed: strings only, cut short. */
export interface AttemptedTarget {
  host?: string;
  port?: number;
  username?: string;
  credential?: string;
  commandSha256?: string;
}

/** What the audit line needs beyond the invocation's result and error (`Invocation.audit`). */
export interface AuditFacts {
  source: "api" | "task";
  /** The validated request, once validation passed. */
  request?: RunRequest;
  /** The command that runs (a template expanded), once policy allowed it. */
  command?: string;
  template?: string;
  /** Policy rules that allowed the request. */
  rules?: string[];
  /** What vouched for the server's host key, once known hosts were read. */
  hostKeySource?: HostKeySource;
  /** What vouched for the jump host's key (request `via`), once known hosts were read. */
  viaHostKeySource?: HostKeySource;
  /** The resolved address, even when the policy refused it (the caller never sees it). */
  address?: string;
  /** Request fields read from a body that failed validation (API refusals). */
  attempted?: AttemptedTarget;
  /** API Gateway's request id (what the caller sees), API only. */
  apiRequestId?: string;
  /** HTTP status sent, API only. */
  statusCode?: number;
  /** `recorded` (ran, result recorded) or `replayed` (an earlier result, nothing dialled). */
  idempotency?: "recorded" | "replayed";
  /** Step Functions: the execution ARN from the payload's `execution` context. */
  executionArn?: string;
  /** The user certificate minted for the session, when its credential is a CA. */
  certificate?: { keyId: string; serial: string };
  /** Size of the raw body, API only. */
  bodyBytes?: number;
}

const cut = (value: unknown, max: number): string | undefined =>
  typeof value === "string" && value !== "" ? value.slice(0, max) : undefined;

/**
 * The target fields of a body that failed validation, for the audit line: only values of the
 * expected type, cut to their limits, and the command as a SHA-256 (never its text: it failed
 * the contract and may be anything).
 */
export function attemptedTarget(input: unknown): AttemptedTarget | undefined {
  if (input === null || typeof input !== "object" || Array.isArray(input)) return undefined;
  const body = input as Record<string, unknown>;
  const attempted: AttemptedTarget = {};
  const host = cut(body.host, 253);
  const username = cut(body.username, 128);
  const credential = cut(body.credential, 128);
  if (host !== undefined) attempted.host = host;
  if (Number.isInteger(body.port)) attempted.port = body.port as number;
  if (username !== undefined) attempted.username = username;
  if (credential !== undefined) attempted.credential = credential;
  if (typeof body.command === "string") {
    attempted.commandSha256 = createHash("sha256").update(body.command).digest("hex");
  }
  return Object.keys(attempted).length > 0 ? attempted : undefined;
}
