import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callerAbortError, DeadlineExceeded, isTimeoutReason } from "../../lib/errors.ts";
import { runCommand } from "../../lib/index.ts";
import type { RunOptions, RunResult } from "../../lib/types.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// The caller's AbortSignal (issue 24 item 3): a signal whose reason is a `TimeoutError`
// (`AbortSignal.timeout()`, the WHATWG / Deno std / ky convention) means the caller's time ran
// out — `timed_out` with `DeadlineExceeded`; any other abort is a cancellation — `error` with
// `DeadlineExceeded`. Against a real sshd, wherever the session was waiting.

describe("callerAbortError: the one classifier of a caller's abort", () => {
  it("tells a timeout from a cancellation by the reason's name", () => {
    expect(isTimeoutReason(new DOMException("t", "TimeoutError"))).toBe(true);
    expect(isTimeoutReason(Object.assign(new Error("t"), { name: "TimeoutError" }))).toBe(true);
    expect(isTimeoutReason(new DOMException("a", "AbortError"))).toBe(false);
    expect(isTimeoutReason(new Error("shutdown"))).toBe(false);
    expect(isTimeoutReason("TimeoutError")).toBe(false);
    expect(isTimeoutReason(undefined)).toBe(false);
    expect(isTimeoutReason(null)).toBe(false);
  });

  it("builds a DeadlineExceeded that is a timeout only for a TimeoutError reason", () => {
    const timeout = callerAbortError(new DOMException("t", "TimeoutError"), "during auth", {
      phase: "auth",
    });
    expect(timeout).toBeInstanceOf(DeadlineExceeded);
    expect(timeout.timedOut).toBe(true);
    expect(timeout.message).toBe(
      "the caller's signal timed out during auth (its reason is a TimeoutError)",
    );
    const cancel = callerAbortError(new DOMException("a", "AbortError"), "during auth", {
      phase: "auth",
    });
    expect(cancel.timedOut).toBe(false);
    expect(cancel.message).toBe("cancelled by the caller during auth");
    // A budget that ran out is not the caller's signal: unchanged.
    expect(new DeadlineExceeded("no time left", { phase: "request" }).timedOut).toBe(false);
  });
});

describe("a caller's abort against a real sshd", () => {
  let sshd: SshdServer;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  const session = (command: string, options: Partial<RunOptions>): Promise<RunResult> =>
    runCommand(
      { host: sshd.host, port: sshd.port, username: sshd.username, command },
      {
        secret: { privateKey: sshd.keys.ed25519.privateKey },
        knownHosts: sshd.knownHostsLine,
        ...options,
      },
    );

  /** Aborts `controller` with `reason` once the command runs (the exec phase starts). */
  const abortInExec = (controller: AbortController, reason?: unknown) => ({
    signal: controller.signal,
    onPhase: (phase: string) => {
      if (phase === "exec") setTimeout(() => controller.abort(reason), 200);
    },
  });

  it("AbortSignal.timeout() during the command: timed_out, DeadlineExceeded", async () => {
    // Generous against a loaded machine: the session reaches exec well within 3 s, and the
    // command would run 30 s; the budget (20 s) is never what ends it.
    const result = await session("sleep 30", {
      budgetMs: 20_000,
      signal: AbortSignal.timeout(3_000),
    });
    expect(result.status).toBe("timed_out");
    expect(result.error).toMatchObject({ name: "DeadlineExceeded", retryable: false });
    expect(result.error?.message).toMatch(/^the caller's signal timed out during \w+/);
    expect(result.timings.totalMs).toBeLessThan(15_000);
  });

  it("a TimeoutError reason in exec: timed_out, phase exec, the command signalled", async () => {
    const controller = new AbortController();
    const result = await session("sleep 30", {
      budgetMs: 20_000,
      ...abortInExec(controller, new DOMException("deadline", "TimeoutError")),
    });
    expect(result.status).toBe("timed_out");
    expect(result.phase).toBe("exec");
    expect(result.error).toMatchObject({
      name: "DeadlineExceeded",
      phase: "exec",
      commandStarted: true,
      message: "the caller's signal timed out during exec (its reason is a TimeoutError)",
    });
    expect(result.remoteCleanup).not.toBe("not_needed");
  });

  it("a plain controller.abort() in exec stays a cancellation: error, DeadlineExceeded", async () => {
    const controller = new AbortController();
    const result = await session("sleep 30", { budgetMs: 20_000, ...abortInExec(controller) });
    expect(result.status).toBe("error");
    expect(result.error).toMatchObject({
      name: "DeadlineExceeded",
      phase: "exec",
      commandStarted: true,
      message: "cancelled by the caller during exec",
    });
  });

  it("a signal aborted before the call: nothing is dialled, timeout or cancel by reason", async () => {
    const timedOut = await session("true", {
      signal: AbortSignal.abort(new DOMException("late", "TimeoutError")),
    });
    expect(timedOut.status).toBe("timed_out");
    expect(timedOut.error).toMatchObject({ name: "DeadlineExceeded", phase: "request" });
    expect(timedOut.timings.connectMs).toBeNull();
    const cancelled = await session("true", { signal: AbortSignal.abort() });
    expect(cancelled.status).toBe("error");
    expect(cancelled.error).toMatchObject({
      name: "DeadlineExceeded",
      phase: "request",
      message: "cancelled by the caller before the session started",
    });
  });
});
