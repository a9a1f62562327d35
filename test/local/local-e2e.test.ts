import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunResult } from "../../lib/types.ts";
import { LOCAL_STATE_MACHINE } from "../../local/api-event.ts";
import { type LocalConfig, localRuntime } from "../../local/local-config.ts";
import { type LocalServer, startLocalServer, TOKEN_HEADER } from "../../local/server.ts";
import { KEY_MARKERS, LOOPBACK_DENY } from "../functions/support.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

const CALLER = "arn:aws:iam::000000000000:user/local";
let sshd: SshdServer;
let dir: string;
let configPath: string;
let api: LocalServer;
let apiV2: LocalServer;
const logged: string[] = [];
const realWrite = process.stdout.write.bind(process.stdout);

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), "bssh-local-e2e-"));
  writeFileSync(join(dir, "id_ed25519"), sshd.keys.ed25519.privateKey, { mode: 0o600 });
  const config: LocalConfig = {
    callerArn: CALLER,
    credentials: {
      default: { privateKeyFile: "id_ed25519" },
      encrypted: {
        privateKeyFile: sshd.keys.encrypted.path,
        passphrase: sshd.keys.encrypted.passphrase,
      },
    },
    knownHostsFile: sshd.knownHostsPath,
    policy: {
      denyCidrs: LOOPBACK_DENY,
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "local",
          callers: [CALLER, LOCAL_STATE_MACHINE],
          credentials: ["default", "encrypted"],
          targets: { cidrs: ["127.0.0.1/32"], ports: [sshd.port], usernames: [sshd.username] },
          commands: { patterns: ["echo [ -~]*", "sleep [0-9]+", "exit [0-9]+"] },
        },
      ],
    },
  };
  configPath = join(dir, "config.json");
  writeFileSync(configPath, JSON.stringify(config));
  // The real API handler over local mode's runtime, built the way `npm start` builds it.
  process.env.BSSH_METRICS_MODE = "emf";
  // Capture everything the handler logs (audit lines, EMF) to scan it for key material.
  process.stdout.write = ((chunk: string | Uint8Array) => {
    logged.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  const { createApiHandler } = await import("../../functions/api.ts");
  const handler = createApiHandler(localRuntime(configPath));
  api = await startLocalServer({ handler, callerArn: CALLER, port: 0 });
  apiV2 = await startLocalServer({ handler, callerArn: CALLER, port: 0, payloadVersion: "2.0" });
});

afterAll(async () => {
  process.stdout.write = realWrite;
  await api?.close();
  await apiV2?.close();
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function post(server: LocalServer, body: unknown, contentType = "application/json") {
  const res = await fetch(`${server.url}/run`, {
    method: "POST",
    headers: { "content-type": contentType, [TOKEN_HEADER]: server.token },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const run = (extra: Record<string, unknown> = {}) => ({
  host: "127.0.0.1",
  port: sshd.port,
  username: sshd.username,
  command: "echo hello",
  ...extra,
});

describe("local mode: HTTP → API Gateway event → real handler → OpenSSH sshd", () => {
  it("runs a command (REST v1 and HTTP API v2 events)", async () => {
    for (const server of [api, apiV2]) {
      const { status, body } = await post(server, run());
      expect(status).toBe(200);
      expect(body).toMatchObject({ status: "succeeded", exitCode: 0, stdout: "hello\n" });
      expect((body as unknown as RunResult).server?.ident).toMatch(/^SSH-2\.0-OpenSSH/);
    }
  });

  it("uses a passphrase-protected key from the config", async () => {
    const { status } = await post(api, run({ credential: "encrypted" }));
    expect(status).toBe(200);
  });

  it("stops a command that outlives its timeout, on the remote too", async () => {
    const started = Date.now();
    const { status, body } = await post(api, run({ command: "sleep 30", timeoutMs: 1_500 }));
    expect(Date.now() - started).toBeLessThan(1_500 + 300);
    expect(status).toBe(504);
    expect(body.error).toMatchObject({
      name: "CommandTimeout",
      phase: "exec",
      commandStarted: true,
    });
    expect((body.result as RunResult).remoteCleanup).not.toBe("unknown");
    // The remote `sleep` is gone (signalled, or killed by its remote bound) within seconds.
    const deadline = Date.now() + 5_000;
    while (sshd.userProcesses().some((p) => p.args.includes("sleep 30")) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sshd.userProcesses().filter((p) => p.args.includes("sleep 30"))).toEqual([]);
  });

  it("answers 415, 400, 404 and 403 like API Gateway + handler would", async () => {
    expect((await post(api, run(), "text/plain")).status).toBe(415);
    expect((await post(api, '{"host":')).status).toBe(400);
    expect(
      (await fetch(`${api.url}/nope`, { method: "POST", headers: { [TOKEN_HEADER]: api.token } }))
        .status,
    ).toBe(404);
    const denied = await post(api, run({ command: "cat /etc/shadow" }));
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ name: "CommandNotAllowed" });
  });

  it("logged audit lines for every request and never any key material", () => {
    const text = logged.join("");
    expect(text).toContain('"type":"bounded-ssh.audit"');
    for (const marker of KEY_MARKERS) expect(text).not.toMatch(marker);
    expect(text).not.toContain(sshd.keys.encrypted.passphrase);
  });

  it("npm run invoke runs the Step Functions handler on an event file", async () => {
    const ok = join(dir, "ok.json");
    const failing = join(dir, "fail.json");
    writeFileSync(ok, JSON.stringify(run()));
    writeFileSync(failing, JSON.stringify(run({ command: "exit 3", failOnNonZeroExit: true })));
    const exec = promisify(execFile);
    const env = { ...process.env, BSSH_CONFIG: configPath, BSSH_METRICS_MODE: "emf" };
    const tsx = join(process.cwd(), "node_modules", ".bin", "tsx");
    const good = await exec(tsx, ["local/invoke.ts", ok], { env });
    expect(good.stdout).toContain('"status": "succeeded"');
    const bad = await exec(tsx, ["local/invoke.ts", failing], { env }).catch(
      (e: unknown) => e as { code: number; stderr: string; stdout: string },
    );
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr.trim().split("\n").at(-1)).toBe("CommandFailed");
  });

  it("refuses a foreign Host, any Origin and a missing or wrong token before the handler", async () => {
    const before = logged.length;
    const raw = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        // fetch cannot set Host; node:http can (DNS rebinding sends the attacker's name).
        const req = request(
          { host: "127.0.0.1", port: api.port, path: "/run", method: "POST", headers },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end(JSON.stringify(run()));
      });
    const json = { "content-type": "application/json" };
    expect(await raw({ ...json, host: "evil.example:80", [TOKEN_HEADER]: api.token })).toBe(403);
    expect(
      await raw({
        ...json,
        host: `127.0.0.1:${api.port}`,
        origin: "https://evil.example",
        [TOKEN_HEADER]: api.token,
      }),
    ).toBe(403);
    expect(await raw({ ...json, host: `localhost:${api.port}` })).toBe(401);
    expect(await raw({ ...json, host: `localhost:${api.port}`, [TOKEN_HEADER]: "guess" })).toBe(
      401,
    );
    expect(await raw({ ...json, host: `localhost:${api.port}`, [TOKEN_HEADER]: api.token })).toBe(
      200,
    );
    // Only the last request reached the handler: one audit line.
    const audits = logged.slice(before).filter((l) => l.includes('"type":"bounded-ssh.audit"'));
    expect(audits).toHaveLength(1);
  });
});
