/**
 * The simulated night (issue 22): what the synthesized template's alarms send over 8 hours of
 * a 2,000-host fleet, evaluated every 5 minutes by the drill's CloudWatch (alarm-evaluator.ts),
 * with CloudWatch's notification rules on top: an alarm notifies on a state transition, to the
 * topics of that transition's actions, unless its `ActionsSuppressor` is in ALARM or left ALARM
 * less than the extension period ago.
 *
 * The data is synthetic but shaped like the real thing: one audit line per session (distinct
 * host names, all on port 22; a wedged host's three attempts), and the EMF and Lambda datums
 * those sessions produce, summed (or max/min) per minute. The drill (drill.ts) proves the real
 * handler writes lines and datums of this shape; this file proves what the alarms do with a
 * night of them.
 */
import { METRIC_UNIT } from "../../lib/metrics.ts";
import type { LogEvent } from "../helpers/logs-insights.ts";
import { type AlarmResult, type Datum, evaluateAlarms } from "./alarm-evaluator.ts";

type Template = Parameters<typeof evaluateAlarms>[0];

/** Logical ids and names the data must carry to be read by the template's alarms. */
export interface NightIds {
  namespace: string;
  taskFunction: string;
  apiFunction: string;
  taskLogs: string;
}

export const MINUTE = 60_000;
/** Midnight of the simulated night (periods align to it). */
export const ORIGIN = Date.UTC(2026, 11, 7, 0, 0, 0);
export const at = (hh: number, mm: number) => ORIGIN + (hh * 60 + mm) * MINUTE;

/** One notification CloudWatch would send. */
export interface Notification {
  time: number;
  alarm: string;
  state: "ALARM" | "OK";
  /** Topic logical id. */
  topic: string;
}

/**
 * The unit a datum is published with, as the handler's EMF (`METRIC_UNIT`) and AWS's own
 * metrics carry it: alarms that name a unit read only datums of that unit.
 */
export function unitOf(ours: boolean, name: string): string {
  if (ours) return (METRIC_UNIT as Record<string, string>)[name] ?? "Count";
  return name === "Duration" || name === "IntegrationLatency" || name === "Latency"
    ? "Milliseconds"
    : "Count";
}

/** Builds the night's lines and datums. */
export class NightData {
  readonly events: LogEvent[] = [];
  private readonly sums = new Map<string, Datum>();

  constructor(private readonly ids: NightIds) {}

  /** Adds to a per-minute datum: summed, or kept at its max/min (`how`). */
  datum(
    name: string,
    value: number,
    time: number,
    opts: {
      namespace?: string;
      dimensions?: Record<string, string>;
      how?: "sum" | "max" | "min";
    } = {},
  ): void {
    const minute = Math.floor(time / MINUTE) * MINUTE;
    const namespace = opts.namespace ?? this.ids.namespace;
    const dimensions = opts.dimensions ?? {};
    const key = JSON.stringify([namespace, name, dimensions, minute]);
    const d = this.sums.get(key);
    if (!d) {
      this.sums.set(key, {
        namespace,
        name,
        dimensions,
        value,
        timestamp: minute,
        unit: unitOf(namespace === this.ids.namespace, name),
      });
      return;
    }
    const how = opts.how ?? "sum";
    d.value =
      how === "sum"
        ? d.value + value
        : how === "max"
          ? Math.max(d.value, value)
          : Math.min(d.value, value);
  }

  get datums(): Datum[] {
    return [...this.sums.values()];
  }

  /**
   * One task session as the handler reports it: its audit line, its EMF datums and Lambda's
   * own (Invocations, Errors when it threw, Duration).
   */
  session(
    time: number,
    host: string,
    outcome: { error?: { name: string; phase: string }; durationMs?: number; slackMs?: number },
  ): void {
    const e = outcome.error;
    this.events.push({
      logGroup: this.ids.taskLogs,
      logStream: "night",
      timestamp: time,
      message: JSON.stringify({
        type: "bounded-ssh.audit",
        time: new Date(time).toISOString(),
        source: "task",
        target: { host, port: 22, address: "10.0.0.1", username: "ops" },
        outcome: e ? (e.name.endsWith("Timeout") ? "timed_out" : "error") : "succeeded",
        error: e ? { name: e.name, host, port: 22, address: "10.0.0.1" } : null,
        phase: e ? e.phase : null,
        slackMs: outcome.slackMs ?? 1_000,
        leakedSockets: 0,
      }),
    });
    const fn = { FunctionName: this.ids.taskFunction };
    this.datum("Invocations", 1, time);
    this.datum("LeakedSockets", 0, time, { how: "max" });
    this.datum("DeadlineSlack", outcome.slackMs ?? 1_000, time, { how: "min" });
    this.datum("Invocations", 1, time, { namespace: "AWS/Lambda", dimensions: fn });
    this.datum("Duration", outcome.durationMs ?? 900, time, {
      namespace: "AWS/Lambda",
      dimensions: fn,
      how: "max",
    });
    if (e) {
      this.datum("Errors", 1, time, { dimensions: { ErrorName: e.name } });
      this.datum("Errors", 1, time, { namespace: "AWS/Lambda", dimensions: fn });
      if (e.name.endsWith("Timeout")) {
        this.datum("Timeouts", 1, time, { dimensions: { Phase: e.phase } });
      }
    }
  }

