/**
 * Concurrency: N sessions at once from this process to one sshd (MaxStartups and MaxSessions
 * raised). All must complete; p95 is compared with the single-session median; heap per
 * session = (peak heapUsed − baseline after GC) / N.
 */
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import v8 from "node:v8";
import type { SshdServer } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";
import { quantile } from "./stats.ts";

export interface ConcurrencyResult {
  sessions: number;
  completed: number;
  failures: Record<string, number>;
  samples: number[];
  p95: number;
  median: number;
  wallMs: number;
  heapPerSession: number;
  /** CPU time of this process during the run (user + system, ms). */
  clientCpuMs: number;
  /** What every core of the machine did during the wall time. */
  machine: MachineCpu;
  /** This process's event-loop delay during the wall time. */
  loopDelay: LoopDelay;
  mainThread: MainThread;
}

/** All cores' time over an interval, from /proc/stat (10 ms resolution), in ms. */
export interface MachineCpu {
  /** Cores busy (user, nice, system, irq, softirq, steal) summed over all cores. */
  busyMs: number;
  /** Cores idle or waiting for I/O, summed over all cores. */
  idleMs: number;
}

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/**
 * This process's main thread over an interval (ms): the event loop idle in its poll phase
 * (nothing to run: waiting for the network, sshd or a timer), or active; of the active time,
 * on a core (the thread's own CPU) or not (runnable, but the kernel gave the core to another
 * task: the wait for a core on a busy machine).
 */
export interface MainThread {
  loopIdleMs: number;
  loopActiveMs: number;
  cpuMs: number;
}

/** The machine's busy and idle CPU ms so far (all cores summed), from /proc/stat's `cpu` line. */
export function machineCpuNow(): MachineCpu {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as number[];
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  return {
    busyMs:
      ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) *
      tick,
    idleMs: ((idle ?? 0) + (iowait ?? 0)) * tick,
  };
}

/** Measures the machine's cores and this process's loop delay from now until `stop()`. */
export function watchMachine(): {
  stop(): { machine: MachineCpu; loopDelay: LoopDelay; mainThread: MainThread };
} {
  const m0 = machineCpuNow();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const elu0 = performance.eventLoopUtilization();
  // Node ≥ 23.9 (the bench runs on the `node` devDependency, 24): the main thread alone.
  const threadCpu = () => {
    const t = typeof process.threadCpuUsage === "function" ? process.threadCpuUsage() : undefined;
    return t ? (t.user + t.system) / 1000 : Number.NaN;
  };
  const t0 = threadCpu();
  return {
    stop() {
      loop.disable();
      const elu = performance.eventLoopUtilization(elu0);
      const m1 = machineCpuNow();
      return {
        mainThread: { loopIdleMs: elu.idle, loopActiveMs: elu.active, cpuMs: threadCpu() - t0 },
        machine: { busyMs: m1.busyMs - m0.busyMs, idleMs: m1.idleMs - m0.idleMs },
        loopDelay: {
          p50: loop.percentile(50) / 1e6,
          p99: loop.percentile(99) / 1e6,
          max: loop.max / 1e6,
        },
      };
    },
  };
}

export async function measureConcurrency(
  engine: Engine,
  srv: SshdServer,
  sessions: number,
): Promise<ConcurrencyResult> {
  globalThis.gc?.();
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 5);
  const cpu0 = process.cpuUsage();
  const watch = watchMachine();
  const t0 = performance.now();
  const failures: Record<string, number> = {};
  const samples: number[] = [];
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      const s0 = performance.now();
      const r = await engine.runCommand(
        { host: srv.host, port: srv.port, username: srv.username, command: "true" },
        {
          budgetMs: 120_000,
          secret: { privateKey: srv.keys.ed25519.privateKey },
          knownHosts: srv.knownHostsLine,
        },
      );
      peak = Math.max(peak, process.memoryUsage().heapUsed);
      if (r.status === "succeeded") samples.push(performance.now() - s0);
      else {
        const key = `${r.error?.name ?? r.status}: ${r.error?.message ?? ""}`.slice(0, 120);
        failures[key] = (failures[key] ?? 0) + 1;
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const seen = watch.stop();
  clearInterval(sampler);
  const cpu = process.cpuUsage(cpu0);
  return {
    ...seen,
    sessions,
    completed: samples.length,
    failures,
    samples,
    p95: quantile(samples, 0.95),
    median: quantile(samples, 0.5),
    wallMs,
    heapPerSession: (peak - base) / sessions,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/** Wall time and this process's CPU for N sessions of any client at once (an anchor). */
export async function measureConcurrentClient(
  client: () => Promise<number>,
  sessions: number,
): Promise<{
  wallMs: number;
  clientCpuMs: number;
  failures: number;
  machine: MachineCpu;
  loopDelay: LoopDelay;
  mainThread: MainThread;
}> {
  const cpu0 = process.cpuUsage();
  const watch = watchMachine();
  const t0 = performance.now();
  let failures = 0;
  await Promise.all(
    Array.from({ length: sessions }, () =>
      client().catch(() => {
        failures++;
      }),
    ),
  );
  const wallMs = performance.now() - t0;
  const seen = watch.stop();
  const cpu = process.cpuUsage(cpu0);
  return { ...seen, wallMs, clientCpuMs: (cpu.user + cpu.system) / 1000, failures };
}

/**
 * The CPU floor of N concurrent sessions: all the CPU they need (client + sshd) spread over
 * every core. No schedule finishes sooner; a wall time near it means nothing waits idly.
 */
export function cpuFloorMs(clientCpuMs: number, sshdCpuMs: number, cores: number): number {
  return (clientCpuMs + sshdCpuMs) / cores;
}

/**
 * What N live sessions retain: N sessions of `sleep` held in their exec phase at once; when
 * every one has reached it, two full GCs, then (used heap − baseline after GC) ÷ N — the heap
 * a session keeps alive, without the garbage a peak of `heapUsed` also counts. The sessions
 * are then cancelled through the caller's signal (the abort path tears them down).
 */
export async function measureRetainedHeap(
  engine: Engine,
  srv: SshdServer,
  sessions: number,
  beforeRelease?: () => void,
): Promise<{ retainedPerSession: number; live: number; failures: number }> {
  const gc = () => {
    globalThis.gc?.();
    globalThis.gc?.();
  };
  gc();
  const base = v8.getHeapStatistics().used_heap_size;
  const controller = new AbortController();
  let live = 0;
  let ended = 0;
  let failures = 0;
  let allIn!: () => void;
  const ready = new Promise<void>((resolve) => {
    allIn = resolve;
  });
  const check = () => {
    if (live + ended >= sessions) allIn();
  };
  const runs = Array.from({ length: sessions }, async () => {
    let inExec = false;
    const r = await engine.runCommand(
      { host: srv.host, port: srv.port, username: srv.username, command: "sleep 600" },
      {
        budgetMs: 300_000,
        signal: controller.signal,
        secret: { privateKey: srv.keys.ed25519.privateKey },
        knownHosts: srv.knownHostsLine,
        onPhase: (phase) => {
          if (phase !== "exec") return;
          inExec = true;
          live += 1;
          check();
        },
      },
    );
    if (!inExec) {
      failures += r.status === "succeeded" ? 0 : 1;
      ended += 1;
      check();
    }
  });
  await ready;
  gc();
  const used = v8.getHeapStatistics().used_heap_size;
  beforeRelease?.();
  controller.abort();
  await Promise.all(runs);
  return { retainedPerSession: (used - base) / Math.max(1, live), live, failures };
}
