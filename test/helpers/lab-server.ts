import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { chown, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  allProcesses,
  argsOf,
  type ClientKey,
  type ProcessInfo,
  type SshdServer,
  startSshd,
  TEST_USER,
  uidOf,
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
  return {
    kind,
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    keys: sshd.keys,
    hostKeyLine: sshd.hostKeyLine,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    knownHostsLine: sshd.knownHostsLine,
    userProcessesMatching: (needle) => userProcessesMatching(sshd.username, needle),
    stop: () => sshd.stop(),
  };
}
