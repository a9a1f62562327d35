/**
 * The dependency fault matrix: ONE table of every AWS dependency × fault × moment and what
 * the deployed handler must answer. The vitest matrix (dependency-matrix.test.ts), the soak
 * (test/soak/soak.ts) and docs/fault-lab.md ("Dependency faults") all use it.
 *
 * Each row runs the real API handler (`createApiHandler`) over the real deployed runtime
 * (`awsRuntime(configFromEnv(...))`: SSM policy, Secrets Manager credential, DynamoDB
 * idempotency + breaker, S3 spill, CloudWatch metrics) whose SDK clients reach the row's own
 * stand-ins through {@link withAwsEnv}; one dependency sits behind a fault proxy whose fault
 * is on from the start (`before`), switched on when the command starts (`during`) or when it
 * ends (`after`). The SSH target is an ssh2 Server in the farm that counts execs, so
 * "commandStarted is true exactly when the command ran" is checked against the server.
 */
import { randomUUID } from "node:crypto";
import type { APIGatewayProxyResult } from "aws-lambda";
import { createApiHandler } from "../../functions/api.ts";
import { configFromEnv } from "../../functions/config/config.ts";
import { RESPONSE_SAFETY_MS } from "../../functions/invocation/create-invocation.ts";
import type { PolicyDocument } from "../../functions/policy/policy.ts";
import { awsRuntime } from "../../functions/runtime/runtime.ts";
import type { RunResult } from "../../lib/types.ts";
import { CALLER, fakeContext, LOOPBACK_DENY, v1Event } from "../functions/support.ts";
import { ENDPOINT_VARIABLES, LAB_AWS_ENV, withAwsEnv } from "./aws-env.ts";
import { LAB_STORES } from "./dependency-farm.ts";
import {
  DEPENDENCIES,
  DEPENDENCY_FAULTS,
  type Dependency,
  type DependencyFault,
} from "./dependency-proxy.ts";
import type { Farm, FarmServer } from "./farm.ts";

/**
 * Every row's deadline: API Gateway's integration timeout (`BSSH_EDGE_TIMEOUT_MS`, counted
 * from the event's `requestTimeEpoch`), short so a row ends in seconds. The handler derives
 * its one deadline from it exactly as from Lambda's remaining time (create-invocation.ts).
 */
export const FUNCTION_TIMEOUT_MS = 6_000;
/**
 * The Lambda context's own timeout, kept above the edge's. middy 6.4.5 cancels the handler
 * `signal` of EVERY invocation in the process when one invocation reaches its early timeout
 * (one module-level AbortController, `handlerAbort`): harmless in Lambda (one invocation per
 * container at a time), but concurrent rows share a process, and a row that overran would
 * cancel its neighbours. Above the edge's timeout, that backstop never fires in a row that
 * keeps its deadline.
 */
export const LAMBDA_TIMEOUT_MS = 10_000;
/** When the handler must have returned: the edge's timeout less the response's safety. */
export const HANDLER_DEADLINE_MS = FUNCTION_TIMEOUT_MS - RESPONSE_SAFETY_MS;
/** Late allowed past that deadline (the SSH lab's own margin, SPEC §3): never past the timeout. */
export const DEADLINE_MARGIN_MS = 50;

export type Moment = "before" | "during" | "after";

/** A row's answer, as the caller sees it: `succeeded`, or the error's name. */
export type Answer = "succeeded" | string;

/** How the row must name the dependency's failure in the answer. */
export type Named =
  /** `result.storeErrors` lists the failed store (`idempotency`). */
  | "storeErrors"
  /** `result.output.spillError` says why the spill was not kept; no `stdoutObject`. */
  | "spillError"
  /** The datums reached the EMF fallback (stdout) instead of CloudWatch. */
  | "emf"
  /** Nothing to name: the command never ran and the error says why. */
  | "error";

export interface DependencyRow {
  /** `dependency/fault/moment`, unique. */
  id: string;
  dependency: Dependency | "none";
  fault: DependencyFault | "none";
  moment: Moment;
  /** The dependency's calls the fault hits, in words (the docs table). */
  calls: string;
  /** stdout the command writes. */
  bytes: number;
  /** Whether the command runs (the target sees exactly one exec) or never starts. */
  ran: boolean;
  /** Acceptable answers (the first is the one expected when every call is bounded). */
  answers: Answer[];
  named: Named | null;
  /** Cheap enough for the soak's mix. */
  soak: boolean;
}

