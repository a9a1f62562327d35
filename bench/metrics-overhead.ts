/**
 * What each metrics mode costs inside the invocation's deadline, per invocation, measured the
 * way the middleware publishes (docs/metrics.md, "Choosing the mode"):
 *
 * - `api`: `PutMetricData` through the real SDK client (keep-alive, SigV4, JSON 1.0) against the
 *   wire-faked endpoint on 127.0.0.1 (`test/functions/metrics-cloudwatch-server.ts`): the
 *   client-side cost plus a loopback round trip. A deployed function adds the in-region round
 *   trip to CloudWatch. The first publish of a container (SDK load, client creation, first
 *   connect) is reported separately, in a fresh process.
 * - `emf`: Powertools builds the EMF documents, written with `writeSync` to /dev/null (what the
 *   Lambda runtime reads from the function's stdout pipe is not on the invocation's clock).
 *   Beside it, the hand-written encoder it replaced (`.scratch/emf-handwritten.ts` when present).
 *
 * Also prints the bytes each mode ships per invocation, the inputs of the cost per million.
 *
 *   npm exec -- tsx bench/metrics-overhead.ts [publishes=200]
 */
import { execFile } from "node:child_process";
import { existsSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { toEmfLines } from "../functions/metrics/emf.ts";
import {
  METRICS_ENV,
  publishMetrics,
  resetSharedCloudWatchClient,
  toCloudWatchData,
} from "../functions/metrics/publisher.ts";
import { type MetricDatum, toMetricDatums } from "../lib/metrics.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../lib/names.ts";
import { FakeCloudWatch } from "../test/functions/metrics-cloudwatch-server.ts";
import { bannerTimeoutResult, succeededResult } from "../test/functions/metrics-fixtures.ts";

const runs = Number(process.argv[2] ?? 200);
const HANDWRITTEN = path.join(import.meta.dirname, "..", ".scratch", "emf-handwritten.ts");

function stats(samples: number[]): { median: number; p90: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { median: at(0.5), p90: at(0.9), p99: at(0.99) };
}

function fmt(label: string, samples: number[]): string {
  const { median, p90, p99 } = stats(samples);
  const ms = (x: number) => `${x.toFixed(3)} ms`;
  return `${label.padEnd(44)} median ${ms(median)}  p90 ${ms(p90)}  p99 ${ms(p99)}`;
}

/** The first `api` publish of a fresh process: SDK import, client, credentials, first connect. */
async function coldApiPublish(endpoint: string): Promise<number> {
  // Asynchronous: the fake endpoint answers from this process's event loop.
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", COLD_SCRIPT],
    {
      cwd: path.join(import.meta.dirname, ".."),
      env: { ...process.env, [METRICS_ENV.endpoint]: endpoint },
      encoding: "utf8",
    },
  );
  return Number(stdout.trim());
}

const COLD_SCRIPT = `
const { publishMetrics } = await import("./functions/metrics/publisher.ts");
const { toMetricDatums } = await import("./lib/metrics.ts");
const { succeededResult } = await import("./test/functions/metrics-fixtures.ts");
const d = toMetricDatums({ result: succeededResult(), deadlineSlackMs: 1, leakedSockets: 0 });
const t = performance.now();
const r = await publishMetrics(d, { mode: "api", signal: AbortSignal.timeout(5000), writeLine: () => {} });
if (r.apiDatums !== d.length) throw new Error("lost datums " + JSON.stringify(r));
process.stdout.write(String(performance.now() - t));
process.exit(0);
`;

async function main(): Promise<void> {
  process.env.AWS_ACCESS_KEY_ID ??= "test";
  process.env.AWS_SECRET_ACCESS_KEY ??= "test";
  process.env.AWS_REGION ??= "us-east-1";
  const cw = await FakeCloudWatch.start();
  process.env[METRICS_ENV.endpoint] = cw.endpoint;
  resetSharedCloudWatchClient();
  const devNull = openSync("/dev/null", "w");
  const toDevNull = (line: string) => {
    writeSync(devNull, `${line}\n`);
  };
  const handwritten = existsSync(HANDWRITTEN)
    ? ((await import(HANDWRITTEN)) as { toEmfLines: typeof toEmfLines }).toEmfLines
    : undefined;

  const results = [succeededResult(), bannerTimeoutResult()];
  const emfPublish: number[] = [];
  const emfHandwritten: number[] = [];
  const api: number[] = [];
  const perInvocation: { emfBytes: number; emfLines: number; apiBytes: number; apiGzip: number }[] =
    [];
  const cold: number[] = [];
  try {
    for (let i = 0; i < 5; i++) cold.push(await coldApiPublish(cw.endpoint));
    const warm = toMetricDatums({ result: results[0], deadlineSlackMs: 1, leakedSockets: 0 });
    for (let i = 0; i < 20; i++) {
      await publishMetrics(warm, { mode: "api", signal: AbortSignal.timeout(1_000) });
      await publishMetrics(warm, { mode: "emf", writeLine: toDevNull });
      handwritten?.(warm, DEFAULT_METRIC_NAMESPACE);
    }
    for (let i = 0; i < runs; i++) {
      const result = results[i % 2];
      const datums: MetricDatum[] = toMetricDatums({
        result,
        deadlineSlackMs: 900,
        leakedSockets: 0,
      });

      let t = performance.now();
      const e = await publishMetrics(datums, { mode: "emf", writeLine: toDevNull });
      emfPublish.push(performance.now() - t);

      if (handwritten) {
        t = performance.now();
        for (const line of handwritten(datums, DEFAULT_METRIC_NAMESPACE)) toDevNull(line);
        emfHandwritten.push(performance.now() - t);
      }

      t = performance.now();
      const report = await publishMetrics(datums, {
        mode: "api",
        signal: AbortSignal.timeout(1_000),
      });
      api.push(performance.now() - t);
      if (report.apiDatums !== datums.length || e.emfDatums !== datums.length)
        throw new Error(`lost datums: ${JSON.stringify(report)}`);

      if (i < 2) {
        const lines = toEmfLines(datums, DEFAULT_METRIC_NAMESPACE);
        const body = JSON.stringify({
          Namespace: DEFAULT_METRIC_NAMESPACE,
          MetricData: toCloudWatchData(datums, new Date()),
        });
        perInvocation.push({
          emfBytes: lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0),
          emfLines: lines.length,
          apiBytes: Buffer.byteLength(body),
          apiGzip: gzipSync(body).length,
        });
      }
    }
  } finally {
    resetSharedCloudWatchClient();
    await cw.close();
  }
  console.log(
    `metrics modes, ${runs} invocations (success / BannerTimeout alternating), node ${process.version}`,
  );
  console.log(fmt("api: first publish of a process (5 processes)", cold));
  console.log(fmt("api: PutMetricData, loopback endpoint", api));
  console.log(fmt("emf: Powertools build + write", emfPublish));
  if (handwritten) console.log(fmt("emf: hand-written encoder + write (before)", emfHandwritten));
  for (const [i, p] of perInvocation.entries()) {
    console.log(
      `${i === 0 ? "success" : "BannerTimeout"} invocation: EMF ${p.emfLines} lines, ${p.emfBytes} B; PutMetricData body ${p.apiBytes} B (${p.apiGzip} B gzipped; sent plain below 10 KiB)`,
    );
  }
}

await main();
