/**
 * The simulated night (issue 22) on the synthesized template: a 2,000-host fleet run every
 * hour for 8 hours with 1 % of hosts wedged, a `sudo reboot` run over 200 hosts, a real service
 * fault at 03:00 (leaked sockets, then an overrun while the leak still fires, then a host-key
 * mismatch) and a deploy at 05:30 whose API errors fall inside the maintenance window.
 * Intended: the service's pager gets exactly the three service faults, each on its own and
 * within one period; the fleet owners get the wedged hosts once (the alarm stays open across
 * hourly runs) and the reboot run's lost connections once; nothing reaches the ticket topic;
 * the deploy sends nothing.
 */
import type { CfnElement } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { ROUTES, type Severity } from "../../operations/alarm-catalog.ts";
import { synth } from "../cdk/synth.ts";
import {
  at,
  MINUTE,
  NightData,
  type NightIds,
  type NightResult,
  simulate,
  table,
} from "./night.ts";

const logicalId = (c: Construct) => {
  const child = c.node.defaultChild as CfnElement;
  return child.stack.resolve(child.logicalId) as string;
};

let template: Parameters<typeof simulate>[0];
let ids: NightIds;
let channelOf: (topic: string) => string;

beforeAll(() => {
  const { stack, template: t } = synth({ stage: "night" });
  template = t.toJSON() as typeof template;
  const leak = Object.values(template.Resources).find(
    (r) => r.Properties.AlarmName === "night-BoundedSsh-LeakedSockets",
  );
  ids = {
    namespace: String(leak?.Properties.Namespace),
    taskFunction: logicalId(stack.taskFunction.function),
    apiFunction: logicalId(stack.apiFunction.function),
    taskLogs: logicalId(stack.taskFunction.logGroup),
  };
  const routeOf = new Map<string, Severity>(
    ROUTES.map((r) => [logicalId(stack.monitoring.alarmTopics[r] as unknown as Construct), r]),
  );
  channelOf = (topic) => routeOf.get(topic) ?? `unknown topic ${topic}`;
}, 240_000);

/** The night's data: hourly fleet runs, a reboot run, the 03:00 fault and the 05:30 deploy. */
function night(): NightData {
  const d = new NightData(ids);
  for (let h = 0; h < 8; h++) d.fleetRun(at(h, 1), 2_000, 20);
  d.rebootRun(at(1, 31), 200);
  // 03:00: a container leaks sockets (every invocation in it reports them) ...
  for (const m of [2, 7, 12, 17]) d.datum("LeakedSockets", 1, at(3, m), { how: "max" });
  // ... a handler returns after its deadline while the leak still fires ...
  d.datum("DeadlineSlack", -120, at(3, 6), { how: "min" });
  // ... and a host presents a different key.
  d.datum("Errors", 1, at(3, 11), { dimensions: { ErrorName: "HostKeyMismatch" } });
  // 05:30: a deploy opens the maintenance window; the API function errors during the swap.
  d.datum("MaintenanceWindow", 1, at(5, 30), { how: "max" });
  d.datum("Errors", 2, at(5, 33), {
    namespace: "AWS/Lambda",
    dimensions: { FunctionName: ids.apiFunction },
  });
  d.datum("Invocations", 5, at(5, 33), {
    namespace: "AWS/Lambda",
    dimensions: { FunctionName: ids.apiFunction },
  });
  d.datum("Invocations", 5, at(5, 33));
  return d;
}

let result: NightResult;
const sent = (channel: string, state = "ALARM") =>
  result.notifications.filter((n) => channelOf(n.topic) === channel && n.state === state);

