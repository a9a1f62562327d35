/**
 * Per-host circuit breaker: a host that failed with a hang or reachability error
 * (`BREAKER_ERRORS`: ConnectTimeout, BannerTimeout, HandshakeTimeout, ConnectionLost) `threshold`
 * times within `windowSeconds` is quarantined for `quarantineSeconds`. A quarantined host
 * answers `HostQuarantined` (503, retryable) at once, without dialling, so a dead host stops
 * costing a whole budget in every fleet run. One DynamoDB item per `host:port`, with a TTL
 * attribute so the table cleans itself. A success clears the host. Through a jump host
 * (request `via`) the error's hop decides which host a failure counts against, and both hosts
 * are checked before dialling.
 *
 * Clear a host by hand: `aws dynamodb delete-item --table-name <BreakerTable> --key
 * '{"host":{"S":"<host>:<port>"}}'` (docs/fleet.md).
 */
import {
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { HostQuarantined } from "../../lib/errors.ts";
import { BREAKER_ERRORS, type ErrorName } from "../../lib/names.ts";
import type { RunResult } from "../../lib/types.ts";
import { CALL_CAPS, callSignal, send } from "../runtime/aws-clients.ts";

/** Options of {@link HostBreaker}. */
export interface HostBreakerOptions {
  tableName: string;
  client: DynamoDBClient;
  /** Failures within the window that quarantine a host. @default 3 */
  threshold?: number;
  /** @default 600 */
  windowSeconds?: number;
  /** @default 900 */
  quarantineSeconds?: number;
  /** @default Date.now */
  now?: () => number;
}

const COUNTED: ReadonlySet<string> = new Set(BREAKER_ERRORS);

/** Whether an error counts against its host. */
export function countsAgainstHost(name: ErrorName | undefined): boolean {
  return name !== undefined && COUNTED.has(name);
}

export class HostBreaker {
  readonly #o: Required<HostBreakerOptions>;

  constructor(options: HostBreakerOptions) {
    this.#o = {
      threshold: 3,
      windowSeconds: 600,
      quarantineSeconds: 900,
      now: Date.now,
      ...options,
    };
  }

  static keyOf(host: string, port: number): string {
    return `${host.toLowerCase()}:${port}`;
  }

  /**
   * Throws `HostQuarantined` when the host is held. `signal` bounds the read (the
   * invocation's `readSignal`); it is aborted, not merely logged, when it fires.
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
    const now = this.#o.now();
    if (until > now) {
      throw new HostQuarantined(
        `host ${host}:${port} is quarantined for ${Math.ceil((until - now) / 1000)} s more after ${out.Item?.failures?.N ?? "repeated"} hangs within ${this.#o.windowSeconds} s; retry after that, or clear it (docs/fleet.md)`,
        { phase: "policy" },
      );
    }
  }

  /**
   * Records a session's outcome for its host: counted failures add up, a success clears.
   * `signal` bounds every write of the record together (the invocation's `reserveSignal`).
   */
  async record(
    result: RunResult,
    signal: AbortSignal = callSignal(undefined, CALL_CAPS.standaloneMs),
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
    if (!countsAgainstHost(result.error?.name)) return;
    // A connection lost after the command started may be the command's own doing (a reboot,
    // a killed sshd): one caller must not be able to quarantine a host for everyone.
    if (result.error?.name === "ConnectionLost" && result.error.commandStarted) return;
    const now = this.#o.now();
    const windowMs = this.#o.windowSeconds * 1000;
    // Start a new window when the last one is over; otherwise count on.
    const out = await send(
      this.#o.client,
      new UpdateItemCommand({
        TableName: this.#o.tableName,
        Key: { host: { S: key } },
        UpdateExpression:
          "SET failures = if_not_exists(failures, :zero) + :one, windowStart = if_not_exists(windowStart, :now), lastError = :error, expiresAt = :expires",
        ExpressionAttributeValues: {
          ":zero": { N: "0" },
          ":one": { N: "1" },
          ":now": { N: String(now) },
          ":error": { S: result.error!.name },
          ":expires": {
            N: String(Math.ceil((now + windowMs + this.#o.quarantineSeconds * 1000) / 1000)),
          },
        },
        ReturnValues: "ALL_NEW",
      }),
      signal,
    );
    const failures = Number(out.Attributes?.failures?.N ?? 0);
    const windowStart = Number(out.Attributes?.windowStart?.N ?? now);
    if (now - windowStart > windowMs) {
      await send(
        this.#o.client,
        new UpdateItemCommand({
          TableName: this.#o.tableName,
          Key: { host: { S: key } },
          UpdateExpression: "SET failures = :one, windowStart = :now REMOVE quarantinedUntil",
          ExpressionAttributeValues: { ":one": { N: "1" }, ":now": { N: String(now) } },
        }),
        signal,
      );
      return;
    }
    if (failures >= this.#o.threshold) {
      const until = now + this.#o.quarantineSeconds * 1000;
      await send(
        this.#o.client,
        new UpdateItemCommand({
          TableName: this.#o.tableName,
          Key: { host: { S: key } },
          UpdateExpression: "SET quarantinedUntil = :until, expiresAt = :expires",
          ExpressionAttributeValues: {
            ":until": { N: String(until) },
            ":expires": { N: String(Math.ceil(until / 1000) + 60) },
          },
        }),
        signal,
      );
    }
  }
}
