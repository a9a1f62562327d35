import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  authorizeForTestUser,
  fingerprintOfKeyLine,
  isListening,
  type LabServer,
  userProcessesMatching,
} from "./lab-server.ts";
import {
  allProcesses,
  descendantsOf,
  ensureTestUser,
  freePort,
  isRoot,
  killPid,
  TEST_USER,
  writeClientKeys,
} from "./sshd.ts";

const execFileAsync = promisify(execFile);

/** Debian's dropbear-bin. */
export const DROPBEAR_PATH = "/usr/sbin/dropbear";
export const DROPBEARKEY_PATH = "/usr/bin/dropbearkey";
export const DROPBEAR_MISSING_MESSAGE =
  "Dropbear not found at /usr/sbin/dropbear: run `apt-get install -y dropbear-bin` or run `npm test` as root (its pretest installs it)";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Starts a real Dropbear on 127.0.0.1 (foreground, log to stderr, no password logins) with its
 * own ed25519 host key, logging in as the suite's test user with this process's client keys
 * (in the user's ~/.ssh/authorized_keys: Dropbear reads no other file). Root only.
 */
export async function startDropbear(opts: { startTimeoutMs?: number } = {}): Promise<LabServer> {
  if (!existsSync(DROPBEAR_PATH) || !existsSync(DROPBEARKEY_PATH)) {
    throw new Error(DROPBEAR_MISSING_MESSAGE);
  }
  if (!isRoot) throw new Error("the Dropbear lab server needs root (it logs in as the test user)");
  await ensureTestUser();
  const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-dropbear-"));
  try {
    await chmod(dir, 0o755);
    const keys = await writeClientKeys(dir);
    await authorizeForTestUser([keys.ed25519, keys.ecdsa, keys.rsa, keys.encrypted]);
    const hostKeyPath = path.join(dir, "dropbear_ed25519_host_key");
    const { stdout } = await execFileAsync(DROPBEARKEY_PATH, ["-t", "ed25519", "-f", hostKeyPath]);
    const line = stdout.split("\n").find((l) => l.startsWith("ssh-ed25519 "));
    if (!line) throw new Error(`unexpected dropbearkey output: ${stdout}`);
    const hostKeyLine = line.split(" ").slice(0, 2).join(" ");

    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      try {
        const proc = await launch(dir, hostKeyPath, port, opts.startTimeoutMs ?? 10_000);
        return makeServer(proc, dir, port, keys, hostKeyLine);
      } catch (err) {
        lastError = err as Error;
        if (!/Failed listening|Address already in use/i.test(lastError.message)) break;
      }
    }
    throw lastError ?? new Error("dropbear did not start");
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  dir: string,
  hostKeyPath: string,
  port: number,
  timeoutMs: number,
): Promise<ChildProcess> {
  const proc = spawn(
    DROPBEAR_PATH,
    ["-F", "-E", "-s", "-p", `127.0.0.1:${port}`, "-r", hostKeyPath, "-P", path.join(dir, "pid")],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  proc.stderr?.setEncoding("utf8");
  // Always drained (a full pipe would block dropbear); only the start-up lines are kept.
  proc.stderr?.on("data", (chunk: string) => {
    if (log.length < 16_384) log += chunk;
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.once("error", () => {});
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`dropbear exited before listening:\n${log}`);
    }
    if (isListening(port)) return proc;
    await Promise.race([sleep(10), exited]);
  }
  if (proc.pid !== undefined) killPid(proc.pid, "SIGKILL");
  throw new Error(`dropbear did not listen on port ${port} within ${timeoutMs} ms:\n${log}`);
}

function makeServer(
  proc: ChildProcess,
  dir: string,
  port: number,
  keys: LabServer["keys"],
  hostKeyLine: string,
): LabServer {
  const pid = proc.pid!;
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once("exit", () => resolve());
  });
  let stopped = false;
  return {
    kind: "dropbear",
    host: "127.0.0.1",
    port,
    username: TEST_USER,
    keys,
    hostKeyLine,
    hostKeyFingerprint: fingerprintOfKeyLine(hostKeyLine),
    knownHostsLine: `[127.0.0.1]:${port} ${hostKeyLine}`,
    userProcessesMatching: (needle) => userProcessesMatching(TEST_USER, needle),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      // Snapshot first: once the listener dies its session children reparent to init.
      const victims = descendantsOf(pid, allProcesses());
      killPid(pid, "SIGKILL");
      for (const victim of victims) killPid(victim, "SIGKILL");
      await Promise.race([exited, sleep(2_000)]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
