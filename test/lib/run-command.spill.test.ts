import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import type { OutputSpill, RunOptions, RunResult } from "../../lib/types.ts";
import { countActive } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// Spilling through the engine against a real sshd, into in-memory sinks whose pace and
// failures the test controls (the S3 sink is tested in test/functions/s3-spill.test.ts).

let sshd: SshdServer;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A sink that accepts `highWater` bytes, then asks for a pause and drains one chunk per tick. */
class SlowSink implements OutputSpill {
  readonly chunks: Buffer[] = [];
  queued = 0;
  peakQueued = 0;
  pauses = 0;
  ended = false;
  aborted: Error | undefined;
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly highWater: number,
    readonly failAfter = Number.POSITIVE_INFINITY,
  ) {}

  write(chunk: Buffer): boolean {
    if (this.aborted) throw this.aborted;
    this.chunks.push(Buffer.from(chunk));
    this.queued += chunk.length;
    this.peakQueued = Math.max(this.peakQueued, this.queued);
    this.#timer ??= setInterval(() => this.#tick(), 1);
    if (this.queued < this.highWater) return true;
    this.pauses += 1;
    return false;
  }

  #tick(): void {
    this.queued = Math.max(0, this.queued - this.highWater / 4);
    if (this.bytes > this.failAfter) this.abort(new Error("sink broke"));
    if (this.queued < this.highWater) for (const w of this.#waiters.splice(0)) w();
    if (this.queued === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  drained(): Promise<void> {
    if (this.aborted) return Promise.reject(this.aborted);
    if (this.queued < this.highWater) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.#waiters.push(() => (this.aborted ? reject(this.aborted) : resolve())),
    );
  }

  async end(): Promise<{ bucket: string; key: string }> {
    if (this.aborted) throw this.aborted;
    while (this.queued > 0) await new Promise((r) => setTimeout(r, 1));
    this.ended = true;
    return { bucket: "memory", key: "stdout" };
  }

  abort(reason: Error): void {
    this.aborted ??= reason;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiters.splice(0)) w();
  }
}

const SESSION_TYPES = ["TCPSocketWrap", "TCPWrap", "TCPConnectWrap"];
const sockets = () => countActive(SESSION_TYPES);

async function run(command: string, options: Partial<RunOptions>, budgetMs = 60_000) {
  const before = sockets();
  const start = performance.now();
  const result: RunResult = await runCommand(
    { host: sshd.host, port: sshd.port, username: sshd.username, command, maxOutputBytes: 1024 },
    {
      secret: { privateKey: sshd.keys.ed25519.privateKey },
      knownHosts: sshd.knownHostsLine,
      budgetMs,
      ...options,
    },
  );
  const elapsedMs = performance.now() - start;
  // A paused channel or a spill still completing must never keep the session's socket alive.
  expect(sockets(), "no socket of the session is alive").toBeLessThanOrEqual(before);
  return { result, elapsedMs };
}

// 8 MiB of distinct lines: a lost or reordered chunk changes the hash.
const LINES = "seq 1 2000000 | head -c 8388608";

