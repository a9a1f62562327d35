/**
 * The fleet lab (issue 21, item 5): the SYNTHESIZED fleet state machine, run on
 * aws-local-stepfunctions with the REAL task handler (`createTaskHandler`, local mode's runtime)
 * over N hosts on distinct loopback addresses (127.R.a.b:22, test/helpers/loopback-fleet.ts):
 * 5 % dead or hung (tarpits that never send a banner, closed ports), Lambda throttles injected
 * at the Lambda boundary (`withThrottles`), and a wrong command (`exit 1` everywhere).
 *
 * Scenarios:
 * - `hostsKey` fleet (the S3 path, for fleets over the inline limit): the host list is an object
 *   in s3rver; results go to s3rver in ResultWriter's layout and are read back.
 * - inline canaries over the first min(N, 400) hosts, `batches [1, 5, "20%"]`: the right
 *   command under `maxErrors "10%"` (every batch runs), the wrong one under `maxErrors` 0 and 1;
 * - `hostsKey` fleets with the same canary batches: the wrong command under `maxErrors` 0
 *   (stops after the canary; the rest never starts), the right one under `maxErrors "10%"`
 *   (the canary inline, the rest from S3 with the canary's hosts skipped, every host once);
 * - `hostsKey` fleets under a failure budget: the wrong command with `maxErrors` 0 (stops after
 *   at most MaxConcurrency hosts), the right one with `maxErrors "10%"` (every result kept).
 *
 * aws-local-stepfunctions 3.0 runs a Distributed Map as an inline Map: it has no ItemReader and
 * no ResultWriter (its MapStateAction reads `ItemsPath` only and returns the results in the
 * state), and no ToleratedFailureCount/Percentage (its Map fails on the first failed child).
 * The lab substitutes exactly those (see {@link substituteS3Map}) and says so in its output;
 * everything else is the synthesized definition as deployed.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { Duration } from "aws-cdk-lib";
import { StateMachine } from "aws-local-stepfunctions";
import { HOST_NOT_SUCCEEDED } from "../../cdk/constructs/fleet-workflow.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { STATUSES } from "../../lib/names.ts";
import { type LocalConfig, localRuntime } from "../../local/local-config.ts";
import {
  type ExecutionEvent,
  type LocalExecution,
  localStateMachineArn,
  runLocally,
  runLocallyWith,
  withThrottles,
} from "../cdk/local-sfn.ts";
import { definitionOf, synth } from "../cdk/synth.ts";
import { LOOPBACK_DENY } from "../functions/support.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { asLambda } from "../helpers/lambda-invoke.ts";
import {
  type FleetHost,
  type LoopbackFleet,
  startLoopbackFleet,
} from "../helpers/loopback-fleet.ts";
import { type LocalS3, startS3rver } from "../helpers/s3rver.ts";

/** Short timeouts so the lab takes minutes; the order is still edge > Lambda > session + reserve. */
export const LAB_TIMEOUTS = {
  taskTimeout: Duration.seconds(12),
  functionTimeout: Duration.seconds(10),
  sessionBudget: Duration.millis(9_700),
  reserve: Duration.millis(200),
} as const;
const FUNCTION_TIMEOUT_MS = LAB_TIMEOUTS.functionTimeout.toMilliseconds();
/** Every host's `timeoutMs` (the same for all, as a real fleet run). */
export const HOST_TIMEOUT_MS = 8_000;
/**
 * The operator's phase caps (`BSSH_PHASE_CAPS`): a dead host costs its cap, not the command's
 * budget. A tarpit costs 3 attempts × 1 s, and holds its canary batch that long. A healthy host
 * is misread only if its banner is late by a second three times in a row (BannerTimeout is
 * retried): a margin that holds on a loaded 2-core machine, where the in-process server sends
 * its banner at once.
 */
export const LAB_PHASE_CAPS = { connect: 1_000, banner: 1_000 } as const;
const STAGE = "lab";
const FLEET_ARN = localStateMachineArn("lab-Fleet");
const USERNAME = "fleet";
/** The fleet's shared request; each host item adds its `host` (port 22 by default). */
const REQUEST = { username: USERNAME, credential: "default", timeoutMs: HOST_TIMEOUT_MS };
/** Inline fleets are limited to this many hosts (DEFAULT_INLINE_HOST_LIMIT). */
const INLINE_LIMIT = 400;
const CANARY = { batches: [1, 5, "20%"] } as const;
/**
 * hostsKey fleets under a failure budget: the wrong command with no error allowed (at most
 * MaxConcurrency children start: those running when the first fails), the right one under a
 * 10 % budget the dead hosts (5 %) stay inside.
 */
/**
 * hostsKey fleets with canary batches ({@link CANARY}: a canary of 1 + 5 hosts, the last batch
 * is the rest of the list): the wrong command stops after the canary's first batch, the right
 * one passes it and the rest runs from S3; under a count (3) the canary passes and the rest
 * stops once the dead hosts use what the canary left of the budget.
 */
const S3_CANARIES = [
  { key: "s3-canary-wrong", command: "exit 1", maxErrors: 0 },
  { key: "s3-canary-ok", command: "echo ok", maxErrors: "10%" },
  { key: "s3-canary-budget", command: "echo ok", maxErrors: 3 },
] as const;
const S3_BUDGETS = [
  { key: "s3-wrong-budget", command: "exit 1", maxErrors: 0, maxConcurrency: 10 },
  { key: "s3-ok-budget", command: "echo ok", maxErrors: "10%", maxConcurrency: 40 },
] as const;

/**
 * Throttles injected at the Lambda boundary, by host index: every 10th host's first invocation
 * (from host 3), every 100th host's first three (from host 42), and host 7 on every attempt
 * (past the retries: its outcome is the throttle, the run goes on).
 */
export function throttledAttempt(index: number, attempt: number): boolean {
  if (index === 7) return true;
  if (index % 100 === 42) return attempt <= 3;
  return index % 10 === 3 && attempt === 1;
}

/** What the lab states it did not run, printed with the table and kept in docs/fleet.md. */
export const UNVERIFIED = [
  "ItemReader: the lab reads the hostsKey object from s3rver with the real S3 client and hands its items to the map (ItemsPath); Step Functions' own read (JSON parsing, item limits, IAM) is not run.",
  "ResultWriter: the lab writes the map's child results to s3rver in ResultWriter's layout (fleet-results/<map run>/manifest.json, SUCCEEDED_0.json); Step Functions' own export is not run.",
  "Child executions: the local interpreter runs the item processor in-process (no child execution ARNs, no map run to describe or stop); without a budget every child records an outcome and succeeds.",
  "The failure threshold (ToleratedFailureCount/Percentage): under a budget the whole map run is the lab's stand-in (mapRunStandIn): each child runs the synthesized ItemSelector and ItemProcessor as its own local execution, but the rule (fail once failed > count, or failed/total > p %; no child starts after; running ones finish) and the writing of FAILED_0.json on a failed run are the documented behaviour as the lab implements it, not Step Functions'.",
  "Canary batches on a hostsKey list: the reader of the canary's hosts (ReadCanaryHosts, ReaderConfig.MaxItemsPath) is the lab's stand-in (readItemsStandIn: the first K items of the object, read with the real S3 client); the rest of the list runs in the map run's stand-in, each child with its real $$.Map.Item.Index (the stand-in puts the index where the synthesized ItemSelector reads it), so Step Functions' own MaxItemsPath, item order and Map.Item.Index are not run.",
  "Retry waits: the retriers' ErrorEquals and MaxAttempts are the synthesized ones; their waits (2 s × 2ⁿ with full jitter for throttles) are skipped.",
];

