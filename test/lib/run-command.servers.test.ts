import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOOP_MARGIN_MAX_MS } from "../../lib/deadline.ts";
import { runCommand } from "../../lib/index.ts";
import type { RemoteCleanup } from "../../lib/names.ts";
import type { RunOptions, RunRequest, RunResult } from "../../lib/types.ts";
import {
  LAB_SERVER_KINDS,
  type LabServer,
  type LabServerKind,
  startLabServer,
} from "../helpers/lab-server.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";

// The engine against three real SSH servers on loopback — OpenSSH, Dropbear and TinySSH —
// with the same cases and the same expectations, except where a server measurably differs
// (EXPECT below). What a user sees: status, exit code, error name, cleanup, time, leaks.

const MARGIN_MS = 50;

/** Where the servers differ, measured (not assumed) on Debian 12's packages. */
const EXPECT: Record<
  LabServerKind,
  {
    ident: RegExp;
    /** remoteCleanup after CommandTimeout for a command that dies of TERM. */
    cleanupAfterTerm: RemoteCleanup;
    /** Accepts RSA and ECDSA user keys (TinySSH: ed25519 only). */
    rsaAndEcdsa: boolean;
    /** Sends the exit status while a background child still holds stdout open. */
    exitBeforeEof: boolean;
    /** With the exit status, also ends the streams (EOF, close) a background child holds. */
    eofAtExit: boolean;
  }
> = {
  // OpenSSH ≥ 7.9 and Dropbear deliver the `signal` request: the exit confirms it.
  openssh: {
    ident: /^SSH-2\.0-OpenSSH_/,
    cleanupAfterTerm: "confirmed",
    rsaAndEcdsa: true,
    exitBeforeEof: true,
    eofAtExit: false,
  },
  // Dropbear closes the channel when the command exits, whatever still holds its stdout.
  dropbear: {
    ident: /^SSH-2\.0-dropbear_/,
    cleanupAfterTerm: "confirmed",
    rsaAndEcdsa: true,
    exitBeforeEof: true,
    eofAtExit: true,
  },
  // TinySSH ignores `signal` requests (only the remote bound ends the command) and reports
  // the exit status only after EOF on stdout (the OpenSSH client waits the same way).
  tinyssh: {
    ident: /^SSH-2\.0-tinyssh_/,
    cleanupAfterTerm: "signalled",
    rsaAndEcdsa: false,
    exitBeforeEof: false,
    eofAtExit: false,
  },
};

const servers = {} as Record<LabServerKind, LabServer>;

beforeAll(async () => {
  await Promise.all(
    LAB_SERVER_KINDS.map(async (kind) => {
      servers[kind] = await startLabServer(kind);
    }),
  );
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
});

interface Run {
  result: RunResult;
  elapsedMs: number;
}

/** One session against `server`; asserts the budget held. */
async function run(
  server: LabServer,
  request: Partial<RunRequest> & { command: string },
  options: Partial<RunOptions> = {},
): Promise<Run> {
  const budgetMs = options.budgetMs ?? 10_000;
  const start = performance.now();
  const result = await runCommand(
    { host: server.host, port: server.port, username: server.username, ...request },
    {
      secret: { privateKey: server.keys.ed25519.privateKey },
      knownHosts: server.knownHostsLine,
      ...options,
      budgetMs,
    },
  );
  const elapsedMs = performance.now() - start;
  expect(elapsedMs).toBeLessThanOrEqual(budgetMs + MARGIN_MS);
  return { result, elapsedMs };
}

/** Sequential runs also prove nothing of the session is left alive when it returns. */
async function runAlone(
  server: LabServer,
  request: Partial<RunRequest> & { command: string },
  options: Partial<RunOptions> = {},
): Promise<Run> {
  const baseline = activeHandles();
  const outcome = await run(server, request, options);
  await expectNoSessionLeaks(baseline);
  return outcome;
}