describe("simulated night: 2,000 hosts hourly, 1 % wedged, a reboot run, a fault at 03:00", () => {
  beforeAll(() => {
    const d = night();
    result = simulate(template, d, at(8, 30));
    // The table for docs/alarms.md ("The night").
    console.log(
      table(result.notifications, channelOf)
        .map((r) => `| ${r.alarm} | ${r.state} | ${r.channel} | ${r.count} |`)
        .join("\n"),
    );
  }, 240_000);

  it("pages exactly the three service faults, each on its own", () => {
    expect(sent("page").map((n) => n.alarm)).toEqual([
      "night-BoundedSsh-LeakedSockets-Notify",
      "night-BoundedSsh-DeadlineOverrun-Notify",
      "night-BoundedSsh-HostKeyMismatch-Notify",
    ]);
  });

  it("pages nothing before the fault: the wedged hosts and the reboot run are not this service", () => {
    expect(sent("page").filter((n) => n.time < at(3, 0))).toEqual([]);
  });

  it("pages the leak within one period, and the overrun while the leak is still firing", () => {
    const [leak, overrun] = sent("page");
    expect(leak!.time - at(3, 2)).toBeLessThanOrEqual(5 * MINUTE);
    expect(overrun!.time - at(3, 6)).toBeLessThanOrEqual(5 * MINUTE);
    // The second fault went out while the first was in ALARM: never hidden behind it.
    const i = result.steps.indexOf(overrun!.time);
    expect(result.states.get("night-BoundedSsh-LeakedSockets")?.[i]).toBe("ALARM");
    expect(result.states.get("night-BoundedSsh-Page")?.[i]).toBe("ALARM");
  });

  it("tells the fleet owners once about the wedged hosts, and once about the reboot run", () => {
    expect(sent("fleet").map((n) => n.alarm)).toEqual([
      "night-BoundedSsh-HandshakeHangs-Notify",
      "night-BoundedSsh-ConnectionLost-Notify",
    ]);
    // Open from the first run to 75 minutes after the last: one ALARM, one OK.
    const hangs = result.states.get("night-BoundedSsh-HandshakeHangs") ?? [];
    expect(hangs.filter((s, i) => s === "ALARM" && hangs[i - 1] === "OK").length).toBe(0);
    expect(sent("fleet", "OK").map((n) => n.alarm)).toContain(
      "night-BoundedSsh-HandshakeHangs-Notify",
    );
  });

  it("sends nothing to the ticket topic", () => {
    expect(result.notifications.filter((n) => channelOf(n.topic) === "ticket")).toEqual([]);
  });

  it("suppresses the deploy's API errors: the alarm fired, nobody was notified", () => {
    expect(result.states.get("night-BoundedSsh-LambdaErrors-Api")).toContain("ALARM");
    expect(result.states.get("night-BoundedSsh-Maintenance")).toContain("ALARM");
    expect(result.notifications.filter((n) => n.alarm.includes("LambdaErrors"))).toEqual([]);
  });
});

describe("host trouble as a ratio", () => {
  it("a reboot run over 200 hosts: no hang hosts, no page", () => {
    const d = new NightData(ids);
    d.rebootRun(at(0, 1), 200);
    const r = simulate(template, d, at(1, 0));
    expect(r.states.get("night-BoundedSsh-HandshakeHangs")).not.toContain("ALARM");
    expect(r.notifications.filter((n) => channelOf(n.topic) === "page")).toEqual([]);
  });

  it("under the percentage (0.5 % of 2,000) or under the minimum count (4 of 20): quiet", () => {
    for (const [hosts, wedged] of [
      [2_000, 10],
      [20, 4],
    ] as const) {
      const d = new NightData(ids);
      d.fleetRun(at(0, 1), hosts, wedged);
      const r = simulate(template, d, at(0, 30));
      expect(r.states.get("night-BoundedSsh-HandshakeHangs"), `${wedged}/${hosts}`).not.toContain(
        "ALARM",
      );
    }
  });

  it("5 of 20 wedged: the fleet owners, not the pager", () => {
    const d = new NightData(ids);
    d.fleetRun(at(0, 1), 20, 5);
    const r = simulate(template, d, at(0, 30));
    expect(
      r.notifications.filter((n) => n.state === "ALARM").map((n) => [n.alarm, channelOf(n.topic)]),
    ).toEqual([["night-BoundedSsh-HandshakeHangs-Notify", "fleet"]]);
  });
});