export interface ScenarioRow {
  /** s3, canary-ok, wrong-0, wrong-1, s3-canary-wrong, s3-canary-ok, s3-wrong-budget, s3-ok-budget */
  key: string;
  scenario: string;
  hosts: number;
  wallMs: number;
  /** Task invocations, including the throttled (refused) ones. */
  invocations: number;
  throttled: number;
  /** Handler run time summed over the invocations that ran (what Lambda bills as duration). */
  lambdaMs: number;
  /** State transitions as Step Functions bills them: states entered plus retries, children included. */
  transitions: number;
  /** Distributed Map child executions (one per host that started). */
  children: number;
  outcomes: Record<string, number>;
  notStarted: number;
  /** SUCCEEDED, or FAILED (error). */
  execution: string;
  /** The execution output (bounded summary), as Step Functions would return it. */
  output: unknown;
  outputBytes: number;
}

export interface S3Check {
  manifestKey: string;
  /** Child result records read back from the result files. */
  records: number;
  /** Distinct hosts among them, and hosts of the list missing from them. */
  distinctHosts: number;
  missing: number;
  /** Records of children that skipped their item (a canary's hosts, run before the rest). */
  skipped: number;
  byRole: Record<string, Record<string, number>>;
}

/** A hostsKey fleet with canary batches: the canary's records (inline) and the rest's (S3). */
export interface S3CanaryCheck {
  /** Hosts the canary read from the list (K) and the outcome records in its summary. */
  canaryHosts: number;
  canaryRecords: number;
  /** The rest's map run, read back (undefined when it never started). */
  rest?: S3Check;
  /** Hosts with an outcome record (canary or rest) and list hosts without one. */
  distinctHosts: number;
  missing: number;
  /** Hosts the task ran for in both the canary and the rest (must be 0). */
  ranTwice: number;
  /** Hosts the task ran for in the rest's map run. */
  restInvoked: number;
}

export interface LabReport {
  rows: ScenarioRow[];
  s3: S3Check;
  /** The budgeted hostsKey runs' results read back, by scenario key. */
  s3Budget: Record<string, S3Check>;
  /** The hostsKey runs with canary batches, by scenario key. */
  s3Canary: Record<string, S3CanaryCheck>;
  fleet: { hosts: number; port: number; roles: Record<string, number> };
  serverExecs: number;
  tarpitAccepts: number;
  elapsedMs: number;
  /** Fields the substitution changed in the synthesized definition (`state.field`). */
  substituted: string[];
}

type Definition = Record<string, unknown>;
type MapState = Record<string, unknown> & {
  ItemReader?: {
    Parameters: { Bucket: string; "Key.$": string };
    ReaderConfig?: { MaxItemsPath?: string };
  };
  ResultWriter?: { Parameters: { Bucket: string; Prefix: string } };
};

/** The field of the execution input the lab hands the map's items in (ItemReader's stand-in). */
export const LAB_ITEMS = "labItemReaderItems";

/** The error Step Functions fails a map run with once its failed children exceed the threshold. */
export const THRESHOLD_ERROR = "States.ExceedToleratedFailureThreshold";

/** The resource of the Task that stands in for a budgeted Distributed Map run (see {@link substituteS3Map}). */
export const LAB_MAP_RUN = "arn:aws:states:::lab:distributedMapRun";

/** The resource of the Task that stands in for a map that only reads items (see {@link substituteS3Map}). */
export const LAB_READ_ITEMS = "arn:aws:states:::lab:readItems";

/** A map that only reads the first items of the list (ReaderConfig.MaxItemsPath, no ResultWriter). */
export interface ItemsReaderMap {
  state: string;
  reader: { bucket: string; keyPath: string };
  maxItemsPath: string;
}

/** A budgeted S3 map as the lab runs it: its threshold, processor and selector, read from the definition. */
export interface BudgetedMap {
  state: string;
  reader: { bucket: string; keyPath: string };
  writer: { bucket: string; prefix: string };
  itemSelector: unknown;
  itemProcessor: Definition;
  maxConcurrencyPath: string;
  /** `ToleratedFailureCount(Path)` and `ToleratedFailurePercentage(Path)`: a number or a `$.` path. */
  toleratedCount?: number | string;
  toleratedPercentage?: number | string;
}

/**
 * The smallest substitution that lets the local interpreter run the S3 path:
 * - the map without a failure budget (no Catch for {@link THRESHOLD_ERROR}): the reader becomes
 *   `ItemsPath: $.labItemReaderItems` (the lab puts the object's items there) and the
 *   `ResultWriter` is dropped (the results stay in the map's `ResultPath`; the lab writes them
 *   to S3 in ResultWriter's layout);
 * - a map that only reads items (ItemReader with `ReaderConfig.MaxItemsPath`, no ResultWriter:
 *   a canary's hosts) becomes a Task ({@link LAB_READ_ITEMS}) keeping its ResultPath and Next:
 *   the lab returns the object's first MaxItemsPath items ({@link readItemsStandIn});
 * - the map of the rest of a list after its canary (its ItemSelector reads `$$.Map.Item.Index`)
 *   runs in the map run's stand-in like a budgeted one, budget or not;
 * - each map with a failure budget (a Catch for {@link THRESHOLD_ERROR}): the interpreter has
 *   no ToleratedFailureCount/Percentage (its Map fails on the first failed child), so the whole
 *   map run is the lab's stand-in: the state becomes a Task ({@link LAB_MAP_RUN}) keeping its
 *   ResultPath, Catch and Next/End; the lab reads the items from S3, runs each through the
 *   map's own ItemSelector and ItemProcessor as its own local execution, applies the
 *   threshold as Step Functions documents it, writes ResultWriter's layout and fails with
 *   {@link THRESHOLD_ERROR} when exceeded.
 * Nothing else changes.
 *
 * @returns a copy of the definition, the plain map's reader and writer, and the budgeted maps.
 */
