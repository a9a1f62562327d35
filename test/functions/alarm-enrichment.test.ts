/**
 * The enrichment function with the real SDK clients against wire-level fake Logs and SNS
 * endpoints (test/helpers/fake-alarm-endpoints.ts): hosts named on ALARM, and the plain alarm
 * still published, with the reason, when the query fails or runs out of time.
 */
import { createHash } from "node:crypto";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { SNSClient } from "@aws-sdk/client-sns";
import type { SNSEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { EnrichmentConfig } from "../../functions/alarm-enrichment/enrich.ts";
import { createEnrichmentHandler } from "../../functions/alarm-enrichment/enrichment-handler.ts";
import {
  commandHash,
  escapeText,
  MESSAGE_CAP_BYTES,
} from "../../functions/alarm-enrichment/message.ts";
import { lambdaContext } from "../../local/lambda-context.ts";
import { tarpit } from "../helpers/adversaries.ts";
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
    // The plain page first, then the hosts.
    expect(sns.published).toHaveLength(2);
    const plain = sns.published[0]!;
    expect(plain.topicArn).toBe(TOPIC);
    expect(plain.subject).toBe("ALARM: dev-BoundedSsh-HandshakeHangs (fleet)");
    // Attributes for subscription filter policies (docs/alarms.md, "Routes").
    const attributes = {
      severity: "fleet",
      stage: "dev",
      alarm: "dev-BoundedSsh-HandshakeHangs",
      kind: "HandshakeHangs",
      state: "ALARM",
    };
    expect(sns.published.map((p) => p.attributes)).toEqual([
      { ...attributes, part: "plain" },
      { ...attributes, part: "hosts" },
    ]);
    expect(plain.message).toContain("Hosts: follow in a second notification");
    expect(plain.message).toContain("Runbook: https://example.test/runbooks/HandshakeHangs.md");
    const msg = sns.published[1]!;
    expect(msg.topicArn).toBe(TOPIC);
    expect(msg.subject).toBe("ALARM: dev-BoundedSsh-HandshakeHangs (fleet) - hosts");
    expect(msg.message).toContain("Hosts: 2 host(s), 4 session(s)");
    expect(msg.message).toContain("  BannerTimeout in banner: 1 host(s), 3 session(s)");
    expect(msg.message).toContain("Top hosts by sessions: 2 of 2 hosts:");
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
    const msg = sns.published[1]?.message ?? "";
    expect(msg).toContain("  BannerTimeout in banner (hop via): 1 host(s), 20 session(s)");
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
    expect(sns.published).toHaveLength(2);
    expect(sns.published[0]?.message).toContain("Hosts: follow in a second notification");
    expect(sns.published[1]?.message).toContain("Hosts: not available (QueryTimeout");
    expect(sns.published[1]?.message).toContain(
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
    expect(sns.published[0]?.subject).toBe("ALARM: dev-BoundedSsh-AuthTimeouts (fleet)");
    expect(sns.published[1]?.message).toContain("Hosts: not available (LimitExceededException");
  });

  it("forwards OK notifications and other stages' alarms without a query", async () => {
    const before = logs.started.length;
    const h = handler();
    await h(snsEvent("dev-BoundedSsh-HandshakeHangs", "OK"), lambdaContext({ timeoutMs: 5_000 }));
    await h(snsEvent("prod-BoundedSsh-HandshakeHangs"), lambdaContext({ timeoutMs: 5_000 }));
    expect(logs.started.length).toBe(before);
    expect(sns.published.map((p) => p.subject)).toEqual([
      "OK: dev-BoundedSsh-HandshakeHangs (fleet)",
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
    expect(sns.published[1]?.message).toContain("requestId=leaky");
    expect(sns.published[1]?.message).toContain("leakedSockets=2");
  });

  it("names the page's children in ALARM and runs their query", async () => {
    cw.states.set("dev-BoundedSsh-HostKeyMismatch", {
      state: "ALARM",
      reason: "Threshold Crossed: 1 datapoint [1.0] was >= 1.0",
    });
    cw.states.set("dev-BoundedSsh-LeakedSockets", { state: "OK", reason: "" });
    logs.events.push(audit(2205, "CommandTimeout", "exec", now - 10_000));
    logs.events.push(audit(2206, "HostKeyMismatch", "handshake", now - 10_000));
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-Page"),
      lambdaContext({ timeoutMs: 5_000 }),
    );
    expect(cw.asked[cw.asked.length - 1]).toContain("dev-BoundedSsh-HostKeyMismatch");
    const msg = sns.published[1]?.message ?? "";
    expect(msg).toContain(
      "Page-level alarms in ALARM:\n  dev-BoundedSsh-HostKeyMismatch: Threshold Crossed",
    );
    expect(msg).not.toContain("dev-BoundedSsh-LeakedSockets:");
    // The child's query: the mismatching host, not the hangs or the command timeout.
    expect(msg).toContain("query bounded-ssh-dev/host-key-mismatch-hosts");
    expect(msg).toContain(
      "Runbook (HostKeyMismatch): https://example.test/runbooks/HostKeyMismatch.md",
    );
    expect(out?.hosts?.map((h) => h.port)).toEqual(["2206"]);
  });

  it("a Publish that never answers ends at its cap, before the function's timeout", async () => {
    const pit = await tarpit();
    try {
      const stalled = createEnrichmentHandler({
        logs: new CloudWatchLogsClient({ ...FAKE_CLIENT_CONFIG, endpoint: logs.endpoint }),
        sns: new SNSClient({ ...FAKE_CLIENT_CONFIG, endpoint: `http://127.0.0.1:${pit.port}` }),
        config,
      });
      const started = performance.now();
      const err = await stalled(
        snsEvent("dev-BoundedSsh-HandshakeHangs"),
        lambdaContext({ timeoutMs: 4_000 }),
      ).catch((e: unknown) => e as Error);
      // The publish's cap (2 s) ends it: an error Lambda retries, not a hang to the timeout.
      expect((err as Error).name).toBe("TimeoutError");
      expect(performance.now() - started).toBeLessThan(4_000);
      expect(pit.accepted()).toBeGreaterThan(0);
    } finally {
      await pit.close();
    }
  });
});

