/**
 * Target-host CPU: what one session costs the server. The listening sshd is moved into a
 * cgroup (v2) of its own, so every process it forks for a session (the privileged monitor,
 * the session process, the login shell, `timeout`, the shell under it, the command) is
 * counted in its `cpu.stat` `usage_usec`, including processes no parent reaps. The listening
 * sshd's cumulative child times (/proc/<pid>/stat cutime + cstime) are NOT enough: OpenSSH's
 * monitor exits without waiting for the post-auth session process, which is then reparented
 * to init and its CPU — the shell and the command included — is lost to sshd's accounting
 * (measured: a shell loop of 20,000 iterations added 1 ms per session that way). CPU time,
 * not wall time: it holds on a loaded machine.
 *
 * Every client runs the same command ({@link TARGET_COMMAND}) in batches of `concurrency` at once,
 * interleaved round-robin, so load drift hits each alike. The split by what the session asks:
 * - `ssh2 tuned, no exec`: handshake and auth, then goodbye — the floor;
 * - `ssh2 tuned, exec`: + the login shell running the command (the raw-ssh2 anchor);
 * - `ssh2 tuned, exec wrapper through a shell`: + `timeout` and a second shell (the wrapper's
 *   form for shell syntax; the only form before the direct one);
 * - `ssh2 tuned, exec wrapper`: + the remote bound's wrapper, exactly as the engine sends it;
 * - `engine remoteBound:false` / `engine`: + whatever else the engine asks (requests,
 *   signals, keepalives) beyond the same exec;
 * - `OpenSSH client`: the anchor a shell script would pay;
 * - `engine (BENCH_BASE_LIB)`: the same engine rows for another lib/ (e.g. bfb03d7) when set.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import ssh2 from "ssh2";
import { allProcesses, descendantsOf, SSH_PATH, type SshdServer } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";
import type { Client } from "./latency.ts";

/** CPU ms used by a process and its reaped children (per-session processes) so far. */
export function processTreeCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat
    .slice(stat.lastIndexOf(")") + 2)
    .split(" ")
    .map(Number);
  // fields after ")": state=0 … utime=11 stime=12 cutime=13 cstime=14 (clock ticks, 100 Hz)
  const ticks = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
  return (ticks * 1000) / 100;
}

const CGROUP2_ROOT = "/sys/fs/cgroup/unified";

/**
 * CPU of a process and everything it forks from now on: a cgroup v2 leaf of its own (needs
 * root and a cgroup2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup). `undefined` where
 * that is not possible; the caller then falls back to {@link processTreeCpuMs}.
 */
export class CgroupCpu {
  readonly #dir: string;
  private constructor(dir: string) {
    this.#dir = dir;
  }

  static attach(pid: number): CgroupCpu | undefined {
    for (const root of [CGROUP2_ROOT, "/sys/fs/cgroup"]) {
      const dir = `${root}/bssh-bench-${process.pid}-${pid}`;
      try {
        readFileSync(`${root}/cgroup.procs`, "utf8");
        mkdirSync(dir);
      } catch {
        continue;
      }
      try {
        writeFileSync(`${dir}/cgroup.procs`, String(pid));
        const meter = new CgroupCpu(dir);
        meter.ms();
        return meter;
      } catch {
        try {
          rmdirSync(dir);
        } catch {
          // nothing to clean
        }
      }
    }
    return undefined;
  }

  /** CPU ms used by every process of the group so far (alive or gone). */
  ms(): number {
    const stat = readFileSync(`${this.#dir}/cpu.stat`, "utf8");
    const usec = /^usage_usec (\d+)$/m.exec(stat)?.[1];
    if (usec === undefined) throw new Error(`no usage_usec in ${this.#dir}/cpu.stat`);
    return Number(usec) / 1000;
  }

