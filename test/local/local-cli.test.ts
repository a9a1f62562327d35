/**
 * The local command lines as a user runs them: spawned with tsx, against the embedded targets
 * and a real OpenSSH sshd.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_API_TIMEOUTS, DEFAULT_TASK_TIMEOUTS } from "../../cdk/config.ts";
import type { RunResult } from "../../lib/types.ts";
import { localTimeouts } from "../../local/local-timeouts.ts";
import { TOKEN_HEADER } from "../../local/server.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

const ROOT = process.cwd();
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const script = (name: string) => join(ROOT, "local", `${name}.ts`);

let dir: string;
let sshd: SshdServer;

/** The environment of a fresh shell: no local-mode variables from the test process. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BSSH_")) delete env[key];
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  name: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      TSX,
      [script(name), ...args],
      { env: cleanEnv(options.env), cwd: options.cwd ?? dir },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** A one-line error: exit 2, one line naming the problem, no stack trace. */
function expectOneLine(result: Run, ...parts: (string | RegExp)[]): void {
  expect(result.code).toBe(2);
  const lines = result.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toMatch(/^\s+at /);
  for (const part of parts) expect(lines[0]).toMatch(part);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bssh-local-cli-"));
  sshd = await startSshd();
});

afterAll(async () => {
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `npm start` in the background: resolves with its URL and stderr once it listens. */
async function start(env: Record<string, string>): Promise<{
  child: ChildProcess;
  url: string;
  token: string;
  stderr: () => string;
  exited: Promise<number | null>;
}> {
  const child = spawn(TSX, [script("server")], {
    env: cleanEnv({ BSSH_PORT: "0", BSSH_TOKEN_FILE: join(dir, "token"), ...env }),
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
    // Its own process group: tsx runs the server in a child, and cleanup must reach both.
    detached: true,
  });
  let stderr = "";
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("Ctrl-C stops")) resolve();
    });
    void exited.then(() => reject(new Error(`server exited: ${stderr}`)));
  });
  const url = /POST (http:\/\/127\.0\.0\.1:\d+)\/run/.exec(stderr)![1]!;
  return {
    child,
    url,
    token: readFileSync(join(dir, "token"), "utf8").trim(),
    stderr: () => stderr,
    exited,
  };
}

