/**
 * Cold start of every deployed handler bundle (api, task, alarm-enrichment), built with the
 * esbuild options the CDK stack deploys (`cdk/bundling.ts`: SDK external as on Lambda, ssh2 and
 * Powertools in a lazy chunk for the engine handlers), beside a naive handler in the same run:
 *
 * - init: whole-process time of `node -e 'require(bundle)'` against `node -e 0` (interleaved
 *   spawns, medians): the target is ≤ 1.6× for each deployed bundle;
 * - first invocation, in a fresh process per sample: in-process `require` (init) and the first
 *   `handler()` call, against a fake Secrets Manager (and SNS for the enrichment) and an ssh2
 *   server on loopback. The naive handler (bench/naive-handler.ts) does the task's work with
 *   everything imported at the top. Loopback answers at once, so nothing loaded lazily
 *   overlaps a network wait here: the first-invocation figures are the worst case of moving
 *   work out of init.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { esbuildOptions, handlerBundling, LAZY_CHUNK, lazyChunkCommands } from "../cdk/bundling.ts";
import { loopbackPolicy, taskEvent, v1Event, WORKFLOW } from "../test/functions/support.ts";
import { FakeSns } from "../test/helpers/fake-alarm-endpoints.ts";
import { generateEd25519KeyPair } from "../test/helpers/keys.ts";
import { startSsh2Server } from "../test/helpers/ssh2-server.ts";

type Label = "api" | "task" | "alarm-enrichment" | "naive-handler";

export interface BundleResult {
  label: Label;
  entry: string;
  file: string;
  /** The handler file (what init compiles). */
  bytes: number;
  /** The lazy chunk beside it (ssh2, Powertools), loaded on first use (0 when there is none). */
  chunkBytes: number;
  /** Whole-process ms: `node -e 'require(bundle)'`. */
  require: number[];
  /** The same with `--enable-source-maps`, which the deployed functions set in NODE_OPTIONS. */
  requireSourceMaps: number[];
}

export interface ColdStartResult {
  baseline: number[];
  bundles: BundleResult[];
  /** In-process ms per fresh process: `require` (init) and the first `handler()` call. */
  firstInvocation: { label: Label; init: number[]; first: number[] }[];
}

const ROOT = path.resolve(import.meta.dirname, "..");
const OUT = path.join(ROOT, ".bench", "coldstart");

/** Builds a handler exactly as `cdk synth` does (cdk/bundling.ts), into `.bench/coldstart/<label>/`. */
async function bundle(label: Label, entry: string, lazyChunk: boolean): Promise<BundleResult> {
  const dir = path.join(OUT, label);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "index.js");
  await build(esbuildOptions(handlerBundling({ lazyChunk }), entry, file));
  if (lazyChunk) {
    execFileSync("bash", ["-c", lazyChunkCommands(dir).join(" && ")], { stdio: "inherit" });
  }
  return {
    label,
    entry: path.relative(ROOT, entry),
    file,
    bytes: statSync(file).size,
    chunkBytes: lazyChunk ? statSync(path.join(dir, LAZY_CHUNK)).size : 0,
    require: [],
    requireSourceMaps: [],
  };
}

function spawnMs(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], cwd: OUT });
  const elapsed = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} failed: ${r.stderr}`);
  return elapsed;
}

export async function measureColdStart(spawns: number): Promise<ColdStartResult> {
  // A Lambda asset has no package.json: `.js` is CommonJS. This repository says "module".
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path.join(OUT, "package.json"), '{ "type": "commonjs" }\n');
  const bundles = [
    await bundle("api", path.join(ROOT, "functions", "api.ts"), true),
    await bundle("task", path.join(ROOT, "functions", "task.ts"), true),
    await bundle(
      "alarm-enrichment",
      path.join(ROOT, "functions", "alarm-enrichment", "handler.ts"),
      false,
    ),
    await bundle("naive-handler", path.join(ROOT, "bench", "naive-handler.ts"), false),
  ];
  const baseline: number[] = [];
  for (let i = 0; i < spawns + 2; i++) {
    const b = spawnMs(["-e", "0"]);
    if (i >= 2) baseline.push(b);
    for (const bun of bundles) {
      const load = `require(${JSON.stringify(bun.file)})`;
      const ms = spawnMs(["-e", load]);
      const withMaps = spawnMs(["--enable-source-maps", "-e", load]);
      if (i >= 2) {
        bun.require.push(ms);
        bun.requireSourceMaps.push(withMaps);
      }
    }
  }
  const firstInvocation = await measureFirstInvocation(bundles, Math.max(5, Math.ceil(spawns / 2)));
  return { baseline, bundles, firstInvocation };
}

const AWS_RTT_MS = Number(process.env.BENCH_AWS_RTT_MS ?? 0);

const RUNNER = `
const t0 = performance.now();
const m = require(process.env.BENCH_BUNDLE);
const t1 = performance.now();
const deadline = Date.now() + 30000;
const context = { awsRequestId: "bench-" + process.pid, functionName: "bench", functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:local:000000000000:function:bench", memoryLimitInMB: "512",
  getRemainingTimeInMillis: () => deadline - Date.now() };