  /** Removes the group once its processes are gone (call after sshd has stopped). */
  async release(limitMs = 5_000): Promise<void> {
    const until = performance.now() + limitMs;
    for (;;) {
      try {
        rmdirSync(this.#dir);
        return;
      } catch (err) {
        if (performance.now() > until) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/** How the target's CPU is read: a cgroup of sshd's own, or (undercounting) its child times. */
export interface SshdMeter {
  ms(): number;
  method: string;
  release(): Promise<void>;
}

export function sshdMeter(srv: SshdServer): SshdMeter {
  const cg = CgroupCpu.attach(srv.pid);
  if (cg) {
    return { ms: () => cg.ms(), method: "cgroup cpu.stat", release: () => cg.release() };
  }
  return {
    ms: () => processTreeCpuMs(srv.pid),
    method: "sshd cutime (undercounts: session processes are reparented to init)",
    release: async () => {},
  };
}

/** Waits until sshd has no session processes left (all reaped, so their CPU is counted). */
export async function sessionsReaped(srv: SshdServer, limitMs = 10_000): Promise<void> {
  const until = performance.now() + limitMs;
  while (performance.now() < until) {
    if (descendantsOf(srv.pid, allProcesses()).size === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`sshd still has session processes ${limitMs} ms after the clients finished`);
}

/** Raw ssh2 with the tuned socket; `command` undefined opens a session channel and closes it. */
export function rawExecClient(srv: SshdServer, command: string | undefined): Client {
  return () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const client = new ssh2.Client();
      client.on("error", reject);
      client.once("close", () => resolve(performance.now() - t0));
      client.once("ready", () => {
        // Handshake and auth only: sshd forks no shell.
        if (command === undefined) {
          client.end();
          return;
        }
        client.exec(command, (err, ch) => {
          if (err) return reject(err);
          ch.on("exit", (code: number) => {
            if (code !== 0) reject(new Error(`ssh2 exit ${code}`));
          });
          ch.resume();
          ch.stderr.resume();
          ch.once("close", () => client.end());
        });
      });
      const sock = net.connect({ host: srv.host, port: srv.port, noDelay: true });
      client.connect({
        username: srv.username,
        privateKey: srv.keys.ed25519.privateKey,
        sock,
        authHandler: ["publickey"],
      });
    });
}

export interface TargetCpuResult {
  sessionsPerClient: number;
  concurrency: number;
  /** sshd CPU (incl. all its children) per session, ms, by client. */
  sshdCpuPerSession: Record<string, number>;
  /** This process's CPU per session, ms, by client (the OpenSSH client's own is not counted). */
  clientCpuPerSession: Record<string, number>;
}

/**
 * Runs each client `rounds` × `concurrency` times (a batch of `concurrency` at once per
 * round, clients interleaved) and returns sshd's CPU per session for each.
 */
export async function measureTargetCpu(
  srv: SshdServer,
  meter: SshdMeter,
  clients: Record<string, Client>,
  rounds: number,
  concurrency: number,
): Promise<TargetCpuResult> {
  const sshd: Record<string, number> = {};
  const own: Record<string, number> = {};
  for (const name of Object.keys(clients)) {
    sshd[name] = 0;
    own[name] = 0;
  }
  // Warm-up: one batch each (page cache, JIT), not counted.
  for (const run of Object.values(clients)) {
    await Promise.all(Array.from({ length: Math.min(concurrency, 5) }, () => run()));
  }
  await sessionsReaped(srv);
  for (let i = 0; i < rounds; i++) {
    for (const [name, run] of Object.entries(clients)) {
      const s0 = meter.ms();
      const c0 = process.cpuUsage();
      await Promise.all(Array.from({ length: concurrency }, () => run()));
      const c = process.cpuUsage(c0);
      await sessionsReaped(srv);
      sshd[name]! += meter.ms() - s0;
      own[name]! += (c.user + c.system) / 1000;
    }
  }
  const n = rounds * concurrency;
  const per = (m: Record<string, number>) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v / n]));
  return {
    sessionsPerClient: n,
    concurrency,
    sshdCpuPerSession: per(sshd),
    clientCpuPerSession: per(own),
  };
}

/** The command every target-CPU client runs: a program, not a shell builtin. */
export const TARGET_COMMAND = "uname";

/** The engine running `command` (a budget of 20 s, as the latency rows). */
function engineRun(
  engine: Engine,
  srv: SshdServer,
  command: string,
  extra: Record<string, unknown> = {},
): Client {
  return async () => {
    const t0 = performance.now();
    const r = await engine.runCommand(
      { host: srv.host, port: srv.port, username: srv.username, command },
      {
        budgetMs: 20_000,
        secret: { privateKey: srv.keys.ed25519.privateKey },
        knownHosts: srv.knownHostsLine,
        ...extra,
      },
    );
    if (r.status !== "succeeded") throw new Error(`engine session failed: ${JSON.stringify(r)}`);
    return performance.now() - t0;
  };
}

/**
 * The clients of the target-CPU rows (see the module comment). `wrapped` is the command as
 * this engine's remote bound sends it; `shellWrapped` the same bound through a second shell
 * (the wrapper's form for shell syntax, and for every command before the direct form).
 */
export function targetCpuClients(
  engine: Engine,
  srv: SshdServer,
  wrapped: string,
  shellWrapped: string,
  base?: Engine,
): Record<string, Client> {
  const cmd = TARGET_COMMAND;
  const clients: Record<string, Client> = {
    "ssh2 tuned, no exec": rawExecClient(srv, undefined),
    "ssh2 tuned, exec": rawExecClient(srv, cmd),
    "ssh2 tuned, exec wrapper through a shell": rawExecClient(srv, shellWrapped),
    "ssh2 tuned, exec wrapper": rawExecClient(srv, wrapped),
    "engine remoteBound:false": engineRun(engine, srv, cmd, { remoteBound: false }),
    engine: engineRun(engine, srv, cmd),
    "OpenSSH client": opensshCommand(srv, cmd),
  };
  if (base) {
    clients["engine (BENCH_BASE_LIB)"] = engineRun(base, srv, cmd);
    clients["engine (BENCH_BASE_LIB) remoteBound:false"] = engineRun(base, srv, cmd, {
      remoteBound: false,
    });
  }
  return clients;
}

function opensshCommand(srv: SshdServer, command: string): Client {
  return () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn(SSH_PATH, srv.sshArgs(srv.keys.ed25519).concat(command), {
        stdio: "ignore",
      });
      child.once("error", reject);
      child.once("exit", (code) => {
        if (code === 0) resolve(performance.now() - t0);
        else reject(new Error(`ssh exited ${code}`));
      });
    });
}