/** The calls a dependency makes at a moment, and the command's output that makes them happen. */
const MOMENTS: Record<Dependency, Partial<Record<Moment, { calls: string; bytes: number }>>> = {
  secretsmanager: { before: { calls: "GetSecretValue (the credential)", bytes: 0 } },
  ssm: { before: { calls: "GetParameter (the policy)", bytes: 0 } },
  dynamodb: {
    before: {
      calls: "GetItem (breaker check), PutItem (idempotency in-progress record)",
      bytes: 0,
    },
    after: { calls: "UpdateItem (idempotency result), DeleteItem (breaker record)", bytes: 0 },
  },
  s3: {
    during: {
      // More than one 8 MiB part (SPILL_PART_BYTES): the first part goes up while the command
      // still writes.
      calls: "CreateMultipartUpload, UploadPart (a 9 MB stream in 8 MiB parts)",
      bytes: 9_000_000,
    },
    // Less than a part: one PutObject once the stream has ended.
    after: { calls: "PutObject (a 100 kB stream, sent at its end)", bytes: 100_000 },
  },
  cloudwatch: { after: { calls: "PutMetricData (metrics mode `api`)", bytes: 0 } },
};

/** Faults that hold a call open rather than failing it: the deadline must end them. */
const STALLS: ReadonlySet<DependencyFault> = new Set(["blackholed", "silent", "slow-drip"]);

function expectation(
  dependency: Dependency,
  fault: DependencyFault,
  moment: Moment,
): Pick<DependencyRow, "ran" | "answers" | "named"> {
  if (moment === "before") {
    const errors: Record<string, Answer[]> = {
      // The credential store's own error (retryable: the store did not answer).
      secretsmanager: ["CredentialUnavailable"],
      // The policy could not be loaded: nothing is authorized, nothing runs.
      ssm: ["InternalError"],
      // The idempotency record could not be written; a stall can also spend the budget first.
      dynamodb: STALLS.has(fault) ? ["InternalError", "DeadlineExceeded"] : ["InternalError"],
    };
    return { ran: false, answers: errors[dependency]!, named: "error" };
  }
  if (dependency === "s3") {
    // A failed part ends the spill and the stream resumes; a stalled part is cut by the
    // deadline, which may end the held command first (CommandTimeout, commandStarted true).
    return {
      ran: true,
      answers: STALLS.has(fault) ? ["succeeded", "CommandTimeout"] : ["succeeded"],
      named: "spillError",
    };
  }
  if (dependency === "cloudwatch") return { ran: true, answers: ["succeeded"], named: "emf" };
  return { ran: true, answers: ["succeeded"], named: "storeErrors" };
}

/** The table: a healthy control, then every dependency × fault × moment that applies. */
export const DEPENDENCY_ROWS: DependencyRow[] = [
  {
    id: "healthy",
    dependency: "none",
    fault: "none",
    moment: "before",
    calls: "every dependency healthy; a 100 kB stream spilled whole",
    bytes: 100_000,
    ran: true,
    answers: ["succeeded"],
    named: null,
    soak: true,
  },
  ...DEPENDENCIES.flatMap((dependency) =>
    (["before", "during", "after"] as const).flatMap((moment) => {
      const m = MOMENTS[dependency][moment];
      if (!m) return [];
      return DEPENDENCY_FAULTS.map(
        (fault): DependencyRow => ({
          id: `${dependency}/${fault}/${moment}`,
          dependency,
          fault,
          moment,
          calls: m.calls,
          bytes: m.bytes,
          ...expectation(dependency, fault, moment),
          // The multi-part spill rows are the matrix's; the rest are cheap.
          soak: m.bytes <= 100_000,
        }),
      );
    }),
  ),
];

/**
 * The dependency lab's shared state. Two farm processes: `farm` hosts the rows' SSH targets
 * and fault proxies (a target switches its row's proxy, so they share a process), `backends`
 * the stand-ins — dynalite and s3rver then never wait behind the targets' SSH crypto.
 */
export interface DependencyLab {
  farm: Farm;
  backendFarm: Farm;
  backends: Record<Dependency, FarmServer>;
}

