/**
 * The Go anchor: bench/go/main.go, a golang.org/x/crypto/ssh client, built offline from Debian's
 * `golang-go` and `golang-golang-x-crypto-dev` (GOPATH mode against /usr/share/gocode, no module
 * proxy, no network) into a cache directory, never committed, and driven as one long-lived
 * process: one JSON request per line ({@link GoClient.run}), so its sessions interleave with the
 * other clients of the same run. Its figures are its own: each session's time measured inside
 * Go (dial → exit status → connection closed), its process's CPU from getrusage.
 *
 * When Go or x/crypto is missing, or the build fails, {@link buildGoClient} throws
 * {@link GoClientUnavailable} naming the one command that installs them; the bench prints that
 * in its rows and on stderr and exits non-zero — it never drops the anchor silently.
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import type { SshdServer } from "../test/helpers/sshd.ts";

const execFileAsync = promisify(execFile);

/** The Debian packages the Go anchor is built from. */
export const GO_PACKAGES = ["golang-go", "golang-golang-x-crypto-dev"] as const;
/** The one command that installs them. */
export const GO_INSTALL_COMMAND = `apt-get install -y ${GO_PACKAGES.join(" ")}`;
/** Where Debian's golang-*-dev packages put their sources (a GOPATH). */
export const DEBIAN_GOPATH = "/usr/share/gocode";
/** The source of the anchor (one `package main`). */
export const GO_SOURCE_DIR = path.join(import.meta.dirname, "go");
/** Default build directory (binary + Go build cache), ignored by git. */
export const GO_BUILD_DIR = path.join(import.meta.dirname, "..", ".bench", "go");

const BUILD_TIMEOUT_MS = 180_000;
/** One request's ceiling (500 sessions at once on a loaded 2-core machine take ~10–30 s). */
const RUN_TIMEOUT_MS = 600_000;

/** Go, x/crypto or the build is missing: the message says what and how to fix it. */
export class GoClientUnavailable extends Error {
  override name = "GoClientUnavailable";
}

/** Finds `go` on the PATH (Debian's golang-go links /usr/bin/go). */
function goBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, "go"))) return path.join(dir, "go");
  }
  return existsSync("/usr/bin/go") ? "/usr/bin/go" : undefined;
}

/** The environment of an offline GOPATH-mode build against Debian's packaged sources. */
function goEnv(buildDir: string, gopath: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GO111MODULE: "off",
    GOPATH: gopath,
    GOFLAGS: "",
    GOPROXY: "off",
    GOTOOLCHAIN: "local",
    GOTELEMETRY: "off",
    GOCACHE: path.join(buildDir, "cache"),
    CGO_ENABLED: "0",
  };
}

/**
 * Builds bench/go into `buildDir` (default `.bench/go/`) and returns the binary's path. Go's
 * build cache lives beside it, so a rebuild with unchanged sources takes well under a second.
 * `gopath` is where golang.org/x/crypto is looked for (default Debian's {@link DEBIAN_GOPATH}).
 */
