/**
 * The fault farm: a child process that hosts every misbehaving server of the fault lab.
 *
 * Why a separate process: the engine's guarantee is "no socket or timer of the session is
 * alive when it returns", checked with `process.getActiveResourcesInfo()`. Servers in the
 * same process own sockets too (a tarpit never reads, so it never even notices the client
 * left), which would make every leak check ambiguous. With the servers here, every TCP
 * handle of the test process is a client handle.
 *
 * Protocol (IPC, `process.send`): requests `{ id, op, ... }`, replies `{ id, ok, ... }`.
 *   create  { spec: FaultServerSpec }   → { handle, port, hostKeyFingerprint? }
 *   control { handle, action }          → {}            (proxy controls)
 *   close   { handle }                  → {}
 *   stats   {}                          → { rssBytes }
 */
import net from "node:net";
import {
  type Adversary,
  acceptThenFin,
  acceptThenReset,
  bannerByteByByte,
  bannerThenSilence,
  closedPort,
  endlessJunk,
  fullAcceptQueue,
  junkThenProxy,
  splitBannerProxy,
  ssh1Banner,
  startProxy,
  type Proxy as TcpProxy,
  tarpit,
} from "../helpers/adversaries.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import {
  closeListener,
  type ExecContext,
  execBehaviours,
  listen,
  type Ssh2ServerScript,
  startSsh2Server,
} from "../helpers/ssh2-server.ts";
import { createDependencyServer, type DependencyHosted } from "./dependency-farm.ts";
import type { FarmReply, FarmRequest, FaultServerSpec, ProxyAction } from "./farm-protocol.ts";

interface Hosted {
  port: number;
  hostKeyFingerprint?: string;
  proxy?: TcpProxy;
  /** Dependency lab servers (dependency-farm.ts). */
  dependency?: DependencyHosted;
  close(): Promise<void>;
}

const hosted = new Map<number, Hosted>();
let nextHandle = 1;

function execOf(spec: Extract<FaultServerSpec, { kind: "ssh2" }>): Ssh2ServerScript["exec"] {
  const e = spec.exec;
  if (e === undefined) return undefined;
  switch (e.name) {
    case "echo":
      return execBehaviours.echo;
    case "neverExit":
      return execBehaviours.neverExit();
    case "exitWithoutClose":
      return execBehaviours.exitWithoutClose(e.code, e.stdout);
    case "closeWithoutExit":
      return execBehaviours.closeWithoutExit(e.stdout);
    case "stopReading":
      return execBehaviours.stopReading();
    case "zeroFlood":
      // Zero-filled 64 KiB buffers, honouring back-pressure, then exit 0 and close.
      return async (ctx: ExecContext) => {
        const chunk = Buffer.alloc(64 * 1024);
        let left = e.bytes;
        while (left > 0 && !ctx.channel.destroyed) {
          const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= piece.length;
          if (!ctx.channel.write(piece)) {
            await new Promise<void>((resolve) => {
              const done = () => {
                ctx.channel.off("drain", done);
                ctx.channel.off("close", done);
                resolve();
              };
              ctx.channel.once("drain", done);
              ctx.channel.once("close", done);
            });
          }
        }
        if (ctx.channel.destroyed) return;
        ctx.exit(0);
        ctx.close();
      };
  }
}

/** An ssh2 Server whose key exchange offers only `kex` (none of ssh2's client defaults). */
async function restrictedKexServer(kex: string[]): Promise<Hosted> {
  const server = await startSsh2Server({
    hostKey: generateEd25519KeyPair(),
    algorithms: { kex: kex as never },
  });
  return {
    port: server.port,
    hostKeyFingerprint: server.hostKeyFingerprint,
    close: () => server.close(),
  };
}

/**
 * A proxy to a real server with a per-connection byte filter. `clientFirst`: hold the
 * server's bytes (its banner) until the client's identification line arrived. `kexStall`:
 * pass the client's identification line upstream and nothing after it, so the server's
 * banner and KEXINIT reach the client but key exchange never completes.
 */
async function filterProxy(targetPort: number, mode: "clientFirst" | "kexStall"): Promise<Hosted> {
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: "127.0.0.1", port: targetPort, noDelay: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.once("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    let clientSeen = Buffer.alloc(0);
    let clientLineDone = false;
    const held: Buffer[] = [];
    client.on("data", (data: Buffer) => {
      if (clientLineDone) {
        if (mode === "clientFirst") upstream.write(data);
        return; // kexStall: nothing after the identification line goes upstream
      }
      clientSeen = Buffer.concat([clientSeen, data]);
      const nl = clientSeen.indexOf(0x0a);
      if (nl === -1) return;
      clientLineDone = true;
      if (mode === "kexStall") {
        upstream.write(clientSeen.subarray(0, nl + 1));
      } else {
        upstream.write(clientSeen);
        if (held.length > 0) client.write(Buffer.concat(held.splice(0)));
      }
    });
    upstream.on("data", (data: Buffer) => {
      if (mode === "clientFirst" && !clientLineDone) held.push(data);
      else client.write(data);
    });
  });
  const port = await listen(listener);
  return { port, close: () => closeListener(listener, sockets) };
}

function fromAdversary(a: Adversary, proxy?: TcpProxy): Hosted {
  return { port: a.port, close: () => a.close(), ...(proxy ? { proxy } : {}) };
}

