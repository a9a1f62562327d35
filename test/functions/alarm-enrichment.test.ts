/**
 * The enrichment function with the real SDK clients against wire-level fake Logs and SNS
 * endpoints (test/helpers/fake-alarm-endpoints.ts): hosts named on ALARM, and the plain alarm
 * still published, with the reason, when the query fails or runs out of time.
 */
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { SNSClient } from "@aws-sdk/client-sns";
import type { SNSEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EnrichmentConfig } from "../../functions/alarm-enrichment/enrich.ts";
import { createEnrichmentHandler } from "../../functions/alarm-enrichment/enrichment-handler.ts";
import { lambdaContext } from "../../local/lambda-context.ts";
import { hungAuditEvent } from "../helpers/audit-lines.ts";
import {
  FAKE_CLIENT_CONFIG,
  FakeCloudWatchAlarms,
  FakeLogs,
  FakeSns,
} from "../helpers/fake-alarm-endpoints.ts";

const TOPIC = "arn:aws:sns:eu-west-1:123456789012:enriched";
const FN_LOGS = "/aws/lambda/task";
let logs: FakeLogs;
let sns: FakeSns;
let cw: FakeCloudWatchAlarms;

const config: EnrichmentConfig = {
  stage: "dev",
  enrichedTopicArn: TOPIC,
  functionLogGroups: [FN_LOGS],
  workflowLogGroups: ["/aws/states/fleet"],
  runbookBaseUrl: "https://example.test/runbooks",
  dashboardUrl: "https://example.test/dashboard",
  reserveMs: 200,
  pollIntervalMs: 20,
};

function handler() {
  return createEnrichmentHandler({
    logs: new CloudWatchLogsClient({ ...FAKE_CLIENT_CONFIG, endpoint: logs.endpoint }),
    sns: new SNSClient({ ...FAKE_CLIENT_CONFIG, endpoint: sns.endpoint }),
    cloudwatch: new CloudWatchClient({ ...FAKE_CLIENT_CONFIG, endpoint: cw.endpoint }),
    config,
  });
}

const now = Date.now();
const audit = (port: number, error: string | null, phase: string, at: number) => ({
  logGroup: FN_LOGS,
  timestamp: at,
  message: JSON.stringify({
    type: "bounded-ssh.audit",
    source: "task",
    requestId: `r-${port}-${at}`,
    target: { host: "10.0.0.7", port, address: "10.0.0.7", username: "ops" },
    outcome: error ? "timed_out" : "succeeded",
    error: error
      ? {
          name: error,
          phase,
          message: "",
          retryable: true,
          // The attributed host (no jump host: the target).
          host: "10.0.0.7",
          port,
          address: "10.0.0.7",
        }
      : null,
    phase,
    slackMs: 100,
    leakedSockets: 0,
  }),
});

function snsEvent(alarm: string, state = "ALARM"): SNSEvent {
  const message = {
    AlarmName: alarm,
    NewStateValue: state,
    NewStateReason: "Threshold Crossed: 1 datapoint [3.0] was >= 2.0",
    StateChangeTime: new Date(now).toISOString(),
    Trigger: { Period: 300, EvaluationPeriods: 1 },
  };
  return {
    Records: [
      {
        EventSource: "aws:sns",
        EventVersion: "1.0",
        EventSubscriptionArn: "arn",
        Sns: {
          Message: JSON.stringify(message),
          Subject: `ALARM: "${alarm}"`,
          Timestamp: new Date(now).toISOString(),
        } as SNSEvent["Records"][number]["Sns"],
      },
    ],
  };
}

beforeAll(async () => {
  [logs, sns, cw] = await Promise.all([
    FakeLogs.start(),
    FakeSns.start(),
    FakeCloudWatchAlarms.start(),
  ]);
});
afterAll(async () => {
  await Promise.all([logs?.close(), sns?.close(), cw?.close()]);
});
beforeEach(() => {
  logs.behaviour = "ok";
  logs.events = [
    audit(2201, "BannerTimeout", "banner", now - 60_000),
    audit(2201, "BannerTimeout", "banner", now - 50_000),
    audit(2201, "BannerTimeout", "banner", now - 40_000),
    audit(2202, "AuthTimeout", "auth", now - 30_000),
    audit(2203, null, "teardown", now - 20_000),
    // Outside the alarm's window: not listed.
    audit(2204, "BannerTimeout", "banner", now - 3_600_000),
  ];
  sns.published.length = 0;
  cw.states.clear();
});

