/**
 * The incident drill (issue 11, issue 22): the fleet workflow, synthesized with short timeouts,
 * runs locally (aws-local-stepfunctions) with the REAL task handler over 22 hosts that are
 * distinct the way production hosts are: each has its own name (`<role>-<n>.drill.test`,
 * resolved by the runtime's lookup) and its own loopback address (127.0.X.n, X random per run),
 * and every one listens on port 22. A rule keyed on the port alone sees one host.
 *
 * - 5 tarpits that accept TCP and never send a banner (BannerTimeout, retried: 3 sessions each);
 * - 1 host that freezes after the command started (a proxy that goes silent on exec:
 *   keepalive → ConnectionLost; not a hang host: the command was running);
 * - 1 host whose authentication never answers (AuthTimeout, retried);
 * - 1 healthy command that uses its whole budget (more than 90 % of the function timeout);
 * - 14 healthy hosts (one prints "Task timed out after 3.00 seconds", one exits 3: the local
 *   interpreter needs every outcome present, see workflows.ts).
 *
 * Every host's own outcome (status, error, phase) is part of the report and checked
 * (drill-checks.ts): a baseline that ends otherwise fails the drill.
 *
 * Every audit line, EMF line and Lambda/Step Functions datum is captured; every alarm of the
 * synthesized template is evaluated on them (alarm-evaluator.ts); the notifications CloudWatch
 * would send (every alarm with actions, on its route) go to the real enrichment handler of that
 * route through wire-level fake Logs and SNS endpoints.
 */
