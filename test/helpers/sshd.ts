import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fsSync from "node:fs";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Where Debian's openssh-server puts the daemon; sshd insists on an absolute path to re-exec. */
export const SSHD_PATH = "/usr/sbin/sshd";
/** Key generator from openssh-client. */
export const SSH_KEYGEN_PATH = "/usr/bin/ssh-keygen";
/** The OpenSSH client, for tests that compare against it. */
export const SSH_PATH = "/usr/bin/ssh";
/** The plain user the suite logs in as (root's shell start-up is slow here). */
export const TEST_USER = "bsshtest";
/**
 * Fixed on purpose: test files run in parallel forks and all share one account; a per-run
 * password would make concurrent `chpasswd` calls overwrite each other.
 */
export const TEST_PASSWORD = "bssh-Test-pw-7731";

/** The message every missing-OpenSSH failure carries, so CI logs say how to fix it. */
export const SSHD_MISSING_MESSAGE =
  "OpenSSH sshd not found at /usr/sbin/sshd: run `apt-get install -y openssh-server` or `bash .ci/run`";

/** A client key pair usable both by ssh2 (`privateKey`) and by the OpenSSH client (`path`). */
export interface ClientKey {
  /** OpenSSH private key file contents. */
  privateKey: string;
  /** OpenSSH public key line (`ssh-ed25519 AAAA… comment`). */
  publicKey: string;
  /** Private key file inside the server's temp dir (mode 0600), for `ssh -i`. */
  path: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** A passphrase-protected key (ed25519, OpenSSH bcrypt KDF). */
export interface EncryptedClientKey extends ClientKey {
  passphrase: string;
}

/** A process seen in /proc. */
export interface ProcessInfo {
  pid: number;
  args: string;
}

/** Options for {@link startSshd}. */
export interface SshdOptions {
  /** Enable password authentication (the test user's password is {@link TEST_PASSWORD}). Default true. */
  passwordAuthentication?: boolean;
  /** sshd `MaxStartups` (e.g. `"1"` or `"10:30:100"`). Default: sshd's own. */
  maxStartups?: string;
  /** sshd `MaxSessions`. Default: sshd's own (10). */
  maxSessions?: number;
  /** sshd `MaxAuthTries`. Default: sshd's own (6). */
  maxAuthTries?: number;
  /** sshd `LoginGraceTime` in seconds. Default: sshd's own (120). */
  loginGraceTimeSec?: number;
  /**
   * sshd `RekeyLimit`: re-key after this much data each way (e.g. `"256K"`), optionally with a
   * time limit (`"256K 10s"`). Default: sshd's own (cipher-dependent, gigabytes).
   */
  rekeyLimit?: string;
  /**
   * sshd `TrustedUserCAKeys`: these CA public key lines (OpenSSH format) vouch for user
   * certificates. Written to `<dir>/trusted_user_ca_keys`.
   */
  trustedUserCAKeys?: string[];
  /**
   * sshd `AuthorizedPrincipalsFile`: the principals a certificate may name to log in as the
   * test user, written to `<dir>/principals` (a test may rewrite it: sshd reads it at each
   * login). Default: sshd's own (the certificate must name the user itself).
   */
  authorizedPrincipals?: string[];
  /**
   * sshd `HostCertificate`: the host key is certified by the CA whose private key file this
   * is (`ssh-keygen -s … -h`), for `principals` (default `127.0.0.1`) and `validity`
   * (`ssh-keygen -V`, default `-5m:+1h`).
   */
  hostCertificate?: { caKeyFile: string; principals?: string[]; validity?: string };
  /** More raw config lines, appended verbatim. */
  extraConfig?: string[];
  /** How long to wait for "Server listening". Default 10 s. */
  startTimeoutMs?: number;
  /**
   * Address to listen on instead of 127.0.0.1 (e.g. inside {@link SshdOptions.netns}). The
   * returned `host`, `knownHostsLine` and `sshArgs` still name 127.0.0.1: pin the host key.
   */
  listenAddress?: string;
  /** Run sshd inside this network namespace (`ip netns exec`; root only). */
  netns?: string;
  /**
   * Keep sshd's stderr after start-up for {@link SshdServer.log}. Default true. The soak turns
   * it off: LogLevel VERBOSE writes ~0.5 KB per session, and keeping it grows this process's
   * heap linearly with the sessions run. Off, stderr is still drained (sshd never blocks on a
   * full pipe) and `log()` holds only the start-up lines.
   */
  keepLog?: boolean;
}

/** A running OpenSSH sshd on 127.0.0.1 with generated host and client keys. */
export interface SshdServer {
  host: "127.0.0.1";
  port: number;
  username: string;
  /** The test user's password, or null when not running as root (we can't set one then). */
  password: string | null;
  keys: {
    ed25519: ClientKey;
    ecdsa: ClientKey;
    rsa: ClientKey;
    encrypted: EncryptedClientKey;
    /** A valid key that is NOT in authorized_keys. */
    unauthorized: ClientKey;
  };
  /** Host public key line: `ssh-ed25519 AAAA…` (no comment). */
  hostKeyLine: string;
  /** Host key fingerprint: `SHA256:…` (as `ssh-keygen -lf` prints it). */
  hostKeyFingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…` */
  knownHostsLine: string;
  /** A known_hosts file holding {@link SshdServer.knownHostsLine}. */
  knownHostsPath: string;
  /** The server's temp dir (config, keys). Removed by stop(). */
  dir: string;
  /** PID of the listening sshd. */
  pid: number;
  /** sshd's stderr so far (LogLevel VERBOSE: auth attempts, connections, session ends). */
  log(): string;
  /**
   * Processes owned by the test user that belong to THIS server: descendants of this sshd, or
   * processes carrying this server's marker in their environment (set with `SetEnv`, so
   * commands orphaned when their session ended are still found after reparenting to init).
   */
  userProcesses(): ProcessInfo[];
  /**
   * Arguments for /usr/bin/ssh (append the command): strict host key checking against
   * knownHostsPath, BatchMode, only `key`. `extra` options go first because OpenSSH keeps
   * the first value it sees for an option. `port` overrides the target (e.g. a proxy in front of this server).
   */
  sshArgs(key?: ClientKey, extra?: string[], port?: number): string[];
  /** Kill sshd, its session children and this server's user processes (by PID); remove dir. */
  stop(): Promise<void>;
}

export const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

async function run(file: string, args: string[], input?: string): Promise<string> {
  if (input === undefined) {
    const { stdout } = await execFileAsync(file, args, { encoding: "utf8" });
    return stdout;
  }
  return await new Promise<string>((resolve, reject) => {
    const child = execFile(file, args, { encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")} failed: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
    child.stdin?.end(input);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Retries a step that can collide with the same step in a parallel test fork
 * (useradd / chpasswd take locks on /etc/passwd and /etc/shadow).
 */
async function withRetry<T>(fn: () => Promise<T>, attempts = 20): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      await sleep(50 + Math.random() * 100);
    }
  }
  throw last;
}

async function userExists(name: string): Promise<boolean> {
  try {
    await run("/usr/bin/id", ["-u", name]);
    return true;
  } catch {
    return false;
  }
}

/** The shadow hash field of a user, or null if it can't be read. */
async function shadowHash(name: string): Promise<string | null> {
  try {
    const shadow = await readFile("/etc/shadow", "utf8");
    const line = shadow.split("\n").find((l) => l.startsWith(`${name}:`));
    return line?.split(":")[1] ?? null;
  } catch {
    return null;
  }
}

let userReady: Promise<void> | undefined;

/**
 * Where we note the shadow hash we set: Debian 12's chpasswd writes yescrypt (`$y$`), which
 * neither node nor openssl can verify, so "is the password already ours?" is answered by
 * comparing the current hash with the one recorded after our last chpasswd.
 */
const PASSWORD_MARKER = path.join(os.tmpdir(), `bssh-${TEST_USER}-password-hash`);

/**
 * Creates the test user if missing and gives it {@link TEST_PASSWORD}. `useradd` creates a
 * locked account (`!` in shadow) that sshd refuses with `UsePAM no`; chpasswd both unlocks it
 * and enables password tests. Skipped when the hash is still the one we set, so parallel test
 * forks don't fight over the shadow lock.
 */
export function ensureTestUser(): Promise<void> {
  userReady ??= (async () => {
    if (!(await userExists(TEST_USER))) {
      await withRetry(async () => {
        if (await userExists(TEST_USER)) return;
        await run("/usr/sbin/useradd", ["-m", "-s", "/bin/bash", TEST_USER]);
      });
    }
    const hash = await shadowHash(TEST_USER);
    const recorded = await readFile(PASSWORD_MARKER, "utf8").catch(() => "");
    if (hash?.startsWith("$") && recorded.trim() === hash) return;
    await withRetry(() => run("/usr/sbin/chpasswd", [], `${TEST_USER}:${TEST_PASSWORD}\n`));
    const newHash = await shadowHash(TEST_USER);
    if (newHash?.startsWith("$")) await writeFile(PASSWORD_MARKER, `${newHash}\n`, { mode: 0o600 });
  })();
  return userReady;
}

interface KeyMaterial {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
}

/** Encrypted key passphrase; fixed so the key material can be cached per process. */
const KEY_PASSPHRASE = "bssh key passphrase";

type KeyName = "ed25519" | "ecdsa" | "rsa" | "encrypted" | "unauthorized";

let keyMaterial: Promise<Record<KeyName, KeyMaterial>> | undefined;

async function fingerprintOf(pubPath: string): Promise<string> {
  // "256 SHA256:abc… comment (ED25519)"
  const out = await run(SSH_KEYGEN_PATH, ["-l", "-E", "sha256", "-f", pubPath]);
  const fp = out.trim().split(/\s+/)[1];
  if (!fp?.startsWith("SHA256:")) throw new Error(`unexpected ssh-keygen -l output: ${out}`);
  return fp;
}

export async function keygen(dir: string, name: string, args: string[]): Promise<KeyMaterial> {
  const file = path.join(dir, name);
  await run(SSH_KEYGEN_PATH, ["-q", "-C", `bssh-${name}`, "-f", file, ...args]);
  return {
    privateKey: await readFile(file, "utf8"),
    publicKey: (await readFile(`${file}.pub`, "utf8")).trim(),
    fingerprint: await fingerprintOf(`${file}.pub`),
  };
}

/**
 * Client keys are generated once per process (RSA 3072 costs a few hundred ms) and written
 * into every server's dir; each server still gets its own host key.
 */
function clientKeyMaterial(): Promise<Record<KeyName, KeyMaterial>> {
  keyMaterial ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-keys-"));
    try {
      const [ed25519, ecdsa, rsa, encrypted, unauthorized] = await Promise.all([
        keygen(dir, "ed25519", ["-t", "ed25519", "-N", ""]),
        keygen(dir, "ecdsa", ["-t", "ecdsa", "-b", "256", "-N", ""]),
        keygen(dir, "rsa", ["-t", "rsa", "-b", "3072", "-N", ""]),
        keygen(dir, "encrypted", ["-t", "ed25519", "-N", KEY_PASSPHRASE]),
        keygen(dir, "unauthorized", ["-t", "ed25519", "-N", ""]),
      ]);
      return { ed25519, ecdsa, rsa, encrypted, unauthorized };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return keyMaterial;
}

/** This process's client keys written into `dir` (private keys mode 0600, for `ssh -i`). */
export async function writeClientKeys(
  dir: string,
  material?: Record<KeyName, KeyMaterial>,
): Promise<SshdServer["keys"]> {
  const m = material ?? (await clientKeyMaterial());
  const keys = {} as SshdServer["keys"];
  for (const name of ["ed25519", "ecdsa", "rsa", "encrypted", "unauthorized"] as const) {
    const file = path.join(dir, `id_${name}`);
    await writeFile(file, m[name].privateKey, { mode: 0o600 });
    const key: ClientKey = { ...m[name], path: file };
    if (name === "encrypted") keys.encrypted = { ...key, passphrase: KEY_PASSPHRASE };
    else keys[name] = key;
  }
  return keys;
}

/** A port that was free a moment ago (sshd can't be told to pick one itself). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface ProcStat {
  pid: number;
  ppid: number;
  uid: number;
  /** Single-letter state; "Z" = zombie (already dead, only waiting to be reaped). */
  state: string;
}

function readProc(pid: number): ProcStat | null {
  try {
    // Synchronous reads keep the snapshot short; /proc files are tiny.
    const stat = fsSync.readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parens: fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = rest[0] ?? "?";
    const ppid = Number(rest[1]);
    const status = fsSync.readFileSync(`/proc/${pid}/status`, "utf8");
    const uidLine = status.split("\n").find((l) => l.startsWith("Uid:"));
    const uid = Number(uidLine?.split(/\s+/)[1]);
    return { pid, ppid, uid, state };
  } catch {
    return null; // exited meanwhile
  }
}

export function allProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of fsSync.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

export function argsOf(pid: number): string {
  try {
    return fsSync.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

export function hasMarker(pid: number, marker: string): boolean {
  try {
    return fsSync.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(marker);
  } catch {
    return false;
  }
}

export function descendantsOf(root: number, procs: ProcStat[]): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const found = new Set<number>();
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    for (const c of children.get(pid) ?? []) {
      if (!found.has(c)) {
        found.add(c);
        queue.push(c);
      }
    }
  }
  return found;
}

export function uidOf(name: string): number {
  const passwd = fsSync.readFileSync("/etc/passwd", "utf8");
  const line = passwd.split("\n").find((l) => l.startsWith(`${name}:`));
  const uid = Number(line?.split(":")[2]);
  if (!Number.isInteger(uid)) throw new Error(`user ${name} not in /etc/passwd`);
  return uid;
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts a real OpenSSH sshd on 127.0.0.1 (foreground, `-D -e`, LogLevel VERBOSE) in a fresh
 * temp dir with its own host key, client keys and config. Resolves once sshd reports it is
 * listening. Throws with {@link SSHD_MISSING_MESSAGE} when OpenSSH is not installed.
 */
export async function startSshd(opts: SshdOptions = {}): Promise<SshdServer> {
  if (!existsSync(SSHD_PATH)) throw new Error(SSHD_MISSING_MESSAGE);
  if (!existsSync(SSH_KEYGEN_PATH)) throw new Error(SSHD_MISSING_MESSAGE);

  const username = isRoot ? TEST_USER : os.userInfo().username;
  if (isRoot) {
    // Privilege-separation directory; no systemd/tmpfiles here creates it.
    await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    await ensureTestUser();
  }

  const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-sshd-"));
  try {
    // mkdtemp makes 0700; sshd reads authorized_keys as the logged-in user.
    await chmod(dir, 0o755);
    const material = await clientKeyMaterial();
    const hostKey = await keygen(dir, "ssh_host_ed25519_key", ["-t", "ed25519", "-N", ""]);
    const hostKeyLine = hostKey.publicKey.split(" ").slice(0, 2).join(" ");

    const keys = await writeClientKeys(dir, material);
    const authorizedKeys = path.join(dir, "authorized_keys");
    const authorized = [keys.ed25519, keys.ecdsa, keys.rsa, keys.encrypted].map((k) => k.publicKey);
    await writeFile(authorizedKeys, `${authorized.join("\n")}\n`, { mode: 0o644 });

    const certConfig: string[] = [];
    if (opts.trustedUserCAKeys !== undefined) {
      const file = path.join(dir, "trusted_user_ca_keys");
      await writeFile(file, `${opts.trustedUserCAKeys.join("\n")}\n`, { mode: 0o644 });
      certConfig.push(`TrustedUserCAKeys ${file}`);
    }
    if (opts.authorizedPrincipals !== undefined) {
      const file = path.join(dir, "principals");
      await writeFile(file, `${opts.authorizedPrincipals.join("\n")}\n`, { mode: 0o644 });
      certConfig.push(`AuthorizedPrincipalsFile ${file}`);
    }

    if (opts.hostCertificate !== undefined) {
      const { caKeyFile, principals = ["127.0.0.1"], validity = "-5m:+1h" } = opts.hostCertificate;
      const hostPub = path.join(dir, "ssh_host_ed25519_key.pub");
      await run(SSH_KEYGEN_PATH, [
        "-q",
        "-s",
        caKeyFile,
        "-I",
        "bssh-test-host",
        "-h",
        "-n",
        principals.join(","),
        "-V",
        validity,
        hostPub,
      ]);
      certConfig.push(`HostCertificate ${path.join(dir, "ssh_host_ed25519_key-cert.pub")}`);
    }

    // Per-server marker in the session environment: finds this server's orphans later.
    const marker = `BSSH_SSHD_ID=${randomBytes(8).toString("hex")}`;

    let lastError: Error | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const config = [
        `ListenAddress ${opts.listenAddress ?? "127.0.0.1"}`,
        `Port ${port}`,
        `HostKey ${path.join(dir, "ssh_host_ed25519_key")}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        `PasswordAuthentication ${opts.passwordAuthentication === false ? "no" : "yes"}`,
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        `SetEnv ${marker}`,
        ...(opts.maxStartups !== undefined ? [`MaxStartups ${opts.maxStartups}`] : []),
        ...(opts.maxSessions !== undefined ? [`MaxSessions ${opts.maxSessions}`] : []),
        ...(opts.maxAuthTries !== undefined ? [`MaxAuthTries ${opts.maxAuthTries}`] : []),
        ...(opts.loginGraceTimeSec !== undefined
          ? [`LoginGraceTime ${opts.loginGraceTimeSec}`]
          : []),
        ...(opts.rekeyLimit !== undefined ? [`RekeyLimit ${opts.rekeyLimit}`] : []),
        ...certConfig,
        ...(opts.extraConfig ?? []),
      ];
      const configPath = path.join(dir, "sshd_config");
      await writeFile(configPath, `${config.join("\n")}\n`, { mode: 0o644 });
      try {
        const child = await launch(configPath, port, opts.startTimeoutMs ?? 10_000, opts);
        return makeServer({
          child: child.proc,
          logRef: child.log,
          dir,
          port,
          username,
          keys,
          hostKeyLine,
          hostKeyFingerprint: hostKey.fingerprint,
          marker,
        });
      } catch (err) {
        lastError = err as Error;
        // Only a lost race for the port is worth another try.
        if (!/Bind to port|Cannot bind|Address already in use/i.test(lastError.message)) break;
      }
    }
    throw lastError ?? new Error("sshd did not start");
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