/** Starts the stand-ins in `backendFarm` and seeds the credential. */
export async function startDependencyLab(
  farm: Farm,
  backendFarm: Farm,
  clientPrivateKey: string,
): Promise<DependencyLab> {
  const entries = await Promise.all(
    DEPENDENCIES.map(
      async (d) => [d, await backendFarm.create({ kind: "awsBackend", dependency: d })] as const,
    ),
  );
  const backends = Object.fromEntries(entries) as Record<Dependency, FarmServer>;
  await backendFarm.depSeed(
    backends.secretsmanager,
    `${LAB_SECRET_PREFIX}${LAB_CREDENTIAL}`,
    JSON.stringify({ privateKey: clientPrivateKey }),
  );
  return { farm, backendFarm, backends };
}

const LAB_SECRET_PREFIX = "bounded-ssh/";
const LAB_CREDENTIAL = "default";

/** The policy of one row (an SSM parameter): CALLER may run echo/printf on its target port. */
function rowPolicy(port: number): PolicyDocument {
  return {
    denyCidrs: LOOPBACK_DENY,
    replaceDefaultDenyCidrs: true,
    rules: [
      {
        id: "fault-lab",
        callers: [CALLER],
        targets: { cidrs: ["127.0.0.0/8"], ports: [port], usernames: ["*"] },
        commands: { patterns: ["echo [ -~]*", "printf [ -~]*"] },
        allowRequestPins: true,
        allowSpill: true,
      },
    ],
  };
}

export interface DependencyOutcome {
  row: DependencyRow;
  statusCode: number;
  result: RunResult | undefined;
  /** The answer: `succeeded`/`failed`, or the error's name. */
  answer: Answer;
  /** What the answer says about the command (`result.error.commandStarted`, or it ran). */
  commandStarted: boolean | undefined;
  /** Execs the SSH target saw. */
  execs: number;
  /** The row's fault proxy, if it has one (`farm.depSeen` lists what it saw). */
  proxy?: FarmServer;
  elapsedMs: number;
  /** Lines the metrics wrote as EMF, and the publisher's API error if any. */
  emfLines: number;
  apiError: string | undefined;
  body: unknown;
}

interface ApiBody {
  error?: { name: string; commandStarted?: boolean };
  result?: RunResult;
}

/**
 * One invocation of a row: its target and fault proxy in the farm, a fresh deployed runtime
 * (one per row, as one container), the API handler with a {@link FUNCTION_TIMEOUT_MS} context.
 * `keep` receives the row's farm servers; the caller closes them after its leak check (closing
 * a proxy closes the client sockets a leaked call would still hold, hiding the leak).
 */
