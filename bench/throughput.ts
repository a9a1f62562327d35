/**
 * Throughput: draining 100 MB of stdout (`head -c 100000000 /dev/zero`) through the engine vs
 * the OpenSSH client (`ssh … > /dev/null`). Handshake excluded by subtracting the median of a
 * `true` session of the same client measured in the same rounds. Memory is sampled during
 * the engine's drain: output is capped (head + tail kept), so heap must stay flat.
 *
 * Drain to S3: the same 100 MB spilled whole (`RunOptions.spill`, the handlers' multipart
 * sink) into s3rver (its own process) on loopback, interleaved with the plain drains of the same rounds, so the
 * ratio spilled ÷ plain holds whatever the machine's load. s3rver writes every part to disk
 * and assembles the object on completion: a stand-in slower than S3's own ingestion.
 */
import { spawn } from "node:child_process";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { S3SpillStore } from "../functions/spill/s3-spill.ts";
import { startS3rverProcess } from "../test/helpers/s3rver.ts";
import { SSH_PATH, type SshdServer } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";
import { engineClient, opensshClient } from "./latency.ts";
import { median } from "./stats.ts";

export const THROUGHPUT_BYTES = 100_000_000;
const COMMAND = `head -c ${THROUGHPUT_BYTES} /dev/zero`;

export interface ThroughputResult {
  engine: number[];
  openssh: number[];
  engineTrue: number[];
  opensshTrue: number[];
  /** The engine's drains with stdout spilled to s3rver (ms). */
  spilled: number[];
  /**
   * The same engine in the same rounds without this stop's two drain changes: reads copied
   * (`readsInPlace: false`) and no young-GC hint (V8's `gc` hidden during the drain).
   */
  legacy: number[];
  legacyMBps: number;
  /** Client CPU (ms) and garbage collections per plain drain, and per legacy drain. */
  perDrain: { cpuMs: number[]; major: number[]; minor: number[] };
  perLegacyDrain: { cpuMs: number[]; major: number[]; minor: number[] };
  /** MB/s with the handshake (median `true` session) subtracted. */
  engineMBps: number;
  spilledMBps: number;
  opensshMBps: number;
  /** Other clients' drains and `true` sessions (ms) and MB/s, interleaved the same way. */
  anchors: Record<string, { drain: number[]; true: number[]; MBps: number }>;
  /** Peak growth over the pre-run baseline during the engine's drains (bytes). */
  peakRssDelta: number;
  peakHeapDelta: number;
}

function opensshDrain(srv: SshdServer): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(SSH_PATH, srv.sshArgs().concat(COMMAND), { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`ssh exited ${code}`));
    });
  });
}

