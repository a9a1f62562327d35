import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generateEd25519KeyPair } from "./keys.ts";

/** Debian's interpreter: the one python3-asyncssh is installed for (not the first on PATH). */
export const DEBIAN_PYTHON = "/usr/bin/python3";
/** Where Debian's python3-asyncssh lives; .ci/ensure-test-deps.sh installs it. */
export const ASYNCSSH_MODULE = "/usr/lib/python3/dist-packages/asyncssh/__init__.py";
export const ASYNCSSH_MISSING_MESSAGE =
  "AsyncSSH not found: run `apt-get install -y python3-asyncssh` (or `bash .ci/ensure-test-deps.sh`)";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "asyncssh-server.py");

/** A running AsyncSSH server on 127.0.0.1 (see asyncssh-server.py). */
export interface AsyncSshServer {
  host: "127.0.0.1";
  port: number;
  /** Any name: AsyncSSH authenticates the key, not the user. */
  username: string;
  /** `ssh-ed25519 AAAA…` (no comment). */
  hostKeyLine: string;
  /** The client key in authorized_keys (OpenSSH private key format). */
  privateKey: string;
  /** The server's temp dir; files here are readable by `cat PATH`. Removed by stop(). */
  dir: string;
  /** AsyncSSH's stderr so far. */
  log(): string;
  /** Kills the server (by its PID) and removes dir. */
  stop(): Promise<void>;
}

/** Starts `asyncssh-server.py` re-keying after `rekeyBytes` sent. */
export async function startAsyncSsh(options: { rekeyBytes: number }): Promise<AsyncSshServer> {
  if (!existsSync(ASYNCSSH_MODULE)) throw new Error(ASYNCSSH_MISSING_MESSAGE);
  const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-asyncssh-"));
  const client = generateEd25519KeyPair("bssh-asyncssh-client");
  await writeFile(path.join(dir, "authorized_keys"), `${client.public}\n`, { mode: 0o600 });
  const child: ChildProcess = spawn(DEBIAN_PYTHON, [SCRIPT, dir, String(options.rekeyBytes)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONWARNINGS: "ignore" },
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGKILL");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(
        () => reject(new Error(`AsyncSSH did not start: ${stderr}`)),
        15_000,
      );
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf("\n");
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(out.slice(0, nl));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`AsyncSSH exited (${code}) before listening: ${stderr}`));
      });
    });
    const match = /^LISTENING (\d+) (\S+ \S+)/.exec(line);
    if (!match) throw new Error(`unexpected AsyncSSH start line: ${line}`);
    return {
      host: "127.0.0.1",
      port: Number(match[1]),
      username: "bssh",
      hostKeyLine: match[2]!,
      privateKey: client.private,
      dir,
      log: () => stderr,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