/** A real-shaped audit line of a failed session on `host`, with a command. */
function failed(
  host: string,
  error: string,
  phase: string,
  at: number,
  extra: { command?: string; port?: number; address?: string; leakedSockets?: number } = {},
) {
  const port = extra.port ?? 22;
  const address = extra.address ?? host;
  return {
    logGroup: FN_LOGS,
    timestamp: at,
    message: JSON.stringify({
      type: "bounded-ssh.audit",
      source: "task",
      requestId: `r-${host}-${at}`,
      target: { host, port, address, username: "ops" },
      command: extra.command ?? "echo hi",
      outcome: "timed_out",
      error: { name: error, phase, message: "", retryable: true, host, port, address },
      phase,
      slackMs: 100,
      leakedSockets: extra.leakedSockets ?? 0,
    }),
  };
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");
/** 16 KiB command, as the issue measured. */
const BIG = `echo ${"x".repeat(16 * 1024 - 5)}`;
const FLEET_ERRORS = [
  ["BannerTimeout", "banner", 300],
  ["AuthTimeout", "auth", 150],
  // Before the command ran: a hang (a ConnectionLost during the command is not one).
  ["ConnectionLost", "channel", 50],
] as const;

function fleet(extra: Parameters<typeof failed>[4] = {}) {
  let i = 0;
  return FLEET_ERRORS.flatMap(([error, phase, count]) =>
    Array.from({ length: count }, () => {
      i++;
      return failed(`10.1.${Math.floor(i / 250)}.${i % 250}`, error, phase, now - 60_000 + i, {
        command: BIG,
        ...extra,
      });
    }),
  );
}

describe("enrichment at fleet scale", () => {
  it("500 failing hosts with 16 KiB commands: totals, groups by error/phase/hop, under the cap", async () => {
    logs.events = fleet();
    const [out] = await handler()(
      snsEvent("dev-BoundedSsh-HandshakeHangs"),
      lambdaContext({ timeoutMs: 10_000 }),
    );
    expect(out?.hosts).toHaveLength(500);
    const msg = sns.published[1]?.message ?? "";
    console.info(`enriched hosts message, 500 hosts x 16 KiB commands: ${bytes(msg)} bytes`);
    expect(bytes(msg)).toBeLessThanOrEqual(MESSAGE_CAP_BYTES);
    expect(MESSAGE_CAP_BYTES).toBeLessThan((256 * 1024) / 2);
    expect(msg).toContain("Hosts: 500 host(s), 500 session(s)");
    expect(msg).toContain("  BannerTimeout in banner: 300 host(s), 300 session(s)");
    expect(msg).toContain("  AuthTimeout in auth: 150 host(s), 150 session(s)");
    expect(msg).toContain("  ConnectionLost in channel: 50 host(s), 50 session(s)");
    expect(msg).toContain("Top hosts by sessions: 20 of 500 hosts:");
    expect(msg.split("\n").filter((l) => / in (banner|auth|exec), 1 session/.test(l))).toHaveLength(
      20,
    );
    expect(msg).not.toContain("xxxxxxxx");
    // The link opens Logs Insights with the same query, log groups and window.
    const link = /Full list \(Logs Insights\): (\S+)/.exec(msg)?.[1] ?? "";
    expect(
      link.startsWith("https://example.test/dashboard#logsV2:logs-insights$3FqueryDetail$3D"),
    ).toBe(true);
    const detail = decodeURIComponent(link.split("logs-insights")[1]!.replace(/\$/g, "%"));
    const values = [...detail.matchAll(/'([^~)]*)/g)].map((m) =>
      decodeURIComponent(m[1]!.replace(/\*/g, "%")),
    );
    expect(values).toContain(logs.started.at(-1)?.queryString);
    expect(values).toContain(FN_LOGS);
  });

  it("invocation queries show a command hash, never the command, and stay under the cap", async () => {
    logs.events = fleet({ leakedSockets: 1 });
    await handler()(snsEvent("dev-BoundedSsh-LeakedSockets"), lambdaContext({ timeoutMs: 10_000 }));
    const msg = sns.published[1]?.message ?? "";
    console.info(`enriched invocations message, 500 lines x 16 KiB commands: ${bytes(msg)} bytes`);
    expect(bytes(msg)).toBeLessThanOrEqual(MESSAGE_CAP_BYTES);
    expect(msg).toContain("Matching lines: 20 of at least 200");
    expect(msg).toContain(`command=${commandHash(BIG)}`);
    expect(commandHash(BIG)).toBe(
      `sha256:${createHash("sha256").update(BIG).digest("hex").slice(0, 16)}`,
    );
    expect(msg).not.toContain("xxxxxxxx");
  });

  it("cuts at the cap with an explicit TRUNCATED line when everything is asked for", async () => {
    // Every row asked for, each host name 250 characters: far past the cap.
    logs.events = FLEET_ERRORS.flatMap(([error, phase, count], g) =>
      Array.from({ length: count }, (_, i) =>
        failed(`h${g}-${i}-${"n".repeat(240)}.example`, error, phase, now - 60_000 + i),
      ),
    );
    const h = createEnrichmentHandler({
      logs: new CloudWatchLogsClient({ ...FAKE_CLIENT_CONFIG, endpoint: logs.endpoint }),
      sns: new SNSClient({ ...FAKE_CLIENT_CONFIG, endpoint: sns.endpoint }),
      config: { ...config, maxHosts: 10_000 },
    });
    const [out] = await h(
      snsEvent("dev-BoundedSsh-HandshakeHangs"),
      lambdaContext({ timeoutMs: 10_000 }),
    );
    const msg = sns.published[1]?.message ?? "";
    expect(out?.truncated).toBe(true);
    expect(bytes(msg)).toBeLessThanOrEqual(MESSAGE_CAP_BYTES);
    expect(msg).toMatch(
      new RegExp(
        `\\nTRUNCATED: \\d+ of 501 host rows not shown \\(message cap ${MESSAGE_CAP_BYTES} bytes\\)`,
      ),
    );
    // Totals and groups come first and survive the cut; so do the links.
    expect(msg).toContain("Hosts: 500 host(s)");
    expect(msg).toContain("Full list (Logs Insights): ");
    expect(msg).toContain("Runbook: https://example.test/runbooks/HandshakeHangs.md");
  });
});

describe("enrichment cannot be forged", () => {
  const FORGED = "ALARM: dev-BoundedSsh-Page - severity page";
  const hostile = [
    `evil\n${FORGED}\nRunbook: https://evil.example/runbook`,
    "crlf\r\nDashboard: https://evil.example",
    "esc\u001b[2J\u001b[1;1Hcleared",
    "sep\u2028Runbook: https://evil.example\u2029x",
    "bidi\u202egnp.exe\u2066\u200b\ufeff",
    "nul\u0000del\u007fc1\u0085",
    "back\\nslash",
  ];

  it("escapes every control character and newline in host names, addresses and commands", async () => {
    logs.events = hostile.flatMap((name, i) => [
      failed(name, "BannerTimeout", "banner", now - 30_000 + i, {
        address: `${name}-addr`,
        command: `echo ${name}\n${FORGED}`,
        leakedSockets: 1,
      }),
    ]);
    const h = handler();
    await h(snsEvent("dev-BoundedSsh-HandshakeHangs"), lambdaContext({ timeoutMs: 5_000 }));
    await h(snsEvent("dev-BoundedSsh-LeakedSockets"), lambdaContext({ timeoutMs: 5_000 }));
    const messages = sns.published.map((p) => p.message);
    expect(messages).toHaveLength(4);
    for (const msg of messages) {
      // No raw control, separator, bidi or zero-width character survives.
      expect(msg).not.toMatch(
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the characters under test.
        /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/,
      );
      const lines = msg.split("\n");
      // Only the real header starts with ALARM:, only real links start with Runbook/Dashboard.
      expect(lines.filter((l) => l.startsWith("ALARM:"))).toHaveLength(1);
      expect(lines.filter((l) => /^(Runbook|Dashboard)/.test(l) && l.includes("evil"))).toEqual([]);
      expect(msg).not.toContain("\nRunbook: https://evil");
    }
    const hosts = messages[1] ?? "";
    // One line per hostile host, its text visible but inert.
    for (const name of hostile) {
      const shown = escapeText(name);
      expect(hosts.split("\n").filter((l) => l.startsWith(`  ${shown}:22 (`))).toHaveLength(1);
    }
    expect(hosts).toContain("evil\\nALARM: dev-BoundedSsh-Page - severity page\\nRunbook:");
    expect(hosts).toContain("esc\\x1b[2J");
    expect(hosts).toContain("back\\\\nslash");
    // Invocation lines: hashes only, the command's forged header nowhere.
    const lines = messages[3] ?? "";
    expect(lines).not.toContain("echo evil");
    expect(lines.match(/command=sha256:[0-9a-f]{16}/g)).toHaveLength(hostile.length);
  });

  it("escapeText: escapes are unambiguous and the cut is bounded and says so", () => {
    expect(escapeText("a\nb")).toBe("a\\nb");
    expect(escapeText("a\\nb")).toBe("a\\\\nb");
    expect(escapeText("\u0007\u009b\u2028")).toBe("\\x07\\x9b\\u2028");
    const long = escapeText(`${"\n".repeat(400)}`, 21);
    expect(long).toBe(`${"\\n".repeat(10)}...[400 chars]`);
    expect(escapeText("é".repeat(10), 5)).toBe("ééééé...[10 chars]");
  });
});
