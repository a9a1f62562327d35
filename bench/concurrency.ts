/**
 * Concurrency: N sessions at once from this process to one sshd (MaxStartups and MaxSessions
 * raised). All must complete; p95 is compared with the single-session median; heap per
 * session = (peak heapUsed − baseline after GC) / N.
 */
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
  clearInterval(sampler);
  const cpu = process.cpuUsage(cpu0);
  return {
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
): Promise<{ wallMs: number; clientCpuMs: number; failures: number }> {
  const cpu0 = process.cpuUsage();
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
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, clientCpuMs: (cpu.user + cpu.system) / 1000, failures };
}

/**
 * The CPU floor of N concurrent sessions: all the CPU they need (client + sshd) spread over
 * every core. No schedule finishes sooner; a wall time near it means nothing waits idly.
 */
export function cpuFloorMs(clientCpuMs: number, sshdCpuMs: number, cores: number): number {
  return (clientCpuMs + sshdCpuMs) / cores;
}
