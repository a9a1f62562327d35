import { spawn } from "node:child_process";
import net from "node:net";
import { closeListener, listen } from "./ssh2-server.ts";

/** A misbehaving TCP endpoint on 127.0.0.1. */
export interface Adversary {
  host: "127.0.0.1";
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Closes the listener and destroys every accepted (and upstream) socket. */
  close(): Promise<void>;
}

/** A plausible server identification line. */
export const DEFAULT_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Generic accept loop: tracks sockets so close() can destroy them, ignores socket errors
 * (clients reset connections on purpose), and stops any pending behaviour once closed.
 */
async function adversary(
  onSocket: (socket: net.Socket, isClosed: () => boolean) => void,
  serverOpts: net.ServerOpts = {},
  extraSockets?: Set<net.Socket>,
): Promise<Adversary> {
  const sockets = extraSockets ?? new Set<net.Socket>();
  let closed = false;
  let count = 0;
  const server = net.createServer(serverOpts, (socket) => {
    count++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
    onSocket(socket, () => closed || socket.destroyed);
  });
  const port = await listen(server);
  return {
    host: "127.0.0.1",
    port,
    accepted: () => count,
    close: () => {
      closed = true;
      return closeListener(server, sockets);
    },
  };
}

/** Writes `parts` one by one with `delayMs` between them, as separate TCP segments. */
async function writeSegments(
  socket: net.Socket,
  parts: Buffer[],
  delayMs: number,
  isClosed: () => boolean,
): Promise<void> {
  // Without NODELAY, Nagle would coalesce small writes into one segment.
  socket.setNoDelay(true);
  for (let i = 0; i < parts.length; i++) {
    if (isClosed()) return;
    socket.write(parts[i]!);
    if (i < parts.length - 1) await sleep(delayMs);
  }
}

/** Splits `data` into `n` non-empty pieces of near-equal size. */
export function splitInto(data: Buffer, n: number): Buffer[] {
  const count = Math.max(1, Math.min(n, data.length));
  const parts: Buffer[] = [];
  const base = Math.floor(data.length / count);
  let extra = data.length % count;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const len = base + (extra-- > 0 ? 1 : 0);
    parts.push(data.subarray(at, at + len));
    at += len;
  }
  return parts;
}

/** Accepts TCP and sends nothing, ever (the incident: BannerTimeout). */
export function tarpit(): Promise<Adversary> {
  return adversary(() => {});
}

/**
 * Sends the banner in `segments` TCP writes `delayMs` apart, then stays silent (reads and
 * discards). Passes the banner phase; no key exchange follows.
 */
export function bannerInSegments(
  segments: number,
  delayMs: number,
  banner = DEFAULT_BANNER,
): Promise<Adversary> {
  return adversary((socket, isClosed) => {
    socket.resume();
    void writeSegments(socket, splitInto(Buffer.from(banner), segments), delayMs, isClosed);
  });
}

/** Sends the banner one byte at a time, `delayMs` apart (slowloris), then stays silent. */
export function bannerByteByByte(delayMs: number, banner = DEFAULT_BANNER): Promise<Adversary> {
  return bannerInSegments(Buffer.byteLength(banner), delayMs, banner);
}

/**
 * Sends bytes without a newline forever (respecting back-pressure) until the client goes:
 * an identification line that never ends (ProtocolError for oversized ident).
 */
export function endlessJunk(chunkBytes = 4096): Promise<Adversary> {
  return adversary((socket, isClosed) => {
    socket.resume();
    const chunk = Buffer.alloc(chunkBytes, 0x78); // 'x'
    const pump = () => {
      while (!isClosed()) {
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          return;
        }
        // Yield so one client can't starve the event loop on a fast loopback.
        setImmediate(pump);
        return;
      }
    };
    pump();
  });
}

/** Sends an SSH-1 identification (`SSH-1.5-`), then stays open and silent. */
export function ssh1Banner(): Promise<Adversary> {
  return adversary((socket) => {
    socket.resume();
    socket.write("SSH-1.5-OpenSSH_1.2.3\r\n");
  });
}

/** Sends a valid SSH-2 banner, then nothing (HandshakeTimeout). Reads and discards input. */
export function bannerThenSilence(banner = DEFAULT_BANNER): Promise<Adversary> {
  return adversary((socket) => {
    socket.resume();
    socket.write(banner);
  });
}

/** Accepts, then resets the connection (RST) after `afterMs` (default at once). */
export function acceptThenReset(afterMs = 0): Promise<Adversary> {
  return adversary((socket, isClosed) => {
    const reset = () => {
      if (!isClosed()) socket.resetAndDestroy();
    };
    if (afterMs > 0) setTimeout(reset, afterMs);
    else reset();
  });
}

