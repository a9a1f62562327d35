import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import {
  authorizeForTestUser,
  fingerprintOfKeyLine,
  type LabServer,
  userProcessesMatching,
} from "./lab-server.ts";
import {
  allProcesses,
  descendantsOf,
  ensureTestUser,
  isRoot,
  killPid,
  TEST_USER,
  writeClientKeys,
} from "./sshd.ts";

const execFileAsync = promisify(execFile);

/** Debian's tinysshd package. */
export const TINYSSHD_PATH = "/usr/sbin/tinysshd";
export const TINYSSHD_MAKEKEY_PATH = "/usr/sbin/tinysshd-makekey";
export const TINYSSHD_PRINTKEY_PATH = "/usr/sbin/tinysshd-printkey";
export const TINYSSHD_MISSING_MESSAGE =
  "TinySSH not found at /usr/sbin/tinysshd: run `apt-get install -y tinysshd` or run `npm test` as root (its pretest installs it)";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Serves a real TinySSH on 127.0.0.1. TinySSH is inetd-style (one process per connection,
 * the socket on stdin/stdout): a Node listener accepts and spawns `tinysshd KEYDIR` with the
 * accepted socket as its stdio. It speaks only ed25519 / curve25519 / chacha20-poly1305 and
 * reads the user's ~/.ssh/authorized_keys; only the ed25519 client keys log in. Root only.
 */
export async function startTinysshd(): Promise<LabServer> {
  for (const file of [TINYSSHD_PATH, TINYSSHD_MAKEKEY_PATH, TINYSSHD_PRINTKEY_PATH]) {
    if (!existsSync(file)) throw new Error(TINYSSHD_MISSING_MESSAGE);
  }
  if (!isRoot) throw new Error("the TinySSH lab server needs root (it logs in as the test user)");
  await ensureTestUser();
  const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-tinysshd-"));
  try {
    await chmod(dir, 0o755);
    const keys = await writeClientKeys(dir);
    await authorizeForTestUser([keys.ed25519, keys.encrypted]);
    const keyDir = path.join(dir, "keys");
    await execFileAsync(TINYSSHD_MAKEKEY_PATH, [keyDir]);
    const { stdout } = await execFileAsync(TINYSSHD_PRINTKEY_PATH, [keyDir]);
    const line = stdout.split("\n").find((l) => l.startsWith("ssh-ed25519 "));
    if (!line) throw new Error(`unexpected tinysshd-printkey output: ${stdout}`);
    const hostKeyLine = line.trim().split(" ").slice(0, 2).join(" ");

    const children = new Set<ChildProcess>();
    const server = net.createServer({ pauseOnConnect: true }, (sock) => {
      // A clean environment: tinysshd hands its own PATH to the user's session.
      const child = spawn(TINYSSHD_PATH, [keyDir], {
        stdio: [sock, sock, "ignore"],
        env: { PATH: "/usr/local/bin:/usr/bin:/bin" },
      });
      // The child holds its own copy of the socket; ours must go, or the client never sees
      // the connection end when tinysshd exits. destroy() closes our fd without a FIN.
      sock.destroy();
      child.once("error", () => {});
      children.add(child);
      child.once("exit", () => children.delete(child));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    let stopped = false;
    return {
      kind: "tinyssh",
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
        await new Promise<void>((resolve) => server.close(() => resolve()));
        const procs = allProcesses();
        const live = [...children];
        const victims = new Set<number>();
        for (const child of live) {
          if (child.pid === undefined) continue;
          victims.add(child.pid);
          for (const pid of descendantsOf(child.pid, procs)) victims.add(pid);
        }
        for (const pid of victims) killPid(pid, "SIGKILL");
        await Promise.race([
          Promise.all(
            live.map((c) =>
              c.exitCode !== null || c.signalCode !== null
                ? undefined
                : new Promise((r) => c.once("exit", r)),
            ),
          ),
          sleep(2_000),
        ]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
