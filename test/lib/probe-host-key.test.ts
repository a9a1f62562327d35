import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeHostKey } from "../../lib/probe-host-key.ts";
import { activeHandles, expectNoSessionLeaks } from "../helpers/leaks.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

let sshd: SshdServer;

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

describe("probeHostKey", () => {
  it("returns the key OpenSSH presents, without authenticating", async () => {
    const baseline = activeHandles();
    const key = await probeHostKey({ host: "127.0.0.1", port: sshd.port }, { budgetMs: 5_000 });
    await expectNoSessionLeaks(baseline);
    expect(`${key.keyType} ${key.keyBase64}`).toBe(sshd.hostKeyLine);
    expect(key.fingerprintSha256).toBe(sshd.hostKeyFingerprint);
    // The key was refused before any authentication request.
    expect(sshd.log()).not.toMatch(/Accepted|Failed (publickey|password)|Invalid user/);
  });

  it("ends within its budget on a server that never sends a banner", async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => {});
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    const baseline = activeHandles();
    const started = performance.now();
    const error = await probeHostKey({ host: "127.0.0.1", port }, { budgetMs: 400 }).catch(
      (e: Error) => e,
    );
    // The probe's own socket is gone; the silent server's accepted socket is not the probe's.
    await expectNoSessionLeaks(baseline, { types: ["Timeout"] });
    expect(performance.now() - started).toBeLessThan(400 + 100);
    // The engine's name for a server that never sends its banner (as a session would report).
    expect(error).toMatchObject({ name: "BannerTimeout", phase: "banner" });
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it("reports a name that does not resolve as DnsLookupFailed (lookup override, no DNS traffic)", async () => {
    const lookup = async (host: string) => {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    };
    await expect(
      probeHostKey({ host: "nope.invalid", port: 22 }, { budgetMs: 2_000, lookup }),
    ).rejects.toMatchObject({ name: "DnsLookupFailed", phase: "resolve" });
  });

  it("reports a refused connection by name", async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(
      probeHostKey({ host: "127.0.0.1", port }, { budgetMs: 2_000 }),
    ).rejects.toMatchObject({ name: "ConnectRefused" });
  });
});