async function create(spec: FaultServerSpec): Promise<Hosted> {
  switch (spec.kind) {
    case "fullAcceptQueue":
      return fromAdversary(await fullAcceptQueue());
    case "closedPort":
      return fromAdversary(await closedPort());
    case "tarpit":
      return fromAdversary(await tarpit());
    case "acceptThenReset":
      return fromAdversary(await acceptThenReset(spec.afterMs));
    case "acceptThenFin":
      return fromAdversary(await acceptThenFin(spec.afterMs));
    case "bannerByteByByte":
      return fromAdversary(await bannerByteByByte(spec.delayMs));
    case "endlessJunk":
      return fromAdversary(await endlessJunk());
    case "ssh1Banner":
      return fromAdversary(await ssh1Banner());
    case "bannerThenSilence":
      return fromAdversary(await bannerThenSilence());
    case "splitBannerProxy":
      return fromAdversary(
        await splitBannerProxy(spec.targetPort, spec.segments, spec.delayMs ?? 5),
      );
    case "junkThenProxy":
      return fromAdversary(await junkThenProxy(spec.targetPort, spec.lines));
    case "proxy": {
      const proxy = await startProxy(spec.targetPort);
      if (spec.swallowClientFin) proxy.swallowClientFin(true);
      return fromAdversary(proxy, proxy);
    }
    case "clientFirstProxy":
      return filterProxy(spec.targetPort, "clientFirst");
    case "kexStallProxy":
      return filterProxy(spec.targetPort, "kexStall");
    case "restrictedKex":
      return restrictedKexServer(spec.kex);
    case "awsBackend":
    case "faultProxy":
    case "depTarget": {
      const dependency = await createDependencyServer(spec);
      return {
        port: dependency.port,
        ...(dependency.hostKeyFingerprint
          ? { hostKeyFingerprint: dependency.hostKeyFingerprint }
          : {}),
        dependency,
        close: () => dependency.close(),
      };
    }
    case "ssh2": {
      const server = await startSsh2Server({
        ...(spec.auth ? { auth: spec.auth } : {}),
        ...(spec.session ? { session: spec.session } : {}),
        ...(spec.execRequest ? { execRequest: spec.execRequest } : {}),
        ...(spec.exec ? { exec: execOf(spec) } : {}),
      });
      return {
        port: server.port,
        hostKeyFingerprint: server.hostKeyFingerprint,
        close: () => server.close(),
      };
    }
  }
}

function control(proxy: TcpProxy, action: ProxyAction): void {
  if (action === "goSilent") proxy.goSilent();
  else if (action === "resetAll") proxy.resetAll();
  else if (action === "stopReading") proxy.stopReading();
  else proxy.swallowClientFin(true);
}

async function handle(req: FarmRequest): Promise<Omit<FarmReply, "id">> {
  switch (req.op) {
    case "create": {
      const h = await create(req.spec);
      const handleId = nextHandle++;
      hosted.set(handleId, h);
      return {
        ok: true,
        handle: handleId,
        port: h.port,
        ...(h.hostKeyFingerprint ? { hostKeyFingerprint: h.hostKeyFingerprint } : {}),
      };
    }
    case "control": {
      const h = hosted.get(req.handle);
      if (!h?.proxy) throw new Error(`handle ${req.handle} is not a proxy`);
      control(h.proxy, req.action);
      return { ok: true };
    }
    case "close": {
      const h = hosted.get(req.handle);
      hosted.delete(req.handle);
      await h?.close();
      return { ok: true };
    }
    case "stats":
      return { ok: true, rssBytes: process.memoryUsage().rss };
    case "depFault": {
      const proxy = hosted.get(req.handle)?.dependency?.proxy;
      if (!proxy) throw new Error(`handle ${req.handle} is not a fault proxy`);
      if (!req.at) {
        await proxy.setMode(req.mode);
        return { ok: true };
      }
      const target = hosted.get(req.at.target)?.dependency?.target;
      if (!target) throw new Error(`handle ${req.at.target} is not a dependency target`);
      target.arm(proxy, req.mode, req.at.moment);
      return { ok: true };
    }
    case "depSeed": {
      const seed = hosted.get(req.handle)?.dependency?.seed;
      if (!seed) throw new Error(`handle ${req.handle} takes no seed`);
      seed(req.name, req.value);
      return { ok: true };
    }
    case "depSeen": {
      const proxy = hosted.get(req.handle)?.dependency?.proxy;
      if (!proxy) throw new Error(`handle ${req.handle} is not a fault proxy`);
      return { ok: true, lines: [...proxy.seen] };
    }
    case "depExecs": {
      const target = hosted.get(req.handle)?.dependency?.target;
      if (!target) throw new Error(`handle ${req.handle} is not a dependency target`);
      return { ok: true, count: target.execs };
    }
  }
}

process.on("message", (msg: FarmRequest) => {
  handle(msg).then(
    (reply) => process.send?.({ id: msg.id, ...reply }),
    (err: unknown) => process.send?.({ id: msg.id, ok: false, error: String(err) }),
  );
});
// The parent going away ends the farm: close everything (kills accept-queue holders by PID).
process.on("disconnect", () => {
  void Promise.allSettled([...hosted.values()].map((h) => h.close())).then(() => process.exit(0));
});
process.send?.({ id: 0, ok: true });