describe("alarm enrichment", () => {
  it("publishes the alarm with the hung hosts, their phase, counts and first/last seen", async () => {
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-HandshakeHangs"),
      lambdaContext({ timeoutMs: 5_000 }),
    );
    expect(logs.started[logs.started.length - 1]?.logGroupNames).toEqual([FN_LOGS]);
    expect(out?.reason).toBeUndefined();
    expect(out?.hosts?.map((h) => [h.port, h.error, h.phase, h.sessions])).toEqual([
      ["2201", "BannerTimeout", "banner", 3],
      ["2202", "AuthTimeout", "auth", 1],
    ]);
    expect(sns.published).toHaveLength(1);
    const msg = sns.published[0]!;
    expect(msg.topicArn).toBe(TOPIC);
    expect(msg.subject).toBe("ALARM: dev-BoundedSsh-HandshakeHangs (page)");
    expect(msg.message).toContain("10.0.0.7:2201 (10.0.0.7) BannerTimeout in banner, 3 session(s)");
    expect(msg.message).toContain("10.0.0.7:2202 (10.0.0.7) AuthTimeout in auth");
    expect(msg.message).toMatch(/first seen \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}, last seen/);
    expect(msg.message).not.toContain(":2204");
    expect(msg.message).toContain("Runbook: https://example.test/runbooks/HandshakeHangs.md");
    expect(msg.message).toContain("Dashboard: https://example.test/dashboard");
  });

  it("names a dead jump host once, as itself, not the 20 healthy targets behind it", async () => {
    const bastion = { host: "bastion.example", port: 2222, username: "jump" };
    logs.events = [
      // Real audit lines (auditLineOf): 20 targets behind one jump host that never answers.
      ...Array.from({ length: 20 }, (_, i) =>
        hungAuditEvent(FN_LOGS, now - 30_000 + i, {
          host: `10.0.1.${i + 1}`,
          via: bastion,
          hop: "via",
        }),
      ),
      // A target that hangs behind a healthy jump host: the target is the suspect.
      hungAuditEvent(FN_LOGS, now - 20_000, { host: "10.0.3.9", via: bastion, hop: "target" }),
    ];
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-HandshakeHangs"),
      lambdaContext({ timeoutMs: 5_000 }),
    );
    expect(out?.reason).toBeUndefined();
    expect(out?.hosts?.map((h) => [h.host, h.port, h.hop, h.targets, h.sessions])).toEqual([
      ["bastion.example", "2222", "via", 20, 20],
      ["10.0.3.9", "22", "target", 1, 1],
    ]);
    const msg = sns.published[0]?.message ?? "";
    expect(msg).toContain(
      "bastion.example:2222 (unresolved) jump host (hop via, 20 target(s) behind it) BannerTimeout in banner, 20 session(s)",
    );
    expect(msg).toContain("10.0.3.9:22 (unresolved) target (hop target, behind a jump host)");
    expect(msg).not.toContain("10.0.1.");
  });

  it("still publishes the plain alarm, with the reason, when the query never completes", async () => {
    logs.behaviour = "never-completes";
    const started = performance.now();
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-HandshakeHangs"),
      lambdaContext({ timeoutMs: 700 }),
    );
    const elapsed = performance.now() - started;
    // Budget: 700 ms − 200 ms reserve; the publish fits in the reserve.
    expect(elapsed).toBeLessThan(700);
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(out?.reason).toMatch(/^QueryTimeout/);
    expect(sns.published).toHaveLength(1);
    expect(sns.published[0]?.message).toContain("Hosts: not available (QueryTimeout");
    expect(sns.published[0]?.message).toContain(
      "Runbook: https://example.test/runbooks/HandshakeHangs.md",
    );
    await expect.poll(() => logs.stopped.length).toBeGreaterThan(0);
  });

  it("still publishes the plain alarm when the query fails", async () => {
    logs.behaviour = "fail";
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-AuthTimeouts"),
      lambdaContext({ timeoutMs: 5_000 }),
    );
    expect(out?.reason).toMatch(/LimitExceededException/);
    expect(sns.published[0]?.subject).toBe("ALARM: dev-BoundedSsh-AuthTimeouts (ticket)");
    expect(sns.published[0]?.message).toContain("Hosts: not available (LimitExceededException");
  });

  it("forwards OK notifications and other stages' alarms without a query", async () => {
    const before = logs.started.length;
    const h = handler();
    await h(snsEvent("dev-BoundedSsh-HandshakeHangs", "OK"), lambdaContext({ timeoutMs: 5_000 }));
    await h(snsEvent("prod-BoundedSsh-HandshakeHangs"), lambdaContext({ timeoutMs: 5_000 }));
    expect(logs.started.length).toBe(before);
    expect(sns.published.map((p) => p.subject)).toEqual([
      "OK: dev-BoundedSsh-HandshakeHangs (page)",
      "ALARM: prod-BoundedSsh-HandshakeHangs (unknown)",
    ]);
  });

  it("lists invocations for line-shaped queries (leaked sockets)", async () => {
    logs.events.push({
      logGroup: FN_LOGS,
      timestamp: now - 10_000,
      message: JSON.stringify({
        type: "bounded-ssh.audit",
        requestId: "leaky",
        leakedSockets: 2,
        error: null,
      }),
    });
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-LeakedSockets"),
      lambdaContext({ timeoutMs: 5_000 }),
    );
    expect(out?.reason).toBeUndefined();
    expect(sns.published[0]?.message).toContain("requestId=leaky");
    expect(sns.published[0]?.message).toContain("leakedSockets=2");
  });

  it("names the page's children in ALARM and runs their query", async () => {
    cw.states.set("dev-BoundedSsh-HandshakeHangs", {
      state: "ALARM",
      reason: "Threshold Crossed: 1 datapoint [2.0] was >= 2.0",
    });
    cw.states.set("dev-BoundedSsh-LeakedSockets", { state: "OK", reason: "" });
    logs.events.push(audit(2205, "CommandTimeout", "exec", now - 10_000));
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-Page"),
      lambdaContext({ timeoutMs: 5_000 }),
    );
    expect(cw.asked[cw.asked.length - 1]).toContain("dev-BoundedSsh-HostKeyMismatch");
    const msg = sns.published[0]?.message ?? "";
    expect(msg).toContain(
      "Page-level alarms in ALARM:\n  dev-BoundedSsh-HandshakeHangs: Threshold Crossed",
    );
    expect(msg).not.toContain("dev-BoundedSsh-LeakedSockets:");
    // The hang-hosts query: hung hosts, not the command timeout.
    expect(msg).toContain("query bounded-ssh-dev/hang-hosts");
    expect(msg).toContain(
      "Runbook (HandshakeHangs): https://example.test/runbooks/HandshakeHangs.md",
    );
    expect(out?.hosts?.map((h) => h.port)).toEqual(["2201", "2202"]);
  });
});
