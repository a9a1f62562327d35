/** §5 results for metrics tests, built the way the engine reports the two cases that matter. */
import type { RunResult } from "../../lib/types.ts";

/** A command that ran and exited 0: every phase reached. */
export function succeededResult(overrides: Partial<RunResult> = {}): RunResult {
  return {
    requestId: "req-ok",
    status: "succeeded",
    target: { host: "db1.internal", port: 22, address: "10.0.0.5", username: "ops" },
    exitCode: 0,
    signal: null,
    stdout: "ok\n",
    stderr: "",
    output: {
      stdoutBytes: 3,
      stderrBytes: 0,
      truncated: false,
      stdoutSha256: "x",
      stderrSha256: "y",
      complete: true,
      stdoutEncoding: "utf8",
      stderrEncoding: "utf8",
    },
    phase: "teardown",
    timings: {
      resolveMs: 1,
      connectMs: 2,
      bannerMs: 3,
      handshakeMs: 40,
      authMs: 5,
      channelMs: 6,
      execMs: 70,
      teardownMs: 1,
      totalMs: 128,
    },
    deadline: { budgetMs: 10_000, remainingMs: 9_872 },
    server: { ident: "SSH-2.0-OpenSSH_9.6", hostKeySha256: "SHA256:abc" },
    remoteCleanup: "not_needed",
    ...overrides,
  };
}

/** The incident: TCP up, no identification line before the banner cap. */
export function bannerTimeoutResult(): RunResult {
  return succeededResult({
    requestId: "req-hang",
    status: "timed_out",
    exitCode: null,
    stdout: "",
    phase: "banner",
    error: {
      name: "BannerTimeout",
      phase: "banner",
      message: "banner phase did not finish within 3000 ms",
      retryable: true,
      commandStarted: false,
    },
    timings: {
      resolveMs: null,
      connectMs: 1,
      bannerMs: 3_000,
      handshakeMs: null,
      authMs: null,
      channelMs: null,
      execMs: null,
      teardownMs: 1,
      totalMs: 3_002,
    },
    server: undefined,
  });
}