export async function measureThroughput(
  engine: Engine,
  srv: SshdServer,
  rounds: number,
  /** More anchors: a 100 MB drain of {@link THROUGHPUT_BYTES} and a `true` session (ms each). */
  anchors: Record<string, { drain: () => Promise<number>; true: () => Promise<number> }> = {},
): Promise<ThroughputResult> {
  const gcs = { major: 0, minor: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
    }
  });
  const drainWith = async (
    legacy: boolean,
    stats?: { cpuMs: number[]; major: number[]; minor: number[] },
  ): Promise<number> => {
    const g = globalThis as { gc?: unknown };
    const gc = g.gc;
    if (legacy) delete g.gc;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const g0 = { ...gcs };
    try {
      const r = await engine.runCommand(
        { host: srv.host, port: srv.port, username: srv.username, command: COMMAND },
        {
          budgetMs: 120_000,
          secret: { privateKey: srv.keys.ed25519.privateKey },
          knownHosts: srv.knownHostsLine,
          ...(legacy ? { readsInPlace: false } : {}),
        },
      );
      if (r.status !== "succeeded" || r.output.stdoutBytes !== THROUGHPUT_BYTES) {
        throw new Error(
          `engine drain failed: ${r.status} ${r.output.stdoutBytes} bytes ${JSON.stringify(r.error)}`,
        );
      }
      const elapsed = performance.now() - t0;
      // GC entries arrive on a later tick: let them land before counting.
      await new Promise((resolve) => setTimeout(resolve, 10));
      const c = process.cpuUsage(c0);
      stats?.cpuMs.push((c.user + c.system) / 1000);
      stats?.major.push(gcs.major - g0.major);
      stats?.minor.push(gcs.minor - g0.minor);
      return elapsed;
    } finally {
      if (legacy && gc !== undefined) g.gc = gc;
    }
  };
  const s3 = await startS3rverProcess("bench-spill");
  const store = new S3SpillStore({ client: s3.client, bucket: s3.bucket });
  let spills = 0;
  const spilledDrain = async (): Promise<number> => {
    const requestId = `bench-${++spills}`;
    const t0 = performance.now();
    const r = await engine.runCommand(
      { host: srv.host, port: srv.port, username: srv.username, command: COMMAND },
      {
        budgetMs: 120_000,
        secret: { privateKey: srv.keys.ed25519.privateKey },
        knownHosts: srv.knownHostsLine,
        requestId,
        spill: {
          open: (stream) => store.open(requestId, stream, "arn:aws:iam::000000000000:user/bench"),
        },
      },
    );
    const elapsed = performance.now() - t0;
    const object = r.output.stdoutObject;
    if (r.status !== "succeeded" || object?.bytes !== THROUGHPUT_BYTES) {
      throw new Error(`spilled drain failed: ${r.status} ${r.output.spillError ?? ""}`);
    }
    // Keep s3rver's directory flat across rounds.
    await s3.client.send(new DeleteObjectCommand({ Bucket: object.bucket, Key: object.key }));
    return elapsed;
  };
  const engTrue = engineClient(engine, srv);
  const sshTrue = opensshClient(srv);
  const res: ThroughputResult = {
    engine: [],
    openssh: [],
    engineTrue: [],
    opensshTrue: [],
    spilled: [],
    legacy: [],
    legacyMBps: 0,
    perDrain: { cpuMs: [], major: [], minor: [] },
    perLegacyDrain: { cpuMs: [], major: [], minor: [] },
    engineMBps: 0,
    spilledMBps: 0,
    opensshMBps: 0,
    anchors: Object.fromEntries(
      Object.keys(anchors).map((k) => [k, { drain: [], true: [], MBps: Number.NaN }]),
    ),
    peakRssDelta: 0,
    peakHeapDelta: 0,
  };
  // One owner for the s3rver process, the GC observer and the memory sampler: the finally.
  let base = process.memoryUsage();
  let peakRss = 0;
  let peakHeap = 0;
  let sampler: ReturnType<typeof setInterval> | undefined;
  observer.observe({ entryTypes: ["gc"] });
  try {
    await drainWith(false); // warm-up (JIT, key cache)
    await drainWith(true);
    globalThis.gc?.();
    base = process.memoryUsage();
    peakRss = base.rss;
    peakHeap = base.heapUsed;
    sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
    }, 20);
    for (let i = 0; i < rounds; i++) {
      res.engine.push(await drainWith(false, res.perDrain));
      res.legacy.push(await drainWith(true, res.perLegacyDrain));
      res.spilled.push(await spilledDrain());
      res.openssh.push(await opensshDrain(srv));
      for (const [k, a] of Object.entries(anchors)) res.anchors[k]!.drain.push(await a.drain());
      for (let j = 0; j < 3; j++) {
        res.engineTrue.push(await engTrue());
        res.opensshTrue.push(await sshTrue());
        for (const [k, a] of Object.entries(anchors)) res.anchors[k]!.true.push(await a.true());
      }
    }
  } finally {
    clearInterval(sampler);
    observer.disconnect();
    await s3.close();
  }
  res.peakRssDelta = peakRss - base.rss;
  res.peakHeapDelta = peakHeap - base.heapUsed;
  const mb = THROUGHPUT_BYTES / 1e6;
  res.engineMBps = mb / ((median(res.engine) - median(res.engineTrue)) / 1000);
  res.spilledMBps = mb / ((median(res.spilled) - median(res.engineTrue)) / 1000);
  res.legacyMBps = mb / ((median(res.legacy) - median(res.engineTrue)) / 1000);
  res.opensshMBps = mb / ((median(res.openssh) - median(res.opensshTrue)) / 1000);
  for (const a of Object.values(res.anchors)) {
    a.MBps = mb / ((median(a.drain) - median(a.true)) / 1000);
  }
  return res;
}
