/**
 * Per-host circuit breaker. A failure counts against a host only when the host is to blame
 * ({@link countsAgainstHost}): a counted error name (`errors`, default `BREAKER_ERRORS`:
 * ConnectTimeout, BannerTimeout, HandshakeTimeout, ConnectionLost before the command,
 * ConnectRefused, DnsLookupFailed), and for a `*Timeout` only when the phase's OWN cap expired
 * (`error.bound: "phase"`), never when the caller's shorter budget cut it (`"budget"`). It
 * counts once per logical request (`requestKey`: the idempotency key, or the request id):
 * a workflow's retries of one host in one execution are one failure. `threshold` distinct
 * requests failing within `windowSeconds` quarantine the host for `quarantineSeconds`: it
 * answers `HostQuarantined` (503, retryable) at once, without dialling. After the quarantine
 * the host is half-open: the first request is let through as a probe (the others are refused
 * while it runs, at most `probeSeconds`); its success closes the breaker, a counted failure
 * re-opens it for another `quarantineSeconds`, anything else leaves it half-open for the next
 * request after the probe's lease. One DynamoDB item per `host:port`, with a TTL attribute so
 * the table cleans itself. Through a jump host (request `via`) the error's hop decides which
 * host a failure counts against, and both hosts are checked before dialling.
 *
 * Clear a host by hand: `aws dynamodb delete-item --table-name <BreakerTable> --key
 * '{"host":{"S":"<host>:<port>"}}'` (docs/fleet.md).
 */
import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { HostQuarantined } from "../../lib/errors.ts";
import { BREAKER_ERRORS, type ErrorName } from "../../lib/names.ts";
import type { ResultError, RunResult } from "../../lib/types.ts";
import { CALL_CAPS, callSignal, send } from "../runtime/aws-clients.ts";

/** Options of {@link HostBreaker}. */
export interface HostBreakerOptions {
  tableName: string;
  client: DynamoDBClient;
  /** Distinct failed requests within the window that quarantine a host. @default 3 */
  threshold?: number;
  /** @default 600 */
  windowSeconds?: number;
  /** @default 900 */
  quarantineSeconds?: number;
  /** Longest a half-open probe holds the host before another request may probe. @default 120 */
  probeSeconds?: number;
  /** Error names that count against a host. @default BREAKER_ERRORS */
  errors?: readonly ErrorName[];
  /** @default Date.now */
  now?: () => number;
}

/**
 * Whether an error counts against its host: a counted name, a `*Timeout` only when its phase's
 * own cap expired (`bound: "phase"`), `ConnectionLost` only before the command started (after,
 * it may be the command's own doing: a reboot, a killed sshd).
 */
export function countsAgainstHost(
  error: Pick<ResultError, "name" | "bound" | "commandStarted"> | undefined,
  counted: readonly ErrorName[] = BREAKER_ERRORS,
): boolean {
  if (error === undefined || !counted.includes(error.name)) return false;
  if (error.name.endsWith("Timeout")) return error.bound === "phase";
  if (error.name === "ConnectionLost") return !error.commandStarted;
  return true;
}

export class HostBreaker {
  readonly #o: Required<HostBreakerOptions>;

