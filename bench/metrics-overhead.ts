/**
 * Publishing overhead per invocation: the time `metricsMiddleware` adds to a response when
 * CloudWatch is healthy. Real SDK client (keep-alive, SigV4, JSON 1.0) against the test
 * endpoint on 127.0.0.1, so this is the client-side cost plus a loopback round trip; add the
 * network round trip to CloudWatch (a few ms in-region) for a deployed function.
 *
 *   npm exec -- tsx bench/metrics-overhead.ts [publishes=200]
 */
import { toEmfLines } from "../functions/metrics/emf.ts";
import {
  METRICS_ENV,
  publishMetrics,
  resetSharedCloudWatchClient,
} from "../functions/metrics/publisher.ts";
import { toMetricDatums } from "../lib/metrics.ts";
import { DEFAULT_METRIC_NAMESPACE } from "../lib/names.ts";
import { FakeCloudWatch } from "../test/functions/metrics-cloudwatch-server.ts";
import { bannerTimeoutResult, succeededResult } from "../test/functions/metrics-fixtures.ts";

const runs = Number(process.argv[2] ?? 200);

function stats(samples: number[]): { median: number; p90: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
  return { median: at(0.5), p90: at(0.9), p99: at(0.99) };
}

function fmt(label: string, samples: number[]): string {
  const { median, p90, p99 } = stats(samples);
  const ms = (x: number) => `${x.toFixed(3)} ms`;
  return `${label.padEnd(34)} median ${ms(median)}  p90 ${ms(p90)}  p99 ${ms(p99)}`;
}

async function main(): Promise<void> {
  process.env.AWS_ACCESS_KEY_ID ??= "test";
  process.env.AWS_SECRET_ACCESS_KEY ??= "test";
  process.env.AWS_REGION ??= "us-east-1";
  const cw = await FakeCloudWatch.start();
  process.env[METRICS_ENV.endpoint] = cw.endpoint;
  resetSharedCloudWatchClient();

  const results = [succeededResult(), bannerTimeoutResult()];
  const model: number[] = [];
  const emf: number[] = [];
  const api: number[] = [];
  const datumCounts = new Set<number>();
  let coldMs = 0;
  try {
    // The first publish pays client creation, shared config file reads and the first connect,
    // once per container (cold start); then warm up the connection and the JIT.
    const warmup = toMetricDatums({ result: results[0], deadlineSlackMs: 1, leakedSockets: 0 });
    const cold = performance.now();
    await publishMetrics(warmup, { timeoutMs: 1_000 });
    coldMs = performance.now() - cold;
    for (let i = 0; i < 10; i++) await publishMetrics(warmup, { timeoutMs: 1_000 });
    for (let i = 0; i < runs; i++) {
      const result = results[i % 2];
      let t = performance.now();
      const datums = toMetricDatums({ result, deadlineSlackMs: 900, leakedSockets: 0 });
      model.push(performance.now() - t);
      datumCounts.add(datums.length);

      t = performance.now();
      toEmfLines(datums, DEFAULT_METRIC_NAMESPACE);
      emf.push(performance.now() - t);

      t = performance.now();
      const report = await publishMetrics(datums, { timeoutMs: 1_000, mode: "api" });
      api.push(performance.now() - t);
      if (report.apiDatums !== datums.length)
        throw new Error(`lost datums: ${JSON.stringify(report)}`);
    }
  } finally {
    resetSharedCloudWatchClient();
    await cw.close();
  }
  console.log(
    `metrics overhead, ${runs} invocations, ${[...datumCounts].join(" or ")} datums each, node ${process.version}`,
  );
  console.log(`first publish (cold client)          ${coldMs.toFixed(1)} ms`);
  console.log(fmt("toMetricDatums", model));
  console.log(fmt("EMF encoding (fallback path)", emf));
  console.log(fmt("PutMetricData, loopback endpoint", api));
}

await main();
