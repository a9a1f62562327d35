import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  ed25519LineOf,
  isListening,
  type LabServer,
  labServer,
  startInLabDir,
} from "./lab-server.ts";
import { allProcesses, descendantsOf, freePort, killPid } from "./sshd.ts";

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
  return startInLabDir(
    {
      name: "Dropbear",
      dirPrefix: "bssh-dropbear-",
      authorize: (keys) => [keys.ed25519, keys.ecdsa, keys.rsa, keys.encrypted],
    },
    async (dir, keys) => {
      const hostKeyPath = path.join(dir, "dropbear_ed25519_host_key");
      const { stdout } = await execFileAsync(DROPBEARKEY_PATH, [
        "-t",
        "ed25519",
        "-f",
        hostKeyPath,
      ]);
      const hostKeyLine = ed25519LineOf(stdout, "dropbearkey");
      let lastError: Error | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        const port = await freePort();
        try {
          const proc = await launch(dir, hostKeyPath, port, opts.startTimeoutMs ?? 10_000);
          return labServer({ kind: "dropbear", port, keys, hostKeyLine, dir, kill: killer(proc) });
        } catch (err) {
          lastError = err as Error;
          if (!/Failed listening|Address already in use/i.test(lastError.message)) break;
        }
      }
      throw lastError ?? new Error("dropbear did not start");
    },
  );
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

/** Kills the listening dropbear and its session children (by PID), bounded. */
function killer(proc: ChildProcess): () => Promise<void> {
  const pid = proc.pid!;
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once("exit", () => resolve());
  });
  return async () => {
    // Snapshot first: once the listener dies its session children reparent to init.
    const victims = descendantsOf(pid, allProcesses());
    killPid(pid, "SIGKILL");
    for (const victim of victims) killPid(victim, "SIGKILL");
    await Promise.race([exited, sleep(2_000)]);
  };
}
