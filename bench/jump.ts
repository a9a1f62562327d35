/**
 * Jump host (request `via`) on the jump lab (test/helpers/jump-lab.ts): the target sshd in a
 * network namespace, an inetd-style jump sshd forwarding to it. Command `true`, N sessions
 * through the jump host interleaved with N direct sessions to the jump sshd itself (the same
 * inetd-style server, no forward): the direct ones are the anchor, the ratio is the cost of
 * the second hop. Root only. `npx tsx bench/jump.ts [N]`.
 */
import { runCommand } from "../lib/index.ts";
import type { HopTimings, PhaseTimings, RunResult } from "../lib/types.ts";
import { startJumpLab } from "../test/helpers/jump-lab.ts";
import { median, ratio } from "./stats.ts";

const N = Number(process.argv[2] ?? 30);

async function main(): Promise<void> {
  const lab = await startJumpLab();
  try {
    const jump = await lab.jump();
    const secret = { privateKey: lab.target.keys.ed25519.privateKey };
    const through: RunResult[] = [];
    const direct: RunResult[] = [];
    const viaRequest = {
      host: "127.0.0.1",
      port: lab.target.port,
      username: lab.target.username,
      command: "true",
      hostKey: lab.target.hostKeyFingerprint,
      via: {
        host: jump.host,
        port: jump.port,
        username: lab.target.username,
        hostKey: jump.hostKeyFingerprint,
      },
    };
    const directRequest = {
      host: jump.host,
      port: jump.port,
      username: lab.target.username,
      command: "true",
      hostKey: jump.hostKeyFingerprint,
    };
    // One warm-up each (key parsing, first sshd exec), then interleaved.
    await runCommand(viaRequest, { secret, via: { secret }, budgetMs: 10_000 });
    await runCommand(directRequest, { secret, budgetMs: 10_000 });
    for (let i = 0; i < N; i++) {
      through.push(await runCommand(viaRequest, { secret, via: { secret }, budgetMs: 10_000 }));
      direct.push(await runCommand(directRequest, { secret, budgetMs: 10_000 }));
    }
    const failed = [...through, ...direct].filter((r) => r.status !== "succeeded");
    if (failed.length > 0) throw new Error(`failed sessions: ${JSON.stringify(failed[0]?.error)}`);
    const med = <T>(rs: RunResult[], pick: (r: RunResult) => T, key: keyof T) =>
      median(rs.map((r) => Number(pick(r)[key] ?? 0)));
    const hopKeys: (keyof HopTimings)[] = [
      "connectMs",
      "bannerMs",
      "handshakeMs",
      "authMs",
      "forwardMs",
    ];
    const targetKeys: (keyof PhaseTimings)[] = [
      "bannerMs",
      "handshakeMs",
      "authMs",
      "channelMs",
      "execMs",
      "teardownMs",
      "totalMs",
    ];
    console.log(`jump lab, command true, N=${N} each, medians in ms`);
    console.log(
      `via.timings:    ${hopKeys.map((k) => `${k} ${med(through, (r) => r.via!.timings, k).toFixed(1)}`).join(", ")}`,
    );
    console.log(
      `target timings: ${targetKeys.map((k) => `${k} ${med(through, (r) => r.timings, k).toFixed(1)}`).join(", ")}`,
    );
    const tThrough = med(through, (r) => r.timings, "totalMs");
    const tDirect = med(direct, (r) => r.timings, "totalMs");
    console.log(
      `total through the jump host ${tThrough.toFixed(1)} vs direct to the jump sshd ${tDirect.toFixed(1)}: ${ratio(tThrough / tDirect)}`,
    );
  } finally {
    await lab.stop();
  }
}

await main();