interface Launched {
  proc: ChildProcess;
  log: { text: string };
}

function launch(
  configPath: string,
  port: number,
  timeoutMs: number,
  opts: SshdOptions = {},
): Promise<Launched> {
  return new Promise<Launched>((resolve, reject) => {
    const log = { text: "" };
    const sshdArgs = ["-D", "-e", "-f", configPath, "-o", "LogLevel=VERBOSE"];
    // `ip netns exec` execs sshd in place: the child's PID is sshd's own.
    const proc = opts.netns
      ? spawn("ip", ["netns", "exec", opts.netns, SSHD_PATH, ...sshdArgs], {
          stdio: ["ignore", "ignore", "pipe"],
        })
      : spawn(SSHD_PATH, sshdArgs, { stdio: ["ignore", "ignore", "pipe"] });
    const listenAddress = opts.listenAddress ?? "127.0.0.1";
    let settled = false;
    const timer = setTimeout(() => {
      finish(new Error(`sshd did not report listening within ${timeoutMs} ms:\n${log.text}`));
    }, timeoutMs);
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        if (proc.exitCode === null && proc.pid !== undefined) killPid(proc.pid, "SIGKILL");
        reject(err);
      } else resolve({ proc, log });
    };
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      if (settled && opts.keepLog === false) return;
      log.text += chunk;
      // Printed right after listen() succeeded, so the port accepts connections now. Waiting
      // for this instead of probing with a TCP connect keeps a probe connection (and its
      // pre-auth child) out of MaxStartups tests and out of the log. Only searched until then:
      // searching the whole, ever-growing log on every chunk is quadratic.
      if (!settled && log.text.includes(`Server listening on ${listenAddress} port ${port}.`)) {
        finish();
      }
    });
    proc.once("error", (err) => finish(new Error(`cannot start ${SSHD_PATH}: ${err.message}`)));
    proc.once("exit", (code, signal) => {
      finish(
        new Error(`sshd exited (code ${code}, signal ${signal}) before listening:\n${log.text}`),
      );
    });
  });
}