describe("spilling full output", () => {
  it("pauses the channel for a slow sink and loses nothing", async () => {
    const sinks: Record<string, SlowSink> = {};
    const { result } = await run(LINES, {
      spill: { open: (stream) => (sinks[stream] = new SlowSink(256 * 1024)) },
    });
    expect(result.status).toBe("succeeded");
    const sink = sinks.stdout!;
    expect(sink.pauses, "the sink asked for pauses").toBeGreaterThan(5);
    // The engine stopped reading when asked: at most one SSH packet's chunk past the mark
    // (ignoring `false` would queue megabytes at the remote's pace).
    expect(sink.peakQueued).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
    const whole = Buffer.concat(sink.chunks);
    expect(whole.length).toBe(8_388_608);
    expect(sha256(whole)).toBe(result.output.stdoutSha256);
    expect(result.output.stdoutObject).toEqual({
      bucket: "memory",
      key: "stdout",
      bytes: 8_388_608,
      sha256: result.output.stdoutSha256,
    });
    expect(result.output.truncated).toBe(true);
    expect(result.output.spillError).toBeUndefined();
    // Under the cap nothing is spilled: stderr never opened a sink.
    expect(sinks.stderr).toBeUndefined();
  });

  it("keeps a stream within maxOutputBytes without opening a sink", async () => {
    let opened = 0;
    const { result } = await run("printf %01024d 0", {
      spill: {
        open: () => {
          opened += 1;
          return new SlowSink(1024);
        },
      },
    });
    expect(result.output.stdoutBytes).toBe(1024);
    expect(opened).toBe(0);
    expect(result.output.stdoutObject).toBeUndefined();
  });

  it("spills stderr too, starting with the bytes already kept", async () => {
    const sinks: Record<string, SlowSink> = {};
    const { result } = await run(`${LINES} >&2`, {
      spill: { open: (stream) => (sinks[stream] = new SlowSink(64 * 1024)) },
    });
    expect(result.status).toBe("succeeded");
    expect(result.output.stderrObject?.bytes).toBe(8_388_608);
    expect(sha256(Buffer.concat(sinks.stderr!.chunks))).toBe(result.output.stderrSha256);
  });

  it("aborts a spill over the maximum size, says so, and still drains the stream", async () => {
    const sinks: Record<string, SlowSink> = {};
    const { result } = await run(LINES, {
      spill: { open: (s) => (sinks[s] = new SlowSink(1024 * 1024)), maxBytes: 1_000_000 },
    });
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(8_388_608);
    expect(result.output.stdoutObject).toBeUndefined();
    expect(result.output.spillError).toMatch(/^stdout: .*spill maximum of 1000000 bytes/);
    expect(sinks.stdout!.aborted).toBeDefined();
    expect(sinks.stdout!.bytes).toBeLessThanOrEqual(1_000_000);
    expect(result.stdout).toMatch(/^1\n2\n/); // head + tail still there
  });

  it("returns head + tail and a spillError when the sink fails mid-stream", async () => {
    const sinks: Record<string, SlowSink> = {};
    const { result } = await run(LINES, {
      spill: { open: (s) => (sinks[s] = new SlowSink(256 * 1024, 2_000_000)) },
    });
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(8_388_608);
    expect(result.output.stdoutObject).toBeUndefined();
    expect(result.output.spillError).toBe("stdout: sink broke");
    expect(result.stdout).toMatch(/^1\n2\n[\s\S]*bytes omitted/);
  });

  it("aborts the spill inside the budget when the sink never finishes", async () => {
    let sink: SlowSink | undefined;
    const budgetMs = 3_000;
    const { result, elapsedMs } = await run(
      "head -c 200000 /dev/zero",
      {
        spill: {
          open: () => {
            sink = new SlowSink(1 << 30);
            sink.end = () => new Promise(() => {}); // never completes
            return sink;
          },
        },
      },
      budgetMs,
    );
    expect(result.status).toBe("succeeded");
    expect(result.output.spillError).toMatch(/did not complete within the session's deadline/);
    expect(sink!.aborted).toBeDefined();
    expect(elapsedMs).toBeLessThanOrEqual(budgetMs + 100);
    // The teardown reserve was kept: the session still closed politely inside its budget.
    expect(result.deadline.remainingMs).toBeGreaterThanOrEqual(-50);
  });

  it("aborts the spill when the command times out", async () => {
    let sink: SlowSink | undefined;
    const { result } = await run(
      "head -c 100000 /dev/zero; sleep 30",
      { spill: { open: () => (sink = new SlowSink(1 << 30)) } },
      2_000,
    );
    expect(result.error?.name).toBe("CommandTimeout");
    expect(sink!.aborted?.message).toMatch(/CommandTimeout/);
    expect(result.output.spillError).toMatch(/^stdout: the session ended with CommandTimeout/);
    expect(result.output.stdoutObject).toBeUndefined();
  });
});