/** Accepts, then closes cleanly (FIN) after `afterMs` (default at once). */
export function acceptThenFin(afterMs = 0): Promise<Adversary> {
  return adversary((socket, isClosed) => {
    socket.resume();
    const fin = () => {
      if (!isClosed()) socket.end();
    };
    if (afterMs > 0) setTimeout(fin, afterMs);
    else fin();
  });
}

/** A port nothing listens on (connect gets RST → ConnectRefused). close() is a no-op. */
export async function closedPort(): Promise<Adversary> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((r) => server.close(() => r()));
  return { host: "127.0.0.1", port, accepted: () => 0, close: async () => {} };
}

/** A listener whose accept queue is full: a new TCP connect to it hangs (ConnectTimeout). */
export interface FullAcceptQueue extends Adversary {
  /** Connections used to fill the queue (kept open until close()). */
  fillers: number;
}

/**
 * A listening socket (backlog 1) that nobody ever accepts from, pre-filled until the queue
 * is full, so the next SYN is dropped by the kernel and connect() hangs.
 *
 * libuv accepts on any listening fd it polls, so a Node listener can't "not accept". Instead
 * the listening fd is handed to a `sleep` child (which never calls accept) and the parent's
 * copy is closed; close() kills that child by PID.
 */
export async function fullAcceptQueue(port = 0): Promise<FullAcceptQueue> {
  const server = net.createServer();
  if (port === 0) await listen(server, 1);
  else {
    // A given port (the dependency lab turns a live proxy's port into a black hole).
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", 1, () => resolve());
    });
  }
  const address = server.address();
  port = typeof address === "object" && address !== null ? address.port : 0;
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  if (typeof fd !== "number" || fd < 0) throw new Error("listening fd not available");
  const holder = spawn("/bin/sleep", ["3600"], { stdio: ["ignore", "ignore", "ignore", fd] });
  holder.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    holder.once("spawn", () => resolve());
    holder.once("error", reject);
  });
  await new Promise<void>((r) => server.close(() => r()));

  const fillers = new Set<net.Socket>();
  const cleanup = async () => {
    for (const s of fillers) s.destroy();
    if (holder.pid !== undefined && holder.exitCode === null && holder.signalCode === null) {
      const exited = new Promise<void>((r) => holder.once("exit", () => r()));
      process.kill(holder.pid, "SIGKILL");
      await exited;
    }
  };
  try {
    // Linux queues backlog+1 connections; fill until a connect stops completing.
    for (let i = 0; i < 16; i++) {
      const sock = net.connect({ host: "127.0.0.1", port });
      sock.on("error", () => {});
      fillers.add(sock);
      const connected = await Promise.race([
        new Promise<boolean>((r) => sock.once("connect", () => r(true))),
        sleep(300).then(() => false),
      ]);
      if (!connected) {
        // This one hangs: the queue is full. Drop it; it was only a probe.
        sock.destroy();
        fillers.delete(sock);
        return {
          host: "127.0.0.1",
          port,
          accepted: () => 0,
          fillers: fillers.size,
          close: cleanup,
        };
      }
    }
    throw new Error("accept queue never filled: connects keep completing on this kernel");
  } catch (err) {
    await cleanup();
    throw err;
  }
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

interface ProxyState {
  silent: boolean;
  swallowClientFin: boolean;
  stopReading: boolean;
  /** Live client↔upstream pairs (for resetAll). */
  pairs: Set<Pair>;
  /** Client-facing sockets not yet closed. */
  clients: Set<net.Socket>;
}

function newProxyState(): ProxyState {
  return {
    silent: false,
    swallowClientFin: false,
    stopReading: false,
    pairs: new Set(),
    clients: new Set(),
  };
}

/**
 * Shared TCP proxy core: one upstream connection per accepted client. `firstServerData`
 * lets a variant rewrite the start of the server's stream (junk lines, split banner).
 */
