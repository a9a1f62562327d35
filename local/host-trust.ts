/**
 * Trust on first use, made explicit: fetch a host's key with the engine, show its SHA256
 * fingerprint, and after a confirmation add it to the local known_hosts. Shared by
 * `npm run trust` and `npm run init`.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, isAbsolute, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { type ProbedHostKey, probeHostKey } from "../lib/probe-host-key.ts";
import { knownHostsPolicy } from "../lib/session/host-keys.ts";
import { ENV } from "../operations/environment.ts";
import { UsageError } from "./cli.ts";

/** Where `init` and `trust` keep local mode's files. */
export const LOCAL_DIR = ".bssh";

/** The known_hosts file of the config named by BSSH_CONFIG, or .bssh/known_hosts. */
export function localKnownHostsPath(env: NodeJS.ProcessEnv = process.env): string {
  const config = env[ENV.config];
  if (!config) return resolve(LOCAL_DIR, "known_hosts");
  let parsed: { knownHostsFile?: unknown };
  try {
    parsed = JSON.parse(readFileSync(config, "utf8")) as { knownHostsFile?: unknown };
  } catch (err) {
    throw new UsageError(`${config}: ${(err as Error).message}`);
  }
  if (typeof parsed.knownHostsFile !== "string") {
    throw new UsageError(`${config}: set "knownHostsFile" (e.g. "known_hosts") to trust hosts`);
  }
  const file = parsed.knownHostsFile;
  return isAbsolute(file) ? file : resolve(dirname(resolve(config)), file);
}

/** Longest a host-key probe may take (connect, banner, key exchange). */
const PROBE_BUDGET_MS = 10_000;

/** `host[:port]`, `[v6]:port` or a bare IPv6 address. */
export function parseHostPort(text: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host: string;
  let portText: string | undefined;
  if (bracketed) [, host = "", portText] = bracketed;
  else if (isIP(text) === 6) host = text;
  else [host = "", portText] = text.split(/:(?=[^:]*$)/);
  const port = portText === undefined ? 22 : Number(portText);
  if (!host || /\s/.test(host) || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UsageError(`${JSON.stringify(text)}: expected host[:port], e.g. 10.0.3.7:22`);
  }
  return { host, port };
}

/** The known_hosts name of a target: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Fetches the key `host:port` presents, bounded; one clear line when it cannot. */
export async function fetchHostKey(host: string, port: number): Promise<ProbedHostKey> {
  try {
    return await probeHostKey({ host, port }, { budgetMs: PROBE_BUDGET_MS });
  } catch (err) {
    const error = err as Error;
    throw new UsageError(`no host key from ${host}:${port}: ${error.name}: ${error.message}`);
  }
}

/** Asks a yes/no question on the terminal; refuses to guess when there is none. */
export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new UsageError("not a terminal, nobody to confirm: check the fingerprint and pass --yes");
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/**
 * Adds `host:port key` to `knownHostsPath` unless it is there already. A different key for
 * the same host is refused: that is what an impostor looks like, and only a human who has
 * checked should remove the old line.
 */
export function addKnownHost(
  knownHostsPath: string,
  host: string,
  port: number,
  key: ProbedHostKey,
): "added" | "present" {
  const text = existsSync(knownHostsPath) ? readFileSync(knownHostsPath, "utf8") : "";
  const verdict = knownHostsPolicy(text, host, port).verify(Buffer.from(key.keyBase64, "base64"));
  if (verdict === "trusted") return "present";
  if (verdict === "mismatch") {
    throw new UsageError(
      `${knownHostsPath} already lists another key for ${knownHostsName(host, port)}: the host's key changed or this is not the host; if you know why, remove the old line and run again`,
    );
  }
  mkdirSync(dirname(knownHostsPath), { recursive: true });
  const separator = text === "" || text.endsWith("\n") ? "" : "\n";
  appendFileSync(
    knownHostsPath,
    `${separator}${knownHostsName(host, port)} ${key.keyType} ${key.keyBase64}\n`,
  );
  return "added";
}

/** Fetch, show, confirm (unless `yes`), add: what `npm run trust` does. */
export async function trustHost(options: {
  host: string;
  port: number;
  knownHostsPath: string;
  yes: boolean;
  say: (line: string) => void;
}): Promise<"added" | "present" | "declined"> {
  const { host, port, knownHostsPath, say } = options;
  const key = await fetchHostKey(host, port);
  say(`${knownHostsName(host, port)} presents ${key.keyType} ${key.fingerprintSha256}`);
  const text = existsSync(knownHostsPath) ? readFileSync(knownHostsPath, "utf8") : "";
  const blob = Buffer.from(key.keyBase64, "base64");
  if (knownHostsPolicy(text, host, port).verify(blob) === "trusted") {
    say(`already trusted in ${knownHostsPath}`);
    return "present";
  }
  if (!options.yes) {
    say("compare it with the host's own: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub (on the host)");
    if (!(await confirm(`add it to ${knownHostsPath}? [y/N] `))) {
      say("not added");
      return "declined";
    }
  }
  const outcome = addKnownHost(knownHostsPath, host, port, key);
  say(`added to ${knownHostsPath}`);
  return outcome;
}