  /**
   * A fleet run: `hosts` hosts from `start`, spread over `spreadMin` minutes; `wedged` of them,
   * spread evenly through the run (the same hosts every run), never send their banner (three
   * attempts each).
   */
  fleetRun(start: number, hosts: number, wedged: number, spreadMin = 8): void {
    const every = wedged > 0 ? hosts / wedged : Number.POSITIVE_INFINITY;
    for (let i = 0; i < hosts; i++) {
      const t = start + Math.floor((i / hosts) * spreadMin * MINUTE);
      const host = `host-${String(i).padStart(4, "0")}.fleet.example`;
      if (Math.floor(i / every) !== Math.floor((i + 1) / every)) {
        for (let a = 0; a < 3; a++) {
          this.session(t + a * 2_000, host, { error: { name: "BannerTimeout", phase: "banner" } });
        }
      } else {
        this.session(t, host, {});
      }
    }
  }

  /** `sudo reboot` over `hosts` hosts: each session loses its peer once the command runs. */
  rebootRun(start: number, hosts: number): void {
    for (let i = 0; i < hosts; i++) {
      const t = start + Math.floor((i / hosts) * 4 * MINUTE);
      this.session(t, `db-${String(i).padStart(3, "0")}.fleet.example`, {
        error: { name: "ConnectionLost", phase: "exec" },
      });
    }
  }
}

/** The state of every alarm at each step, and the notifications CloudWatch would send. */
export interface NightResult {
  notifications: Notification[];
  /** Alarm name → its state at each step. */
  states: Map<string, ("ALARM" | "OK")[]>;
  steps: number[];
}

/**
 * Evaluates the template's alarms every `stepMs` from `ORIGIN` to `end` on the data seen so
 * far, and derives the notifications from each state transition.
 */
export function simulate(
  template: Template,
  data: { datums: readonly Datum[]; events: readonly LogEvent[] },
  end: number,
  stepMs = 5 * MINUTE,
): NightResult {
  const notifications: Notification[] = [];
  const states = new Map<string, ("ALARM" | "OK")[]>();
  const prev = new Map<string, "ALARM" | "OK">();
  const lastAlarmAt = new Map<string, number>();
  const steps: number[] = [];
  const datums = [...data.datums].sort((a, b) => a.timestamp - b.timestamp);
  const events = [...data.events].sort((a, b) => a.timestamp - b.timestamp);
  for (let t = ORIGIN + stepMs; t <= end; t += stepMs) {
    // The moment the period ending at t is complete.
    const now = t - 1;
    steps.push(now);
    const seenDatums = datums.filter((d) => d.timestamp <= now);
    const seenEvents = events.filter((e) => e.timestamp <= now);
    // Only the last 2 hours matter to any alarm here (the longest look-back is 75 minutes).
    const recent = now - 2 * 60 * MINUTE;
    const { alarms } = evaluateAlarms(
      template,
      seenDatums.filter((d) => d.timestamp >= recent),
      seenEvents.filter((e) => e.timestamp >= recent),
      ORIGIN,
      now,
    );
    const byId = new Map(alarms.map((a) => [a.logicalId, a]));
    for (const a of alarms) {
      if (a.state === "ALARM") lastAlarmAt.set(a.logicalId, now);
    }
    for (const a of alarms) {
      const list = states.get(a.name) ?? [];
      list.push(a.state);
      states.set(a.name, list);
      const before = prev.get(a.logicalId) ?? "OK";
      prev.set(a.logicalId, a.state);
      if (before === a.state) continue;
      if (suppressed(a, byId, lastAlarmAt, now)) continue;
      const topics = a.state === "ALARM" ? a.alarmActions : a.okActions;
      for (const topic of topics) {
        notifications.push({ time: now, alarm: a.name, state: a.state, topic });
      }
    }
  }
  return { notifications, states, steps };
}

function suppressed(
  a: AlarmResult,
  byId: Map<string, AlarmResult>,
  lastAlarmAt: Map<string, number>,
  now: number,
): boolean {
  if (!a.suppressor) return false;
  const s = byId.get(a.suppressor.logicalId);
  if (!s) throw new Error(`night: ${a.name}: unknown suppressor ${a.suppressor.logicalId}`);
  if (s.state === "ALARM") return true;
  const last = lastAlarmAt.get(a.suppressor.logicalId);
  return last !== undefined && now - last <= a.suppressor.extensionS * 1000;
}

/** Notifications counted per (alarm, state, channel), for the report table. */
export function table(
  notifications: readonly Notification[],
  channelOf: (topic: string) => string,
): { alarm: string; state: string; channel: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const n of notifications) {
    const key = JSON.stringify([n.alarm, n.state, channelOf(n.topic)]);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()]
    .map(([k, count]) => {
      const [alarm, state, channel] = JSON.parse(k) as [string, string, string];
      return { alarm, state, channel, count };
    })
    .sort(
      (x, y) =>
        x.channel.localeCompare(y.channel) ||
        x.alarm.localeCompare(y.alarm) ||
        x.state.localeCompare(y.state),
    );
}