m.handler(JSON.parse(process.env.BENCH_EVENT), context).then((r) => {
  const t2 = performance.now();
  process.stderr.write(JSON.stringify({ init: t1 - t0, first: t2 - t1, result: r }));
}, (e) => { process.stderr.write(JSON.stringify({ error: String(e && e.message) })); process.exitCode = 1; });
`;

/** Whether a first invocation did the work: a session that succeeded, a notification sent. */
function succeeded(label: Label, result: unknown): boolean {
  const r = (result ?? {}) as Record<string, unknown>;
  switch (label) {
    case "task":
      return r.status === "succeeded";
    case "naive-handler":
      return r.exitCode === 0;
    case "api":
      return r.statusCode === 200 && /"status":"succeeded"/.test(String(r.body));
    case "alarm-enrichment":
      return Array.isArray(result) && result.length === 1;
  }
}

async function measureFirstInvocation(
  bundles: readonly BundleResult[],
  samples: number,
): Promise<ColdStartResult["firstInvocation"]> {
  const key = generateEd25519KeyPair("bench");
  // Exit status, then EOF and close, as a real server does: since the engine reads the output
  // to its end after the exit status, an exit alone ends in OutputIncomplete after 1 s.
  const server = await startSsh2Server({
    exec: (ctx) => {
      ctx.exit(0);
      ctx.close();
    },
  });
  const sns = await FakeSns.start();
  const sm: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const { SecretId } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        SecretId: string;
      };
      const value = SecretId.endsWith("known-hosts")
        ? `${server.knownHostsLine}\n`
        : JSON.stringify({ privateKey: key.private });
      res.setHeader("content-type", "application/x-amz-json-1.1");
      // BENCH_AWS_RTT_MS: a Secrets Manager round trip as Lambda sees it (loopback: 0).
      setTimeout(
        () => res.end(JSON.stringify({ Name: SecretId, SecretString: value, VersionId: "v1" })),
        AWS_RTT_MS,
      );
    });
  });
  await new Promise<void>((resolve) => sm.listen(0, "127.0.0.1", resolve));
  const smPort = (sm.address() as { port: number }).port;
  const runner = path.join(OUT, "first-invocation.cjs");
  writeFileSync(runner, RUNNER);
  const request = { host: "127.0.0.1", port: server.port, username: "ops", command: "exit 0" };
  const env = {
    PATH: process.env.PATH,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "AKIDBENCH",
    AWS_SECRET_ACCESS_KEY: "bench",
    AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${smPort}`,
    AWS_ENDPOINT_URL_SNS: sns.endpoint,
    BSSH_POLICY: JSON.stringify(loopbackPolicy([server.port])),
    BSSH_STATE_MACHINE_ARNS: WORKFLOW,
    BSSH_KNOWN_HOSTS_SECRET: "bounded-ssh/known-hosts",
    BSSH_REMOTE_BOUND: "false",
    // The deployed default (docs/metrics.md, "Choosing the mode"): EMF lines on stdout (ignored).
    BSSH_METRICS_MODE: "emf",
    // The API the v1 event comes from (local/api-event.ts, LOCAL_API).
    BSSH_API_ID: "local",
    BSSH_API_STAGE: "local",
    BSSH_API_ACCOUNT: "000000000000",
    BSSH_STAGE: "dev",
    BSSH_ENRICHED_TOPIC_ARN: "arn:aws:sns:us-east-1:000000000000:enriched",
    BSSH_FUNCTION_LOG_GROUPS: "[]",
    BSSH_WORKFLOW_LOG_GROUPS: "[]",
    BSSH_RUNBOOK_BASE_URL: "https://example.invalid/runbooks",
    BSSH_DASHBOARD_URL: "https://example.invalid/dashboard",
  };
  const events: Record<Label, () => unknown> = {
    task: () => taskEvent(request),
    "naive-handler": () => request,
    api: () => v1Event(JSON.stringify(request)),
    // An OK notification is forwarded without a Logs query: one SNS Publish.
    "alarm-enrichment": () => ({
      Records: [
        {
          EventSource: "aws:sns",
          Sns: {
            Message: JSON.stringify({
              AlarmName: "dev-BoundedSsh-HandshakeHangs",
              NewStateValue: "OK",
              NewStateReason: "bench",
              StateChangeTime: new Date().toISOString(),
              Trigger: { Period: 300, EvaluationPeriods: 1 },
            }),
            Subject: "OK",
            Timestamp: new Date().toISOString(),
          },
        },
      ],
    }),
  };
  const out = bundles.map((b) => ({ label: b.label, init: [] as number[], first: [] as number[] }));
  const run = promisify(execFile);
  try {
    for (let i = 0; i < samples + 1; i++) {
      for (const [n, b] of bundles.entries()) {
        const { stderr } = await run(process.execPath, [runner], {
          cwd: OUT,
          env: { ...env, BENCH_BUNDLE: b.file, BENCH_EVENT: JSON.stringify(events[b.label]()) },
          maxBuffer: 1 << 20,
        });
        const r = JSON.parse(stderr) as { init: number; first: number; result: unknown };
        if (!succeeded(b.label, r.result)) {
          throw new Error(`${b.label}: first invocation did not succeed: ${stderr}`);
        }
        if (i >= 1) {
          out[n]?.init.push(r.init);
          out[n]?.first.push(r.first);
        }
      }
    }
  } finally {
    sm.close();
    await sns.close();
    await server.close();
  }
  return out;
}
