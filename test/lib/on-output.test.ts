import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import type { RunOptions, RunResult } from "../../lib/types.ts";
import { type ExecContext, type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// RunOptions.onOutput (issue 24 item 3): the output as it arrives, against a real sshd. The
// capture (head + tail), byte counts and SHA-256 are the same with or without it; a callback
// that throws ends the session with InternalError in exec, never a crash or a hang.

let sshd: SshdServer;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const session = (
  command: string,
  options: Partial<RunOptions>,
  request: { maxOutputBytes?: number } = {},
): Promise<RunResult> =>
  runCommand(
    { host: sshd.host, port: sshd.port, username: sshd.username, command, ...request },
    {
      budgetMs: 20_000,
      secret: { privateKey: sshd.keys.ed25519.privateKey },
      knownHosts: sshd.knownHostsLine,
      ...options,
    },
  );

/** Collects every chunk per stream, with when it arrived. */
function collector() {
  const chunks: Record<"stdout" | "stderr", Buffer[]> = { stdout: [], stderr: [] };
  const arrivals: { stream: string; text: string; at: number }[] = [];
  return {
    chunks,
    arrivals,
    onOutput: (stream: "stdout" | "stderr", chunk: Buffer) => {
      chunks[stream].push(chunk);
      arrivals.push({ stream, text: chunk.toString("latin1"), at: performance.now() });
    },
    whole: (stream: "stdout" | "stderr") => Buffer.concat(chunks[stream]),
  };
}

describe("onOutput against a real sshd", () => {
  it("sees each chunk as it arrives, before the command ends", async () => {
    const seen = collector();
    const result = await session("echo first; sleep 1; echo second; echo oops >&2", {
      onOutput: seen.onOutput,
    });
    expect(result.status).toBe("succeeded");
    expect(seen.whole("stdout").toString()).toBe("first\nsecond\n");
    expect(seen.whole("stderr").toString()).toBe("oops\n");
    const first = seen.arrivals.find((a) => a.text.includes("first"))!;
    const second = seen.arrivals.find((a) => a.text.includes("second"))!;
    // "first" was delivered while the command was still sleeping (1 s); a margin that holds on
    // a loaded machine: the gap can only shrink if "first" was held back.
    expect(second.at - first.at).toBeGreaterThan(500);
  });

  it("leaves the bounded capture, counts and hashes unchanged, whatever it does to its chunk", async () => {
    const command = "head -c 300000 /dev/urandom | base64; echo tail-marker";
    const seen = collector();
    const result = await session(
      command,
      {
        onOutput: (stream, chunk) => {
          seen.onOutput(stream, Buffer.from(chunk));
          chunk.fill(0x21); // the callback owns its copy: the capture must not see this
        },
      },
      { maxOutputBytes: 4096 },
    );
    expect(result.status).toBe("succeeded");
    const whole = seen.whole("stdout");
    // The callback saw every byte; the result kept head + tail of the same stream.
    expect(result.output.truncated).toBe(true);
    expect(result.output.stdoutBytes).toBe(whole.length);
    expect(result.output.stdoutSha256).toBe(sha256(whole));
    expect(result.stdout.endsWith("tail-marker\n")).toBe(true);
    expect(result.stdout.startsWith(whole.subarray(0, 100).toString())).toBe(true);
    expect(result.stdout).not.toContain("!!!!");
    expect(seen.chunks.stdout.length).toBeGreaterThan(1);
  });

  it("a callback that throws ends the session with InternalError in exec, promptly", async () => {
    let calls = 0;
    const start = performance.now();
    const result = await session("echo one; sleep 30; echo never", {
      onOutput: () => {
        calls += 1;
        throw new Error("consumer closed");
      },
    });
    const elapsed = performance.now() - start;
    expect(result.status).toBe("error");
    expect(result.phase).toBe("exec");
    expect(result.error).toMatchObject({
      name: "InternalError",
      phase: "exec",
      commandStarted: true,
      retryable: false,
    });
    expect(result.error?.message).toContain("options.onOutput threw");
    // The caller's error is the cause, not in the message.
    expect(result.error?.message).not.toContain("consumer closed");
    expect(calls).toBe(1);
    // Not the 30 s command, nor the 20 s budget: the session ended and the command was told.
    expect(elapsed).toBeLessThan(10_000);
    expect(result.remoteCleanup).not.toBe("not_needed");
    // The capture went on without the callback: what the command printed is all there.
    expect(result.stdout).toBe("one\n");
    expect(result.output.stdoutBytes).toBe(4);
  });

  it("a callback whose promise rejects is reported the same way, no unhandled rejection", async () => {
    const result = await session("echo done; sleep 30", {
      onOutput: async () => {
        throw new Error("async consumer failed");
      },
    });
    expect(result.status).toBe("error");
    expect(result.error).toMatchObject({ name: "InternalError", phase: "exec" });
    expect(result.timings.totalMs).toBeLessThan(10_000);
  });
});

describe("onOutput after the exit status (scripted ssh2 Server)", () => {
  let server: Ssh2Server;
  beforeAll(async () => {
    // The exit status first, output 200 ms later: the order OpenSSH uses on a slow link.
    server = await startSsh2Server({
      exec: (ctx: ExecContext) => {
        ctx.stdout("start\n");
        ctx.exit(0);
        const timer = setTimeout(() => {
          if (ctx.channel.destroyed) return;
          ctx.stdout("late\n");
          ctx.close();
        }, 200);
        ctx.channel.once("close", () => clearTimeout(timer));
      },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a throw on output after the exit status is still reported, with the exit code", async () => {
    const seen: string[] = [];
    const result = await runCommand(
      { host: server.host, port: server.port, username: "u", command: "x" },
      {
        budgetMs: 10_000,
        secret: { password: "p" },
        knownHosts: server.knownHostsLine,
        onOutput: (_stream, chunk) => {
          seen.push(chunk.toString());
          if (chunk.toString().includes("late")) throw new Error("consumer closed");
        },
      },
    );
    expect(seen.join("")).toBe("start\nlate\n");
    expect(result.exitCode).toBe(0);
    expect(result.status).toBe("error");
    expect(result.error).toMatchObject({ name: "InternalError", phase: "exec" });
  });
});
