/**
 * The incident drill (issue 11): the fleet workflow, synthesized with short timeouts, runs
 * locally (aws-local-stepfunctions) with the REAL task handler over 20 loopback hosts:
 *
 * - 5 tarpits that accept TCP and never send a banner (BannerTimeout, retried: 3 sessions each);
 * - 1 host that freezes after the command started (a proxy that goes silent on exec:
 *   keepalive → ConnectionLost; not a hang host: the command was running);
 * - 1 host whose authentication never answers (AuthTimeout, retried);
 * - 1 healthy command that uses its whole budget (more than 90 % of the function timeout);
 * - 14 healthy hosts (one prints "Task timed out after 3.00 seconds", one exits 3: the local
 *   interpreter needs every outcome present, see workflows.ts).
 *
 * Every audit line, EMF line and Lambda/Step Functions datum is captured; every alarm of the
 * synthesized template is evaluated on them (alarm-evaluator.ts); the notifications CloudWatch
 * would send (every alarm with actions, on its route) go to the real enrichment handler of that
 * route through wire-level fake Logs and SNS endpoints.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
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
import {
  type Adversary,
  startProxy,
  type Proxy as TcpProxy,
  tarpit,
} from "../helpers/adversaries.ts";
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

/** Short timeouts so the drill takes seconds; the order is still edge > Lambda > session + reserve. */
export const DRILL_TIMEOUTS = {
  taskTimeout: Duration.seconds(17),
  functionTimeout: Duration.seconds(15),
  sessionBudget: Duration.millis(14_700),
  reserve: Duration.millis(200),
} as const;
const FUNCTION_TIMEOUT_MS = DRILL_TIMEOUTS.functionTimeout.toMilliseconds();
/** timeoutMs of the hosts meant to hang (tarpits, auth). */
const HANG_MS = 1_500;
/**
 * The full-budget command: past 90 % of the function timeout by itself (13.6 s of 15 s), and
 * inside the exec allowance (budget ≈ 14.8 s − session setup − 250 ms teardown reserve) as long
 * as the session's setup takes under ~950 ms, which leaves room for a loaded machine.
 */
const FULL_BUDGET_SLEEP_S = 13.6;
const STAGE = "drill";
/** The policy's caller for tasks: the fleet state machine itself (SPEC §9). */
const FLEET_ARN = localStateMachineArn("drill-Fleet");

export type HostRole = "tarpit" | "freeze" | "auth" | "full-budget" | "healthy";

export interface DrillHost {
  role: HostRole;
  port: number;
  command: string;
  timeoutMs: number;
}

export interface DrillReport {
  hosts: DrillHost[];
  summary: Record<string, number>;
  results: { host: string; status: string; phase: string | null; error?: string }[];
  invocations: number;
  auditLines: number;
  datums: number;
  /** Lambda Duration of the full-budget run against the function timeout. */
  fullBudget: { durationMs: number; timeoutMs: number; slackMs: number };
  alarms: AlarmResult[];
  fired: string[];
  notifications: Published[];
  /** Every captured log line (audit, EMF, Lambda's own). */
  events: LogEvent[];
  elapsedMs: number;
}

interface Targets {
  sshd: SshdServer;
  tarpits: Adversary[];
  auth: Ssh2Server;
  frozen: Ssh2Server;
  proxy: TcpProxy;
}

async function startTargets(): Promise<Targets> {
  let proxy: TcpProxy | undefined;
  const [sshd, auth, frozen, ...tarpits] = await Promise.all([
    startSshd({ maxStartups: "64" }),
    startSsh2Server({ auth: "never" }),
    startSsh2Server({
      // The host freezes once the command has started and written its first line: nothing
      // more crosses the wire (a crashed VM, a cut link), so only SSH keepalive can tell.
      exec: (ctx) => {
        ctx.stdout("started\n");
        setTimeout(() => proxy?.goSilent(), 200);
      },
    }),
    tarpit(),
    tarpit(),
    tarpit(),
    tarpit(),
    tarpit(),
  ]);
  proxy = await startProxy(frozen.port);
  return { sshd, tarpits, auth, frozen, proxy };
}

