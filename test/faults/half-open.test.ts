import { execFile } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import type { RunOptions, RunResult } from "../../lib/types.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// A true half-open peer: the real sshd runs in a network namespace of its own, joined to
// this (root) namespace by a veth pair on a random 10.x.y.z/30. Mid-command the server's
// egress is black-holed (tc blackhole qdisc): the server neither answers nor resets, exactly
// like a crashed machine or a cut link. SSH keepalive must notice; without keepalive, the
// deadline must still end the session.

const execFileAsync = promisify(execFile);
const IP = "/usr/sbin/ip";
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const inCi = process.env.CI === "true";

async function ip(...args: string[]): Promise<void> {
  await execFileAsync(IP, args);
}

/** Why this machine can't run the test, or null. */
function unavailableReason(): string | null {
  if (!isRoot) return "needs root (network namespaces)";
  if (!existsSync(IP)) return "needs iproute2 (/usr/sbin/ip)";
  if (!existsSync("/usr/sbin/tc")) return "needs tc (iproute2)";
  return null;
}
const reason = unavailableReason();
// CI runs as root with iproute2: there, not being able to run is a failure, never a skip.
const runIt = reason === null || inCi;
const title = (name: string) => (runIt ? name : `${name} [skipped: ${reason}]`);

// Unique per run: two runs (or two forks) never share a namespace, link or subnet.
const suffix = randomBytes(3).toString("hex");
const NS = `bssh-srv-${suffix}`;
const HOST_IF = `bsh${suffix}`; // root-namespace end (≤ 15 chars)
const NS_IF = `bsn${suffix}`; // namespace end
const net24 = `10.${randomInt(200, 250)}.${randomInt(0, 256)}`;
const base = randomInt(0, 64) * 4;
const SERVER_ADDR = `${net24}.${base + 1}`;
const CLIENT_ADDR = `${net24}.${base + 2}`;

let sshd: SshdServer | undefined;
let nsCreated = false;

async function namespacePids(): Promise<number[]> {
  try {
    const { stdout } = await execFileAsync(IP, ["netns", "pids", NS]);
    return stdout
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  } catch {
    return [];
  }
}

async function cleanup(): Promise<void> {
  await sshd?.stop().catch(() => {});
  if (!nsCreated) return;
  for (const pid of await namespacePids()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await ip("link", "del", HOST_IF).catch(() => {});
  await ip("netns", "del", NS).catch(() => {});
  nsCreated = false;
}

beforeAll(async () => {
  if (!runIt) return;
  if (reason !== null) throw new Error(`half-open test cannot run in CI: ${reason}`);
  try {
    await ip("netns", "add", NS);
    nsCreated = true;
    await ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NS);
    await ip("addr", "add", `${CLIENT_ADDR}/30`, "dev", HOST_IF);
    await ip("link", "set", HOST_IF, "up");
    await ip("-n", NS, "addr", "add", `${SERVER_ADDR}/30`, "dev", NS_IF);
    await ip("-n", NS, "link", "set", NS_IF, "up");
    await ip("-n", NS, "link", "set", "lo", "up");
    sshd = await startSshd({ netns: NS, listenAddress: SERVER_ADDR });
  } catch (err) {
    await cleanup();
    throw err;
  }
});

afterAll(async () => {
  await cleanup();
});

async function blackhole(on: boolean): Promise<void> {
  const args = ["netns", "exec", NS, "tc", "qdisc", on ? "add" : "del", "dev", NS_IF, "root"];
  await execFileAsync(IP, on ? [...args, "blackhole"] : args);
}

interface HalfOpenRun {
  result: RunResult;
  elapsedMs: number;
  /** ms since start when the server's egress was black-holed. */
  cutAt: number;
}

/** Runs `sleep 30` and black-holes the server once the command runs. */
async function runAndCut(budgetMs: number, options: Partial<RunOptions>): Promise<HalfOpenRun> {
  const server = sshd!;
  let cut: Promise<number> | undefined;
  const baseline = activeHandles();
  const start = performance.now();
  const result = await runCommand(
    {
      host: SERVER_ADDR,
      port: server.port,
      username: server.username,
      command: "sleep 30",
      hostKey: server.hostKeyFingerprint,
    },
    {
      secret: { privateKey: server.keys.ed25519.privateKey },
      ...options,
      budgetMs,
      onPhase: (phase) => {
        // 100 ms into the command: the exec request has long been answered.
        if (phase === "exec") {
          cut = new Promise<void>((r) => setTimeout(r, 100))
            .then(() => blackhole(true))
            .then(() => performance.now() - start);
        }
      },
    },
  );
  const elapsedMs = performance.now() - start;
  const cutAt = await cut!;
  await expectNoSessionLeaks(baseline);
  await blackhole(false);
  return { result, elapsedMs, cutAt };
}

describe("half-open peer in a network namespace", () => {
  it.runIf(runIt)(title("a healthy command through the veth works (control)"), async () => {
    const server = sshd!;
    const result = await runCommand(
      {
        host: SERVER_ADDR,
        port: server.port,
        username: server.username,
        command: "echo ok",
        hostKey: server.hostKeyFingerprint,
      },
      { secret: { privateKey: server.keys.ed25519.privateKey }, budgetMs: 5_000 },
    );
    expect(result.status).toBe("succeeded");
    expect(result.stdout).toBe("ok\n");
  });

  it.runIf(runIt)(
    title("black-holed mid-command → ConnectionLost via SSH keepalive (500 ms × 2)"),
    async () => {
      const budgetMs = 8_000;
      const { result, elapsedMs, cutAt } = await runAndCut(budgetMs, {
        keepalive: { intervalMs: 500, countMax: 2 },
      });
      expect(result.error?.name, JSON.stringify(result.error)).toBe("ConnectionLost");
      expect(result.error?.phase).toBe("exec");
      expect(result.error?.commandStarted).toBe(true);
      expect(result.error?.retryable).toBe(false);
      // Detection: interval × (countMax + 1) after the cut, plus teardown and a margin.
      const detectedIn = elapsedMs - cutAt - (result.timings.teardownMs ?? 0);
      console.log(
        `half-open: keepalive detected the cut after ${Math.round(detectedIn)} ms (limit 1500 + margin), teardown ${result.timings.teardownMs} ms`,
      );
      expect(detectedIn).toBeLessThanOrEqual(500 * 3 + 300);
      expect(elapsedMs).toBeLessThan(budgetMs / 2);
    },
  );

  it.runIf(runIt)(
    title("black-holed mid-command, keepalive off → the deadline ends it (CommandTimeout)"),
    async () => {
      const budgetMs = 2_500;
      const { result, elapsedMs } = await runAndCut(budgetMs, { keepalive: false });
      expect(result.error?.name, JSON.stringify(result.error)).toBe("CommandTimeout");
      expect(result.error?.phase).toBe("exec");
      expect(result.error?.commandStarted).toBe(true);
      expect(result.error?.retryable).toBe(false);
      expect(elapsedMs).toBeLessThanOrEqual(budgetMs + 50);
    },
  );
});