export function substituteS3Map(definition: Definition): {
  definition: Definition;
  mapState: string;
  reader: { bucket: string; keyPath: string };
  writer: { bucket: string; prefix: string };
  resultPath: string;
  budgeted: BudgetedMap[];
  readers: ItemsReaderMap[];
} {
  const copy = structuredClone(definition);
  const states = copy.States as Record<string, MapState>;
  const withReader = Object.keys(states).filter((s) => states[s]?.ItemReader);
  const hasBudget = (m: MapState) =>
    ((m.Catch ?? []) as { ErrorEquals: string[] }[]).some((c) =>
      c.ErrorEquals.includes(THRESHOLD_ERROR),
    );
  const readsIndex = (m: MapState) =>
    JSON.stringify(m.ItemSelector ?? {}).includes("$$.Map.Item.Index");
  const onlyReads = (m: MapState) => !m.ResultWriter;
  const standIn = (m: MapState) => hasBudget(m) || readsIndex(m);
  // Classified before anything is changed.
  const readerStates = withReader.filter((s) => onlyReads(states[s] as MapState));
  const standInStates = withReader.filter((s) => {
    const m = states[s] as MapState;
    return !onlyReads(m) && standIn(m);
  });
  const name = withReader.find((s) => {
    const m = states[s] as MapState;
    return !onlyReads(m) && !standIn(m);
  });
  const map = name ? states[name] : undefined;
  if (!name || !map?.ItemReader || !map.ResultWriter) {
    throw new Error("fleet definition: no top-level map with ItemReader and ResultWriter");
  }
  const readerOf = (m: MapState) => ({
    bucket: m.ItemReader?.Parameters.Bucket ?? "",
    keyPath: m.ItemReader?.Parameters["Key.$"] ?? "",
  });
  const writerOf = (m: MapState) => ({
    bucket: m.ResultWriter?.Parameters.Bucket ?? "",
    prefix: m.ResultWriter?.Parameters.Prefix ?? "",
  });
  const reader = readerOf(map);
  const writer = writerOf(map);
  delete map.ItemReader;
  delete map.ResultWriter;
  map.ItemsPath = `$.${LAB_ITEMS}`;
  const readers: ItemsReaderMap[] = [];
  for (const state of readerStates) {
    const m = states[state] as MapState;
    readers.push({
      state,
      reader: readerOf(m),
      maxItemsPath: String(m.ItemReader?.ReaderConfig?.MaxItemsPath ?? ""),
    });
    const { ResultPath, Next, End } = m;
    states[state] = {
      Type: "Task",
      Resource: LAB_READ_ITEMS,
      ResultPath,
      ...(Next ? { Next } : {}),
      ...(End ? { End } : {}),
    } as MapState;
  }
  const budgeted: BudgetedMap[] = [];
  for (const state of standInStates) {
    const m = states[state] as MapState;
    const { ProcessorConfig: _c, ...itemProcessor } = m.ItemProcessor as Definition;
    budgeted.push({
      state,
      reader: readerOf(m),
      writer: writerOf(m),
      itemSelector: m.ItemSelector,
      itemProcessor,
      maxConcurrencyPath: String(m.MaxConcurrencyPath ?? ""),
      toleratedCount: (m.ToleratedFailureCountPath ?? m.ToleratedFailureCount) as
        | string
        | number
        | undefined,
      toleratedPercentage: (m.ToleratedFailurePercentagePath ?? m.ToleratedFailurePercentage) as
        | string
        | number
        | undefined,
    });
    const { ResultPath, Catch, Next, End } = m;
    states[state] = {
      Type: "Task",
      Resource: LAB_MAP_RUN,
      ResultPath,
      ...(Catch ? { Catch } : {}),
      ...(Next ? { Next } : {}),
      ...(End ? { End } : {}),
    } as MapState;
  }
  return {
    definition: copy,
    mapState: name,
    reader,
    writer,
    resultPath: String(map.ResultPath),
    budgeted,
    readers,
  };
}

interface TaskEvent {
  request: { host: string; command: string };
  execution: unknown;
}

