import { createHash } from "node:crypto";
import type { MiddlewareObj } from "@middy/core";
import type { ErrorName, ErrorPhase } from "../../lib/names.ts";
import type { HostKeySource } from "../../lib/session/host-keys.ts";
import type { PhaseTimings } from "../../lib/types.ts";
import { type AuditFacts, auditFactsOf } from "../shared/audit-facts.ts";
import { type InvocationRecord, invocationOf } from "../shared/invocation.ts";

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
  /** What vouched for the server's host key (`known_hosts`, `pin+known_hosts`, `pin`). */
  hostKeySource?: HostKeySource;
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
  error: { name: ErrorName; phase: ErrorPhase; message: string; retryable: boolean } | null;
  phase: ErrorPhase | null;
  exitCode: number | null;
  timings: PhaseTimings | null;
  budgetMs: number | null;
  slackMs: number;
  output: { stdoutBytes: number; stderrBytes: number; truncated: boolean } | null;
  remoteCleanup: string | null;
  hostKeySha256?: string;
}

/** Options of {@link auditLog}. */
export interface AuditLogOptions {
  /** `hash` records `commandSha256` instead of the command. @default "plain" */
  command?: "plain" | "hash";
  /** @default one line to stdout */
  write?: (line: string) => void;
  /** Sees the record and the line (demo, tests); its errors are ignored. */
  observe?: (record: InvocationRecord, line: AuditLine) => void;
}

const defaults: Required<Omit<AuditLogOptions, "observe">> = {
  command: "plain",
  write: (line) => process.stdout.write(`${line}\n`),
};

/** Builds the audit line of an invocation from its record and facts. */
export function auditLineOf(
  record: InvocationRecord,
  facts: AuditFacts,
  awsRequestId: string | undefined,
  commandMode: "plain" | "hash",
  now = Date.now(),
): AuditLine {
  const { result, error } = record;
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
    requestId: result?.requestId ?? awsRequestId,
    caller: record.caller ?? null,
    target,
    credential: req ? (req.credential ?? "default") : (tried?.credential ?? null),
    outcome: result?.status ?? "error",
    error: error
      ? { name: error.name, phase: error.phase, message: error.message, retryable: error.retryable }
      : null,
    phase: result?.phase ?? error?.phase ?? null,
    exitCode: result?.exitCode ?? null,
    timings: result?.timings ?? null,
    budgetMs: record.budgetMs ?? null,
    slackMs: Math.round(record.mustReturnBy - now),
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
  return line;
}

/**
 * middy middleware writing the SPEC §8 audit line, once, in `after` or `onError` — whichever
 * runs. Register it early so it runs late, after the response (and its status) is settled.
 * Writing the line never throws into the invocation.
 */
export function auditLog(opts: AuditLogOptions = {}): MiddlewareObj {
  for (const key of Object.keys(opts)) {
    if (!["command", "write", "observe"].includes(key)) {
      throw new TypeError(`auditLog: unknown option ${key}`);
    }
  }
  const options = { ...defaults, ...opts };
  const written = new WeakSet<object>();
  const write = (request: Parameters<NonNullable<MiddlewareObj["after"]>>[0]) => {
    if (written.has(request)) return;
    written.add(request);
    try {
      const record = invocationOf(request);
      const facts = auditFactsOf(request);
      const awsRequestId = (request.context as { awsRequestId?: string }).awsRequestId;
      const line = auditLineOf(record, facts, awsRequestId, options.command);
      options.write(JSON.stringify(line));
      options.observe?.(record, line);
    } catch {
      // The audit trail must not turn a served request into a failure.
    }
  };
  return { after: write, onError: write };
}
