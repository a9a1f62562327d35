/**
 * Session latency against a real sshd on loopback, command `true`: TCP connect → exit status
 * → socket closed, per client, interleaved round-robin so drift hits every client alike.
 */
import { spawn } from "node:child_process";
import net from "node:net";
import { NodeSSH } from "node-ssh";
import ssh2 from "ssh2";
import type { PhaseTimings } from "../lib/types.ts";
import { SSH_PATH, type SshdServer } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";
import { median } from "./stats.ts";

export type Client = () => Promise<number>;

export interface LatencyResult {
  samples: Record<string, number[]>;
  /** Median of each engine phase timing (default engine variant). */
  phases: Record<string, number>;
}

const COMMAND = "true";

export function engineClient(
  engine: Engine,
  srv: SshdServer,
  extra: Record<string, unknown> = {},
  phases?: Array<Omit<PhaseTimings, "totalMs"> & { totalMs: number }>,
): Client {
  return async () => {
    const t0 = performance.now();
    const r = await engine.runCommand(
      { host: srv.host, port: srv.port, username: srv.username, command: COMMAND },
      {
        budgetMs: 20_000,
        secret: { privateKey: srv.keys.ed25519.privateKey },
        knownHosts: srv.knownHostsLine,
        ...extra,
      },
    );
    const elapsed = performance.now() - t0;
    if (r.status !== "succeeded") throw new Error(`engine session failed: ${JSON.stringify(r)}`);
    phases?.push(r.timings);
    return elapsed;
  };
}

export function opensshClient(srv: SshdServer, extra: string[] = []): Client {
  return () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn(SSH_PATH, srv.sshArgs(srv.keys.ed25519, extra).concat(COMMAND), {
        stdio: "ignore",
      });
      child.once("error", reject);
      child.once("exit", (code) => {
        if (code === 0) resolve(performance.now() - t0);
        else reject(new Error(`ssh exited ${code}`));
      });
    });
}

export function nodeSshClient(srv: SshdServer): Client {
  return async () => {
    const t0 = performance.now();
    const ssh = new NodeSSH();
    await ssh.connect({
      host: srv.host,
      port: srv.port,
      username: srv.username,
      privateKey: srv.keys.ed25519.privateKey,
    });
    const conn = ssh.connection!;
    const closed = new Promise<void>((r) => conn.once("close", () => r()));
    const out = await ssh.execCommand(COMMAND);
    if (out.code !== 0) throw new Error(`node-ssh exit ${out.code}`);
    ssh.dispose();
    await closed;
    return performance.now() - t0;
  };
}

interface RawOptions {
  /** TCP_NODELAY socket passed as `sock` and publickey-only authHandler. */
  tuned: boolean;
  /** Put the engine's BannerGate between socket and ssh2 (its cost alone). */
  gate?: Engine["BannerGate"];
  algorithms?: ssh2.Algorithms;
}

export function rawSsh2Client(srv: SshdServer, opts: RawOptions): Client {
  return () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const client = new ssh2.Client();
      client.on("error", reject);
      client.once("close", () => resolve(performance.now() - t0));
      client.once("ready", () => {
        client.exec(COMMAND, (err, ch) => {
          if (err) return reject(err);
          ch.on("exit", (code: number) => {
            if (code !== 0) reject(new Error(`ssh2 exit ${code}`));
          });
          ch.resume();
          ch.stderr.resume();
          ch.once("close", () => client.end());
        });
      });
      const base = {
        username: srv.username,
        privateKey: srv.keys.ed25519.privateKey,
        ...(opts.algorithms ? { algorithms: opts.algorithms } : {}),
      };
      if (!opts.tuned) {
        client.connect({ ...base, host: srv.host, port: srv.port });
        return;
      }
      const sock = net.connect({ host: srv.host, port: srv.port, noDelay: true });
      const stream = opts.gate
        ? new opts.gate(sock, { onIdent: () => {}, onProtocolError: reject })
        : sock;
      client.connect({ ...base, sock: stream as net.Socket, authHandler: ["publickey"] });
    });
}

/** Runs every client `rounds` times, round-robin, after `warmup` rounds. */
export async function measureRoundRobin(
  clients: Record<string, Client>,
  rounds: number,
  warmup = 3,
): Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(clients)) samples[name] = [];
  for (let i = 0; i < warmup + rounds; i++) {
    for (const [name, run] of Object.entries(clients)) {
      const ms = await run();
      if (i >= warmup) samples[name]!.push(ms);
    }
  }
  return samples;
}

export async function measureLatency(
  engine: Engine,
  srv: SshdServer,
  rounds: number,
  /** More anchors, interleaved with the others (e.g. the Go client, bench/go-client.ts). */
  extra: Record<string, Client> = {},
): Promise<LatencyResult> {
  const phases: Array<Omit<PhaseTimings, "totalMs"> & { totalMs: number }> = [];
  const clients: Record<string, Client> = {
    engine: engineClient(engine, srv, {}, phases),
    "engine remoteBound:false": engineClient(engine, srv, { remoteBound: false }),
    "engine keepalive:false": engineClient(engine, srv, { keepalive: false }),
    "OpenSSH client": opensshClient(srv),
    "OpenSSH client (curve25519 kex)": opensshClient(srv, [
      "-o",
      "KexAlgorithms=curve25519-sha256",
    ]),
    "node-ssh 13": nodeSshClient(srv),
    "ssh2 default": rawSsh2Client(srv, { tuned: false }),
    "ssh2 tuned": rawSsh2Client(srv, { tuned: true }),
    "ssh2 tuned + BannerGate": rawSsh2Client(srv, { tuned: true, gate: engine.BannerGate }),
    "ssh2 tuned, chacha20-poly1305": rawSsh2Client(srv, {
      tuned: true,
      algorithms: { cipher: ["chacha20-poly1305@openssh.com"] },
    }),
    "ssh2 tuned, ecdh-nistp256 kex": rawSsh2Client(srv, {
      tuned: true,
      algorithms: { kex: ["ecdh-sha2-nistp256"] },
    }),
    ...extra,
  };
  const samples = await measureRoundRobin(clients, rounds);
  const phaseMedians: Record<string, number> = {};
  for (const key of Object.keys(phases[0] ?? {})) {
    phaseMedians[key] = median(
      phases.slice(-rounds).map((p) => (p as unknown as Record<string, number | null>)[key] ?? 0),
    );
  }
  return { samples, phases: phaseMedians };
}
