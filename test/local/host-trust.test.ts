/**
 * `npm run trust` / `init` name a failed host-key probe as the engine would (SPEC §6): a name
 * that does not resolve is `DnsLookupFailed` (not `ConnectRefused … ENOTFOUND`), a server that
 * accepts TCP and never sends its banner is `BannerTimeout` at the banner cap (not
 * `HandshakeTimeout` at the end of the budget). DNS is answered on loopback by a scripted
 * resolver: no query leaves the machine.
 */
import { execFile } from "node:child_process";
import dgram from "node:dgram";
import { Resolver } from "node:dns/promises";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PHASE_CAPS } from "../../lib/deadline.ts";
import { PROBE_BUDGET_MS, trustHost } from "../../local/host-trust.ts";
import { bannerInSegments } from "../helpers/adversaries.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";

const ROOT = process.cwd();
const TSX = join(ROOT, "node_modules", ".bin", "tsx");

let dir: string;

/**
 * A raw-socket tarpit on 127.0.0.1: accepts TCP and never sends a byte. Counts the
 * connections it accepted and those whose client end went away.
 */
async function rawTarpit() {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let released = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.resume();
    socket.once("close", () => {
      released++;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    host: "127.0.0.1",
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    released: () => released,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

let pit: Awaited<ReturnType<typeof rawTarpit>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bssh-host-trust-"));
  pit = await rawTarpit();
});
afterAll(async () => {
  await pit?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A UDP DNS server on 127.0.0.1 that answers NXDOMAIN to everything, and a lookup using it. */
async function nxdomainDns() {
  const sock = dgram.createSocket("udp4");
  let queries = 0;
  sock.on("message", (msg, rinfo) => {
    queries++;
    const reply = Buffer.from(msg);
    reply[2] = 0x81; // QR=1, RD
    reply[3] = 0x83; // RA, RCODE=3 NXDOMAIN
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  const resolver = new Resolver({ timeout: 2_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${sock.address().port}`]);
  return {
    lookup: async (host: string) => ({
      address: (await resolver.resolve4(host))[0]!,
      family: 4 as const,
    }),
    queries: () => queries,
    close: () => {
      resolver.cancel();
      sock.close();
    },
  };
}

/** trustHost's failure, as the one line the command prints. */
async function trustFailure(
  host: string,
  port: number,
  probe: Parameters<typeof trustHost>[0]["probe"],
): Promise<Error> {
  const knownHostsPath = join(dir, `known_hosts-${host}-${port}`);
  const error = await trustHost({ host, port, knownHostsPath, yes: true, say: () => {}, probe })
    .then(() => new Error("trusted a host that presented no key"))
    .catch((e: Error) => e);
  // Nothing is written for a host that presented no key.
  expect(existsSync(knownHostsPath)).toBe(false);
  return error;
}

describe("trust/init name a failed probe as the engine does", () => {
  it("a name that does not resolve is DnsLookupFailed, with what to do", async () => {
    const dns = await nxdomainDns();
    try {
      const error = await trustFailure("nope.invalid", 22, { lookup: dns.lookup });
      expect(error.name).toBe("UsageError");
      expect(error.message).toMatch(/^no host key from nope\.invalid: DnsLookupFailed: /);
      expect(error.message).toContain("check the host name");
      expect(error.message).not.toMatch(/ConnectRefused/);
      // The scripted resolver answered: the lookup went through the override, not the system.
      expect(dns.queries()).toBeGreaterThan(0);
    } finally {
      dns.close();
    }
  });

  it("a server that never sends its banner is BannerTimeout at the banner cap, socket released", async () => {
    // Prepare: short caps so the test is quick; the budget is the CLI's.
    const baseline = activeHandles();
    const before = pit.accepted();
    // Act
    const error = await trustFailure(pit.host, pit.port, { phaseCaps: { banner: 300 } });
    // Assess: the name and the phase of the engine, and no socket of the probe left.
    expect(error.message).toMatch(
      new RegExp(
        `^no host key from \\[127\\.0\\.0\\.1\\]:${pit.port}: BannerTimeout: banner phase`,
      ),
    );
    expect(error.message).toContain("is it the SSH port?");
    expect(pit.accepted()).toBe(before + 1);
    // The probe hung up: the tarpit saw its connection end, and no handle of it is left.
    await expectNoSessionLeaks(baseline);
    expect(pit.released()).toBe(pit.accepted());
  });

  it("a banner then silence is HandshakeTimeout (the key exchange stalled)", async () => {
    const silent = await bannerInSegments(1, 0);
    try {
      const error = await trustFailure(silent.host, silent.port, {
        phaseCaps: { handshake: 300 },
      });
      expect(error.message).toMatch(/: HandshakeTimeout: handshake phase did not finish/);
    } finally {
      await silent.close();
    }
  });

  it("npm run trust and init against a tarpit: one line, BannerTimeout after the 5 s banner cap, inside the 10 s budget, nothing written", async () => {
    // The default caps: the banner's (5 s) ends the probe, well before the budget.
    expect(DEFAULT_PHASE_CAPS.banner).toBeLessThan(PROBE_BUDGET_MS);
    const cli = (name: string, args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(
          TSX,
          [join(ROOT, "local", `${name}.ts`), ...args],
          { cwd: dir, env: { ...process.env, BSSH_CONFIG: "" } },
          (err, _stdout, stderr) =>
            resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
        );
      });
    const target = `127.0.0.1:${pit.port}`;
    const results = await Promise.all([
      cli("trust", [target, "--yes"]),
      cli("init", [`someone@${target}`, "--yes"]),
    ]);
    for (const [i, name] of ["trust", "init"].entries()) {
      const result = results[i]!;
      expect(result.code).toBe(2);
      const lines = result.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(
        `bounded-ssh ${name}: no host key from [127.0.0.1]:${pit.port}: BannerTimeout: banner phase did not finish within ${DEFAULT_PHASE_CAPS.banner} ms`,
      );
    }
    // init wrote nothing, not even an empty .bssh/; trust had nothing to add.
    expect(existsSync(join(dir, ".bssh"))).toBe(false);
  }, 30_000);
});