/** Runs the lab; `log` receives progress lines. */
export async function runFleetLab(
  options: { hosts: number; log?: (line: string) => void } = { hosts: 1_000 },
): Promise<LabReport> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const { template } = synth({ stage: STAGE, taskTimeouts: LAB_TIMEOUTS });
  const fleetDefinition = definitionOf(template, "WorkflowsFleet");
  const s3Path = substituteS3Map(fleetDefinition);
  log(`synthesized stage "${STAGE}"; S3 map "${s3Path.mapState}" reads via the lab (see below)`);

  let fleet: LoopbackFleet | undefined;
  let s3: LocalS3 | undefined;
  let configDir: string | undefined;
  try {
    [fleet, s3] = await Promise.all([
      startLoopbackFleet({ count: options.hosts }),
      startS3rver(s3Path.reader.bucket),
    ]);
    const roles: Record<string, number> = {};
    for (const h of fleet.hosts) roles[h.role] = (roles[h.role] ?? 0) + 1;
    log(
      `${fleet.hosts.length} hosts on ${fleet.hosts[0]?.host} … ${fleet.hosts.at(-1)?.host} port ${fleet.port}: ${JSON.stringify(roles)}`,
    );

    // --- the real task handler, local mode's runtime --------------------------------------
    configDir = await mkdtemp(path.join(os.tmpdir(), "bssh-fleet-lab-"));
    const key = generateEd25519KeyPair("fleet-lab");
    await writeFile(path.join(configDir, "id_ed25519"), key.private, { mode: 0o600 });
    await writeFile(path.join(configDir, "known_hosts"), `${fleet.knownHostsLine}\n`);
    const config: LocalConfig = {
      credentials: { default: { privateKeyFile: "id_ed25519" } },
      knownHostsFile: "known_hosts",
      callerArn: FLEET_ARN,
      policy: {
        denyCidrs: LOOPBACK_DENY,
        replaceDefaultDenyCidrs: true,
        rules: [
          {
            id: "fleet-lab",
            callers: [FLEET_ARN],
            credentials: ["default"],
            targets: { cidrs: ["127.0.0.0/8"], ports: [fleet.port], usernames: [USERNAME] },
            commands: { patterns: ["echo [a-z0-9-]+", "exit [0-9]+"] },
          },
        ],
      },
    };
    await writeFile(path.join(configDir, "config.json"), JSON.stringify(config));
    let auditLines = 0;
    const runtime = localRuntime(path.join(configDir, "config.json"), {
      settings: {
        reserveMs: LAB_TIMEOUTS.reserve.toMilliseconds(),
        stateMachineArns: [FLEET_ARN],
        phaseCaps: LAB_PHASE_CAPS,
      },
      writeAuditLine: () => {
        auditLines++;
      },
      metrics: { mode: "emf", writeLine: () => {} },
    });
    const handler = createTaskHandler(runtime);
    // The handler invoked the way Lambda invokes it for Step Functions (JSON in and out, a
    // fresh context, the runtime's error envelope, a hard timeout).
    const lambda = asLambda(handler, { timeoutMs: FUNCTION_TIMEOUT_MS });
    const indexOf = new Map(fleet.hosts.map((h, i) => [h.host, i]));
    /** One scenario's Lambda boundary: throttles injected, every invocation counted. */
    const boundary = () => {
      let invocations = 0;
      let lambdaMs = 0;
      const childInputs = new Map<string, unknown>();
      const timed = async (event: unknown) => {
        const t0 = Date.now();
        try {
          return await lambda(event);
        } finally {
          lambdaMs += Date.now() - t0;
        }
      };
      const injected = withThrottles(
        timed,
        (event) => (event as TaskEvent).request.host,
        (host, attempt) => throttledAttempt(indexOf.get(host) ?? -1, attempt),
      );
      return {
        invocations: () => invocations,
        lambdaMs: () => lambdaMs,
        throttled: injected.refused,
        childInputs,
        task: (event: unknown) => {
          invocations++;
          childInputs.set((event as TaskEvent).request.host, event);
          return injected.task(event);
        },
      };
    };
    const items = (hosts: FleetHost[]) => hosts.map((h) => ({ host: h.host }));
    const rows: ScenarioRow[] = [];

    // --- 1. the S3 path: every host, results to S3 ----------------------------------------
    const hostsKey = `inputs/lab-${fleet.hosts.length}.json`;
    await s3.client.send(
      new PutObjectCommand({
        Bucket: s3Path.reader.bucket,
        Key: hostsKey,
        Body: JSON.stringify(items(fleet.hosts)),
        ContentType: "application/json",
      }),
    );
    log(`hostsKey fleet: ${fleet.hosts.length} hosts, echo ok`);
    const s3Run = await runS3Fleet(
      s3Path,
      s3,
      { request: { ...REQUEST, command: "echo ok" }, hostsKey },
      boundary(),
    );
    const s3Check = await readBackResults(s3, s3Run.manifestKey, fleet.hosts);
    rows.push({
      ...s3Run.row,
      key: "s3",
      scenario: "hostsKey, echo ok (5 % dead/hung, throttles)",
      outcomes: s3Check.outcomes,
    });

    // --- 2. inline canaries over the first hosts: the right command, then the wrong one --
    const canaryHosts = fleet.hosts.slice(0, INLINE_LIMIT);
    const canaries = [
      { key: "canary-ok", command: "echo ok", maxErrors: "10%" },
      { key: "wrong-0", command: "exit 1", maxErrors: 0 },
      { key: "wrong-1", command: "exit 1", maxErrors: 1 },
    ] as const;
    for (const { key: rowKey, command, maxErrors } of canaries) {
      log(`inline canary: ${canaryHosts.length} hosts, ${command}, maxErrors ${maxErrors}`);
      const b = boundary();
      const t0 = Date.now();
      const run = await runLocally(
        fleetDefinition,
        "InlineRunHost",
        {
          request: { ...REQUEST, command },
          hosts: items(canaryHosts),
          ...CANARY,
          maxErrors,
          maxConcurrency: 40,
        },
        b.task,
        FLEET_ARN,
      );
      const out = run.output as { summary?: Record<string, number> } | undefined;
      const { total: _t, notStarted, ...outcomes } = out?.summary ?? {};
      rows.push({
        key: rowKey,
        scenario: `inline canary, ${command}, batches [1,5,"20%"], maxErrors ${JSON.stringify(maxErrors)}`,
        hosts: canaryHosts.length,
        wallMs: Date.now() - t0,
        invocations: b.invocations(),
        throttled: b.throttled(),
        lambdaMs: b.lambdaMs(),
        ...billing(run.events),
        outcomes,
        notStarted: notStarted ?? Number.NaN,
        execution: executionStatus(run),
        output: run.output,
        outputBytes: JSON.stringify(run.output ?? null).length,
      });
    }

    // --- 3. the S3 path with the same canary batches: the canary's K hosts inline, then the
    // rest from S3 (the wrong command stops after the canary; the right one runs every host once)
    const canaryRuns: Record<string, S3CanaryCheck> = {};
    for (const { key: rowKey, command, maxErrors } of S3_CANARIES) {
      log(`hostsKey fleet with canary batches: ${command}, maxErrors ${JSON.stringify(maxErrors)}`);
      const b = boundary();
      const stats: MapRunStats = {
        started: 0,
        failed: 0,
        exceeded: false,
        transitions: 0,
        manifestKey: "",
      };
      const read = { read: 0 };
      const inCanary = new Set<string>();
      const inRest = new Set<string>();
      const taskIn = (set: Set<string>) => (event: unknown) => {
        set.add((event as TaskEvent).request.host);
        return b.task(event);
      };
      const handlers: Record<string, (input: unknown) => Promise<unknown>> = {
        InlineRunHost: taskIn(inCanary),
        ...Object.fromEntries(
          s3Path.budgeted.map((m) => [
            m.state,
            mapRunStandIn(m, s3 as LocalS3, taskIn(inRest), stats),
          ]),
        ),
        ...Object.fromEntries(
          s3Path.readers.map((m) => [m.state, readItemsStandIn(m, s3 as LocalS3, read)]),
        ),
      };
      const t0 = Date.now();
      const run = await runWith(
        s3Path.definition,
        handlers,
        { request: { ...REQUEST, command }, hostsKey, ...CANARY, maxErrors, maxConcurrency: 40 },
        ["InlineRunHost"],
      );
      const out = run.output as
        | {
            canary?: {
              summary?: Record<string, number>;
              results?: { host: string }[];
            };
          }
        | undefined;
      const rest = stats.manifestKey
        ? await readBackResults(s3, stats.manifestKey, fleet.hosts)
        : undefined;
      const { total: _t, notStarted: _n, ...canaryOutcomes } = out?.canary?.summary ?? {};
      const outcomes: Record<string, number> = { ...canaryOutcomes };
      for (const [k, n] of Object.entries(rest?.outcomes ?? {}))
        outcomes[k] = (outcomes[k] ?? 0) + n;
      const canaryResults = out?.canary?.results ?? [];
      const restSeen = new Set(
        fleet.hosts.map((h) => h.host).filter((h) => !inCanary.has(h) && inRest.has(h)),
      );
      const withRecord = new Set(canaryResults.map((r) => r.host));
      const restRecordHosts = rest ? rest.check.distinctHosts : 0;
      canaryRuns[rowKey] = {
        canaryHosts: read.read,
        canaryRecords: canaryResults.length,
        ...(rest ? { rest: rest.check } : {}),
        distinctHosts: withRecord.size + restRecordHosts,
        missing: fleet.hosts.length - withRecord.size - restRecordHosts,
        ranTwice: [...inCanary].filter((h) => inRest.has(h)).length,
        restInvoked: inRest.size,
      };
      const { transitions } = billing(run.events);
      rows.push({
        key: rowKey,
        scenario: `hostsKey with canary, ${command}, batches [1,5,"20%"], maxErrors ${JSON.stringify(maxErrors)}`,
        hosts: fleet.hosts.length,
        wallMs: Date.now() - t0,
        invocations: b.invocations(),
        throttled: b.throttled(),
        lambdaMs: b.lambdaMs(),
        transitions: transitions + stats.transitions,
        children: stats.started,
        outcomes,
        notStarted: fleet.hosts.length - inCanary.size - restSeen.size,
        execution: executionStatus(run),
        output: run.output,
        outputBytes: JSON.stringify(run.output ?? null).length,
      });
    }

    // --- 4. the S3 path under a failure budget (Distributed Map's own threshold) ----------
    const budgetRuns: Record<string, S3Check> = {};
    for (const { key: rowKey, command, maxErrors, maxConcurrency } of S3_BUDGETS) {
      log(
        `hostsKey fleet with maxErrors ${JSON.stringify(maxErrors)}: ${command}, C = ${maxConcurrency}`,
      );
      const b = boundary();
      const stats: MapRunStats = {
        started: 0,
        failed: 0,
        exceeded: false,
        transitions: 0,
        manifestKey: "",
      };
      const handlers = Object.fromEntries(
        s3Path.budgeted.map((m) => [m.state, mapRunStandIn(m, s3 as LocalS3, b.task, stats)]),
      );
      const t0 = Date.now();
      const run = await runWith(s3Path.definition, handlers, {
        request: { ...REQUEST, command },
        hostsKey,
        maxErrors,
        maxConcurrency,
      });
      const back = await readBackResults(s3, stats.manifestKey, fleet.hosts);
      budgetRuns[rowKey] = back.check;
      const { transitions } = billing(run.events);
      rows.push({
        key: rowKey,
        scenario: `hostsKey, ${command}, maxErrors ${JSON.stringify(maxErrors)}, maxConcurrency ${maxConcurrency}`,
        hosts: fleet.hosts.length,
        wallMs: Date.now() - t0,
        invocations: b.invocations(),
        throttled: b.throttled(),
        lambdaMs: b.lambdaMs(),
        transitions: transitions + stats.transitions,
        children: stats.started,
        outcomes: back.outcomes,
        notStarted: fleet.hosts.length - stats.started,
        execution: executionStatus(run),
        output: run.output,
        outputBytes: JSON.stringify(run.output ?? null).length,
      });
    }

    const stats = fleet.stats();
    log(`${auditLines} audit lines`);
    return {
      rows,
      s3: s3Check.check,
      s3Budget: budgetRuns,
      s3Canary: canaryRuns,
      fleet: { hosts: fleet.hosts.length, port: fleet.port, roles },
      serverExecs: stats.execs,
      tarpitAccepts: stats.tarpitAccepts,
      elapsedMs: Date.now() - started,
      substituted: changedFields(fleetDefinition, s3Path.definition),
    };
  } finally {
    await Promise.all([fleet?.close(), s3?.close()]);
    if (configDir) await rm(configDir, { recursive: true, force: true });
  }
}