import { execFile } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { chmod, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { SNSClient } from "@aws-sdk/client-sns";
import { type CfnElement, Duration } from "aws-cdk-lib";
import type { SNSEvent } from "aws-lambda";
import type { Construct } from "constructs";
import { createEnrichmentHandler } from "../../functions/alarm-enrichment/enrichment-handler.ts";
import { type EmfDocument, fromEmfDocument } from "../../functions/metrics/emf.ts";
import { LeakGauge } from "../../functions/metrics/leak-gauge.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { lambdaContext } from "../../local/lambda-context.ts";
import { type LocalConfig, localRuntime } from "../../local/local-config.ts";
import { ROUTES, type Severity } from "../../operations/alarm-catalog.ts";
import { lambdaError, localStateMachineArn, runLocally } from "../cdk/local-sfn.ts";
import { definitionOf, synth } from "../cdk/synth.ts";
import { LOOPBACK_DENY } from "../functions/support.ts";
import { startProxy, type Proxy as TcpProxy } from "../helpers/adversaries.ts";
import {
  FAKE_CLIENT_CONFIG,
  FakeCloudWatchAlarms,
  FakeLogs,
  FakeSns,
  type Published,
} from "../helpers/fake-alarm-endpoints.ts";
import type { LogEvent } from "../helpers/logs-insights.ts";
import { type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { type AlarmResult, type Datum, evaluateAlarms } from "./alarm-evaluator.ts";
import type { ScenarioIds } from "./page-scenario.ts";

const execFileAsync = promisify(execFile);

/** Short timeouts so the drill takes seconds; the order is still edge > Lambda > session + reserve. */
export const DRILL_TIMEOUTS = {
  taskTimeout: Duration.seconds(17),
  functionTimeout: Duration.seconds(15),
  sessionBudget: Duration.millis(14_700),
  reserve: Duration.millis(200),
} as const;
const FUNCTION_TIMEOUT_MS = DRILL_TIMEOUTS.functionTimeout.toMilliseconds();
/** timeoutMs of the tarpits: the banner phase starts at TCP connect, so any budget ends in it. */
const HANG_MS = 1_500;
/**
 * timeoutMs of the auth host. Its budget must end in the auth phase, so connect, banner and key
 * exchange must finish well inside it even on a loaded 2-core machine (20 sessions start at
 * once). With 1,500 ms a slow key exchange ended some attempts as HandshakeTimeout, and the
 * AuthTimeouts alarm (3 sessions) then failed the drill about 1 run in 7 under load.
 */
const AUTH_HANG_MS = 4_000;
/**
 * The full-budget command ends when the drill releases it: at this share of the function
 * timeout after ITS invocation started (Lambda's Duration is then past 90 % by construction: a
 * timer never fires early), whatever the session's setup took. A fixed `sleep 13.6` had to fit
 * between 90 % of the timeout and the end of its exec allowance (budget − setup − teardown
 * reserve), a window of ~950 ms that a loaded machine's setup time (20 concurrent sessions)
 * overran: it ended CommandTimeout, unchecked. Released at 91 %, the command's end sits ~900 ms
 * before its allowance ends, and setup can take up to ~13 s without changing the outcome.
 */
const FULL_BUDGET_RELEASE = 0.91;
const STAGE = "drill";
/** Every drill host listens here, as production hosts do. */
export const DRILL_PORT = 22;
/** The policy's caller for tasks: the fleet state machine itself (SPEC §9). */
const FLEET_ARN = localStateMachineArn("drill-Fleet");

export type HostRole = "tarpit" | "freeze" | "auth" | "full-budget" | "healthy" | "nonzero";

/** What one host's result must be. */
export interface Expected {
  status: string;
  error?: string;
  phase?: string;
}

export interface DrillHost {
  role: HostRole;
  /** Distinct per host: `<role>-<n>.drill.test`. */
  name: string;
  /** Distinct per host: 127.0.X.n. */
  address: string;
  port: number;
  command: string;
  timeoutMs: number;
  expect: Expected;
}

export interface DrillReport {
  hosts: DrillHost[];
  summary: Record<string, number>;
  results: { host: string; status: string; phase: string | null; error?: string }[];
  invocations: number;
  auditLines: number;
  datums: number;
  /** Lambda Duration of the full-budget run against the function timeout. */
  /** Per auth-host attempt: ms until authentication started (its budget is AUTH_HANG_MS). */
  authPreAuthMs: number[];
  fullBudget: {
    durationMs: number;
    timeoutMs: number;
    slackMs: number;
    /** Its session's setup (resolve … channel), ms. */
    setupMs: number;
    released: boolean;
  };
  alarms: AlarmResult[];
  fired: string[];
  notifications: Published[];
  /** Every captured log line (audit, EMF, Lambda's own). */
  events: LogEvent[];
  /** What the alarms were evaluated on: a mutation test re-evaluates it without new sessions. */
  recorded: Recorded;
  /** Queries the fake Logs endpoint received, and the ones it refused. */
  queries: { started: string[]; refused: string[] };
  elapsedMs: number;
}

/** One drill run's captured data: enough to evaluate any variant of the template again. */
export interface Recorded {
  stage: string;
  /** What the page scenario's data names (page-scenario.ts). */
  scenarioIds: ScenarioIds;
  taskTimeoutMs: number;
  /** Route → logical id of its alarm topic (what alarm actions name). */
  topics: Record<Severity, string>;
  template: Template;
  datums: Datum[];
  events: LogEvent[];
  origin: number;
  now: number;
}

export type Template = Parameters<typeof evaluateAlarms>[0];

/** A listener on address:22 and the sockets it accepted. */
interface Front {
  address: string;
  close(): Promise<void>;
}

async function listenOn(server: net.Server, address: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(DRILL_PORT, address, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * A host on address:22: a tarpit (accepts, never sends a byte) or a forwarder to a loopback
 * server on another port (the scripted ssh2 servers pick their own port).
 */
async function front(address: string, forwardTo?: number): Promise<Front> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
  };
  const server = net.createServer((client) => {
    track(client);
    if (forwardTo === undefined) return; // a tarpit: never a byte
    const upstream = net.connect(forwardTo, "127.0.0.1");
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await listenOn(server, address);
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Targets {
  sshd: SshdServer;
  auth: Ssh2Server;
  frozen: Ssh2Server;
  proxy: TcpProxy;
  fronts: Front[];
}

/** The 22 hosts, in the order of the fleet's items; addresses are filled in by the caller. */
function hostPlan(fifo: string): Omit<DrillHost, "address">[] {
  const h = (
    role: HostRole,
    n: number,
    command: string,
    timeoutMs: number,
    expect: Expected,
  ): Omit<DrillHost, "address"> => ({
    role,
    name: `${role}-${n}.drill.test`,
    port: DRILL_PORT,
    command,
    timeoutMs,
    expect,
  });
  return [
    ...Array.from({ length: 5 }, (_, i) =>
      h("tarpit", i + 1, "echo hi", HANG_MS, {
        status: "timed_out",
        error: "BannerTimeout",
        phase: "banner",
      }),
    ),
    h("freeze", 1, "echo frozen", 30_000, {
      status: "error",
      error: "ConnectionLost",
      phase: "exec",
    }),
    h("auth", 1, "echo hi", AUTH_HANG_MS, {
      status: "timed_out",
      error: "AuthTimeout",
      phase: "auth",
    }),
    h("full-budget", 1, `cat ${fifo}`, 30_000, { status: "succeeded" }),
    ...Array.from({ length: 12 }, (_, i) =>
      h("healthy", i + 1, `echo ok-${i}`, 5_000, { status: "succeeded" }),
    ),
    h("healthy", 13, "echo Task timed out after 3.00 seconds", 5_000, { status: "succeeded" }),
    h("nonzero", 1, "exit 3", 5_000, { status: "failed", phase: "exec" }),
  ];
}

/** Roles served by the one sshd (one ListenAddress per host). */
const SSHD_ROLES: readonly HostRole[] = ["full-budget", "healthy", "nonzero"];

/**
 * Picks a free 127.0.X.0/24 (X random per run, so concurrent runs do not collide), gives each
 * host its address and starts its server there on port 22.
 */
async function startTargets(
  plan: Omit<DrillHost, "address">[],
  targets: Partial<Targets>,
): Promise<DrillHost[]> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const x = 16 + Math.floor(Math.random() * 224);
    const hosts = plan.map((p, i) => ({ ...p, address: `127.0.${x}.${i + 1}` }));
    try {
      await startTargetsAt(hosts, targets);
      return hosts;
    } catch (err) {
      lastError = err;
      await stopTargets(targets);
      for (const k of Object.keys(targets)) delete targets[k as keyof Targets];
      if (!/EADDRINUSE|Address already in use/.test(String((err as Error).message))) break;
    }
  }
  throw lastError;
}

async function startTargetsAt(hosts: DrillHost[], t: Partial<Targets>): Promise<void> {
  const of = (role: HostRole) => hosts.filter((h) => h.role === role);
  t.fronts = [];
  // Tarpits first: they find out whether the /24 is free.
  for (const h of of("tarpit")) t.fronts.push(await front(h.address));
  const [auth, frozen] = await Promise.all([
    startSsh2Server({ auth: "never" }),
    startSsh2Server({
      // The host freezes once the command has started and written its first line: nothing
      // more crosses the wire (a crashed VM, a cut link), so only SSH keepalive can tell.
      exec: (ctx) => {
        ctx.stdout("started\n");
        setTimeout(() => t.proxy?.goSilent(), 200);
      },
    }),
  ]);
  t.auth = auth;
  t.frozen = frozen;
  t.proxy = await startProxy(frozen.port);
  for (const h of of("auth")) t.fronts.push(await front(h.address, auth.port));
  for (const h of of("freeze")) t.fronts.push(await front(h.address, t.proxy.port));
  const served = hosts.filter((h) => SSHD_ROLES.includes(h.role));
  t.sshd = await startSshd({
    maxStartups: "64",
    extraConfig: served.map((h) => `ListenAddress ${h.address}:${DRILL_PORT}`),
  });
  // sshd binds every ListenAddress before it accepts; wait until each one says so.
  const sshd = t.sshd;
  const until = Date.now() + 10_000;
  for (;;) {
    const log = sshd.log();
    const failed = log.match(/Bind to port \d+ on \S+ failed[^\n]*/);
    if (failed) throw new Error(`drill: sshd: ${failed[0]}`);
    if (served.every((h) => log.includes(`Server listening on ${h.address} port ${DRILL_PORT}.`)))
      return;
    if (Date.now() > until) throw new Error(`drill: sshd did not listen on port 22:\n${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function stopTargets(t: Partial<Targets>): Promise<void> {
  await Promise.all([
    t.sshd?.stop(),
    t.auth?.close(),
    t.proxy?.close(),
    t.frozen?.close(),
    ...(t.fronts ?? []).map((f) => f.close()),
  ]);
}

const logicalId = (c: Construct) => {
  const child = c.node.defaultChild as CfnElement;
  return child.stack.resolve(child.logicalId) as string;
};

/** The fake ARN of a route's topic (what the drill's enrichment publishes to). */
export const routeTopicArn = (route: Severity) =>
  `arn:aws:sns:eu-west-1:123456789012:drill-${route}`;

/** Runs the drill; `log` receives progress lines. */
export async function runDrill(log: (line: string) => void = () => {}): Promise<DrillReport> {
  const started = Date.now();
  const { stack, template } = synth({ stage: STAGE, taskTimeouts: DRILL_TIMEOUTS });
  const ids = {
    taskFunction: logicalId(stack.taskFunction.function),
    apiFunction: logicalId(stack.apiFunction.function),
    taskLogs: logicalId(stack.taskFunction.logGroup),
    apiLogs: logicalId(stack.apiFunction.logGroup),
    fleet: logicalId(stack.workflows.fleet),
    fleetLogs: logicalId(stack.workflows.fleetLogs),
  };
  const fleet = definitionOf(template, "WorkflowsFleet");
  log(`synthesized stage "${STAGE}" (task function timeout ${FUNCTION_TIMEOUT_MS} ms)`);

  const targets: Partial<Targets> = {};
  let configDir: string | undefined;
  let fifoDir: string | undefined;
  let releaseTimer: NodeJS.Timeout | undefined;
  const [logs, sns, cw] = await Promise.all([
    FakeLogs.start(),
    FakeSns.start(),
    FakeCloudWatchAlarms.start(),
  ]);
  try {
    configDir = await mkdtemp(path.join(os.tmpdir(), "bssh-drill-"));
    // The full-budget command reads this FIFO (as the sshd's test user, hence the modes): it
    // ends when the drill writes to it.
    fifoDir = await mkdtemp(path.join(os.tmpdir(), "bssh-drill-fifo-"));
    await chmod(fifoDir, 0o755);
    const fifo = path.join(fifoDir, "release");
    await execFileAsync("mkfifo", ["-m", "0666", fifo]);
    const hosts = await startTargets(hostPlan(fifo), targets);
    const { sshd, auth, frozen } = targets as Targets;
    const keyOf = (h: DrillHost) =>
      h.role === "auth"
        ? auth.hostKeyLine
        : h.role === "freeze"
          ? frozen.hostKeyLine
          : SSHD_ROLES.includes(h.role)
            ? sshd.hostKeyLine
            : undefined;
    // Port 22: known_hosts names the host alone, as for any production host.
    const knownHosts = hosts.flatMap((h) => {
      const key = keyOf(h);
      return key ? [`${h.name} ${key}`] : [];
    });
    await writeFile(path.join(configDir, "known_hosts"), `${knownHosts.join("\n")}\n`);
    const addressOf = new Map(hosts.map((h) => [h.name, h.address]));
    // The hosts' "DNS": names resolve to their own loopback address, anything else fails.
    const lookup = async (host: string) => {
      const address = addressOf.get(host);
      if (!address) {
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
      }
      return { address, family: 4 as const };
    };
    const config: LocalConfig = {
      credentials: { default: { privateKeyFile: sshd.keys.ed25519.path } },
      knownHostsFile: path.join(configDir, "known_hosts"),
      callerArn: FLEET_ARN,
      policy: {
        denyCidrs: LOOPBACK_DENY,
        replaceDefaultDenyCidrs: true,
        rules: [
          {
            id: "drill",
            callers: [FLEET_ARN],
            credentials: ["default"],
            targets: {
              cidrs: ["127.0.0.0/8"],
              ports: [DRILL_PORT],
              usernames: [sshd.username],
            },
            commands: {
              patterns: ["echo [A-Za-z0-9 .-]+", "exit [0-9]+", "cat /[A-Za-z0-9/_.-]+"],
            },
          },
        ],
      },
    };
    await writeFile(path.join(configDir, "config.json"), JSON.stringify(config));

    // --- capture ------------------------------------------------------------------------
    const events: LogEvent[] = [];
    const datums: Datum[] = [];
    const line = (message: string, logGroup = ids.taskLogs) =>
      events.push({ logGroup, logStream: "drill", timestamp: Date.now(), message });
    let auditLines = 0;
    const runtime = localRuntime(path.join(configDir, "config.json"), {
      lookup,
      settings: {
        reserveMs: DRILL_TIMEOUTS.reserve.toMilliseconds(),
        stateMachineArns: [FLEET_ARN],
      },
      writeAuditLine: (text) => {
        auditLines++;
        line(text);
      },
      metrics: {
        mode: "emf",
        writeLine: (text) => {
          line(text);
          const doc = JSON.parse(text) as EmfDocument;
          for (const d of fromEmfDocument(doc)) {
            datums.push({
              namespace: doc._aws.CloudWatchMetrics[0]?.Namespace ?? "",
              name: d.name,
              dimensions: d.dimensions,
              value: d.value,
              timestamp: doc._aws.Timestamp,
              ...(d.unit ? { unit: d.unit } : {}),
            });
          }
        },
      },
    });
    // One "container" per invocation: LeakedSockets is a per-container gauge (sockets open at
    // invocation start), and 20 concurrent invocations share this process and its servers'
    // sockets. A fresh gauge makes each first measurement its own baseline, so the drill does
    // not evaluate leaks (the soak and the gauge tests do).
    const handlerOf = () =>
      createTaskHandler({
        ...runtime,
        metrics: { ...runtime.metrics, leakGauge: new LeakGauge() },
      });
    const lambdaDatum = (name: string, value: number, timestamp: number) =>
      datums.push({
        namespace: "AWS/Lambda",
        name,
        dimensions: { FunctionName: ids.taskFunction },
        value,
        timestamp,
        unit: name === "Duration" ? "Milliseconds" : "Count",
      });
    let invocations = 0;
    let fullBudget = {
      durationMs: 0,
      timeoutMs: FUNCTION_TIMEOUT_MS,
      slackMs: 0,
      setupMs: 0,
      released: false,
    };
    const isFullBudget = (command: string) => command === `cat ${fifo}`;
    // Ends the full-budget command: a writer on the FIFO, non-blocking (no reader = the command
    // has not started: the drill then reports it instead of waiting on a thread).
    const release = async () => {
      try {
        const fd = await open(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
        await fd.write("released\n");
        await fd.close();
        fullBudget.released = true;
      } catch (err) {
        log(`full-budget release failed: ${(err as Error).message}`);
      }
    };
    // The task invoked the way Lambda invokes it (JSON in and out, the runtime's error
    // envelope), recording what Lambda itself would report: Invocations, Errors, Duration, its
    // "Invoke Error" log line, and a hard timeout as Sandbox.Timedout + "Task timed out after".
    const asLambda = async (input: unknown) => {
      const event = JSON.parse(JSON.stringify(input)) as { request: { command: string } };
      const context = lambdaContext({ timeoutMs: FUNCTION_TIMEOUT_MS, functionName: "drill-task" });
      const t0 = Date.now();
      invocations++;
      if (isFullBudget(event.request.command)) {
        releaseTimer = setTimeout(() => void release(), FULL_BUDGET_RELEASE * FUNCTION_TIMEOUT_MS);
      }
      lambdaDatum("Invocations", 1, t0);
      let timer: NodeJS.Timeout | undefined;
      const hard = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const seconds = (FUNCTION_TIMEOUT_MS / 1000).toFixed(2);
          line(
            `${new Date().toISOString()} ${context.awsRequestId} Task timed out after ${seconds} seconds`,
          );
          const cause = {
            errorType: "Sandbox.Timedout",
            errorMessage: `Task timed out after ${seconds} seconds`,
          };
          reject(Object.assign(new Error(JSON.stringify(cause)), { name: "Sandbox.Timedout" }));
        }, FUNCTION_TIMEOUT_MS);
      });
      const finish = () => {
        const duration = Date.now() - t0;
        lambdaDatum("Duration", duration, t0);
        if (isFullBudget(event.request.command)) {
          fullBudget = { ...fullBudget, durationMs: duration };
        }
      };
      try {
        const out = await Promise.race([
          handlerOf()(event, context).then(
            (result) => JSON.parse(JSON.stringify(result)) as unknown,
            (err: unknown) => {
              const error = err as Error;
              line(
                `${new Date().toISOString()}\t${context.awsRequestId}\tERROR\tInvoke Error \t${JSON.stringify({ errorType: error.name, errorMessage: error.message.slice(0, 200) })}`,
              );
              lambdaDatum("Errors", 1, t0);
              throw lambdaError(error, (error.stack ?? "").split("\n"));
            },
          ),
          hard,
        ]);
        return out;
      } finally {
        clearTimeout(timer);
        finish();
      }
    };

    // --- run the fleet -----------------------------------------------------------------
    log(
      `running the fleet workflow over ${hosts.length} hosts (${hosts.filter((h) => h.role !== "healthy").length} misbehaving)`,
    );
    const origin = Date.now();
    const items = hosts.map((h) => ({
      host: h.name,
      port: h.port,
      command: h.command,
      credential: "default",
      timeoutMs: h.timeoutMs,
    }));
    const execution = await runLocally(
      fleet,
      "InlineRunHost",
      { request: { username: sshd.username }, hosts: items, maxConcurrency: 20 },
      asLambda,
      FLEET_ARN,
    );
    const states = (name: string) =>
      datums.push({
        namespace: "AWS/States",
        name,
        dimensions: { StateMachineArn: ids.fleet },
        value: 1,
        timestamp: Date.now(),
      });
    states("ExecutionsStarted");
    if (execution.error) {
      states("ExecutionsFailed");
      line(
        JSON.stringify({ type: "ExecutionFailed", details: { error: String(execution.error) } }),
        ids.fleetLogs,
      );
    }
    const output = execution.output as {
      summary: Record<string, number>;
      results: DrillReport["results"];
    };
    const audit = events
      .map((e) => {
        try {
          return JSON.parse(e.message) as {
            type?: string;
            command?: string;
            slackMs?: number;
            timings?: Record<string, number | null>;
            target?: { host?: string };
          };
        } catch {
          return undefined;
        }
      })
      .filter((a) => a?.type === "bounded-ssh.audit");
    const fbAudit = audit.find((a) => a?.command !== undefined && isFullBudget(a.command));
    fullBudget.slackMs = fbAudit?.slackMs ?? Number.NaN;
    // Session setup before the command ran (resolve … channel): what a fixed-length command
    // had to fit beside, and what varies with load.
    const took = (a: (typeof audit)[number], phases: string[]) =>
      Math.round(phases.reduce((sum, p) => sum + (a?.timings?.[`${p}Ms`] ?? 0), 0));
    fullBudget.setupMs = took(fbAudit, [
      "resolve",
      "connect",
      "banner",
      "handshake",
      "auth",
      "channel",
    ]);
    // How long each auth-host attempt took to reach auth: the margin its budget must keep.
    const authNames = new Set(hosts.filter((h) => h.role === "auth").map((h) => h.name));
    const authPreAuthMs = audit
      .filter((a) => authNames.has(a?.target?.host ?? ""))
      .map((a) => took(a, ["resolve", "connect", "banner", "handshake"]));

    // --- evaluate the template's alarms -------------------------------------------------
    const now = Date.now();
    const templateJson = template.toJSON() as Template;
    const restApi = Object.values(templateJson.Resources).find(
      (r) => r.Type === "AWS::ApiGateway::RestApi",
    );
    const recorded: Recorded = {
      stage: STAGE,
      scenarioIds: {
        taskFunction: ids.taskFunction,
        apiFunction: ids.apiFunction,
        taskLogs: ids.taskLogs,
        apiName: String(restApi?.Properties.Name),
        pageTopic: logicalId(stack.monitoring.alarmTopics.page as unknown as Construct),
      },
      taskTimeoutMs: FUNCTION_TIMEOUT_MS,
      topics: Object.fromEntries(
        ROUTES.map((r) => [r, logicalId(stack.monitoring.alarmTopics[r] as unknown as Construct)]),
      ) as Record<Severity, string>,
      template: templateJson,
      datums,
      events,
      origin,
      now,
    };
    const evaluation = evaluateAlarms(recorded.template, datums, events, origin, now);

    // --- what CloudWatch would send, through the enrichment function ------------------
    logs.events = events;
    for (const a of evaluation.alarms) {
      cw.states.set(a.name, {
        state: a.state,
        reason: a.composite
          ? ""
          : `Threshold Crossed: [${a.values.join(", ")}] ${a.comparison} ${a.threshold}`,
      });
    }
    // One enrichment per route, as deployed: CloudWatch notifies the route's alarm topic, its
    // enrichment publishes to the route's topic.
    const routeOfTopic = new Map<string, Severity>(
      ROUTES.map((r) => [logicalId(stack.monitoring.alarmTopics[r] as unknown as Construct), r]),
    );
    const enrichmentOf = (route: Severity) =>
      createEnrichmentHandler({
        logs: new CloudWatchLogsClient({ ...FAKE_CLIENT_CONFIG, endpoint: logs.endpoint }),
        sns: new SNSClient({ ...FAKE_CLIENT_CONFIG, endpoint: sns.endpoint }),
        cloudwatch: new CloudWatchClient({ ...FAKE_CLIENT_CONFIG, endpoint: cw.endpoint }),
        config: {
          stage: STAGE,
          enrichedTopicArn: routeTopicArn(route),
          functionLogGroups: [ids.apiLogs, ids.taskLogs],
          workflowLogGroups: [ids.fleetLogs],
          runbookBaseUrl: "https://github.com/bounded-ssh/bounded-ssh/blob/main/docs/runbooks",
          dashboardUrl:
            "https://console.aws.amazon.com/cloudwatch/home#dashboards:name=drill-BoundedSsh-Test",
          reserveMs: 500,
          pollIntervalMs: 50,
        },
      });
    const notified = evaluation.alarms.filter(
      (a) => a.state === "ALARM" && a.alarmActions.length > 0,
    );
    for (const a of notified) {
      const routes = a.alarmActions.map((t) => routeOfTopic.get(t));
      const route = routes[0];
      if (!route || routes.length !== 1) {
        throw new Error(`drill: ${a.name} notifies ${a.alarmActions.join(", ")}: not one route`);
      }
      const message = {
        AlarmName: a.name,
        NewStateValue: "ALARM",
        NewStateReason: a.composite
          ? "Composite: a page-level child alarm is in ALARM"
          : `Threshold Crossed: [${a.values.join(", ")}] ${a.comparison} ${a.threshold}`,
        StateChangeTime: new Date(now).toISOString(),
        ...(a.period
          ? { Trigger: { Period: a.period, EvaluationPeriods: a.evaluationPeriods ?? 1 } }
          : {}),
      };
      const snsEvent = {
        Records: [
          { Sns: { Message: JSON.stringify(message), Timestamp: message.StateChangeTime } },
        ],
      } as unknown as SNSEvent;
      await enrichmentOf(route)(snsEvent, lambdaContext({ timeoutMs: 10_000 }));
    }

    return {
      hosts,
      summary: output?.summary ?? {},
      results: output?.results ?? [],
      invocations,
      auditLines,
      datums: datums.length,
      fullBudget,
      authPreAuthMs,
      alarms: evaluation.alarms,
      fired: evaluation.fired,
      notifications: [...sns.published],
      events,
      recorded,
      queries: { started: logs.started.map((q) => q.queryString), refused: [...logs.refused] },
      elapsedMs: Date.now() - started,
    };
  } finally {
    clearTimeout(releaseTimer);
    await Promise.all([stopTargets(targets), logs.close(), sns.close(), cw.close()]);
    if (configDir) await rm(configDir, { recursive: true, force: true });
    if (fifoDir) await rm(fifoDir, { recursive: true, force: true });
  }
}

/** Whether a host's result is its expected outcome (status, and error and phase when named). */
export function outcomeMatches(h: DrillHost, res: DrillReport["results"][number] | undefined) {
  return (
    res !== undefined &&
    res.status === h.expect.status &&
    (h.expect.error === undefined || res.error === h.expect.error) &&
    (h.expect.phase === undefined || res.phase === h.expect.phase)
  );
}

/** The report as printed by `npm run drill`. */
export function formatReport(r: DrillReport): string {
  const out: string[] = [];
  out.push(
    `Fleet: ${JSON.stringify(r.summary)} in ${r.invocations} task invocations, ${r.auditLines} audit lines, ${r.datums} datums`,
  );
  for (const [i, h] of r.hosts.entries()) {
    const res = r.results[i];
    const got = `${res?.status} ${res?.error ?? ""} ${res?.phase ?? ""}`.trim();
    const want = `${h.expect.status} ${h.expect.error ?? ""} ${h.expect.phase ?? ""}`.trim();
    const mark = outcomeMatches(h, res) ? "  " : "!!";
    out.push(
      `${mark} ${h.role.padEnd(11)} ${`${h.name}:${h.port}`.padEnd(26)} ${h.address.padEnd(14)} ${got}${mark === "!!" ? ` (expected ${want})` : ""}`,
    );
  }
  const fb = r.fullBudget;
  out.push(
    `Full-budget run: Lambda Duration ${fb.durationMs} ms = ${((100 * fb.durationMs) / fb.timeoutMs).toFixed(1)} % of the ${fb.timeoutMs} ms timeout, slack ${fb.slackMs} ms, session setup ${fb.setupMs} ms`,
    `Auth host: reached authentication after ${r.authPreAuthMs.join(", ")} ms (budget ${AUTH_HANG_MS} ms per attempt)`,
  );
  out.push("", "Alarms (evaluated on the captured data):");
  for (const a of [...r.alarms].sort((x, y) => x.name.localeCompare(y.name))) {
    const values = a.composite
      ? "composite"
      : `[${a.values.map((v) => (v === undefined ? "-" : +v.toFixed(2))).join(", ")}] ${a.comparison?.replace("ThanOrEqualTo", "=").replace("Threshold", "")} ${a.threshold}`;
    out.push(`  ${a.state === "ALARM" ? "FIRES" : "  ok "}  ${a.name.padEnd(44)} ${values}`);
  }
  out.push("", `Fired: ${r.fired.join(", ") || "none"}`);
  for (const n of r.notifications) {
    out.push("", `--- enriched notification: ${n.subject}`, n.message);
  }
  out.push("", `Drill took ${(r.elapsedMs / 1000).toFixed(1)} s`);
  return out.join("\n");
}