  constructor(options: HostBreakerOptions) {
    this.#o = {
      threshold: 3,
      windowSeconds: 600,
      quarantineSeconds: 900,
      probeSeconds: 120,
      errors: BREAKER_ERRORS,
      now: Date.now,
      ...options,
    };
  }

  static keyOf(host: string, port: number): string {
    return `${host.toLowerCase()}:${port}`;
  }

  /**
   * Throws `HostQuarantined` when the host is held: quarantined, or half-open with another
   * request's probe in flight. After the quarantine, the first caller becomes the probe.
   */
  async check(
    host: string,
    port: number,
    signal: AbortSignal = callSignal(undefined, CALL_CAPS.standaloneMs),
  ): Promise<void> {
    const key = HostBreaker.keyOf(host, port);
    const out = await send(
      this.#o.client,
      new GetItemCommand({
        TableName: this.#o.tableName,
        Key: { host: { S: key } },
        ConsistentRead: true,
      }),
      signal,
    );
    const until = Number(out.Item?.quarantinedUntil?.N ?? 0);
    if (until === 0) return;
    const now = this.#o.now();
    if (until > now) {
      throw new HostQuarantined(
        `host ${host}:${port} is quarantined for ${Math.ceil((until - now) / 1000)} s more after ${out.Item?.failures?.N ?? "repeated"} failed requests within ${this.#o.windowSeconds} s; then one request probes it; or clear it (docs/fleet.md)`,
        { phase: "policy" },
      );
    }
    // Half-open: one request (this one, if it wins the conditional write) probes the host.
    try {
      await send(
        this.#o.client,
        new UpdateItemCommand({
          TableName: this.#o.tableName,
          Key: { host: { S: key } },
          UpdateExpression: "SET probeUntil = :lease",
          ConditionExpression:
            "quarantinedUntil = :until AND (attribute_not_exists(probeUntil) OR probeUntil < :now)",
          ExpressionAttributeValues: {
            ":lease": { N: String(now + this.#o.probeSeconds * 1000) },
            ":until": { N: String(until) },
            ":now": { N: String(now) },
          },
        }),
        signal,
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const lease = Number(out.Item?.probeUntil?.N ?? now);
      throw new HostQuarantined(
        `host ${host}:${port} is half-open: another request is probing it (at most ${Math.max(1, Math.ceil((lease - now) / 1000))} s more); retry after that (docs/fleet.md)`,
        { phase: "policy" },
      );
    }
  }

  /**
   * Records a session's outcome for its host: a success clears it (and closes a half-open
   * breaker); a counted failure adds its request, once, to the window's set; a counted failure
   * of a half-open probe re-opens the quarantine.
   *
   * @param result the session's result.
   * @param signal bounds the writes.
   * @param requestKey the logical request (retries of one request share it). @default the
   *   result's request id
   */
  async record(
    result: RunResult,
    signal: AbortSignal = callSignal(undefined, CALL_CAPS.standaloneMs),
    requestKey?: string,
  ): Promise<void> {
    // Through a jump host, a failure at the jump host (`error.hop` "via") counts against it,
    // not against the target behind it.
    const at = result.error?.hop === "via" && result.via ? result.via : result.target;
    const key = HostBreaker.keyOf(at.host, at.port);
    if (result.status === "succeeded" || result.status === "failed") {
      // The session got through every hop: each of them answered, so each is cleared.
      const hops = result.via ? [result.target, result.via] : [result.target];
      await Promise.all(
        hops.map((h) =>
          send(
            this.#o.client,
            new DeleteItemCommand({
              TableName: this.#o.tableName,
              Key: { host: { S: HostBreaker.keyOf(h.host, h.port) } },
            }),
            signal,
          ),
        ),
      );
      return;
    }
    if (!countsAgainstHost(result.error, this.#o.errors)) return;
    const now = this.#o.now();
    const windowMs = this.#o.windowSeconds * 1000;
    const quarantineMs = this.#o.quarantineSeconds * 1000;
    const expires = (ms: number) => ({ N: String(Math.ceil(ms / 1000)) });
    const request = { SS: [requestKey ?? result.requestId ?? "unattributed"] };
    // The request joins the window's set (a string set: a retry of the same request adds
    // nothing); the window starts with the first failure.
    const out = await send(
      this.#o.client,
      new UpdateItemCommand({
        TableName: this.#o.tableName,
        Key: { host: { S: key } },
        UpdateExpression:
          "SET windowStart = if_not_exists(windowStart, :now), lastError = :error, expiresAt = :expires ADD requests :request",
        ExpressionAttributeValues: {
          ":now": { N: String(now) },
          ":error": { S: result.error!.name },
          ":expires": expires(now + windowMs + quarantineMs + this.#o.probeSeconds * 1000),
          ":request": request,
        },
        ReturnValues: "ALL_NEW",
      }),
      signal,
    );
    const item = out.Attributes ?? {};
    const until = Number(item.quarantinedUntil?.N ?? 0);
    const probing = until !== 0 && until <= now && Number(item.probeUntil?.N ?? 0) > 0;
    if (until > now) return; // already quarantined: never renewed by stragglers
    const reopen = (failures: number) =>
      send(
        this.#o.client,
        new UpdateItemCommand({
          TableName: this.#o.tableName,
          Key: { host: { S: key } },
          UpdateExpression:
            "SET quarantinedUntil = :until, failures = :failures, expiresAt = :expires REMOVE requests, windowStart, probeUntil",
          ExpressionAttributeValues: {
            ":until": { N: String(now + quarantineMs) },
            ":failures": { N: String(failures) },
            ":expires": expires(now + quarantineMs + windowMs + this.#o.probeSeconds * 1000),
          },
        }),
        signal,
      );
    // The half-open probe failed: the host is held again at once.
    if (probing) return void (await reopen(1));
    const windowStart = Number(item.windowStart?.N ?? now);
    if (now - windowStart > windowMs) {
      // The last window is over: this request starts a new one.
      await send(
        this.#o.client,
        new UpdateItemCommand({
          TableName: this.#o.tableName,
          Key: { host: { S: key } },
          UpdateExpression: "SET requests = :request, windowStart = :now",
          ExpressionAttributeValues: { ":request": request, ":now": { N: String(now) } },
        }),
        signal,
      );
      return;
    }
    const failures = item.requests?.SS?.length ?? 0;
    if (failures >= this.#o.threshold) await reopen(failures);
  }
}