export async function runDependencyRow(
  lab: DependencyLab,
  row: DependencyRow,
  keep: (servers: FarmServer[]) => void,
): Promise<DependencyOutcome> {
  const { farm, backendFarm, backends } = lab;
  let proxy: FarmServer | undefined;
  const target = await farm.create({ kind: "depTarget", bytes: row.bytes });
  const servers: FarmServer[] = [target];
  const endpoints: Record<string, string> = {};
  for (const d of DEPENDENCIES) {
    endpoints[ENDPOINT_VARIABLES[d]] = `http://127.0.0.1:${backends[d].port}`;
  }
  const policyParameter = `/bssh/fault-lab/policy/${target.port}`;
  await backendFarm.depSeed(backends.ssm, policyParameter, JSON.stringify(rowPolicy(target.port)));
  if (row.dependency !== "none" && row.fault !== "none") {
    proxy = await farm.create({
      kind: "faultProxy",
      dependency: row.dependency,
      targetPort: backends[row.dependency].port,
      mode: row.moment === "before" ? row.fault : "pass",
    });
    servers.push(proxy);
    endpoints[ENDPOINT_VARIABLES[row.dependency]] = `http://127.0.0.1:${proxy.port}`;
    if (row.moment !== "before") {
      await farm.depFault(proxy, row.fault, {
        target,
        moment: row.moment === "during" ? "exec" : "exit",
      });
    }
  }
  keep(servers);
  const cloudWatch = row.dependency === "cloudwatch";
  const config = configFromEnv({
    BSSH_POLICY_PARAMETER: policyParameter,
    BSSH_SECRET_PREFIX: LAB_SECRET_PREFIX,
    BSSH_IDEMPOTENCY_TABLE: LAB_STORES.idempotencyTable,
    BSSH_BREAKER_TABLE: LAB_STORES.breakerTable,
    BSSH_SPILL_BUCKET: LAB_STORES.spillBucket,
    BSSH_SPILL_MODE: "always",
    BSSH_METRICS_MODE: cloudWatch ? "api" : "emf",
    BSSH_API_ID: "local",
    BSSH_API_STAGE: "local",
    BSSH_API_ACCOUNT: "000000000000",
    BSSH_EDGE_TIMEOUT_MS: String(FUNCTION_TIMEOUT_MS),
  });
  const runtime = awsRuntime(config);
  let emfLines = 0;
  let apiError: string | undefined;
  runtime.writeAuditLine = () => {};
  runtime.metrics = {
    ...runtime.metrics,
    writeLine: () => {
      emfLines++;
    },
    onPublished: (_datums, report) => {
      apiError = report.apiError;
    },
  };
  const handler = createApiHandler(runtime);
  const body = JSON.stringify({
    host: "127.0.0.1",
    port: target.port,
    username: "fault-lab",
    command: row.bytes > 0 ? `printf %0${row.bytes}d 0` : "echo ok",
    hostKey: target.hostKeyFingerprint,
    idempotencyKey: randomUUID(),
    maxOutputBytes: 1024,
  });
  const overlay = {
    ...LAB_AWS_ENV,
    ...endpoints,
    BSSH_CLOUDWATCH_ENDPOINT: endpoints[ENDPOINT_VARIABLES.cloudwatch]!,
  };
  const start = performance.now();
  const response = (await withAwsEnv(overlay, () =>
    handler(v1Event(body), fakeContext({ timeoutMs: LAMBDA_TIMEOUT_MS })),
  )) as APIGatewayProxyResult;
  const elapsedMs = performance.now() - start;
  const execs = await farm.depExecs(target);
  const parsed = JSON.parse(response.body) as RunResult | ApiBody;
  const result =
    response.statusCode === 200 ? (parsed as RunResult) : ((parsed as ApiBody).result ?? undefined);
  const error = response.statusCode === 200 ? result?.error : (parsed as ApiBody).error;
  const answer = error?.name ?? result?.status ?? "none";
  const commandStarted = error
    ? (result?.error?.commandStarted ?? error.commandStarted)
    : result !== undefined;
  return {
    row,
    statusCode: response.statusCode,
    result,
    answer,
    commandStarted,
    execs,
    ...(proxy ? { proxy } : {}),
    elapsedMs,
    emfLines,
    apiError,
    body: parsed,
  };
}

/** `result.storeErrors` (SPEC §5): store failures after the command's outcome was known. */
export function storeErrorsOf(
  result: RunResult | undefined,
): { store: string; operation?: string; name: string }[] | undefined {
  return (result as { storeErrors?: { store: string; operation?: string; name: string }[] })
    ?.storeErrors;
}

/** Every way an outcome breaks the row's guarantees (empty = as tabled): both kinds below. */
export function dependencyProblems(o: DependencyOutcome): string[] {
  return [...dependencyTimingProblems(o), ...dependencyOutcomeProblems(o)];
}

/** Returned past the deadline (+ {@link DEADLINE_MARGIN_MS}). */
export function dependencyTimingProblems(o: DependencyOutcome): string[] {
  const late = o.elapsedMs - HANDLER_DEADLINE_MS;
  if (late <= DEADLINE_MARGIN_MS) return [];
  return [
    `returned at ${Math.round(o.elapsedMs)} ms, ${Math.round(late)} ms past its ${HANDLER_DEADLINE_MS} ms deadline (edge timeout ${FUNCTION_TIMEOUT_MS} ms)`,
  ];
}