export async function buildGoClient(
  buildDir = GO_BUILD_DIR,
  { gopath = DEBIAN_GOPATH }: { gopath?: string } = {},
): Promise<string> {
  const go = goBinary();
  const xCryptoSsh = path.join(gopath, "src", "golang.org", "x", "crypto", "ssh");
  const missing = [
    ...(go ? [] : ["golang-go (no `go` on the PATH)"]),
    ...(existsSync(xCryptoSsh) ? [] : [`golang-golang-x-crypto-dev (no ${xCryptoSsh})`]),
  ];
  if (missing.length > 0 || !go) {
    throw new GoClientUnavailable(
      `the Go anchor cannot be built: missing ${missing.join(", ")}; install with \`${GO_INSTALL_COMMAND}\` (or \`bash .ci/ensure-test-deps.sh\` as root)`,
    );
  }
  mkdirSync(buildDir, { recursive: true });
  const binary = path.join(buildDir, "sshclient");
  try {
    await execFileAsync(go, ["build", "-o", binary, "."], {
      cwd: GO_SOURCE_DIR,
      env: goEnv(buildDir, gopath),
      timeout: BUILD_TIMEOUT_MS,
      killSignal: "SIGKILL",
      maxBuffer: 4 * 2 ** 20,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string; killed?: boolean };
    const why = e.killed
      ? `timed out after ${BUILD_TIMEOUT_MS / 1000} s`
      : (e.stderr?.trim() ?? "") || e.message;
    throw new GoClientUnavailable(
      `the Go anchor failed to build (GO111MODULE=off GOPATH=${gopath} go build in bench/go): ${why}`,
    );
  }
  return binary;
}

/** One request's answer: every successful session's time and drained bytes, the batch's cost. */
export interface GoRun {
  /** Each successful session, dial → exit status → connection closed (ms, measured in Go). */
  ms: number[];
  /** stdout bytes each successful session drained (same order as `ms`). */
  bytes: number[];
  /** The whole batch, first dial → last close (ms). */
  wallMs: number;
  /** The Go process's CPU over the batch, every thread (user + system, ms). */
  cpuMs: number;
  /** One message per failed session. */
  failures: string[];
}

export interface GoClient {
  /** `n` sessions of `command` at once; resolves when all have ended. */
  run(n: number, command: string): Promise<GoRun>;
  /**
   * One session of `command` (default `true`), its time in ms; rejects when it fails or, with
   * `stdoutBytes`, when it drained another number of bytes.
   */
  session(command?: string, stdoutBytes?: number): Promise<number>;
  /** Ends the process (stdin closed, then SIGKILL if it lingers). */
  close(): Promise<void>;
}

/** Starts the built client against `srv` (its ed25519 key, its host key pinned). */
export function startGoClient(binary: string, srv: SshdServer): GoClient {
  const child: ChildProcessWithoutNullStreams = spawn(
    binary,
    [
      "-addr",
      `${srv.host}:${srv.port}`,
      "-user",
      srv.username,
      "-key",
      srv.keys.ed25519.path,
      "-hostkey",
      srv.hostKeyLine,
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    stderr = (stderr + d).slice(-4096);
  });
  let exited: string | undefined;
  const waiting: Array<{ resolve: (r: GoRun) => void; reject: (e: Error) => void }> = [];
  const fail = (why: string) => {
    exited ??= why;
    for (const w of waiting.splice(0)) w.reject(new Error(`Go client: ${why}`));
  };
  child.once("error", (err) => fail(`could not start ${binary}: ${err.message}`));
  // A write to a process that has died fails here, not as an unhandled 'error' event.
  child.stdin.on("error", (err) => fail(`stdin: ${err.message}`));
  child.once("exit", (code, signal) => fail(`exited (${signal ?? code}) ${stderr.trim()}`.trim()));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const w = waiting.shift();
    if (!w) return;
    try {
      w.resolve(JSON.parse(line) as GoRun);
    } catch {
      w.reject(new Error(`Go client: unreadable answer ${JSON.stringify(line.slice(0, 200))}`));
    }
  });

  const run = (n: number, command: string): Promise<GoRun> => {
    if (exited) return Promise.reject(new Error(`Go client: ${exited}`));
    return new Promise<GoRun>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        fail(`no answer within ${RUN_TIMEOUT_MS / 1000} s to ${n} × ${JSON.stringify(command)}`);
      }, RUN_TIMEOUT_MS);
      waiting.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.stdin.write(`${JSON.stringify({ n, cmd: command })}\n`);
    });
  };

  return {
    run,
    async session(command = "true", stdoutBytes?: number) {
      const r = await run(1, command);
      if (r.failures.length > 0 || r.ms.length !== 1) {
        throw new Error(`Go client session failed: ${r.failures.join("; ")}`);
      }
      if (stdoutBytes !== undefined && r.bytes[0] !== stdoutBytes) {
        throw new Error(`Go client drained ${r.bytes[0]} bytes, expected ${stdoutBytes}`);
      }
      return r.ms[0] as number;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (exited !== undefined || child.exitCode !== null) return resolve();
        const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.once("exit", () => {
          clearTimeout(kill);
          resolve();
        });
        child.stdin.end();
      }),
  };
}