async function stopTargets(t: Partial<Targets>): Promise<void> {
  await Promise.all([
    t.sshd?.stop(),
    t.auth?.close(),
    t.proxy?.close(),
    t.frozen?.close(),
    ...(t.tarpits ?? []).map((p) => p.close()),
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
    taskLogs: logicalId(stack.taskFunction.logGroup),
    apiLogs: logicalId(stack.apiFunction.logGroup),
    fleet: logicalId(stack.workflows.fleet),
    fleetLogs: logicalId(stack.workflows.fleetLogs),
  };
  const fleet = definitionOf(template, "WorkflowsFleet");
  log(`synthesized stage "${STAGE}" (task function timeout ${FUNCTION_TIMEOUT_MS} ms)`);

  const targets: Partial<Targets> = {};
  let configDir: string | undefined;
  const [logs, sns, cw] = await Promise.all([
    FakeLogs.start(),
    FakeSns.start(),
    FakeCloudWatchAlarms.start(),
  ]);
  try {
    Object.assign(targets, await startTargets());
    const { sshd, tarpits, auth, frozen, proxy } = targets as Targets;
    configDir = await mkdtemp(path.join(os.tmpdir(), "bssh-drill-"));
    const knownHosts = [
      (await readFile(sshd.knownHostsPath, "utf8")).trim(),
      auth.knownHostsLine,
      `[127.0.0.1]:${proxy.port} ${frozen.hostKeyLine}`,
    ].join("\n");
    await writeFile(path.join(configDir, "known_hosts"), `${knownHosts}\n`);
    const hosts: DrillHost[] = [
      ...tarpits.map((p) => ({
        role: "tarpit" as const,
        port: p.port,
        command: "echo hi",
        timeoutMs: HANG_MS,
      })),
      { role: "freeze", port: proxy.port, command: "echo frozen", timeoutMs: 30_000 },
      { role: "auth", port: auth.port, command: "echo hi", timeoutMs: HANG_MS },
      {
        role: "full-budget",
        port: sshd.port,
        command: `sleep ${FULL_BUDGET_SLEEP_S}`,
        timeoutMs: 30_000,
      },
      ...Array.from({ length: 12 }, (_, i) => ({
        role: "healthy" as const,
        port: sshd.port,
        command: `echo ok-${i}`,
        timeoutMs: 5_000,
      })),
      {
        role: "healthy",
        port: sshd.port,
        command: "echo Task timed out after 3.00 seconds",
        timeoutMs: 5_000,
      },
      { role: "healthy", port: sshd.port, command: "exit 3", timeoutMs: 5_000 },
    ];
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
              ports: [...new Set(hosts.map((h) => h.port))],
              usernames: [sshd.username],
            },
            commands: { patterns: ["echo [A-Za-z0-9 .-]+", "exit [0-9]+", "sleep [0-9.]+"] },
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
      });
    let invocations = 0;
    let fullBudget = { durationMs: 0, timeoutMs: FUNCTION_TIMEOUT_MS, slackMs: 0 };
    // The task invoked the way Lambda invokes it (JSON in and out, the runtime's error
    // envelope), recording what Lambda itself would report: Invocations, Errors, Duration, its
    // "Invoke Error" log line, and a hard timeout as Sandbox.Timedout + "Task timed out after".
    const asLambda = async (input: unknown) => {
      const event = JSON.parse(JSON.stringify(input)) as { request: { command: string } };
      const context = lambdaContext({ timeoutMs: FUNCTION_TIMEOUT_MS, functionName: "drill-task" });
      const t0 = Date.now();
      invocations++;
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
        if (event.request.command.startsWith("sleep")) {
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
      host: "127.0.0.1",
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
          return JSON.parse(e.message) as { type?: string; command?: string; slackMs?: number };
        } catch {
          return undefined;
        }
      })
      .filter((a) => a?.type === "bounded-ssh.audit");
    fullBudget.slackMs = audit.find((a) => a?.command?.startsWith("sleep"))?.slackMs ?? Number.NaN;

    // --- evaluate the template's alarms -------------------------------------------------
    const now = Date.now();
    const evaluation = evaluateAlarms(
      template.toJSON() as Parameters<typeof evaluateAlarms>[0],
      datums,
      events,
      origin,
      now,
    );

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
      alarms: evaluation.alarms,
      fired: evaluation.fired,
      notifications: [...sns.published],
      events,
      elapsedMs: Date.now() - started,
    };
  } finally {
    await Promise.all([stopTargets(targets), logs.close(), sns.close(), cw.close()]);
    if (configDir) await rm(configDir, { recursive: true, force: true });
  }
}

/** The report as printed by `npm run drill`. */
export function formatReport(r: DrillReport): string {
  const out: string[] = [];
  out.push(
    `Fleet: ${JSON.stringify(r.summary)} in ${r.invocations} task invocations, ${r.auditLines} audit lines, ${r.datums} datums`,
  );
  for (const h of r.hosts.filter((x) => x.role !== "healthy")) {
    const res = r.results[r.hosts.indexOf(h)];
    out.push(
      `  ${h.role.padEnd(11)} 127.0.0.1:${h.port}  ${res?.status} ${res?.error ?? ""} ${res?.phase ?? ""}`.trimEnd(),
    );
  }
  const fb = r.fullBudget;
  out.push(
    `Full-budget run: Lambda Duration ${fb.durationMs} ms = ${((100 * fb.durationMs) / fb.timeoutMs).toFixed(1)} % of the ${fb.timeoutMs} ms timeout, slack ${fb.slackMs} ms`,
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
