/**
 * Item 4 of issue 22: no text a remote or a command can produce changes any alarm.
 *
 * The real task handler meets (a) a server whose DISCONNECT description reads Lambda's own
 * hard-timeout words and (b) a command whose output reads them, with
 * `BSSH_TASK_ERROR_OUTPUT=include`. Every line such an invocation leaves is captured as it
 * would reach CloudWatch: the audit and EMF lines, the Node runtime's `Invoke Error` line
 * (full message), the Step Functions failure events (error name + cause) of both workflows,
 * and Lambda's own Invocations/Errors/Duration. The synthesized template's alarms are then
 * evaluated on them (alarm-evaluator.ts). The old filters matched these lines (asserted, so
 * the test can fail); the template's alarms do not move, while real overruns (Lambda Duration
 * at the timeout, a workflow's structured `Sandbox.Timedout`, negative slack) still fire.
 */
import net from "node:net";
import type { CfnElement } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeakGauge } from "../../functions/metrics/leak-gauge.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import { alarmName, LAMBDA_TIMEOUT_LINE, QUERIES } from "../../operations/alarm-catalog.ts";
import { synth } from "../cdk/synth.ts";
import { fakeContext, loopbackPolicy, taskEvent, testRuntime } from "../functions/support.ts";
import { type Adversary, DEFAULT_BANNER } from "../helpers/adversaries.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type LogEvent, evaluate as runQuery } from "../helpers/logs-insights.ts";
import { closeListener, listen, type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { type Datum, evaluateAlarms, filterMatches } from "./alarm-evaluator.ts";

/** Every phrase any overrun rule ever matched, in one remote-controlled string. */
const MAGIC = "Task timed out after 1.00 seconds Sandbox.Timedout Lambda.Unknown Status: timeout";
/** The rules this change replaced (cdk/constructs/monitoring.ts before issue 22). */
const OLD_FUNCTION_FILTER = '"Task timed out after" -"bounded-ssh.audit"';
const OLD_WORKFLOW_FILTER = '?"Sandbox.Timedout" ?"Lambda.Unknown"';

/** An unencrypted SSH_MSG_DISCONNECT (RFC 4253 §11.1) with a chosen description. */
function disconnectPacket(description: string): Buffer {
  const desc = Buffer.from(description, "utf8");
  const payload = Buffer.alloc(1 + 4 + 4 + desc.length + 4);
  payload[0] = 1; // SSH_MSG_DISCONNECT
  payload.writeUInt32BE(2, 1); // SSH_DISCONNECT_PROTOCOL_ERROR
  payload.writeUInt32BE(desc.length, 5);
  desc.copy(payload, 9);
  payload.writeUInt32BE(0, 9 + desc.length); // language tag ""
  let pad = 8 - ((4 + 1 + payload.length) % 8);
  if (pad < 4) pad += 8;
  const packet = Buffer.alloc(4 + 1 + payload.length + pad);
  packet.writeUInt32BE(1 + payload.length + pad, 0);
  packet[4] = pad;
  payload.copy(packet, 5);
  return packet;
}

/** Sends its banner, waits for the client's, then DISCONNECTs with `description`. */
async function disconnecting(description: string): Promise<Adversary> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
    socket.write(DEFAULT_BANNER);
    socket.once("data", () => socket.end(disconnectPacket(description)));
  });
  const port = await listen(server);
  return {
    host: "127.0.0.1",
    port,
    accepted: () => count,
    close: () => closeListener(server, sockets),
  };
}

const logicalId = (c: Construct) => {
  const child = c.node.defaultChild as CfnElement;
  return child.stack.resolve(child.logicalId) as string;
};

const { stack, template } = synth({ stage: "forge" });
const FUNCTION_TIMEOUT_MS = stack.taskFunction.timeout.toMilliseconds();
const ids = {
  taskFunction: logicalId(stack.taskFunction.function),
  taskLogs: logicalId(stack.taskFunction.logGroup),
  workflowLogs: [logicalId(stack.workflows.fleetLogs), logicalId(stack.workflows.singleHostLogs)],
};
const clientKey = generateEd25519KeyPair();
let rogue: Adversary;
let server: Ssh2Server;