/** `state.field` for every field that differs between two definitions, nested states included. */
export function changedFields(before: Definition, after: Definition): string[] {
  const out: string[] = [];
  const walk = (a: Record<string, unknown>, b: Record<string, unknown>) => {
    const states = (d: Record<string, unknown>) => (d.States ?? {}) as Record<string, Definition>;
    for (const name of new Set([...Object.keys(states(a)), ...Object.keys(states(b))])) {
      const x = states(a)[name] ?? {};
      const y = states(b)[name] ?? {};
      for (const field of new Set([...Object.keys(x), ...Object.keys(y)])) {
        if (field === "ItemProcessor" || field === "Iterator") continue;
        if (JSON.stringify(x[field]) !== JSON.stringify(y[field])) out.push(`${name}.${field}`);
      }
      for (const nested of ["ItemProcessor", "Iterator"]) {
        if (x[nested] && y[nested]) walk(x[nested] as Definition, y[nested] as Definition);
        // A processor replaced whole (the budgeted map run's stand-in) is one change.
        else if (x[nested] || y[nested]) out.push(`${name}.${nested}`);
      }
    }
  };
  walk(before, after);
  return out.sort();
}

/** What Step Functions bills, counted on the execution's events (map children included). */
function billing(events: ExecutionEvent[]): { transitions: number; children: number } {
  let transitions = 0;
  let children = 0;
  for (const e of events) {
    if (e.type === "StateEntered" || e.type === "StateRetried") transitions++;
    const parent = (e as { parentState?: { name?: string } }).parentState?.name ?? "";
    if (e.type === "MapIterationStarted" && parent.startsWith("RunFleet")) children++;
  }
  return { transitions, children };
}

function executionStatus(run: { failed?: { Error?: string } | undefined; error: unknown }): string {
  if (run.failed) return `FAILED (${run.failed.Error})`;
  if (run.error) return `FAILED (${String((run.error as Error).name ?? run.error)})`;
  return "SUCCEEDED";
}

/**
 * Runs the S3 path of the definition: reads the `hostsKey` object from S3 as the ItemReader
 * would and hands its items to the map; afterwards writes the map's results to S3 in
 * ResultWriter's layout and puts `{MapRunArn, ResultWriterDetails}` where the results were.
 */
async function runS3Fleet(
  s3Path: ReturnType<typeof substituteS3Map>,
  s3: LocalS3,
  input: { hostsKey: string } & Record<string, unknown>,
  b: {
    task: (event: unknown) => Promise<unknown>;
    invocations: () => number;
    lambdaMs: () => number;
    throttled: () => number;
    childInputs: Map<string, unknown>;
  },
): Promise<{ row: Omit<ScenarioRow, "key" | "scenario" | "outcomes">; manifestKey: string }> {
  const t0 = Date.now();
  // ItemReader's stand-in: the object named by the input, read with the real S3 client.
  const hostItems = (await readJson(s3, s3Path.reader.bucket, input.hostsKey)) as {
    host: string;
  }[];
  const run = await runLocally(
    s3Path.definition,
    "S3RunHost",
    { ...input, [LAB_ITEMS]: hostItems },
    b.task,
    FLEET_ARN,
  );
  let output = run.output as Record<string, unknown> | undefined;
  let manifestKey = "";
  const field = s3Path.resultPath.replace(/^\$\./, "");
  if (output && Array.isArray(output[field])) {
    // ResultWriter's stand-in: one child record per item, in ResultWriter's layout.
    const results = output[field] as { host: string }[];
    const mapRunId = randomUUID();
    const mapRunArn = `${FLEET_ARN.replace(":stateMachine:", ":mapRun:")}/${s3Path.mapState}:${mapRunId}`;
    const prefix = `${s3Path.writer.prefix}/${mapRunId}`;
    const now = new Date().toISOString();
    const records = results.map((result, i) => ({
      ExecutionArn: `${mapRunArn.replace(":mapRun:", ":execution:")}:${i}`,
      Input: JSON.stringify(b.childInputs.get(hostItems[i]?.host ?? "") ?? hostItems[i]),
      InputDetails: { Included: true },
      Name: String(i),
      Output: JSON.stringify(result),
      OutputDetails: { Included: true },
      RedriveCount: 0,
      RedriveStatus: "NOT_REDRIVABLE",
      RedriveStatusReason: "Execution is SUCCEEDED and cannot be redriven",
      StartDate: now,
      StateMachineArn: mapRunArn,
      Status: "SUCCEEDED",
      StopDate: now,
    }));
    const body = JSON.stringify(records);
    const succeededKey = `${prefix}/SUCCEEDED_0.json`;
    await put(s3, s3Path.writer.bucket, succeededKey, body);
    manifestKey = `${prefix}/manifest.json`;
    await put(
      s3,
      s3Path.writer.bucket,
      manifestKey,
      JSON.stringify({
        DestinationBucket: s3Path.writer.bucket,
        MapRunArn: mapRunArn,
        ResultFiles: {
          FAILED: [],
          PENDING: [],
          SUCCEEDED: [{ Key: succeededKey, Size: Buffer.byteLength(body) }],
        },
      }),
    );
    const { [LAB_ITEMS]: _items, [field]: _results, ...rest } = output;
    output = {
      ...rest,
      [field]: {
        MapRunArn: mapRunArn,
        ResultWriterDetails: { Bucket: s3Path.writer.bucket, Key: manifestKey },
      },
    };
  }
  return {
    manifestKey,
    row: {
      hosts: hostItems.length,
      wallMs: Date.now() - t0,
      invocations: b.invocations(),
      throttled: b.throttled(),
      lambdaMs: b.lambdaMs(),
      ...billing(run.events),
      notStarted: 0,
      execution: executionStatus(run),
      output,
      outputBytes: JSON.stringify(output ?? null).length,
    },
  };
}