interface ServerParts {
  child: ChildProcess;
  logRef: { text: string };
  dir: string;
  port: number;
  username: string;
  keys: SshdServer["keys"];
  hostKeyLine: string;
  hostKeyFingerprint: string;
  marker: string;
}

async function makeServer(p: ServerParts): Promise<SshdServer> {
  const pid = p.child.pid!;
  const knownHostsLine = `[127.0.0.1]:${p.port} ${p.hostKeyLine}`;
  const knownHostsPath = path.join(p.dir, "known_hosts");
  await writeFile(knownHostsPath, `${knownHostsLine}\n`, { mode: 0o644 });
  const uid = uidOf(p.username);
  const exited = new Promise<void>((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) resolve();
    else p.child.once("exit", () => resolve());
  });

  /** Descendants of sshd (any uid: [priv] monitors run as root) plus marked orphans. */
  const ownedPids = (): { all: Set<number>; user: ProcStat[] } => {
    const procs = allProcesses();
    const all = descendantsOf(pid, procs);
    for (const proc of procs) {
      if (proc.uid === uid && proc.pid !== process.pid && hasMarker(proc.pid, p.marker)) {
        all.add(proc.pid);
      }
    }
    const user = procs.filter((proc) => proc.uid === uid && all.has(proc.pid));
    return { all, user };
  };

  let stopped = false;
  return {
    host: "127.0.0.1",
    port: p.port,
    username: p.username,
    password: isRoot ? TEST_PASSWORD : null,
    keys: p.keys,
    hostKeyLine: p.hostKeyLine,
    hostKeyFingerprint: p.hostKeyFingerprint,
    knownHostsLine,
    knownHostsPath,
    dir: p.dir,
    pid,
    log: () => p.logRef.text,
    userProcesses: () =>
      ownedPids()
        .user.filter((proc) => proc.state !== "Z")
        .map((proc) => ({ pid: proc.pid, args: argsOf(proc.pid) })),
    sshArgs: (key = p.keys.ed25519, extra = [], port = p.port) => [
      ...extra,
      "-p",
      String(port),
      "-i",
      key.path,
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHostsPath}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      // Through a proxy the known_hosts entry is still this server's: look it up as such.
      ...(port === p.port ? [] : ["-o", `HostKeyAlias=[127.0.0.1]:${p.port}`]),
      `${p.username}@127.0.0.1`,
    ],
    stop: async () => {
      if (stopped) return;
      stopped = true;
      // Snapshot before killing the listener: afterwards its children reparent to init and
      // are no longer findable as descendants.
      const { all } = ownedPids();
      killPid(pid, "SIGKILL");
      for (const victim of all) killPid(victim, "SIGKILL");
      await Promise.race([exited, sleep(2_000)]);
      // A session child may have forked between snapshot and kill: one more sweep by marker.
      for (const proc of ownedPids().user) killPid(proc.pid, "SIGKILL");
      await rm(p.dir, { recursive: true, force: true });
    },
  };
}

/** For tests: lists this process's temp dirs left behind (should be none after stop()). */
export async function leftoverSshdDirs(): Promise<string[]> {
  const names = await readdir(os.tmpdir());
  return names.filter((n) => n.startsWith("bssh-sshd-"));
}
