import net from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { readsInPlaceWithdrawn, runCommand } from "../../lib/index.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// In-place reads (RunOptions.readsInPlace, on by default) withdraw themselves: a packet that
// fails to decrypt or authenticate on a connection that read in place ends that session with
// ProtocolError naming it, and every later connection of the process reads into buffers of its
// own. Here a proxy between the engine and a real sshd flips one byte of the server's stream
// 256 KiB into a drain (well past authentication): the AES-GCM tag no longer verifies. Failures
// that in-place reads cannot have caused (before authentication, where reads are copied; with
// `readsInPlace: false`) withdraw nothing. Its own file, tests in order: the withdrawal is
// process state.

let sshd: SshdServer;
let proxy: net.Server;
/** Sends a valid identification line, then a clear-text packet whose length is 0xffffffff. */
let garbage: net.Server;
let proxyPort = 0;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  sshd = await startSshd({ passwordAuthentication: false });
  proxy = net.createServer((client) => {
    const upstream = net.connect({ host: sshd.host, port: sshd.port });
    sockets.add(client).add(upstream);
    let fromServer = 0;
    let flipped = false;
    upstream.on("data", (chunk: Buffer) => {
      const at = 256 * 1024 - fromServer;
      fromServer += chunk.length;
      if (!flipped && at >= 0 && at < chunk.length) {
        flipped = true;
        const copy = Buffer.from(chunk);
        copy[at] = copy[at]! ^ 0x01;
        client.write(copy);
        return;
      }
      client.write(chunk);
    });
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyPort = (proxy.address() as net.AddressInfo).port;
  garbage = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    sock.write("SSH-2.0-OpenSSH_9.2\r\n");
    sock.write(Buffer.alloc(64, 0xff));
  });
  await new Promise<void>((resolve) => garbage.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => proxy?.close(() => resolve()));
  await new Promise<void>((resolve) => garbage?.close(() => resolve()));
  await sshd?.stop();
});

const drain = (port: number, readsInPlace?: boolean) =>
  runCommand(
    {
      host: sshd.host,
      port,
      username: sshd.username,
      hostKey: sshd.hostKeyLine,
      command: "head -c 4000000 /dev/zero",
      maxOutputBytes: 1024,
    },
    {
      budgetMs: 30_000,
      secret: { privateKey: sshd.keys.ed25519.privateKey },
      ...(readsInPlace === undefined ? {} : { readsInPlace }),
    },
  );

// The flipped byte usually lands inside a packet (the tag fails); rarely in a length field.
const DAMAGED = /unable to authenticate data|Bad packet length/;

it("a corrupted packet on a target behind a jump host (a channel, not a socket) withdraws nothing", async () => {
  // The jump host is the sshd itself; the target is the corrupting proxy, reached through it.
  const r = await runCommand(
    {
      host: "127.0.0.1",
      port: proxyPort,
      username: sshd.username,
      hostKey: sshd.hostKeyLine,
      command: "head -c 4000000 /dev/zero",
      maxOutputBytes: 1024,
      via: { host: sshd.host, port: sshd.port, username: sshd.username, hostKey: sshd.hostKeyLine },
    },
    {
      budgetMs: 30_000,
      secret: { privateKey: sshd.keys.ed25519.privateKey },
      via: { secret: { privateKey: sshd.keys.ed25519.privateKey } },
    },
  );
  expect(r.via).toBeDefined();
  expect(r.error?.name).toBe("ProtocolError");
  expect(r.error?.message).toMatch(DAMAGED);
  expect(r.error?.message).not.toContain("in-place");
  expect(readsInPlaceWithdrawn()).toBe(false);
});

it("a bad packet before authentication (reads copied there) withdraws nothing", async () => {
  const r = await drain((garbage.address() as net.AddressInfo).port);
  expect(r.error?.name).toBe("ProtocolError");
  expect(r.error?.message).toContain("Bad packet length");
  expect(r.error?.message).not.toContain("in-place");
  expect(readsInPlaceWithdrawn()).toBe(false);
});

it("a corrupted packet with readsInPlace: false withdraws nothing", async () => {
  const r = await drain(proxyPort, false);
  expect(r.error?.name).toBe("ProtocolError");
  expect(r.error?.message).toMatch(DAMAGED);
  expect(r.error?.message).not.toContain("in-place");
  expect(readsInPlaceWithdrawn()).toBe(false);
});

it("a corrupted packet while reading in place: ProtocolError naming it, and in-place reads off", async () => {
  expect(readsInPlaceWithdrawn()).toBe(false);
  const direct = await drain(sshd.port);
  expect(direct.status).toBe("succeeded");
  expect(readsInPlaceWithdrawn()).toBe(false);

  const corrupted = await drain(proxyPort);
  expect(corrupted.status).not.toBe("succeeded");
  expect(corrupted.error?.name).toBe("ProtocolError");
  expect(corrupted.error?.message).toMatch(DAMAGED);
  expect(corrupted.error?.message).toContain("inbound cipher aes128-gcm@openssh.com");
  expect(corrupted.error?.message).toMatch(/after \d+ bytes read; a packet damaged in transit/);
  expect(corrupted.error?.message).toContain("later connections of this process read without");
  expect(readsInPlaceWithdrawn()).toBe(true);

  // Later sessions read into buffers of their own, and still drain whole.
  const after = await drain(sshd.port);
  expect(after.status).toBe("succeeded");
  expect(after.output.stdoutBytes).toBe(4_000_000);
});
