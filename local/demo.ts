/**
 * `npm run demo`: the main job end to end on loopback, with no sshd and no AWS. Starts an
 * embedded ssh2 target (pinned host key, one generated client key) and a target that hangs
 * before its banner, runs requests through the real API handler (same middy stack, local
 * credential store and policy), and prints each outcome, its phase timings, the audit line's
 * essentials and the metric datums the invocation published.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { AuditLine } from "../functions/audit/audit-log.ts";
import type { MetricDatum } from "../lib/metrics.ts";
import type { RunResult } from "../lib/types.ts";
import { runCli } from "./cli.ts";

const HELP = `
usage: npm run demo

Starts an embedded SSH target and a target that hangs before its banner (loopback, no sshd,
no AWS), sends six requests through the real API handler and prints each outcome, its phase
timings, the audit line and the metric datums. Function timeout and reserve are the deployed
API function's (BSSH_FUNCTION_TIMEOUT_MS, BSSH_RESERVE_MS override them).
`;

interface Case {
  title: string;
  body: Record<string, unknown>;
}

function fmt(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? "-" : `${Math.round(ms)}`;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

function datumText(d: MetricDatum): string {
  const dims = Object.entries(d.dimensions)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const value = d.unit === "Milliseconds" ? `${Math.round(d.value)}ms` : String(d.value);
  return `${d.name}${dims ? `{${dims}}` : ""}=${value}`;
}

async function main(): Promise<void> {
  const started = Date.now();
  // Loaded here, not at the top: --help answers without loading the handlers.
  const { createApiHandler } = await import("../functions/api.ts");
  const { toApiEventV1 } = await import("./api-event.ts");
  const { EMBEDDED_CALLER, EMBEDDED_USER, startEmbeddedTargets } = await import("./embedded.ts");
  const { lambdaContext } = await import("./lambda-context.ts");
  const { localRuntime } = await import("./local-config.ts");
  const { localTimeouts } = await import("./local-timeouts.ts");
  const timeouts = localTimeouts("api");
  const embedded = await startEmbeddedTargets();
  const { ssh, hung, configPath } = embedded;
  try {
    const datums: MetricDatum[][] = [];
    const audits: AuditLine[] = [];
    const handler = createApiHandler(
      localRuntime(configPath, {
        settings: { reserveMs: timeouts.reserveMs },
        metrics: { mode: "emf", writeLine: () => {}, onPublished: (d) => datums.push(d) },
        writeAuditLine: () => {},
        observe: (_record, line) => audits.push(line),
      }),
    );

    const target = { host: "127.0.0.1", port: ssh.port, username: EMBEDDED_USER };
    const cases: Case[] = [
      { title: "healthy command", body: { ...target, command: "echo hello from bounded-ssh" } },
      {
        title: "named template",
        body: { ...target, command: 'template:disk-usage {"path": "/"}' },
      },
      {
        title: "outlives its timeout",
        body: { ...target, command: "sleep 30", timeoutMs: 2_000 },
      },
      {
        title: "hangs before banner",
        body: { ...target, port: hung.port, command: "echo unreachable", timeoutMs: 3_000 },
      },
      { title: "refused by policy", body: { ...target, command: "rm -rf /tmp/x" } },
      {
        title: "shell syntax refused",
        body: { ...target, command: "echo hi; cat /etc/shadow" },
      },
    ];

    console.log(
      `bounded-ssh demo — ssh target 127.0.0.1:${ssh.port}, hung target 127.0.0.1:${hung.port}\n`,
    );
    const rows: string[][] = [];
    for (const c of cases) {
      const t0 = Date.now();
      const event = toApiEventV1({
        method: "POST",
        path: "/run",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(c.body),
        sourceIp: "127.0.0.1",
        receivedAt: t0,
        callerArn: EMBEDDED_CALLER,
      });
      const response = await handler(
        event,
        lambdaContext({ timeoutMs: timeouts.functionTimeoutMs }),
      );
      const elapsed = Date.now() - t0;
      const body = JSON.parse(response.body) as {
        error?: { name: string; phase: string; message: string };
        result?: RunResult;
      } & Partial<RunResult>;
      const result: RunResult | undefined =
        body.result ?? (body.status ? (body as RunResult) : undefined);
      const t = result?.timings;
      rows.push([
        c.title,
        String(response.statusCode),
        result?.status ?? "-",
        body.error?.name ?? "-",
        result?.phase ?? body.error?.phase ?? "-",
        fmt(t?.connectMs),
        fmt(t?.bannerMs),
        fmt(t?.handshakeMs),
        fmt(t?.authMs),
        fmt(t?.channelMs),
        fmt(t?.execMs),
        fmt(t?.teardownMs),
        `${elapsed}`,
      ]);
      const out = result?.stdout?.trim();
      console.log(`● ${c.title}: ${JSON.stringify(c.body.command)}`);
      console.log(
        `  → ${response.statusCode} ${result?.status ?? ""} ${body.error ? `${body.error.name}: ${body.error.message}` : `exit ${result?.exitCode}`}`,
      );
      if (out) console.log(`  stdout: ${out}`);
      if (result?.remoteCleanup && result.remoteCleanup !== "not_needed") {
        console.log(`  remote cleanup: ${result.remoteCleanup}`);
      }
      const audit = audits.at(-1);
      if (audit) {
        console.log(
          `  audit: caller=${audit.caller} outcome=${audit.outcome} status=${audit.statusCode} budget=${audit.budgetMs}ms slack=${audit.slackMs}ms`,
        );
      }
      const batch = datums.at(-1);
      if (batch) console.log(`  metrics: ${batch.map(datumText).join(" ")}`);
      console.log();
      // The targets live in this process: give their side of the closed connection a moment to
      // close, or the next invocation's LeakedSockets gauge would count it.
      await delay(50);
    }

    const header = [
      "case",
      "http",
      "status",
      "error",
      "phase",
      "connect",
      "banner",
      "handshake",
      "auth",
      "channel",
      "exec",
      "teardown",
      "total",
    ];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((cell, i) => pad(cell, widths[i]!)).join("  ");
    console.log(line(header));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    for (const r of rows) console.log(line(r));
    console.log(
      `\n(phase timings in ms; total = handler wall time)\ndemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await embedded.close();
  }
}

await runCli("demo", HELP, () => main());