/** Waits up to `ms` for the marked remote processes to be gone; returns what is left. */
async function remoteLeftovers(server: LabServer, marker: string, ms: number) {
  const until = Date.now() + ms;
  while (server.userProcessesMatching(marker).length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return server.userProcessesMatching(marker);
}

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

describe.each(LAB_SERVER_KINDS)("%s", (kind) => {
  const server = () => servers[kind];

  it("runs a command: exit 0, stdout, stderr, server identity", async () => {
    const { result } = await runAlone(server(), { command: "echo hello; echo oops >&2" });
    expect(result.status).toBe("succeeded");
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe("hello\n");
    expect(result.stderr).toBe("oops\n");
    expect(result.server?.ident).toMatch(EXPECT[kind].ident);
    expect(result.server?.hostKeySha256).toBe(server().hostKeyFingerprint);
    expect(result.remoteCleanup).toBe("not_needed");
  });

  it("reports a non-zero exit as failed", async () => {
    const { result } = await runAlone(server(), { command: "exit 42" });
    expect(result).toMatchObject({ status: "failed", exitCode: 42, signal: null });
    expect(result.error).toBeUndefined();
  });

  it("reports death by signal with the signal name", async () => {
    const { result } = await runAlone(server(), { command: "kill -KILL $$" });
    expect(result).toMatchObject({ status: "failed", exitCode: null, signal: "KILL" });
  });

  it("writes stdin then EOF", async () => {
    const { result } = await runAlone(server(), {
      command: "wc -c; cat",
      stdin: "line one\nline two\n",
    });
    expect(result.stdout).toBe("18\n");
  });

  it("keeps head and tail beyond the cap, with exact byte counts and hashes", async () => {
    const { result } = await runAlone(server(), {
      command: "seq -w 1 40000 | head -c 200000; head -c 5000 /dev/zero | tr '\\0' e >&2",
      maxOutputBytes: 1000,
    });
    const full = Buffer.from(
      Array.from({ length: 40000 }, (_, i) => `${String(i + 1).padStart(5, "0")}\n`).join(""),
    ).subarray(0, 200_000);
    expect(result.status).toBe("succeeded");
    expect(result.output).toMatchObject({
      truncated: true,
      stdoutBytes: 200_000,
      stderrBytes: 5000,
      stdoutSha256: sha256(full),
      stderrSha256: sha256("e".repeat(5000)),
    });
    const [head, tail] = result.stdout.split("\n[bounded-ssh: 199000 bytes omitted]\n");
    expect(head).toBe(full.subarray(0, 500).toString());
    expect(tail).toBe(full.subarray(199_500).toString());
  });

  it("counts and hashes 5 MB of output exactly", async () => {
    const { result } = await runAlone(
      server(),
      { command: "seq -w 1 1000000 | head -c 5000000" },
      { budgetMs: 20_000 },
    );
    const full = Buffer.from(
      Array.from({ length: 625_000 }, (_, i) => `${String(i + 1).padStart(7, "0")}\n`).join(""),
    );
    expect(full.length).toBe(5_000_000);
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(5_000_000);
    expect(result.output.stdoutSha256).toBe(sha256(full));
    expect(result.output.truncated).toBe(true);
  });

  it("logs in with a passphrase-protected key", async () => {
    const { result } = await runAlone(
      server(),
      { command: "id -un" },
      {
        secret: {
          privateKey: server().keys.encrypted.privateKey,
          passphrase: server().keys.encrypted.passphrase,
        },
      },
    );
    expect(result.stdout).toBe(`${server().username}\n`);
  });

  it(`${EXPECT[kind].rsaAndEcdsa ? "logs in" : "is refused (AuthFailed)"} with ECDSA and RSA keys`, async () => {
    for (const key of [server().keys.ecdsa, server().keys.rsa]) {
      const { result } = await runAlone(
        server(),
        { command: "id -un" },
        { secret: { privateKey: key.privateKey } },
      );
      if (EXPECT[kind].rsaAndEcdsa) expect(result.status, key.publicKey).toBe("succeeded");
      else expect(result.error?.name, key.publicKey).toBe("AuthFailed");
    }
  });

  it("reports a key the server does not accept as AuthFailed", async () => {
    const { result } = await runAlone(
      server(),
      { command: "true" },
      { secret: { privateKey: server().keys.unauthorized.privateKey } },
    );
    expect(result.error).toMatchObject({ name: "AuthFailed", phase: "auth", retryable: false });
  });

  it("accepts the host key by SHA256 pin, by key line pin and by known_hosts", async () => {
    const pins = [server().hostKeyFingerprint, server().hostKeyLine];
    for (const hostKey of pins) {
      const { result } = await runAlone(server(), { command: "true", hostKey }, { knownHosts: "" });
      expect(result.status, hostKey).toBe("succeeded");
    }
    const { result } = await runAlone(server(), { command: "true" });
    expect(result.status).toBe("succeeded");
  });

  it("refuses a wrong pin (HostKeyMismatch) and an unknown key (HostKeyUnknown)", async () => {
    const wrong = `SHA256:${createHash("sha256").update("not the key").digest("base64").replace(/=+$/, "")}`;
    const mismatch = await runAlone(server(), { command: "true", hostKey: wrong });
    expect(mismatch.result.error).toMatchObject({ name: "HostKeyMismatch", phase: "handshake" });
    expect(mismatch.result.timings.authMs).toBeNull();
    const unknown = await runAlone(server(), { command: "true" }, { knownHosts: "" });
    expect(unknown.result.error).toMatchObject({ name: "HostKeyUnknown", phase: "handshake" });
  });
});

// Slow cases: one test per server, run side by side so the suite pays for each wait once.
// Handles are compared once for the whole group (sessions overlap, so not per test).
describe("slow cases, servers side by side", () => {
  let baseline: ReturnType<typeof activeHandles>;
  beforeAll(() => {
    baseline = activeHandles();
  });
  afterAll(async () => {
    await expectNoSessionLeaks(baseline, { waitMs: 1000 });
  });

  it.concurrent.each(LAB_SERVER_KINDS)(
    "%s: a command silent for 10.5 s succeeds under a 1 s keepalive (no false ConnectionLost)",
    async (kind) => {
      // 1 s × (2 + 1): a peer that answered no keepalive would be declared lost after 3 s.
      const { result, elapsedMs } = await run(
        servers[kind],
        { command: "sleep 10.5; echo done" },
        { budgetMs: 14_000, keepalive: { intervalMs: 1000, countMax: 2 } },
      );
      console.log(`${kind}: silent 10.5 s command took ${Math.round(elapsedMs)} ms`);
      expect(result.error, JSON.stringify(result.error)).toBeUndefined();
      expect(result).toMatchObject({ status: "succeeded", exitCode: 0, stdout: "done\n" });
      expect(elapsedMs).toBeGreaterThanOrEqual(10_500);
    },
  );

  it.concurrent.each(LAB_SERVER_KINDS)(
    "%s: a command that outlives its time is CommandTimeout, cleaned up, and gone",
    async (kind) => {
      const marker = `bssh-sleep-${randomBytes(4).toString("hex")}`;
      // A 1 s teardown cap (reserve 500 ms, 375 ms of it for the confirmation) keeps the
      // confirmation in time on a loaded 2-core machine; the default (250 ms) works idle.
      const { result, elapsedMs } = await run(
        servers[kind],
        { command: `exec -a ${marker} sleep 300` },
        { budgetMs: 2500, phaseCaps: { teardown: 1000 } },
      );
      console.log(
        `${kind}: CommandTimeout after ${Math.round(elapsedMs)} ms, remoteCleanup ${result.remoteCleanup}, teardown ${result.timings.teardownMs} ms`,
      );
      expect(result.status).toBe("timed_out");
      expect(result.error).toMatchObject({
        name: "CommandTimeout",
        phase: "exec",
        retryable: false,
        commandStarted: true,
      });
      expect(result.remoteCleanup).toBe(EXPECT[kind].cleanupAfterTerm);
      expect(elapsedMs).toBeGreaterThan(1500);
      // Confirmed means gone already; otherwise the remote bound (timeout -k) ends it.
      const waitMs = result.remoteCleanup === "confirmed" ? 500 : 5000;
      expect(await remoteLeftovers(servers[kind], marker, waitMs)).toEqual([]);
    },
  );

  it.concurrent.each(LAB_SERVER_KINDS)(
    "%s: a command that ignores TERM is 'signalled' (no confirmation) and the remote bound ends it",
    async (kind) => {
      const marker = `bssh-stubborn-${randomBytes(4).toString("hex")}`;
      const { result } = await run(
        servers[kind],
        { command: `trap '' TERM; exec -a ${marker} sleep 300` },
        { budgetMs: 1500 },
      );
      console.log(`${kind}: TERM ignored → remoteCleanup ${result.remoteCleanup}`);
      expect(result.error?.name).toBe("CommandTimeout");
      expect(result.remoteCleanup).toBe("signalled");
      // The process is still there when the result says so…
      expect(servers[kind].userProcessesMatching(marker)).not.toEqual([]);
      // …and timeout(1) KILLs it after its grace, with the client long gone.
      expect(await remoteLeftovers(servers[kind], marker, 8000)).toEqual([]);
    },
  );

  it.concurrent.each(LAB_SERVER_KINDS)(
    "%s: a background child holding stdout after exit: OutputIncomplete after the idle grace, exit code kept",
    async (kind) => {
      const marker = `bssh-bg-${randomBytes(4).toString("hex")}`;
      const budgetMs = 3000;
      const { result, elapsedMs } = await run(
        servers[kind],
        { command: `(exec -a ${marker} sleep 20) & echo started` },
        { budgetMs },
      );
      try {
        expect(result.stdout).toBe("started\n");
        if (EXPECT[kind].eofAtExit) {
          // The server ended the streams itself: what was read is all the server will send.
          expect(result).toMatchObject({ status: "succeeded", exitCode: 0 });
          expect(result.output.complete).toBe(true);
          expect(elapsedMs).toBeLessThan(budgetMs - 1500);
        } else if (EXPECT[kind].exitBeforeEof) {
          // The stream never ended (the child holds it): what was read may not be all of it.
          expect(result).toMatchObject({
            status: "error",
            exitCode: 0,
            error: { name: "OutputIncomplete", phase: "exec", commandStarted: true },
            output: { complete: false },
          });
          expect(result.error?.message).toMatch(/for 1000 ms after the exit status/);
          // After the idle grace (1 s), not the child's 20 s.
          expect(elapsedMs).toBeLessThan(budgetMs - 200);
        } else {
          // No exit status until EOF: only the deadline ends the session, on time.
          expect(result.error?.name).toBe("CommandTimeout");
          // Less the loop-delay margin the deadline may keep back (lib/deadline.ts).
          expect(elapsedMs).toBeGreaterThan(budgetMs - 300 - LOOP_MARGIN_MAX_MS);
        }
      } finally {
        // The child is ours (this test started it): end it by PID.
        for (const p of servers[kind].userProcessesMatching(marker)) process.kill(p.pid, "SIGKILL");
      }
    },
  );
});