async function put(s3: LocalS3, bucket: string, key: string, body: string): Promise<void> {
  await s3.client.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: "application/json" }),
  );
}

/** Reads the results back through the manifest, as an operator would, and checks every host is there once. */
/**
 * The lab's stand-in of a map that only reads the first items of the list (see
 * {@link substituteS3Map}): the `hostsKey` object read with the real S3 client, its first
 * MaxItemsPath items returned, as the map's children (a Pass each) would return them.
 */
export function readItemsStandIn(
  map: ItemsReaderMap,
  s3: LocalS3,
  stats: { read: number },
): (input: unknown) => Promise<unknown> {
  return async (input) => {
    const items = (await readJson(
      s3,
      map.reader.bucket,
      String(at(map.reader.keyPath, input)),
    )) as unknown[];
    const max = Number(at(map.maxItemsPath, input));
    if (!Number.isInteger(max) || max < 1) {
      throw Object.assign(new Error(`MaxItemsPath ${map.maxItemsPath} is not a positive integer`), {
        name: "States.Runtime",
      });
    }
    const first = items.slice(0, max);
    stats.read += first.length;
    return first;
  };
}

async function readBackResults(
  s3: LocalS3,
  manifestKey: string,
  hosts: FleetHost[],
): Promise<{ check: S3Check; outcomes: Record<string, number> }> {
  const get = (key: string) => readJson(s3, s3.bucket, key);
  const outcomes: Record<string, number> = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  const byRole: Record<string, Record<string, number>> = {};
  const check: S3Check = {
    manifestKey,
    records: 0,
    distinctHosts: 0,
    missing: 0,
    skipped: 0,
    byRole,
  };
  if (!manifestKey) return { check, outcomes };
  const manifest = (await get(manifestKey)) as {
    ResultFiles: Record<string, { Key: string }[]>;
  };
  const role = new Map(hosts.map((h) => [h.host, h.role]));
  const seen = new Set<string>();
  for (const [status, files] of Object.entries(manifest.ResultFiles)) {
    for (const file of files) {
      for (const record of (await get(file.Key)) as {
        Output?: string;
        Error?: string;
        Cause?: string;
        Status: string;
      }[]) {
        check.records++;
        // A child failed under a failure budget keeps its outcome record as the Cause.
        const kept = status === "FAILED" && record.Error === HOST_NOT_SUCCEEDED;
        const outcome = JSON.parse(String(kept ? record.Cause : record.Output)) as {
          host: string;
          status: string;
          error?: string;
          skipped?: string;
        };
        // A canary's host in the rest's map run: its child only returned a marker.
        if (outcome.skipped !== undefined) {
          check.skipped++;
          continue;
        }
        seen.add(outcome.host);
        const label = status === "SUCCEEDED" || kept ? outcome.status : `child ${status}`;
        outcomes[label] = (outcomes[label] ?? 0) + 1;
        const r = role.get(outcome.host) ?? "unknown";
        byRole[r] ??= {};
        const key = outcome.error ? `${outcome.status}:${outcome.error}` : outcome.status;
        byRole[r][key] = (byRole[r][key] ?? 0) + 1;
      }
    }
  }
  check.distinctHosts = seen.size;
  check.missing = hosts.filter((h) => !seen.has(h.host)).length;
  return { check, outcomes };
}

