import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Deadline } from "../../lib/deadline.ts";
import { RETRYABLE_ERRORS } from "../../lib/names.ts";
import { runCommand } from "../../lib/run-command.ts";
import { type SessionProgress, SshConnection } from "../../lib/session/connection.ts";
import { prepareAuth } from "../../lib/session/credentials.ts";
import { hostKeyTrust } from "../../lib/session/host-keys.ts";
import type { RunOptions, RunResult } from "../../lib/types.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { type Ssh2Server, type Ssh2ServerScript, startSsh2Server } from "../helpers/ssh2-server.ts";

// `commandStarted` is true once the exec request is on the wire (issue 20, item 2): from that
// moment the server may run the command whether or not it ever answers, so no result may say
// it did not start, and no retry may run it twice. Scripted ssh2 servers that stop at each
// step of ssh2's `exec` (channel open → confirmation → exec request → reply).
//
// Before the fix, a server that received the exec request and never answered it gave
// `ChannelTimeout` with `commandStarted: false` and `retryable: true`, and nothing stopped the
// command it may have started (`remoteCleanup: not_needed`).

let server: Ssh2Server | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const BUDGET_MS = 1_500;

async function run(
  script: Ssh2ServerScript,
  options: Partial<RunOptions> = {},
): Promise<{ result: RunResult; elapsedMs: number; server: Ssh2Server }> {
  server = await startSsh2Server(script);
  const baseline = activeHandles();
  const start = performance.now();
  const result = await runCommand(
    { host: server.host, port: server.port, username: "u", command: "deploy --once" },
    {
      secret: { password: "p" },
      knownHosts: server.knownHostsLine,
      budgetMs: BUDGET_MS,
      ...options,
    },
  );
  const elapsedMs = performance.now() - start;
  await expectNoSessionLeaks(baseline, { waitMs: 1_000 });
  return { result, elapsedMs, server };
}

const execsSeen = (s: Ssh2Server) => s.events.filter((e) => e.type === "exec");
const signalsSeen = (s: Ssh2Server) => s.events.filter((e) => e.type === "signal");

describe("the exec request on the wire is where the command may start", () => {
  it("exec request received, never answered: CommandTimeout, may have started, not retryable, signalled", async () => {
    // Act
    const { result, elapsedMs, server: s } = await run({ execRequest: "never" });
    // Assess: the server saw the request, so the result says the command may have started.
    expect(execsSeen(s)).toHaveLength(1);
    expect(result.status).toBe("timed_out");
    expect(result.phase).toBe("exec");
    expect(result.error).toMatchObject({
      name: "CommandTimeout",
      phase: "exec",
      commandStarted: true,
      retryable: false,
    });
    expect(result.error?.message).toMatch(/did not answer the exec request.*may have started/);
    // A name Step Functions retries never carries a command that may have started.
    expect(RETRYABLE_ERRORS).not.toContain(result.error?.name);
    // The remote side is handled like a command that outlived its time: TERM on its channel.
    expect(result.remoteCleanup).toBe("signalled");
    expect(signalsSeen(s)).toEqual([{ type: "signal", name: "TERM" }]);
    // The channel phase ended when the request left; the wait for its answer is exec time.
    expect(result.timings.channelMs).not.toBeNull();
    expect(result.timings.execMs).not.toBeNull();
    expect(elapsedMs).toBeLessThan(BUDGET_MS + 100);
  });

  it("session channel never confirmed: ChannelTimeout, not started, retryable, no exec sent", async () => {
    // Act
    const { result, elapsedMs, server: s } = await run({ session: "never" });
    // Assess
    expect(execsSeen(s)).toHaveLength(0);
    expect(result.status).toBe("timed_out");
    expect(result.phase).toBe("channel");
    expect(result.error).toMatchObject({
      name: "ChannelTimeout",
      phase: "channel",
      commandStarted: false,
      retryable: true,
    });
    expect(result.remoteCleanup).toBe("not_needed");
    expect(result.timings.execMs).toBeNull();
    expect(elapsedMs).toBeLessThan(BUDGET_MS + 100);
  });

  it("session channel refused: ChannelRejected in channel, not started, retryable", async () => {
    const { result, server: s } = await run({ session: "reject" });
    expect(execsSeen(s)).toHaveLength(0);
    expect(result.error).toMatchObject({
      name: "ChannelRejected",
      phase: "channel",
      commandStarted: false,
      retryable: true,
    });
    expect(result.remoteCleanup).toBe("not_needed");
  });

  it("exec request refused (CHANNEL_FAILURE): ChannelRejected in exec, the server says it did not run", async () => {
    const { result, server: s } = await run({ execRequest: "reject" });
    expect(execsSeen(s)).toHaveLength(1);
    expect(result.phase).toBe("exec");
    expect(result.error).toMatchObject({
      name: "ChannelRejected",
      phase: "exec",
      commandStarted: false,
      retryable: true,
    });
    expect(result.error?.message).toMatch(/refused the exec request/);
    expect(result.remoteCleanup).toBe("not_needed");
    expect(signalsSeen(s)).toHaveLength(0);
  });

  it("an answered exec still runs to its end (the split costs nothing)", async () => {
    const { result } = await run({});
    expect(result.status).toBe("succeeded");
    expect(result.stdout).toContain("deploy --once");
  });
});