async function proxyCore(
  targetPort: number,
  hooks: {
    /** Called before any server bytes reach the client; may write to the client first. */
    onClient?: (client: net.Socket) => void;
    /**
     * Per connection: returns the function that delivers server→client bytes.
     * Default: `client.write`.
     */
    serverToClient?: (client: net.Socket, isClosed: () => boolean) => (data: Buffer) => void;
  } = {},
  state: ProxyState = newProxyState(),
): Promise<Adversary> {
  const upstreams = new Set<net.Socket>();
  const all = new Set<net.Socket>();
  // allowHalfOpen: we decide ourselves whether a client's FIN is passed on (swallowClientFin).
  const base = await adversary(
    (client, isClosed) => {
      client.setNoDelay(true);
      const upstream = net.connect({ host: "127.0.0.1", port: targetPort, noDelay: true });
      const pair = { client, upstream };
      state.pairs.add(pair);
      state.clients.add(client);
      upstreams.add(upstream);
      all.add(upstream);
      upstream.on("error", () => {});
      upstream.once("close", () => {
        upstreams.delete(upstream);
        all.delete(upstream);
        state.pairs.delete(pair);
        if (!state.swallowClientFin) client.destroy();
      });
      client.once("close", () => {
        state.pairs.delete(pair);
        state.clients.delete(client);
        upstream.destroy();
      });
      if (state.stopReading) client.pause();
      hooks.onClient?.(client);
      const deliver = hooks.serverToClient?.(client, isClosed) ?? ((d: Buffer) => client.write(d));
      client.on("data", (data: Buffer) => {
        if (!state.silent) upstream.write(data);
      });
      upstream.on("data", (data: Buffer) => {
        if (!state.silent) deliver(data);
      });
      client.on("end", () => {
        if (!state.swallowClientFin) upstream.end();
      });
      upstream.on("end", () => {
        if (!state.swallowClientFin) client.end();
      });
    },
    { allowHalfOpen: true },
    all,
  );
  return {
    ...base,
    close: async () => {
      for (const u of upstreams) u.destroy();
      await base.close();
    },
  };
}

/**
 * A proxy to a real SSH server that sends `lines` junk lines (RFC 4253 §4.2 allows text
 * before the identification) to the client before any server byte. `lines` is a count of
 * generated lines or the lines themselves (without CRLF).
 */
export function junkThenProxy(targetPort: number, lines: number | string[]): Promise<Adversary> {
  const list =
    typeof lines === "number"
      ? Array.from({ length: lines }, (_, i) => `junk line ${i + 1}: not an ssh banner`)
      : lines;
  return proxyCore(targetPort, {
    onClient: (client) => {
      if (list.length > 0) client.write(list.map((l) => `${l}\r\n`).join(""));
    },
  });
}

/**
 * A proxy to a real SSH server that delivers the server's first line (its banner) in
 * `segments` separate TCP writes `delayMs` apart, then forwards everything unchanged.
 * Server bytes arriving meanwhile are held and sent in order after the banner.
 */
export function splitBannerProxy(
  targetPort: number,
  segments: number,
  delayMs: number,
): Promise<Adversary> {
  return proxyCore(targetPort, {
    serverToClient: (client, isClosed) => {
      let phase: "collect" | "trickle" | "pass" = "collect";
      let buf = Buffer.alloc(0);
      const pending: Buffer[] = [];
      return (data) => {
        if (phase === "pass") {
          client.write(data);
          return;
        }
        if (phase === "trickle") {
          pending.push(data);
          return;
        }
        buf = Buffer.concat([buf, data]);
        const nl = buf.indexOf(0x0a);
        if (nl === -1) return;
        phase = "trickle";
        const banner = buf.subarray(0, nl + 1);
        if (nl + 1 < buf.length) pending.push(buf.subarray(nl + 1));
        void writeSegments(client, splitInto(banner, segments), delayMs, isClosed).then(() => {
          // The server's next bytes (KEXINIT) go out only after the whole banner, in order.
          if (isClosed()) return;
          if (pending.length > 0) client.write(Buffer.concat(pending.splice(0)));
          phase = "pass";
        });
      };
    },
  });
}

/** Controls of a generic TCP proxy in front of a real server. */
export interface Proxy extends Adversary {
  /** Stop forwarding both ways (data is read and dropped); sockets stay open. */
  goSilent(): void;
  /** Forward again. */
  resume(): void;
  /** Stop reading from clients (their writes back up); applies to current and new clients. */
  stopReading(): void;
  /**
   * When a client sends FIN: don't pass it upstream, and never end or close the connection
   * toward the client (the peer that ignores FIN at teardown).
   */
  swallowClientFin(on?: boolean): void;
  /** RST every open connection (both sides). */
  resetAll(): void;
  /** Client-facing connections still open (including ones whose upstream has gone). */
  open(): number;
}

/** A plain TCP proxy to 127.0.0.1:targetPort with fault controls. */
export async function startProxy(targetPort: number): Promise<Proxy> {
  const state = newProxyState();
  const base = await proxyCore(targetPort, {}, state);
  return {
    ...base,
    goSilent: () => {
      state.silent = true;
    },
    resume: () => {
      state.silent = false;
    },
    stopReading: () => {
      state.stopReading = true;
      for (const p of state.pairs) p.client.pause();
    },
    swallowClientFin: (on = true) => {
      state.swallowClientFin = on;
    },
    resetAll: () => {
      for (const p of [...state.pairs]) {
        if (!p.upstream.destroyed) p.upstream.resetAndDestroy();
      }
      for (const c of [...state.clients]) {
        if (!c.destroyed) c.resetAndDestroy();
      }
    },
    open: () => [...state.clients].filter((c) => !c.destroyed).length,
  };
}
