import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// lib/session/young-gc.ts: a minor GC every 8 MiB of output, only where V8's `gc` is exposed.
// The counter is module state: each test loads a fresh copy.

type Hint = typeof import("../../lib/session/young-gc.ts");
const MiB = 1024 * 1024;
const g = globalThis as { gc?: unknown };
let saved: unknown;

async function freshHint(): Promise<Hint> {
  vi.resetModules();
  return import("../../lib/session/young-gc.ts");
}

beforeEach(() => {
  saved = g.gc;
});
afterEach(() => {
  if (saved === undefined) delete g.gc;
  else g.gc = saved;
});

describe("noteShortLivedBytes", () => {
  it("asks for an async minor GC once per 8 MiB, counted across calls", async () => {
    const { noteShortLivedBytes, YOUNG_GC_EVERY_BYTES } = await freshHint();
    expect(YOUNG_GC_EVERY_BYTES).toBe(8 * MiB);
    const gc = vi.fn(() => Promise.resolve());
    g.gc = gc;
    for (let i = 0; i < 20 * 32; i++) noteShortLivedBytes(32 * 1024); // 20 MiB in packets
    expect(gc).toHaveBeenCalledTimes(2);
    expect(gc).toHaveBeenCalledWith({ type: "minor", execution: "async" });
    noteShortLivedBytes(4 * MiB); // 24 MiB: the third
    expect(gc).toHaveBeenCalledTimes(3);
  });

  it("does nothing without V8's gc (no --expose-gc), and never throws", async () => {
    const { noteShortLivedBytes } = await freshHint();
    delete g.gc;
    expect(() => noteShortLivedBytes(64 * MiB)).not.toThrow();
    g.gc = "not a function";
    expect(() => noteShortLivedBytes(64 * MiB)).not.toThrow();
  });

  it("a gc that throws or rejects is only a hint: no throw, no unhandled rejection", async () => {
    const { noteShortLivedBytes } = await freshHint();
    const unhandled = vi.fn();
    process.on("unhandledRejection", unhandled);
    try {
      g.gc = () => {
        throw new TypeError("options not supported");
      };
      expect(() => noteShortLivedBytes(8 * MiB)).not.toThrow();
      g.gc = () => Promise.reject(new Error("refused"));
      expect(() => noteShortLivedBytes(8 * MiB)).not.toThrow();
      // V8's gc lives in another context: its promise is not this realm's Promise.
      const vm = await import("node:vm");
      g.gc = vm.runInNewContext("() => Promise.reject(new Error('refused elsewhere'))");
      expect(() => noteShortLivedBytes(8 * MiB)).not.toThrow();
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off("unhandledRejection", unhandled);
    }
  });

  it("V8's own gc accepts the options: an async minor GC that runs", async () => {
    const { noteShortLivedBytes } = await freshHint();
    const v8 = await import("node:v8");
    const vm = await import("node:vm");
    const { PerformanceObserver, constants } = await import("node:perf_hooks");
    v8.setFlagsFromString("--expose-gc");
    const real = vm.runInNewContext("gc") as (options: unknown) => unknown;
    const calls: Array<{ options: unknown; returned: unknown }> = [];
    g.gc = (options: unknown) => {
      const returned = real(options);
      calls.push({ options, returned });
      return returned;
    };
    const kinds: number[] = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        kinds.push((e as unknown as { detail: { kind: number } }).detail.kind);
    });
    obs.observe({ entryTypes: ["gc"] });
    try {
      noteShortLivedBytes(8 * MiB);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.options).toEqual({ type: "minor", execution: "async" });
      // V8 answers an async request with a promise settled once its GC task has run.
      expect(typeof (calls[0]!.returned as PromiseLike<unknown>).then).toBe("function");
      await calls[0]!.returned;
      await vi.waitFor(() => expect(kinds).toContain(constants.NODE_PERFORMANCE_GC_MINOR), {
        timeout: 5000,
      });
    } finally {
      obs.disconnect();
    }
  });
});