describe("SshConnection.openExec", () => {
  function connection(s: Ssh2Server) {
    const deadline = new Deadline({ budgetMs: 10_000 });
    const progress: SessionProgress = { phase: "auth", commandStarted: false };
    const conn = new SshConnection({ deadline, progress, keepalive: false });
    const ssh = {
      host: s.host,
      port: s.port,
      username: "u",
      auth: prepareAuth({ password: "p" }),
      hostKeys: hostKeyTrust({
        knownHosts: s.knownHostsLine,
        host: s.host,
        port: s.port,
        allowPinOnly: false,
      }),
    };
    return { conn, progress, ssh };
  }

  it("sets commandStarted the moment the exec request is written, before any answer", async () => {
    // Prepare
    server = await startSsh2Server({ execRequest: "never" });
    const { conn, progress, ssh } = connection(server);
    await conn.dial(server.host, server.port);
    await conn.startSsh(ssh);
    await conn.authenticated();
    // Act
    expect(progress.commandStarted).toBe(false);
    await conn.openExec("true");
    // Assess: started (may have), though the server has not answered and never will.
    expect(progress.commandStarted).toBe(true);
    expect(conn.execAnswered).toBe(false);
    await conn.close();
  });

  it("never sends the exec request once the session gave up, even if the channel is confirmed late", async () => {
    // Prepare: the server confirms the channel 200 ms after it was asked.
    server = await startSsh2Server({ sessionDelayMs: 200 });
    const { conn, progress, ssh } = connection(server);
    await conn.dial(server.host, server.port);
    await conn.startSsh(ssh);
    await conn.authenticated();
    const opening = conn.openExec("true");
    opening.catch(() => {});
    // Act: the session gives up first (as after a ChannelTimeout), the connection stays open.
    conn.fail(new Error("the channel phase timed out"));
    // Wait (margins for a loaded machine) for the confirmation, then for an exec that would
    // follow it at once (before the fix it reached the server within milliseconds).
    const s = server;
    const confirmed = () => s.events.some((e) => e.type === "session-confirmed");
    for (let waited = 0; !confirmed() && waited < 5_000; waited += 50) await sleep(50);
    expect(confirmed()).toBe(true);
    await sleep(1_000);
    // Assess: the channel was confirmed, and still no exec request went out.
    expect(execsSeen(s)).toHaveLength(0);
    expect(progress.commandStarted).toBe(false);
    await conn.close();
  });
});