async function post(url: string, token: string, body: unknown) {
  const res = await fetch(`${url}/run`, {
    method: "POST",
    headers: { "content-type": "application/json", [TOKEN_HEADER]: token },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("npm start without a config", () => {
  it("serves the embedded targets, and Ctrl-C cancels an in-flight session with 503 and its result", async () => {
    const server = await start({});
    try {
      expect(server.stderr()).toContain("npm run init -- user@host");
      const port = Number(/ssh {2}127\.0\.0\.1:(\d+)/.exec(server.stderr())![1]);
      const target = { host: "127.0.0.1", port, username: "demo" };
      const ok = await post(server.url, server.token, { ...target, command: "echo hello" });
      expect(ok).toMatchObject({ status: 200, body: { status: "succeeded", stdout: "hello\n" } });

      const slow = post(server.url, server.token, { ...target, command: "sleep 30" });
      await new Promise((r) => setTimeout(r, 700));
      const interrupted = Date.now();
      server.child.kill("SIGINT");
      const cancelled = await slow;
      expect(Date.now() - interrupted).toBeLessThan(2_000);
      expect(cancelled.status).toBe(503);
      expect(cancelled.body.error).toMatchObject({ name: "DeadlineExceeded", phase: "exec" });
      // The remote command was signalled, not abandoned.
      expect(["signalled", "confirmed"]).toContain(
        (cancelled.body.result as RunResult).remoteCleanup,
      );
      expect(await server.exited).toBe(0);
    } finally {
      try {
        process.kill(-server.child.pid!, "SIGKILL");
      } catch {
        // Already gone: it exited on SIGINT.
      }
    }
  });
});

describe("command-line manners", () => {
  it("--help on every command", async () => {
    const results = await Promise.all(
      ["server", "invoke", "demo", "trust", "init"].map((name) => run(name, ["--help"])),
    );
    for (const r of results) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: /);
    }
  });

  it("one line for a missing, unparsable or incomplete config, a bad variable and a port in use", async () => {
    writeFileSync(join(dir, "bad.json"), "{");
    writeFileSync(
      join(dir, "nokey.json"),
      JSON.stringify({
        callerArn: "x",
        credentials: { default: { privateKeyFile: "keys/k" } },
        policy: { rules: [] },
      }),
    );
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const busyPort = String((busy.address() as net.AddressInfo).port);
    try {
      const [missing, bad, nokey, variable, inUse, invokeNoConfig] = await Promise.all([
        run("server", [], { env: { BSSH_CONFIG: "missing.json" } }),
        run("server", [], { env: { BSSH_CONFIG: "bad.json" } }),
        run("invoke", ["-"], { env: { BSSH_CONFIG: "nokey.json" }, input: "{}" }),
        run("server", [], { env: { BSSH_FUNCTION_TIMEOUT_MS: "soon" } }),
        run("server", [], { env: { BSSH_PORT: busyPort } }),
        run("invoke", ["-"], { input: "{}" }),
      ]);
      expectOneLine(missing, "missing.json", "npm run init");
      expectOneLine(bad, "bad.json", "not valid JSON", "fix the syntax");
      expectOneLine(
        nokey,
        "credentials.default.privateKeyFile",
        join(dir, "keys/k"),
        "does not exist",
      );
      expectOneLine(variable, "BSSH_FUNCTION_TIMEOUT_MS", "soon");
      expectOneLine(inUse, `port ${busyPort}`, "in use", "BSSH_PORT");
      expectOneLine(invokeNoConfig, "BSSH_CONFIG");
    } finally {
      busy.close();
    }
  });

  it("local timeouts are the deployed functions'", () => {
    expect(localTimeouts("api", {})).toEqual({
      functionTimeoutMs: DEFAULT_API_TIMEOUTS.functionTimeout.toMilliseconds(),
      reserveMs: DEFAULT_API_TIMEOUTS.reserve.toMilliseconds(),
    });
    expect(localTimeouts("task", {})).toEqual({
      functionTimeoutMs: DEFAULT_TASK_TIMEOUTS.functionTimeout.toMilliseconds(),
      reserveMs: DEFAULT_TASK_TIMEOUTS.reserve.toMilliseconds(),
    });
    expect(localTimeouts("api", { BSSH_RESERVE_MS: "700" }).reserveMs).toBe(700);
  });
});

describe("init, trust and invoke against OpenSSH", () => {
  it("init writes a working config; trust knows the host; invoke's stdout is only the result", async () => {
    const home = mkdtempSync(join(dir, "home-"));
    const target = `${sshd.username}@127.0.0.1:${sshd.port}`;
    const refused = await run("init", [target], { cwd: home });
    expectOneLine(refused, "--yes");

    const init = await run("init", [target, "--yes"], { cwd: home });
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(sshd.hostKeyFingerprint);
    expect(readFileSync(join(home, ".bssh/known_hosts"), "utf8")).toBe(
      `[127.0.0.1]:${sshd.port} ${sshd.hostKeyLine}\n`,
    );
    const publicKey = readFileSync(join(home, ".bssh/id_ed25519.pub"), "utf8");
    expect(init.stdout).toContain(publicKey.trim());
    expect(init.stdout).toContain("BSSH_CONFIG=.bssh/config.json npm start");
    appendFileSync(join(sshd.dir, "authorized_keys"), publicKey);

    const event = JSON.stringify({
      host: "127.0.0.1",
      port: sshd.port,
      username: sshd.username,
      command: "echo hi",
    });
    const env = { BSSH_CONFIG: ".bssh/config.json" };
    const [invoked, again, refusedAgain] = await Promise.all([
      run("invoke", ["-"], { cwd: home, env, input: event }),
      run("trust", [`127.0.0.1:${sshd.port}`], { cwd: home }),
      run("init", [target, "--yes"], { cwd: home }),
    ]);
    expect(invoked.code).toBe(0);
    // stdout parses as one JSON document: `| jq` works; logs went to stderr.
    expect(JSON.parse(invoked.stdout)).toMatchObject({ status: "succeeded", stdout: "hi\n" });
    expect(invoked.stderr).toContain('"type":"bounded-ssh.audit"');
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toContain("already trusted");
    expectOneLine(refusedAgain, "--force");

    // A different key for a listed host is refused, never appended.
    const knownHosts = join(home, ".bssh/known_hosts");
    writeFileSync(
      knownHosts,
      `[127.0.0.1]:${sshd.port} ${sshd.keys.ed25519.publicKey.split(" ").slice(0, 2).join(" ")}\n`,
    );
    const mismatch = await run("trust", [`127.0.0.1:${sshd.port}`, "--yes"], { cwd: home });
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/already lists another key/);
  });
});