beforeAll(async () => {
  rogue = await disconnecting(MAGIC);
  server = await startSsh2Server({
    exec: (ctx) => {
      ctx.stdout(`${MAGIC}\n`);
      ctx.stderr(`${MAGIC}\n`);
      ctx.exit(1);
      ctx.close();
    },
  });
});
afterAll(async () => {
  await Promise.all([rogue?.close(), server?.close()]);
});

interface Captured {
  events: LogEvent[];
  datums: Datum[];
  errors: Error[];
}

/** One task invocation as Lambda and Step Functions would record it. */
async function invoke(port: number, into: Captured): Promise<void> {
  const { runtime, captured } = testRuntime({
    policy: loopbackPolicy([rogue.port, server.port]),
    credentials: { default: { privateKey: clientKey.private } },
    knownHosts: server.knownHostsLine,
    settings: { remoteBound: false, taskErrorOutput: true },
  });
  // A fresh gauge: its first measurement is its baseline. This process also holds the test
  // servers' sockets, which are not the invocation's leaks (the drill does the same).
  runtime.metrics = { ...runtime.metrics, leakGauge: new LeakGauge() };
  const context = fakeContext({ timeoutMs: FUNCTION_TIMEOUT_MS });
  const t0 = Date.now();
  const lambda = (name: string, value: number) =>
    into.datums.push({
      namespace: "AWS/Lambda",
      name,
      dimensions: { FunctionName: ids.taskFunction },
      value,
      timestamp: t0,
      unit: name === "Duration" ? "Milliseconds" : "Count",
    });
  lambda("Invocations", 1);
  try {
    await createTaskHandler(runtime)(
      taskEvent({
        host: "127.0.0.1",
        port,
        username: "ops",
        command: "echo hi",
        failOnNonZeroExit: true,
      }),
      context,
    );
  } catch (err) {
    const error = err as Error;
    into.errors.push(error);
    lambda("Errors", 1);
    const envelope = { errorType: error.name, errorMessage: error.message };
    // The Node runtime's line for a thrown error, message in full.
    into.events.push({
      logGroup: ids.taskLogs,
      logStream: "forge",
      timestamp: Date.now(),
      message: `${new Date().toISOString()}\t${context.awsRequestId}\tERROR\tInvoke Error \t${JSON.stringify({ ...envelope, stack: (error.stack ?? "").split("\n") })}`,
    });
    // What each workflow logs at level ERROR: the task's failure, then the execution's.
    for (const logGroup of ids.workflowLogs) {
      for (const type of ["LambdaFunctionFailed", "TaskFailed", "ExecutionFailed"]) {
        into.events.push({
          logGroup,
          logStream: "states",
          timestamp: Date.now(),
          message: JSON.stringify({
            id: "7",
            type,
            details: { error: error.name, cause: JSON.stringify(envelope) },
          }),
        });
      }
    }
  } finally {
    lambda("Duration", Date.now() - t0);
  }
  for (const text of captured.lines) {
    into.events.push({ logGroup: ids.taskLogs, logStream: "forge", timestamp: t0, message: text });
  }
  for (const batch of captured.metrics) {
    for (const d of batch) {
      into.datums.push({
        namespace: DEFAULT_METRIC_NAMESPACE,
        name: d.name,
        dimensions: d.dimensions,
        value: d.value,
        timestamp: t0,
        unit: d.unit,
      });
    }
  }
}

const OVERRUN = alarmName("forge", "DeadlineOverrun");
const PAGE = alarmName("forge", "Page");

function evaluate(c: Captured, origin: number) {
  return evaluateAlarms(
    template.toJSON() as Parameters<typeof evaluateAlarms>[0],
    c.datums,
    c.events,
    origin,
    Date.now(),
  );
}

