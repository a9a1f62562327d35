/**
 * Drain throughput and session latency per cipher (issue 26 item 1). For each cipher ssh2
 * offers in pure JS, an sshd that offers ONLY that cipher (and, for AES-CTR, only
 * hmac-sha2-256-etm): the engine, unchanged, negotiates it from its default list, and the
 * OpenSSH client is measured against the same server in the same rounds, so each ratio
 * compares the two clients on one cipher. Drain = 100 MB of stdout with the median `true`
 * session of the same client subtracted (as in throughput.ts). Client CPU per drain (the
 * engine: this process's user + system time; OpenSSH: its reaped `ssh` process's, from
 * /proc/self/stat) is the load-proof figure: wall-clock ratios move with the machine's load.
 *
 *   npx tsx bench/ciphers.ts                                  # this part alone
 *   BENCH_BASE_LIB=.bench/before/lib npx tsx bench/ciphers.ts # an older lib/ in the same rounds
 * (an older lib/ resolves `ssh2` from its own node_modules first: put the ssh2 to compare
 * beside it, e.g. .bench/before/node_modules/ssh2).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { SSH_PATH, type SshdServer, startSshd } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";
import { engineClient, opensshClient } from "./latency.ts";
import { median } from "./stats.ts";

const BYTES = 100_000_000;
const COMMAND = `head -c ${BYTES} /dev/zero`;

/** Each cipher (and the MAC it needs, when it is not an AEAD) as sshd_config names them. */
export const BENCH_CIPHERS: ReadonlyArray<{ cipher: string; mac?: string }> = [
  { cipher: "aes128-gcm@openssh.com" },
  { cipher: "aes256-gcm@openssh.com" },
  { cipher: "aes128-ctr", mac: "hmac-sha2-256-etm@openssh.com" },
  { cipher: "chacha20-poly1305@openssh.com" },
];

export interface CipherResult {
  name: string;
  /** Drain times (ms), handshake included. */
  engine: number[];
  openssh: number[];
  /** `true` session times (ms). */
  engineTrue: number[];
  opensshTrue: number[];
  engineMBps: number;
  opensshMBps: number;
  /** Client CPU per drain (ms), handshake included. */
  engineCpuMs: number[];
  opensshCpuMs: number[];
  /** The BENCH_BASE_LIB engine in the same rounds, when given. */
  base?: { drains: number[]; trues: number[]; cpuMs: number[]; MBps: number };
}

/** CPU time (ms) of this process's reaped children (cutime + cstime, /proc/self/stat). */
function childrenCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 of proc(5), counted from the state field (3) here.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

function opensshDrain(srv: SshdServer, extra: string[], cpu: number[]): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const c0 = childrenCpuMs();
    const child = spawn(SSH_PATH, srv.sshArgs(srv.keys.ed25519, extra).concat(COMMAND), {
      stdio: "ignore",
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      cpu.push(childrenCpuMs() - c0);
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`ssh exited ${code}`));
    });
  });
}

async function engineDrain(engine: Engine, srv: SshdServer, cpu: number[]): Promise<number> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = await engine.runCommand(
    { host: srv.host, port: srv.port, username: srv.username, command: COMMAND },
    {
      budgetMs: 120_000,
      secret: { privateKey: srv.keys.ed25519.privateKey },
      knownHosts: srv.knownHostsLine,
    },
  );
  if (r.status !== "succeeded" || r.output.stdoutBytes !== BYTES) {
    throw new Error(
      `engine drain failed: ${r.status} ${r.output.stdoutBytes} bytes ${JSON.stringify(r.error)}`,
    );
  }
  const elapsed = performance.now() - t0;
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
  return elapsed;
}

export async function measureCiphers(
  engine: Engine,
  rounds: number,
  baseEngine?: Engine,
): Promise<CipherResult[]> {
  const results: CipherResult[] = [];
  for (const { cipher, mac } of BENCH_CIPHERS) {
    const srv = await startSshd({
      passwordAuthentication: false,
      extraConfig: [`Ciphers ${cipher}`, ...(mac ? [`MACs ${mac}`] : [])],
    });
    try {
      const extra = ["-c", cipher, ...(mac ? ["-m", mac] : [])];
      const engTrue = engineClient(engine, srv);
      const sshTrue = opensshClient(srv, extra);
      const res: CipherResult = {
        name: mac ? `${cipher} + ${mac}` : cipher,
        engine: [],
        openssh: [],
        engineTrue: [],
        opensshTrue: [],
        engineMBps: 0,
        opensshMBps: 0,
        engineCpuMs: [],
        opensshCpuMs: [],
      };
      const base: CipherResult["base"] = baseEngine && {
        drains: [],
        trues: [],
        cpuMs: [],
        MBps: 0,
      };
      const baseTrue = baseEngine && engineClient(baseEngine, srv);
      await engineDrain(engine, srv, []); // warm-up (JIT for this cipher's code path)
      if (baseEngine) await engineDrain(baseEngine, srv, []);
      for (let i = 0; i < rounds; i++) {
        res.engine.push(await engineDrain(engine, srv, res.engineCpuMs));
        if (baseEngine && base) base.drains.push(await engineDrain(baseEngine, srv, base.cpuMs));
        res.openssh.push(await opensshDrain(srv, extra, res.opensshCpuMs));
        for (let j = 0; j < 3; j++) {
          res.engineTrue.push(await engTrue());
          if (baseTrue && base) base.trues.push(await baseTrue());
          res.opensshTrue.push(await sshTrue());
        }
      }
      const mb = BYTES / 1e6;
      if (base) {
        base.MBps = mb / ((median(base.drains) - median(base.trues)) / 1000);
        res.base = base;
      }
      res.engineMBps = mb / ((median(res.engine) - median(res.engineTrue)) / 1000);
      res.opensshMBps = mb / ((median(res.openssh) - median(res.opensshTrue)) / 1000);
      results.push(res);
    } finally {
      await srv.stop();
    }
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { loadBaseEngine, loadEngine } = await import("./engine.ts");
  const engine = await loadEngine();
  const rounds = Number(process.env.BENCH_TP_ROUNDS ?? 3);
  const results = await measureCiphers(engine, rounds, await loadBaseEngine());
  for (const r of results) {
    console.log(
      `${r.name.padEnd(52)} engine ${r.engineMBps.toFixed(1)} MB/s  OpenSSH ${r.opensshMBps.toFixed(1)} MB/s  ${(r.engineMBps / r.opensshMBps).toFixed(2)}×  CPU/drain engine ${median(r.engineCpuMs).toFixed(0)} ms, OpenSSH ${median(r.opensshCpuMs).toFixed(0)} ms  true: engine ${median(r.engineTrue).toFixed(1)} ms, OpenSSH ${median(r.opensshTrue).toFixed(1)} ms`,
    );
    if (r.base) {
      console.log(
        `${"  BENCH_BASE_LIB".padEnd(52)} engine ${r.base.MBps.toFixed(1)} MB/s  ${(r.base.MBps / r.opensshMBps).toFixed(2)}×  CPU/drain ${median(r.base.cpuMs).toFixed(0)} ms  true ${median(r.base.trues).toFixed(1)} ms`,
      );
    }
  }
  const { writeFileSync, mkdirSync } = await import("node:fs");
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/ciphers.json", JSON.stringify(results, null, 1));
  process.exit(0);
}
