import { createHash } from "node:crypto";
import type { MiddlewareObj } from "@middy/core";
import type { Context } from "aws-lambda";
import type { ErrorName, ErrorPhase, Hop } from "../../lib/names.ts";
import type { HostKeySource } from "../../lib/session/host-keys.ts";
import type { PhaseTimings, StoreError } from "../../lib/types.ts";
import { hasInvocation, type Invocation, invocationOf } from "../invocation/invocation.ts";
import { withDefaults } from "../invocation/with-defaults.ts";
import { once, preload } from "../runtime/lazy.ts";
import type { AuditFacts } from "./audit-facts.ts";
import type { AuditLogger } from "./audit-logger.ts";
import { loggableError } from "./loggable-error.ts";

/** The audit line (SPEC §8): one JSON object per invocation. Never credentials, never output. */
export interface AuditLine {
  type: "bounded-ssh.audit";
  time: string;
  source: AuditFacts["source"];
  requestId: string | undefined;
  apiRequestId?: string;
  caller: string | null;
  target: { host: string; port: number; address: string | null; username: string } | null;
  credential: string | null;
  /**
   * What vouched for the server's host key (`known_hosts`, `pin+known_hosts`, `pin`,
   * `cert-authority`, `none`).
   */
  hostKeySource?: HostKeySource;
  /**
   * The OpenSSH user certificate the session logged in with, when its credential is a
   * certificate authority: sshd logs the same key id and serial (`ID … (serial N)`).
   * `serial` is a decimal string (an unsigned 64-bit integer).
   */
  certificate?: { keyId: string; serial: string };
  /** Step Functions: the execution that invoked the task (its state machine is `caller`). */
  executionArn?: string;
  /** With an idempotency key: `recorded` (this run) or `replayed` (an earlier result). */
  idempotency?: "recorded" | "replayed";
  command?: string;
  commandSha256?: string;
  template?: string;
  rules?: string[];
  outcome: string;
  statusCode?: number;
  error: {
    name: ErrorName;
    phase: ErrorPhase;
    message: string;
    retryable: boolean;
    /** With a jump host: the hop the error happened at. */
    hop?: Hop;
    /**
     * The remote the error is attributed to: the jump host (`via`) when `hop` is `via`, else
     * the target. Alarms, the hang-hosts rule and the enrichment key on these, so a dead jump
     * host counts once, as itself, not as every target behind it. `null` when not known.
     */
    host: string | null;
    port: number | null;
    address: string | null;
  } | null;
  /** The jump host (request `via`): where, as whom, with which credential, and its key. */
  via?: {
    host: string;
    port: number;
    address: string | null;
    username: string;
    credential: string;
    /** What vouched for the jump host's key (as `hostKeySource` for the target). */
    hostKeySource?: HostKeySource;
    hostKeySha256?: string;
  };
  phase: ErrorPhase | null;
  exitCode: number | null;
  timings: PhaseTimings | null;
  budgetMs: number | null;
  slackMs: number;
  /** TCP sockets found open at invocation start (SPEC §7 `LeakedSockets`; must be 0). */
  leakedSockets: number;
  output: { stdoutBytes: number; stderrBytes: number; truncated: boolean } | null;
  remoteCleanup: string | null;
  hostKeySha256?: string;
  /** Store calls that failed after the session's outcome was known (SPEC §5 `storeErrors`). */
  storeErrors?: StoreError[];
}

/** Options of {@link auditLog}. */
export interface AuditLogOptions {
  /** `hash` records `commandSha256` instead of the command. @default "plain" */
  command?: "plain" | "hash";
  /** Receives each log line (the audit line, error stacks) instead of stdout. @default stdout */
  write?: (line: string) => void;
  /** Sees the invocation and the line (demo, tests); its errors are ignored. */
  observe?: (invocation: Invocation, line: AuditLine) => void;
  /** @default an {@link AuditLogger} writing to `write` */
  logger?: AuditLogger;
}

// Every option, with its default (`undefined`: none): also the list of known options.
const defaults = {
  command: "plain",
  write: undefined,
  observe: undefined,
  logger: undefined,
} as const satisfies Required<{ [K in keyof AuditLogOptions]: unknown }>;

