/**
 * Deadline precision over the timeout faults. Each session gets budget B; every phase's
 * allowance then ends at E = B − teardownReserve (the reserve is min(250 ms, B/5)). Overshoot
 * of the phase timer = (moment teardown starts) − E; overshoot of the session = elapsed − B
 * (SPEC §3 guarantee: < 50 ms).
 */
import {
  type Adversary,
  bannerByteByByte,
  bannerThenSilence,
  tarpit,
} from "../test/helpers/adversaries.ts";
import { startSsh2Server } from "../test/helpers/ssh2-server.ts";
import type { SshdServer } from "../test/helpers/sshd.ts";
import type { Engine } from "./engine.ts";

export const PRECISION_BUDGET_MS = 250;

export interface FaultResult {
  fault: string;
  expectedError: string;
  errors: Record<string, number>;
  /** Phase-timer overshoot samples (ms). */
  phase: number[];
  /** Session overshoot samples: elapsed − budget (ms, negative = early). */
  session: number[];
}

interface Target {
  host: string;
  port: number;
  knownHostsLine: string;
  command: string;
  close(): Promise<void>;
}

function fromAdversary(a: Adversary, srv: SshdServer): Target {
  // Any valid known_hosts line: these peers never get as far as showing a host key.
  const knownHostsLine = `[127.0.0.1]:${a.port} ${srv.hostKeyLine}`;
  return { host: a.host, port: a.port, knownHostsLine, command: "true", close: () => a.close() };
}

export async function measurePrecision(
  engine: Engine,
  srv: SshdServer,
  runsPerFault: number,
): Promise<FaultResult[]> {
  const B = PRECISION_BUDGET_MS;
  const E = B - Math.min(250, B / 5);
  const faults: Array<{ fault: string; expectedError: string; start: () => Promise<Target> }> = [
    {
      fault: "tarpit (no banner)",
      expectedError: "BannerTimeout",
      start: async () => fromAdversary(await tarpit(), srv),
    },
    {
      fault: "banner 1 byte / 40 ms",
      expectedError: "BannerTimeout",
      start: async () => fromAdversary(await bannerByteByByte(40), srv),
    },
    {
      fault: "banner, then key-exchange stall",
      expectedError: "HandshakeTimeout",
      start: async () => fromAdversary(await bannerThenSilence(), srv),
    },
    {
      fault: "auth never answered",
      expectedError: "AuthTimeout",
      start: async () => {
        const s = await startSsh2Server({
          auth: (ctx) => (ctx.method === "none" ? "reject" : "never"),
        });
        return { ...s, command: "true" };
      },
    },
    {
      fault: "channel open never confirmed",
      expectedError: "ChannelTimeout",
      start: async () => ({ ...(await startSsh2Server({ session: "never" })), command: "true" }),
    },
    {
      fault: "command hangs (sshd, sleep 30)",
      expectedError: "CommandTimeout",
      start: async () => ({
        host: srv.host,
        port: srv.port,
        knownHostsLine: srv.knownHostsLine,
        command: "sleep 30",
        close: async () => {},
      }),
    },
  ];
  const out: FaultResult[] = [];
  for (const f of faults) {
    const target = await f.start();
    const res: FaultResult = {
      fault: f.fault,
      expectedError: f.expectedError,
      errors: {},
      phase: [],
      session: [],
    };
    try {
      for (let i = 0; i < runsPerFault; i++) {
        let teardownAt = Number.NaN;
        const t0 = performance.now();
        const r = await engine.runCommand(
          { host: target.host, port: target.port, username: srv.username, command: target.command },
          {
            budgetMs: B,
            secret: { privateKey: srv.keys.ed25519.privateKey },
            knownHosts: target.knownHostsLine,
            onPhase: (p) => {
              if (p === "teardown") teardownAt = performance.now() - t0;
            },
          },
        );
        const elapsed = performance.now() - t0;
        const name = r.error?.name ?? r.status;
        res.errors[name] = (res.errors[name] ?? 0) + 1;
        res.phase.push(teardownAt - E);
        res.session.push(elapsed - B);
      }
    } finally {
      await target.close();
    }
    out.push(res);
  }
  return out;
}