/** The answer, the truth of commandStarted, and the failure named. */
export function dependencyOutcomeProblems(o: DependencyOutcome): string[] {
  const { row, result } = o;
  const out: string[] = [];
  if (!row.answers.includes(o.answer)) {
    const message = (o.body as { error?: { message?: string } }).error?.message ?? "";
    out.push(
      `answered ${o.answer} (HTTP ${o.statusCode}${message ? `: ${message}` : ""}), expected ${row.answers.join(" or ")}`,
    );
  }
  if (o.execs > 1) out.push(`the command ran ${o.execs} times`);
  const ran = o.execs > 0;
  if (ran !== row.ran) out.push(ran ? "the command ran" : "the command never ran");
  if (o.commandStarted !== ran) {
    out.push(`commandStarted ${o.commandStarted} but the target saw ${o.execs} exec(s)`);
  }
  if (row.answers[0] === "succeeded" && o.answer === "succeeded" && result?.exitCode !== 0) {
    out.push(`exit code ${result?.exitCode}`);
  }
  const stdoutBytes = result?.output.stdoutBytes;
  if (o.answer === "succeeded" && row.bytes > 0 && stdoutBytes !== row.bytes) {
    out.push(`stdout ${stdoutBytes} bytes of ${row.bytes}`);
  }
  switch (row.named) {
    case "storeErrors": {
      const stores = storeErrorsOf(result)?.map((e) => e.store) ?? [];
      if (!stores.includes("idempotency")) {
        out.push(
          `the failed idempotency write is not named (storeErrors: ${JSON.stringify(storeErrorsOf(result))})`,
        );
      }
      break;
    }
    case "spillError":
      if (!result?.output.spillError) out.push("no output.spillError");
      if (result?.output.stdoutObject) out.push("a stdoutObject though the spill failed");
      break;
    case "emf":
      if (o.emfLines === 0) out.push("no EMF fallback line: the datums were lost");
      if (o.apiError === undefined) out.push("the publisher reported no API error");
      break;
    case "error":
      if (o.answer === "succeeded" || o.answer === "failed") out.push("no error named");
      break;
    case null:
      if (row.bytes > 0 && !result?.output.stdoutObject) {
        out.push(`no stdoutObject (spillError ${JSON.stringify(result?.output.spillError)})`);
      }
      if (storeErrorsOf(result)?.length) {
        out.push(`storeErrors on a healthy run: ${JSON.stringify(storeErrorsOf(result))}`);
      }
      break;
  }
  return out;
}

/** Rows whose command writes more than this run in a lane of their own (SSH + S3 CPU). */
const HEAVY_BYTES = 1_000_000;
/** Heavy rows at once. */
const HEAVY_LANE = 2;

/**
 * Runs `rows` as concurrently as they allow: CloudWatch rows one at a time (the metrics
 * publisher's client is one per process: a fresh one each, on the row's endpoint), rows
 * streaming megabytes {@link HEAVY_LANE} at a time (on a loaded 2-core box, six 9 MB SSH
 * streams plus their S3 parts at once starve every session's handshake), every other row at
 * once. Resolves with the outcomes in `rows` order.
 */
export async function runDependencyRows(
  lab: DependencyLab,
  rows: readonly DependencyRow[],
  keep: (servers: FarmServer[]) => void,
  resetCloudWatchClient: () => void,
): Promise<DependencyOutcome[]> {
  const outcomes = new Map<DependencyRow, DependencyOutcome>();
  const lane = async (queue: DependencyRow[], before?: () => void) => {
    for (let row = queue.shift(); row; row = queue.shift()) {
      before?.();
      outcomes.set(row, await runDependencyRow(lab, row, keep));
    }
  };
  const cloudWatch = rows.filter((r) => r.dependency === "cloudwatch");
  const heavy = rows.filter((r) => r.dependency !== "cloudwatch" && r.bytes > HEAVY_BYTES);
  const rest = rows.filter((r) => r.dependency !== "cloudwatch" && r.bytes <= HEAVY_BYTES);
  await Promise.all([
    ...rest.map((r) => lane([r])),
    ...Array.from({ length: HEAVY_LANE }, () => lane(heavy)),
    lane(cloudWatch, resetCloudWatchClient),
  ]);
  return rows.map((r) => outcomes.get(r)!);
}

/** One markdown line of the measured table (docs/fault-lab.md). */
export function tableLine(o: DependencyOutcome): string {
  const r = o.row;
  const named =
    r.named === "storeErrors"
      ? `storeErrors ${JSON.stringify(storeErrorsOf(o.result)?.map((e) => `${e.store}:${e.name}`) ?? [])}`
      : r.named === "spillError"
        ? `spillError ${o.result?.output.spillError ? "set" : "missing"}`
        : r.named === "emf"
          ? `EMF lines ${o.emfLines}, apiError ${o.apiError ?? "none"}`
          : "";
  return `| ${r.dependency} | ${r.fault} | ${r.moment} | ${o.answer} | ${o.commandStarted} / ${o.execs} | ${named} | ${Math.round(o.elapsedMs)} / ${HANDLER_DEADLINE_MS} | ${dependencyProblems(o).length === 0 ? "pass" : "FAIL"} |`;
}
