/**
 * Cold start: an esbuild CJS bundle of the Lambda entry (as Lambda would load it), its size,
 * and whole-process time to `require` it vs `node -e 0` (interleaved spawns, medians) — the
 * init. Then the first invocation, in a fresh process per sample: the deployed task handler
 * (AWS mode, SDK external) against a fake Secrets Manager and an ssh2 server on loopback, beside
 * a naive handler (bench/naive-handler.ts) doing the same work with everything imported at the
 * top. Loopback answers at once, so nothing loaded lazily overlaps a network wait here: the
 * first-invocation figures are the worst case of moving work out of init.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { loopbackPolicy, taskEvent, WORKFLOW } from "../test/functions/support.ts";
import { generateEd25519KeyPair } from "../test/helpers/keys.ts";
import { startSsh2Server } from "../test/helpers/ssh2-server.ts";

export interface BundleResult {
  label: string;
  entry: string;
  file: string;
  bytes: number;
  /** Whole-process ms: `node -e 'require(bundle)'`. */
  require: number[];
}

export interface ColdStartResult {
  baseline: number[];
  bundles: BundleResult[];
  /** In-process ms per fresh process: `require` (init) and the first `handler()` call. */
  firstInvocation: { label: string; init: number[]; first: number[] }[];
}

const ROOT = path.resolve(import.meta.dirname, "..");
const OUT = path.join(ROOT, ".bench");

async function bundle(label: string, entry: string, external: string[]): Promise<BundleResult> {
  mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${label}.cjs`);
  await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    legalComments: "none",
    logLevel: "error",
    // ssh2's optional native parts: without them it falls back to pure JS (field notes).
    external: ["cpu-features", "*.node", ...external],
  });
  return {
    label,
    entry: path.relative(ROOT, entry),
    file,
    bytes: statSync(file).size,
    require: [],
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
  const task = path.join(ROOT, "functions", "task.ts");
  const entry = existsSync(task) ? task : path.join(ROOT, "lib", "index.ts");
  const bundles = [
    await bundle("lambda-task", entry, []),
    // The Lambda Node.js runtime ships AWS SDK v3: the usual deployment leaves it out.
    await bundle("lambda-task-sdk-external", entry, ["@aws-sdk/*"]),
    await bundle("engine-only", path.join(ROOT, "lib", "index.ts"), []),
  ];
  const baseline: number[] = [];
  for (let i = 0; i < spawns + 2; i++) {
    const b = spawnMs(["-e", "0"]);
    if (i >= 2) baseline.push(b);
    for (const bun of bundles) {
      const ms = spawnMs(["-e", `require(${JSON.stringify(bun.file)})`]);
      if (i >= 2) bun.require.push(ms);
    }
  }
  const firstInvocation = await measureFirstInvocation(
    [
      { label: "lambda-task-sdk-external", file: bundles[1]!.file, kind: "task" },
      {
        label: "naive-handler",
        file: (
          await bundle("naive-handler", path.join(ROOT, "bench", "naive-handler.ts"), [
            "@aws-sdk/*",
          ])
        ).file,
        kind: "naive",
      },
    ],
    Math.max(5, Math.ceil(spawns / 2)),
  );
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

async function measureFirstInvocation(
  targets: { label: string; file: string; kind: "task" | "naive" }[],
  samples: number,
): Promise<ColdStartResult["firstInvocation"]> {
  const key = generateEd25519KeyPair("bench");
  const server = await startSsh2Server({ exec: (ctx) => ctx.exit(0) });
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
    BSSH_POLICY: JSON.stringify(loopbackPolicy([server.port])),
    BSSH_STATE_MACHINE_ARNS: WORKFLOW,
    BSSH_KNOWN_HOSTS_SECRET: "bounded-ssh/known-hosts",
    BSSH_REMOTE_BOUND: "false",
    // No CloudWatch here: EMF lines on stdout (ignored); the API path is measured in metrics-overhead.
    BSSH_METRICS_MODE: "emf",
  };
  const out = targets.map((t) => ({ label: t.label, init: [] as number[], first: [] as number[] }));
  const run = promisify(execFile);
  try {
    for (let i = 0; i < samples + 1; i++) {
      for (const [n, t] of targets.entries()) {
        const event = t.kind === "task" ? taskEvent(request) : request;
        const { stderr } = await run(process.execPath, [runner], {
          cwd: OUT,
          env: { ...env, BENCH_BUNDLE: t.file, BENCH_EVENT: JSON.stringify(event) },
          maxBuffer: 1 << 20,
        });
        const r = JSON.parse(stderr) as { init: number; first: number; result: unknown };
        const status = (r.result as { status?: string; exitCode?: number }) ?? {};
        if (status.status !== "succeeded" && status.exitCode !== 0) {
          throw new Error(`${t.label}: first invocation did not succeed: ${stderr}`);
        }
        if (i >= 1) {
          out[n]!.init.push(r.init);
          out[n]!.first.push(r.first);
        }
      }
    }
  } finally {
    sm.close();
    await server.close();
  }
  return out;
}