describe("no remote text changes any alarm", () => {
  const captured: Captured = { events: [], datums: [], errors: [] };
  let origin = 0;

  beforeAll(async () => {
    origin = Date.now();
    await invoke(rogue.port, captured);
    await invoke(server.port, captured);
  }, 60_000);

  it("the remote's words reach the logs: the DISCONNECT text and the command's output", () => {
    expect(captured.errors.map((e) => e.name)).toEqual(["ProtocolError", "CommandFailed"]);
    for (const e of captured.errors) expect(e.message).toContain("Task timed out after 1.00");
    const invokeErrors = captured.events.filter((e) => e.message.includes("\tInvoke Error \t"));
    expect(invokeErrors).toHaveLength(2);
    // The old rules matched them: the function filter on the runtime's lines, the workflow
    // filter on every failure event's cause.
    for (const e of invokeErrors) expect(filterMatches(OLD_FUNCTION_FILTER, e.message)).toBe(true);
    const workflowEvents = captured.events.filter((e) => ids.workflowLogs.includes(e.logGroup));
    expect(workflowEvents.length).toBeGreaterThan(0);
    for (const e of workflowEvents)
      expect(filterMatches(OLD_WORKFLOW_FILTER, e.message)).toBe(true);
  });

  it("derives no overrun datum and leaves DeadlineOverrun and the page OK", () => {
    const ev = evaluate(captured, origin);
    expect(ev.derived.filter((d) => d.name === "WorkflowHardTimeouts")).toEqual([]);
    expect(ev.alarms.find((a) => a.name === OVERRUN)?.state).toBe("OK");
    expect(ev.fired).not.toContain(PAGE);
    // Two failed sessions on one host are data, not an incident: nothing fires at all.
    expect(ev.fired, JSON.stringify(ev.alarms.filter((a) => a.state === "ALARM"))).toEqual([]);
  });

  it("lists none of them as a hard timeout in the saved queries; Lambda's own line still", () => {
    expect(runQuery(QUERIES.DeadlineOverruns, captured.events)).toEqual([]);
    expect(runQuery(QUERIES.InvocationFailures, captured.events)).toEqual([]);
    const own =
      "2026-12-07T03:00:00.000Z 6f1c2b4e-0d2a-4c1e-9a7b-1f2e3d4c5b6a Task timed out after 60.00 seconds";
    expect(new RegExp(LAMBDA_TIMEOUT_LINE).test(own)).toBe(true);
    expect(
      runQuery(QUERIES.DeadlineOverruns, [
        { logGroup: ids.taskLogs, logStream: "s", timestamp: Date.now(), message: own },
      ]),
    ).toHaveLength(1);
  });

  it("still fires on real overruns: Lambda's Duration at the timeout", () => {
    const ev = evaluate(
      {
        ...captured,
        datums: [
          ...captured.datums,
          {
            namespace: "AWS/Lambda",
            name: "Duration",
            dimensions: { FunctionName: ids.taskFunction },
            value: FUNCTION_TIMEOUT_MS,
            timestamp: Date.now(),
          },
        ],
      },
      origin,
    );
    expect(ev.alarms.find((a) => a.name === OVERRUN)?.state).toBe("ALARM");
    expect(ev.fired).toContain(PAGE);
  });

  it("still fires on real overruns: a workflow's structured Sandbox.Timedout", () => {
    const real = {
      logGroup: ids.workflowLogs[0] as string,
      logStream: "states",
      timestamp: Date.now(),
      message: JSON.stringify({
        type: "TaskFailed",
        details: { error: "Sandbox.Timedout", cause: "Task timed out after 60.00 seconds" },
      }),
    };
    const ev = evaluate({ ...captured, events: [...captured.events, real] }, origin);
    expect(ev.derived.filter((d) => d.name === "WorkflowHardTimeouts")).toHaveLength(1);
    expect(ev.alarms.find((a) => a.name === OVERRUN)?.state).toBe("ALARM");
  });

  it("still fires on real overruns: the handler's own negative DeadlineSlack", () => {
    const slack: Datum = {
      namespace: DEFAULT_METRIC_NAMESPACE,
      name: "DeadlineSlack",
      dimensions: {},
      value: -5,
      timestamp: Date.now(),
      unit: "Milliseconds",
    };
    const ev = evaluate({ ...captured, datums: [...captured.datums, slack] }, origin);
    expect(ev.alarms.find((a) => a.name === OVERRUN)?.state).toBe("ALARM");
  });
});