/** The report as `npm run fleet-lab` prints it. */
export function formatLabReport(r: LabReport): string {
  const header = [
    "scenario",
    "hosts",
    "wall",
    "invocations (throttled)",
    "transitions",
    "Lambda s",
    "outcomes",
    "not started",
    "execution",
  ];
  const lines = r.rows.map((row) => [
    row.scenario,
    String(row.hosts),
    `${(row.wallMs / 1000).toFixed(1)} s`,
    `${row.invocations} (${row.throttled})`,
    String(row.transitions),
    (row.lambdaMs / 1000).toFixed(1),
    Object.entries(row.outcomes)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${s} ${n}`)
      .join(", ") || "—",
    Number.isNaN(row.notStarted) ? "?" : String(row.notStarted),
    row.execution,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
  const fmt = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  const out = [fmt(header), fmt(widths.map((w) => "-".repeat(w))), ...lines.map(fmt)];
  const s = r.s3;
  out.push(
    "",
    `hostsKey results read back through ${s.manifestKey}: ${s.records} records, ${s.distinctHosts} distinct hosts, ${s.missing} missing`,
    ...Object.entries(r.s3Budget).map(
      ([k, c]) =>
        `${k}: results read back through ${c.manifestKey}: ${c.records} records (FAILED_0.json keeps the hosts that did not succeed), ${c.distinctHosts} distinct hosts`,
    ),
    ...Object.entries(r.s3Canary).map(
      ([k, c]) =>
        `${k}: canary ${c.canaryHosts} hosts read from the list, ${c.canaryRecords} records inline; rest ${c.rest ? `read back through ${c.rest.manifestKey}: ${c.rest.records} records (${c.rest.skipped} canary hosts skipped)` : "never started"}; ${c.distinctHosts} distinct hosts with a record, ${c.missing} without, ${c.ranTwice} ran twice`,
    ),
    `  by role: ${JSON.stringify(s.byRole)}`,
    `execution output (bounded): ${r.rows.map((row) => `${row.outputBytes} B`).join(", ")}`,
    `ssh2 server: ${r.serverExecs} commands run; tarpits: ${r.tarpitAccepts} connections accepted`,
    "",
    `Substituted in the synthesized definition (everything else runs as deployed): ${r.substituted.join(", ")}`,
    "Not run here (aws-local-stepfunctions 3.0 has no ItemReader/ResultWriter/tolerated failure threshold; unverified without AWS):",
    ...UNVERIFIED.map((u) => `  - ${u}`),
    "",
    `Lab took ${(r.elapsedMs / 1000).toFixed(1)} s`,
  );
  return out.join("\n");
}

/** What the lab must show; empty when it passed. */
export function fleetLabProblems(r: LabReport): string[] {
  const problems: string[] = [];
  const row = (key: string) => r.rows.find((x) => x.key === key);
  const [s3Row, canaryOk, canary0, canary1] = ["s3", "canary-ok", "wrong-0", "wrong-1"].map(row);
  if (!s3Row || !canaryOk || !canary0 || !canary1) return ["a scenario did not run"];
  const okOut = canaryOk.output as { ended?: string; summary?: { total: number } } | undefined;
  if (canaryOk.notStarted !== 0 || okOut?.ended !== "completed") {
    problems.push(
      `${canaryOk.scenario}: ${canaryOk.notStarted} not started, ended ${okOut?.ended}`,
    );
  }
  if (s3Row.execution !== "SUCCEEDED") problems.push(`hostsKey run: ${s3Row.execution}`);
  if (s3Row.throttled === 0) problems.push("no throttle was injected");
  if (
    r.s3.records !== r.fleet.hosts ||
    r.s3.missing !== 0 ||
    r.s3.distinctHosts !== r.fleet.hosts
  ) {
    problems.push(
      `results lost: ${r.s3.records} records, ${r.s3.distinctHosts} distinct hosts of ${r.fleet.hosts}`,
    );
  }
  if (s3Row.outputBytes > 2_048)
    problems.push(`hostsKey output ${s3Row.outputBytes} B: not bounded`);
  for (const [wrong, ran] of [
    [canary0, 1],
    [canary1, 6],
  ] as const) {
    const started = wrong.hosts - wrong.notStarted;
    if (
      wrong.execution !== "SUCCEEDED" ||
      started !== ran ||
      (wrong.outcomes.failed ?? 0) !== ran
    ) {
      problems.push(
        `${wrong.scenario}: ${started} hosts started (want ${ran}), ${wrong.execution}`,
      );
    }
  }
  // hostsKey with canary batches: the wrong command stops after the canary's first batch (the
  // rest never starts); the right one runs every host once, the canary's inline, the rest's in S3.
  const [s3Wrong, s3Ok] = ["s3-canary-wrong", "s3-canary-ok"].map(row);
  const s3WrongCheck = r.s3Canary["s3-canary-wrong"];
  const s3OkCheck = r.s3Canary["s3-canary-ok"];
  if (!s3Wrong || !s3Ok || !s3WrongCheck || !s3OkCheck)
    return [...problems, "a hostsKey canary scenario did not run"];
  const s3WrongOut = s3Wrong.output as { ended?: string; rest?: string } | undefined;
  if (
    s3Wrong.execution !== "SUCCEEDED" ||
    s3WrongOut?.ended !== "maxErrorsExceeded" ||
    s3WrongOut.rest !== "never started" ||
    s3WrongCheck.rest !== undefined ||
    s3WrongCheck.restInvoked !== 0 ||
    s3Wrong.hosts - s3Wrong.notStarted !== 1 ||
    (s3Wrong.outcomes.failed ?? 0) !== 1
  ) {
    problems.push(
      `${s3Wrong.scenario}: ${s3Wrong.hosts - s3Wrong.notStarted} hosts started (want 1), rest ${s3WrongOut?.rest}, ${s3Wrong.execution}`,
    );
  }
  const s3Budget = row("s3-canary-budget");
  const s3BudgetCheck = r.s3Canary["s3-canary-budget"];
  const s3BudgetOut = s3Budget?.output as
    | { ended?: string; canary?: { ended?: string; errors?: number } }
    | undefined;
  if (
    !s3Budget ||
    !s3BudgetCheck ||
    s3Budget.execution !== "SUCCEEDED" ||
    s3BudgetOut?.ended !== "maxErrorsExceeded" ||
    s3BudgetOut.canary?.ended !== "completed" ||
    s3BudgetCheck.ranTwice !== 0
  ) {
    problems.push(
      `hostsKey canary, maxErrors 3: ended ${s3BudgetOut?.ended}, canary ${s3BudgetOut?.canary?.ended}, ${s3BudgetCheck?.ranTwice} ran twice, ${s3Budget?.execution}`,
    );
  }
  const k = s3OkCheck.canaryHosts;
  if (
    s3Ok.execution !== "SUCCEEDED" ||
    s3Ok.notStarted !== 0 ||
    k < 1 ||
    s3OkCheck.canaryRecords !== k ||
    s3OkCheck.rest?.records !== r.fleet.hosts ||
    s3OkCheck.rest.skipped !== k ||
    s3OkCheck.distinctHosts !== r.fleet.hosts ||
    s3OkCheck.missing !== 0 ||
    s3OkCheck.ranTwice !== 0
  ) {
    problems.push(
      `${s3Ok.scenario}: canary ${s3OkCheck.canaryRecords} of ${k}, rest ${s3OkCheck.rest?.records} records (${s3OkCheck.rest?.skipped} skipped), ${s3OkCheck.distinctHosts} distinct hosts, ${s3OkCheck.ranTwice} ran twice, ${s3Ok.execution}`,
    );
  }
  // hostsKey under a budget: the wrong command stops after at most MaxConcurrency hosts, every
  // record of the hosts that ran kept; the right one runs every host, every record kept.
  const [wrongS3, okS3] = ["s3-wrong-budget", "s3-ok-budget"].map(row);
  const wrongCheck = r.s3Budget["s3-wrong-budget"];
  const okCheck = r.s3Budget["s3-ok-budget"];
  if (!wrongS3 || !okS3 || !wrongCheck || !okCheck)
    return [...problems, "a budget scenario did not run"];
  const wrongOut = wrongS3.output as { ended?: string } | undefined;
  const cap = S3_BUDGETS[0].maxConcurrency;
  if (
    wrongS3.execution !== "SUCCEEDED" ||
    wrongOut?.ended !== "maxErrorsExceeded" ||
    wrongS3.children < 1 ||
    wrongS3.children > cap ||
    wrongCheck.records !== wrongS3.children ||
    (wrongS3.outcomes.succeeded ?? 0) !== 0
  ) {
    problems.push(
      `${wrongS3.scenario}: ${wrongS3.children} started (want 1..${cap}), ${wrongCheck.records} records, ended ${wrongOut?.ended}, ${wrongS3.execution}`,
    );
  }
  const okOutput = okS3.output as { resultWriter?: unknown; ended?: string } | undefined;
  if (
    okS3.execution !== "SUCCEEDED" ||
    okOutput?.resultWriter === undefined ||
    okOutput.ended !== undefined ||
    okCheck.records !== r.fleet.hosts ||
    okCheck.distinctHosts !== r.fleet.hosts ||
    okCheck.missing !== 0
  ) {
    problems.push(
      `${okS3.scenario}: ${okCheck.records} records of ${r.fleet.hosts}, ${okS3.execution}`,
    );
  }
  return problems;
}

/** What the lab's stand-in of a budgeted map run did (see {@link mapRunStandIn}). */
export interface MapRunStats {
  /** Children started (hosts that ran). */
  started: number;
  /** Children that ended FAILED (HostNotSucceeded). */
  failed: number;
  /** Whether the threshold was exceeded (the map run failed with {@link THRESHOLD_ERROR}). */
  exceeded: boolean;
  /** State transitions of the children, as Step Functions bills them. */
  transitions: number;
  manifestKey: string;
}

/** A `$.a.b` reference path into `input` (the only form the fleet's map fields use). */
function at(path: string, input: unknown): unknown {
  return path
    .replace(/^\$\.?/, "")
    .split(".")
    .filter(Boolean)
    .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], input);
}

/**
 * The lab's stand-in of one budgeted Distributed Map run, as the Task handler of the state
 * {@link substituteS3Map} put in its place. What it does is Step Functions' documented
 * behaviour, not Step Functions: the items come from the `hostsKey` object (the real S3
 * client, s3rver); each item runs as its own local execution of the map's ItemSelector and
 * ItemProcessor (a one-item Map around them, so the interpreter applies the selector; its
 * `$$.Map.Item.Index` is 0, which the fleet's selector does not read), at most MaxConcurrency
 * at once; the map run fails once the failed children exceed ToleratedFailureCount, or
 * failed/total exceeds ToleratedFailurePercentage %; no child starts after that and the running
 * ones finish. The results go to S3 in ResultWriter's layout (FAILED_0.json keeps each failed
 * child's Error and Cause), also when the run failed.
 */
export function mapRunStandIn(
  map: BudgetedMap,
  s3: LocalS3,
  task: (event: unknown) => Promise<unknown>,
  stats: MapRunStats,
): (input: unknown) => Promise<unknown> {
  const taskState = Object.entries(map.itemProcessor.States as Record<string, Definition>).find(
    ([, st]) => st.Type === "Task",
  )?.[0];
  if (!taskState) throw new Error(`${map.state}: no task in the item processor`);
  // The one-item wrapper's own index is 0: the child's real index is put where the selector
  // reads `$$.Map.Item.Index`.
  const itemSelector = JSON.parse(
    JSON.stringify(map.itemSelector ?? null).replaceAll('"$$.Map.Item.Index"', '"$.labItemIndex"'),
  ) as unknown;
  const wrapper = new StateMachine(
    {
      StartAt: "Item",
      States: {
        Item: {
          Type: "Map",
          ItemsPath: "$.labItem",
          ...(itemSelector ? { ItemSelector: itemSelector } : {}),
          ItemProcessor: map.itemProcessor,
          MaxConcurrency: 1,
          End: true,
        },
      },
    } as never,
    { validationOptions: { checkArn: false } },
  );
  return async (input) => {
    const items = (await readJson(
      s3,
      map.reader.bucket,
      String(at(map.reader.keyPath, input)),
    )) as unknown[];
    const limit = Number(at(map.maxConcurrencyPath, input)) || 40;
    const threshold = (v: number | string | undefined) =>
      v === undefined ? undefined : typeof v === "number" ? v : Number(at(v, input));
    const count = threshold(map.toleratedCount);
    const percentage = threshold(map.toleratedPercentage);
    const exceeded = () =>
      (count !== undefined && stats.failed > count) ||
      (percentage !== undefined && (stats.failed * 100) / items.length > percentage);
    const mapRunId = randomUUID();
    const mapRunArn = `${FLEET_ARN.replace(":stateMachine:", ":mapRun:")}/${map.state}:${mapRunId}`;
    const executionArn = `${FLEET_ARN.replace(":stateMachine:", ":execution:")}:${mapRunId}`;
    const records: Record<string, unknown>[] = [];
    let next = 0;
    const runChild = async (index: number) => {
      stats.started++;
      const start = new Date().toISOString();
      const execution = wrapper.run(
        { ...(input as object), labItem: [items[index]], labItemIndex: index } as never,
        {
          context: {
            Execution: { Id: executionArn, Name: mapRunId, Input: input as never },
            StateMachine: { Id: FLEET_ARN, Name: FLEET_ARN.split(":").pop() },
          },
          overrides: {
            taskResourceLocalHandlers: { [taskState]: task as never },
            retryIntervalOverrides: { [taskState]: 0 },
          },
        },
      );
      const events: { type: string; Error?: string; Cause?: string }[] = [];
      const collecting = (async () => {
        for await (const e of execution.eventLogs) events.push(e as never);
      })();
      let output: unknown;
      try {
        output = ((await execution.result) as unknown[])[0];
      } catch {}
      await collecting;
      // The wrapper's own Map state is not the child's.
      stats.transitions +=
        events.filter((e) => e.type === "StateEntered" || e.type === "StateRetried").length - 1;
      const failed = events.find((e) => e.type === "ExecutionFailed");
      const record = {
        ExecutionArn: `${mapRunArn.replace(":mapRun:", ":execution:")}:${index}`,
        Input: JSON.stringify(items[index]),
        InputDetails: { Included: true },
        Name: String(index),
        StartDate: start,
        StateMachineArn: mapRunArn,
        StopDate: new Date().toISOString(),
        index,
      };
      if (failed) {
        stats.failed++;
        records.push({ ...record, Error: failed.Error, Cause: failed.Cause, Status: "FAILED" });
        if (exceeded()) stats.exceeded = true;
      } else {
        records.push({
          ...record,
          Output: JSON.stringify(output),
          OutputDetails: { Included: true },
          Status: "SUCCEEDED",
        });
      }
    };
    // MaxConcurrency workers; none starts a child once the threshold is exceeded.
    const worker = async () => {
      while (!stats.exceeded && next < items.length) await runChild(next++);
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));

    const prefix = `${map.writer.prefix}/${mapRunId}`;
    const files: Record<string, { Key: string; Size: number }[]> = {
      FAILED: [],
      PENDING: [],
      SUCCEEDED: [],
    };
    records.sort((a, b) => Number(a.index) - Number(b.index));
    for (const status of ["SUCCEEDED", "FAILED"]) {
      const these = records.filter((r) => r.Status === status).map(({ index: _i, ...r }) => r);
      if (these.length === 0) continue;
      const body = JSON.stringify(these);
      const key = `${prefix}/${status}_0.json`;
      await put(s3, map.writer.bucket, key, body);
      files[status]?.push({ Key: key, Size: Buffer.byteLength(body) });
    }
    stats.manifestKey = `${prefix}/manifest.json`;
    await put(
      s3,
      map.writer.bucket,
      stats.manifestKey,
      JSON.stringify({
        DestinationBucket: map.writer.bucket,
        MapRunArn: mapRunArn,
        ResultFiles: files,
      }),
    );
    if (stats.exceeded) {
      throw Object.assign(
        new Error(
          `The number of failed items exceeded the tolerated failure threshold (${stats.failed} failed of ${items.length}; count ${count ?? "-"}, percentage ${percentage ?? "-"})`,
        ),
        { name: THRESHOLD_ERROR },
      );
    }
    return {
      MapRunArn: mapRunArn,
      ResultWriterDetails: { Bucket: map.writer.bucket, Key: stats.manifestKey },
    };
  };
}

/** Runs a definition locally with a local handler per Task state (runLocally binds one). */
function runWith(
  definition: Definition,
  handlers: Record<string, (input: unknown) => Promise<unknown>>,
  input: unknown,
  /** Task states whose retry waits are skipped (as runLocally does for its task). */
  noRetryWaits: string[] = [],
): Promise<LocalExecution> {
  return runLocallyWith(definition as Record<string, unknown>, input, {
    handlers,
    retryIntervals: Object.fromEntries(noRetryWaits.map((t) => [t, 0])),
    stateMachineArn: FLEET_ARN,
  });
}

/** A JSON object from the lab's S3 (s3rver), read with the real S3 client. */
async function readJson(s3: LocalS3, bucket: string, key: string): Promise<unknown> {
  const object = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return JSON.parse(
    await (object.Body as { transformToString(): Promise<string> }).transformToString(),
  ) as unknown;
}
