import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  allProcesses,
  argsOf,
  type ClientKey,
  descendantsOf,
  ensureTestUser,
  isRoot,
  killPid,
  type ProcessInfo,
  type SshdServer,
  startSshd,
  TEST_USER,
  uidOf,
  writeClientKeys,
} from "./sshd.ts";

/** The real SSH servers the suite runs against. */
export const LAB_SERVER_KINDS = ["openssh", "dropbear", "tinyssh"] as const;
export type LabServerKind = (typeof LAB_SERVER_KINDS)[number];

/**
 * What every real server in the lab offers a test, whatever its implementation: where it
 * listens, who logs in with which keys, its host key, and the processes its sessions leave.
 */
export interface LabServer {
  kind: LabServerKind;
  host: "127.0.0.1";
  port: number;
  username: string;
  /** Client keys; `ed25519` and `encrypted` are accepted by every server. */
  keys: SshdServer["keys"];
  /** Host public key line: `ssh-ed25519 AAAA…` (no comment). */
  hostKeyLine: string;
  /** `SHA256:…` of the host key. */
  hostKeyFingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…` */
  knownHostsLine: string;
  /**
   * Live (non-zombie) processes of the test user whose command line contains `needle`,
   * whoever their parent is now: a command orphaned when its session ended still counts.
   */
  userProcessesMatching(needle: string): ProcessInfo[];
  /** Kills the server and everything it started (by PID); removes its files. */
  stop(): Promise<void>;
}

/** What makes one running server a {@link LabServer}; {@link labServer} builds the rest. */
export interface LabServerParts {
  kind: LabServerKind;
  port: number;
  keys: LabServer["keys"];
  /** `ssh-ed25519 AAAA…` (a comment, if any, is dropped). */
  hostKeyLine: string;
  /** @default {@link TEST_USER} */
  username?: string;
  /** Ends the server and everything it started, by PID; `stop()` calls it once. */
  kill(): Promise<void>;
  /** The server's temp dir: removed by `stop()` after `kill`. */
  dir?: string;
}

/** The one factory of lab servers: every kind (OpenSSH, Dropbear, TinySSH) is built here. */
export function labServer(parts: LabServerParts): LabServer {
  const username = parts.username ?? TEST_USER;
  let stopped: Promise<void> | undefined;
  return {
    kind: parts.kind,
    host: "127.0.0.1",
    port: parts.port,
    username,
    keys: parts.keys,
    ...hostKeyFields(parts.port, parts.hostKeyLine),
    userProcessesMatching: (needle) => userProcessesMatching(username, needle),
    stop: () => {
      stopped ??= (async () => {
        await parts.kill();
        if (parts.dir !== undefined) await rm(parts.dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** A server's host key as tests use it: the line, its `SHA256:…` and its known_hosts line. */
export function hostKeyFields(
  port: number,
  hostKeyLine: string,
): Pick<LabServer, "hostKeyLine" | "hostKeyFingerprint" | "knownHostsLine"> {
  const line = hostKeyLine.trim().split(/\s+/).slice(0, 2).join(" ");
  return {
    hostKeyLine: line,
    hostKeyFingerprint: fingerprintOfKeyLine(line),
    knownHostsLine: `[127.0.0.1]:${port} ${line}`,
  };
}

/** The `ssh-ed25519 …` line of a key tool's output (dropbearkey, tinysshd-printkey). */
export function ed25519LineOf(output: string, tool: string): string {
  const line = output.split("\n").find((l) => l.startsWith("ssh-ed25519 "));
  if (!line) throw new Error(`unexpected ${tool} output: ${output}`);
  return line.trim().split(" ").slice(0, 2).join(" ");
}

/**
 * The start shared by the servers that log in as the test user from its own
 * ~/.ssh/authorized_keys (Dropbear, TinySSH): root, the test user, a temp dir (0755) with this
 * process's client keys, the `authorize`d ones added for the user. `start` builds the server
 * there; the dir is removed if anything throws (afterwards it is the server's, see
 * {@link LabServerParts.dir}).
 */
export async function startInLabDir(
  server: {
    /** For messages: `Dropbear`, `TinySSH`. */
    name: string;
    /** mkdtemp prefix in the OS temp dir, e.g. `bssh-dropbear-`. */
    dirPrefix: string;
    /** The client keys this server accepts. */
    authorize: (keys: LabServer["keys"]) => ClientKey[];
  },
  start: (dir: string, keys: LabServer["keys"]) => Promise<LabServer>,
): Promise<LabServer> {
  if (!isRoot) {
    throw new Error(`the ${server.name} lab server needs root (it logs in as the test user)`);
  }
  await ensureTestUser();
  const dir = await mkdtemp(path.join(os.tmpdir(), server.dirPrefix));
  try {
    await chmod(dir, 0o755);
    const keys = await writeClientKeys(dir);
    await authorizeForTestUser(server.authorize(keys));
    return await start(dir, keys);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** An inetd-style server: a listener on 127.0.0.1 that spawns one process per connection. */
export interface InetdServer {
  port: number;
  /** The per-connection processes still running. */
  children: Set<ChildProcess>;
  /** Kills the per-connection processes and their descendants (by PID), bounded. */
  killChildren(): Promise<void>;
  /** Closes the listener, then kills the per-connection processes. */
  stop(): Promise<void>;
}

/**
 * Serves `spawnFor(sock)` inetd-style (TinySSH, `sshd -i` jump hosts): the accepted socket is
 * handed to the child as its stdio (spawn it with `stdio: [sock, sock, …]`).
 */
export async function serveInetd(
  spawnFor: (sock: net.Socket) => ChildProcess,
): Promise<InetdServer> {
  const children = new Set<ChildProcess>();
  const server = net.createServer({ pauseOnConnect: true }, (sock) => {
    const child = spawnFor(sock);
    // The child holds its own copy of the socket; ours must go, or the client never sees
    // the connection end when the child exits. destroy() closes our fd without a FIN.
    sock.destroy();
    child.once("error", () => {});
    children.add(child);
    child.once("exit", () => children.delete(child));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    port,
    children,
    killChildren: () => killTrees(children),
    stop: () => {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await killTrees(children);
      })();
      return stopped;
    },
  };
}

/** Kills `children` and their descendants by PID; waits (at most 2 s) for the children to exit. */
export async function killTrees(children: Iterable<ChildProcess>): Promise<void> {
  const live = [...children];
  const procs = allProcesses();
  const victims = new Set<number>();
  for (const child of live) {
    if (child.pid === undefined) continue;
    victims.add(child.pid);
    for (const pid of descendantsOf(child.pid, procs)) victims.add(pid);
  }
  for (const pid of victims) killPid(pid, "SIGKILL");
  // The 2 s cap is cleared once the children exited: a live timer would outlast the kill and
  // show up as a leaked handle in the caller's session check.
  let cap: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(
        live.map((c) =>
          c.exitCode !== null || c.signalCode !== null
            ? undefined
            : new Promise((r) => c.once("exit", r)),
        ),
      ),
      new Promise((r) => {
        cap = setTimeout(r, 2_000);
      }),
    ]);
  } finally {
    clearTimeout(cap);
  }
}

/** `SHA256:…` (unpadded base64, as OpenSSH prints it) of a `type base64 [comment]` line. */
export function fingerprintOfKeyLine(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Processes of `username` whose command line contains `needle` (zombies excluded). */
export function userProcessesMatching(username: string, needle: string): ProcessInfo[] {
  const uid = uidOf(username);
  return allProcesses()
    .filter((p) => p.uid === uid && p.state !== "Z" && p.pid !== process.pid)
    .map((p) => ({ pid: p.pid, args: argsOf(p.pid) }))
    .filter((p) => p.args.includes(needle));
}

/** True when something listens on 127.0.0.1:`port` (read from /proc: no probe connection). */
export function isListening(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  try {
    // local_address "0100007F:PORT", state 0A = LISTEN.
    return readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .some((l) => {
        const f = l.trim().split(/\s+/);
        return f[1] === `0100007F:${hexPort}` && f[3] === "0A";
      });
  } catch {
    return false;
  }
}

/**
 * Dropbear and TinySSH read the user's own `~/.ssh/authorized_keys` (neither can be pointed
 * elsewhere). Adds this process's keys if missing, with the ownership and modes both require.
 * Each line carries the PID of the test process that added it (`bssh-lab-pid=N`); lines of
 * processes that no longer exist are dropped on the way, so the file does not grow run after
 * run. Parallel test forks (and other worktrees) share the user: the read-prune-write runs
 * under a directory lock (`mkdir` is atomic), and a live process's lines are never removed.
 */
export async function authorizeForTestUser(keys: ClientKey[]): Promise<void> {
  const passwd = readFileSync("/etc/passwd", "utf8");
  const home = passwd
    .split("\n")
    .find((l) => l.startsWith(`${TEST_USER}:`))
    ?.split(":")[5];
  if (!home) throw new Error(`user ${TEST_USER} has no home directory in /etc/passwd`);
  const sshDir = path.join(home, ".ssh");
  const file = path.join(sshDir, "authorized_keys");
  const uid = uidOf(TEST_USER);
  await mkdir(sshDir, { recursive: true, mode: 0o700 });
  await chown(sshDir, uid, uid);
  await withDirLock(`${file}.lock`, async () => {
    const present = (await readFile(file, "utf8").catch(() => ""))
      .split("\n")
      .filter((line) => line.trim() !== "" && !ownerIsGone(line));
    const blobs = new Set(present.map(keyBlob));
    const added = keys
      .filter((k) => !blobs.has(keyBlob(k.publicKey)))
      .map((k) => `${k.publicKey.split(/\s+/).slice(0, 2).join(" ")} bssh-lab-pid=${process.pid}`);
    const next = `${[...present, ...added].join("\n")}\n`;
    await writeFile(`${file}.tmp`, next, { mode: 0o600 });
    await chown(`${file}.tmp`, uid, uid);
    await rename(`${file}.tmp`, file);
  });
}

function keyBlob(line: string): string {
  return line.trim().split(/\s+/)[1] ?? "";
}

/** A line added by a test process (`bssh-lab-pid=N`) that has exited. */
function ownerIsGone(line: string): boolean {
  const pid = Number(/bssh-lab-pid=(\d+)/.exec(line)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** Runs `fn` holding a lock directory; a lock older than 30 s is a crashed holder's, taken over. */
async function withDirLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 30_000) await rm(lock, { recursive: true, force: true });
      else if (attempt > 600) throw new Error(`authorized_keys lock ${lock} held for too long`);
      else await new Promise((r) => setTimeout(r, 10));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Starts one real server of the given kind, as a {@link LabServer}. */
export async function startLabServer(kind: LabServerKind): Promise<LabServer> {
  if (kind === "dropbear") return (await import("./dropbear.ts")).startDropbear();
  if (kind === "tinyssh") return (await import("./tinysshd.ts")).startTinysshd();
  const sshd = await startSshd();
  return labServer({
    kind,
    port: sshd.port,
    username: sshd.username,
    keys: sshd.keys,
    hostKeyLine: sshd.hostKeyLine,
    kill: () => sshd.stop(),
  });
}