/** Builds the audit line of an invocation. `now` stamps `time` (wall clock). */
export function auditLineOf(
  invocation: Invocation,
  commandMode: "plain" | "hash",
  now = Date.now(),
): AuditLine {
  const { result, error, audit: facts } = invocation;
  const req = facts.request;
  const command = facts.command ?? req?.command;
  const tried = facts.attempted;
  let target: AuditLine["target"] = null;
  if (result) target = { ...result.target };
  else if (req) {
    target = { host: req.host, port: req.port ?? 22, address: null, username: req.username };
  } else if (tried?.host !== undefined || tried?.username !== undefined) {
    target = {
      host: tried.host ?? "",
      port: tried.port ?? 22,
      address: null,
      username: tried.username ?? "",
    };
  }
  // The caller never sees an address the policy refused; the audit line keeps it.
  if (target && target.address === null && facts.address !== undefined) {
    target.address = facts.address;
  }
  const line: AuditLine = {
    type: "bounded-ssh.audit",
    time: new Date(now).toISOString(),
    source: facts.source,
    requestId: result?.requestId ?? invocation.requestId,
    caller: invocation.caller ?? null,
    target,
    credential: req ? (req.credential ?? "default") : (tried?.credential ?? null),
    outcome: result?.status ?? "error",
    error: null,
    phase: result?.phase ?? error?.phase ?? null,
    exitCode: result?.exitCode ?? null,
    timings: result?.timings ?? null,
    budgetMs: invocation.budgetMs,
    slackMs: Math.round(invocation.slackMs()),
    leakedSockets: invocation.leakedSockets,
    output: result
      ? {
          stdoutBytes: result.output.stdoutBytes,
          stderrBytes: result.output.stderrBytes,
          truncated: result.output.truncated,
        }
      : null,
    remoteCleanup: result?.remoteCleanup ?? null,
  };
  if (facts.apiRequestId !== undefined) line.apiRequestId = facts.apiRequestId;
  if (facts.hostKeySource !== undefined) line.hostKeySource = facts.hostKeySource;
  if (facts.certificate !== undefined) line.certificate = { ...facts.certificate };
  if (facts.executionArn !== undefined) line.executionArn = facts.executionArn;
  if (facts.idempotency !== undefined) line.idempotency = facts.idempotency;
  if (command === undefined && tried?.commandSha256 !== undefined) {
    line.commandSha256 = tried.commandSha256;
  }
  if (command !== undefined) {
    if (commandMode === "hash") {
      line.commandSha256 = createHash("sha256").update(command).digest("hex");
    } else line.command = command;
  }
  if (facts.template !== undefined) line.template = facts.template;
  if (facts.rules !== undefined) line.rules = facts.rules;
  if (facts.statusCode !== undefined) line.statusCode = facts.statusCode;
  if (result?.server) line.hostKeySha256 = result.server.hostKeySha256;
  if (result?.storeErrors) line.storeErrors = result.storeErrors;
  if (req?.via) {
    line.via = {
      host: req.via.host,
      port: req.via.port ?? 22,
      address: result?.via?.address ?? null,
      username: req.via.username,
      credential: req.via.credential ?? "default",
    };
    if (facts.viaHostKeySource !== undefined) line.via.hostKeySource = facts.viaHostKeySource;
    if (result?.via?.server) line.via.hostKeySha256 = result.via.server.hostKeySha256;
  }
  if (error) {
    // Attributed: the jump host when the error happened at hop `via`, else the target.
    const at = error.hop === "via" && line.via ? line.via : line.target;
    line.error = {
      ...auditError(error),
      host: at?.host ?? null,
      port: at?.port ?? null,
      address: at?.address ?? null,
    };
  }
  return line;
}

/** The audit line's error: the contract's error without `commandStarted` (SPEC §8). */
function auditError(
  error: NonNullable<Invocation["error"]>,
): Omit<NonNullable<AuditLine["error"]>, "host" | "port" | "address"> {
  const { commandStarted: _, ...rest } = error.toJSON();
  return rest;
}

/**
 * middy middleware writing the SPEC §8 audit line through Powertools Logger, once, in `after`
 * or `onError` — whichever runs; the request id is the correlation id. An `InternalError` (a
 * bug, or a store that failed unexpectedly) is logged first at ERROR with its stack and cause:
 * the caller and the audit line only say "internal error". Register it early so it runs late,
 * after the response (and its status) is settled. Writing never throws into the invocation.
 */
export function auditLog(opts: AuditLogOptions = {}): MiddlewareObj {
  const options = withDefaults("auditLog", defaults, opts);
  // Powertools Logger is loaded on first use (cold start), started when the first invocation
  // begins so it loads while the invocation waits on the network.
  const given = options.logger;
  const loadLogger = given
    ? async () => given
    : once(async () => {
        const { AuditLogger } = await import("./audit-logger.ts");
        return new AuditLogger(opts.write ? { write: opts.write } : {});
      });
  let preloaded = given !== undefined;
  const auditLogBefore = (): void => {
    if (preloaded) return;
    preloaded = true;
    preload([loadLogger]);
  };
  const written = new WeakSet<object>();
  const auditLogWrite = async (
    request: Parameters<NonNullable<MiddlewareObj["after"]>>[0],
  ): Promise<void> => {
    if (written.has(request)) return;
    written.add(request);
    try {
      if (!hasInvocation(request.context)) return;
      const invocation = invocationOf(request.context);
      const line = auditLineOf(invocation, options.command);
      const logger = await loadLogger().catch(() => undefined);
      if (logger) {
        logger.begin(request.context as Partial<Context>, invocation.requestId);
        if (invocation.error?.name === "InternalError") {
          // The stack and cause chain for on-call (runbook InternalErrors), key material cut.
          logger.error("bounded-ssh unexpected error", loggableError(invocation.error));
        }
        logger.audit(line as AuditLine & Record<string, unknown>);
      } else {
        // The logger module failed to load: the audit line still goes out, bare.
        const text = JSON.stringify(line);
        if (opts.write) opts.write(text);
        else process.stdout.write(`${text}\n`);
      }
      options.observe?.(invocation, line);
    } catch {
      // The audit trail must not turn a served request into a failure.
    }
  };
  return { before: auditLogBefore, after: auditLogWrite, onError: auditLogWrite };
}
