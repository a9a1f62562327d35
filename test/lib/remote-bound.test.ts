import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import {
  REMOTE_BOUND_SLACK_S,
  simpleCommandWords,
  wrapWithRemoteBound,
} from "../../lib/session/remote-bound.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// The remote bound's wrapper: a simple command is run by `timeout` itself (one shell fewer on
// the target per session), anything else through "$SHELL" -c; both keep the bound.

describe("simpleCommandWords", () => {
  it("takes plain word lists whose first word is a program", () => {
    expect(simpleCommandWords("uptime")).toEqual(["uptime"]);
    expect(simpleCommandWords("systemctl restart nginx.service")).toEqual([
      "systemctl",
      "restart",
      "nginx.service",
    ]);
    expect(
      simpleCommandWords("/opt/app/bin/check --fast --level=2 a,b user@host:8080 50%"),
    ).toEqual(["/opt/app/bin/check", "--fast", "--level=2", "a,b", "user@host:8080", "50%"]);
  });

  it.each([
    ["a builtin", "echo -e a\\tb"],
    ["a builtin with plain words", "cd /tmp"],
    ["a keyword", "time sleep 1"],
    ["a zsh builtin", "which ls"],
    ["`true` (a builtin)", "true"],
    ["a variable assignment", "LANG=C date"],
    ["an expansion", "echo $HOME"],
    ["a glob", "ls *.log"],
    ["a tilde", "ls ~"],
    ["quotes", "grep 'a b' f"],
    ["an operator", "uptime; uname"],
    ["a pipe", "ps | wc -l"],
    ["a redirection", "uname >/tmp/x"],
    ["two spaces (an empty word)", "uname  -a"],
    ["a tab", "uname\t-a"],
    ["a newline", "uname\n-a"],
    ["a leading dash", "-x"],
    ["nothing", ""],
    ["a comment", "uname #x"],
  ])("leaves %s to the shell", (_what, command) => {
    expect(simpleCommandWords(command)).toBeUndefined();
  });
});

describe("wrapWithRemoteBound", () => {
  it("runs a simple command under timeout directly, with the slack over the allowance", () => {
    expect(wrapWithRemoteBound("uname -s", 4_950)).toBe(
      `exec timeout -k 2 ${(5 + REMOTE_BOUND_SLACK_S).toFixed(1)} uname -s`,
    );
  });

  it("runs anything else in the login shell, quoted", () => {
    expect(wrapWithRemoteBound("echo 'it''s'; true", 1_000)).toBe(
      `exec timeout -k 2 2.0 "\${SHELL:-/bin/sh}" -c 'echo '\\''it'\\'''\\''s'\\''; true'`,
    );
  });

  /** Runs the wrapper as sshd would: the login shell's `-c`. */
  function viaLoginShell(
    wrapper: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn("/bin/bash", ["-c", wrapper], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SHELL: "/bin/bash" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d;
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d;
      });
      child.once("error", reject);
      child.once("close", (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
    });
  }

  it.each([
    ["direct", "sleep 30"],
    ["through the shell", "sleep 30; true"],
  ])("still ends a command that outlives its bound (%s): exit 124", async (_form, command) => {
    // Allowance 100 ms → timeout 1.1 s; generous upper limit for a loaded machine.
    const r = await viaLoginShell(wrapWithRemoteBound(command, 100));
    expect(r.code).toBe(124);
    expect(r.ms).toBeGreaterThanOrEqual(1_000);
    expect(r.ms).toBeLessThan(10_000);
  });

  it("gives a simple command the same argv, output and status either way", async () => {
    const direct = await viaLoginShell(wrapWithRemoteBound("printf %s,%s a=1 b", 5_000));
    // The same words through the shell (quoting them forces the shell form).
    const shell = await viaLoginShell(
      `exec timeout -k 2 6.0 "\${SHELL:-/bin/sh}" -c 'printf %s,%s a=1 b'`,
    );
    expect(direct).toMatchObject({ code: 0, stdout: "a=1,b" });
    expect(shell).toMatchObject({ code: 0, stdout: "a=1,b" });
    const missing = await viaLoginShell(wrapWithRemoteBound("no-such-program-x1 a", 5_000));
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("no-such-program-x1");
  });
});

describe("the wrapper against a real sshd", () => {
  let sshd: SshdServer;
  beforeAll(async () => {
    sshd = await startSshd({ passwordAuthentication: false });
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  const run = (command: string) =>
    runCommand(
      { host: sshd.host, port: sshd.port, username: sshd.username, command },
      {
        budgetMs: 15_000,
        secret: { privateKey: sshd.keys.ed25519.privateKey },
        knownHosts: sshd.knownHostsLine,
      },
    );

  it("runs a simple command, a builtin and shell syntax alike", async () => {
    const simple = await run("uname -s");
    expect(simple).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect(simple.stdout).toBe("Linux\n");
    const builtin = await run("echo a b");
    expect(builtin).toMatchObject({ status: "succeeded", exitCode: 0, stdout: "a b\n" });
    const syntax = await run("x=$((6*7)); echo $x | tr 4 f");
    expect(syntax).toMatchObject({ status: "succeeded", exitCode: 0, stdout: "f2\n" });
    const missing = await run("no-such-program-x1");
    expect(missing).toMatchObject({ status: "failed", exitCode: 127 });
  });
});
