/** Small statistics helpers for the benchmarks: medians and percentiles, never single runs. */

/** Nearest-rank percentile (q in 0..1) of `samples`. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] as number;
}

export const median = (samples: readonly number[]): number => quantile(samples, 0.5);

export interface Summary {
  n: number;
  median: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    median: median(samples),
    p95: quantile(samples, 0.95),
    p99: quantile(samples, 0.99),
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

/** `12.3` style: one decimal for ms, fewer digits for big numbers. */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  return x >= 1000 ? x.toFixed(0) : x.toFixed(1);
}

export function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : "n/a";
}

export const sleep = (msToWait: number) => new Promise<void>((r) => setTimeout(r, msToWait));
