/**
 * The demo's SSH targets, embedded so `npm run demo` needs no sshd: an ssh2 `Server` that runs
 * each exec with `sh -c` on this machine (a demo, on loopback, for one generated key only),
 * and a raw TCP target that accepts and never sends its identification line (the incident).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import net from "node:net";
import ssh2, { type Connection, type ParsedKey } from "ssh2";
// ssh2 is CommonJS: its values come from the default export under ESM.
import { demoKeyPair } from "./demo-key.ts";

const { Server, utils } = ssh2;

/** A running demo target. */
export interface DemoTarget {
  port: number;
  close(): Promise<void>;
}

/** A demo SSH server and its pinned host key. */
export interface DemoSshServer extends DemoTarget {
  /** `ssh-ed25519 AAAA…` */
  hostKeyLine: string;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

/**
 * An ssh2 server on 127.0.0.1 accepting one public key, running commands with `sh -c`.
 * Honours SSH `signal` requests and kills every command whose session ends.
 */
export async function startDemoSshServer(options: {
  username: string;
  authorizedKey: ParsedKey;
}): Promise<DemoSshServer> {
  const hostKey = demoKeyPair();
  const parsedHost = utils.parseKey(hostKey.public);
  if (parsedHost instanceof Error) throw parsedHost;
  const hostKeyLine = `${parsedHost.type} ${parsedHost.getPublicSSH().toString("base64")}`;
  const allowed = options.authorizedKey;
  const allowedBlob = allowed.getPublicSSH();
  const connections = new Set<Connection>();
  const children = new Set<ChildProcess>();

  const server = new Server({ hostKeys: [hostKey.private] }, (client: Connection) => {
    connections.add(client);
    client.on("error", () => {});
    client.on("close", () => connections.delete(client));
    client.on("authentication", (ctx) => {
      if (
        ctx.method === "publickey" &&
        ctx.username === options.username &&
        ctx.key.algo === allowed.type &&
        ctx.key.data.length === allowedBlob.length &&
        timingSafeEqual(ctx.key.data, allowedBlob) &&
        (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true)
      ) {
        ctx.accept();
        return;
      }
      ctx.reject(["publickey"]);
    });
    client.on("session", (acceptSession) => {
      const session = acceptSession();
      let child: ChildProcess | undefined;
      session.on("signal", (accept, _reject, info) => {
        accept?.();
        if (child) killGroup(child, `SIG${info.name}` as NodeJS.Signals);
      });
      session.on("close", () => {
        if (child) killGroup(child, "SIGKILL");
      });
      session.on("exec", (accept, _reject, info) => {
        const stream = accept();
        const proc = spawn("/bin/sh", ["-c", info.command], {
          detached: true,
          env: { ...process.env, SHELL: "/bin/sh" },
          stdio: ["pipe", "pipe", "pipe"],
        });
        child = proc;
        children.add(proc);
        proc.stdout?.on("data", (d: Buffer) => stream.write(d));
        proc.stderr?.on("data", (d: Buffer) => stream.stderr.write(d));
        stream.on("data", (d: Buffer) => proc.stdin?.write(d));
        stream.on("end", () => proc.stdin?.end());
        proc.stdin?.on("error", () => {});
        proc.on("error", () => {});
        proc.on("close", (code, signal) => {
          children.delete(proc);
          try {
            if (signal) stream.exit(signal.replace(/^SIG/, ""), false, "");
            else stream.exit(code ?? 0);
            stream.end();
          } catch {
            // The client is gone; nothing to tell it.
          }
        });
      });
    });
  });
  // Real sshd sets TCP_NODELAY; without it Nagle + delayed ACK add ~40 ms per round trip.
  (server as unknown as { _srv: net.Server })._srv.on("connection", (s: net.Socket) =>
    s.setNoDelay(true),
  );
  const port = await listen(server as unknown as net.Server);
  return {
    port,
    hostKeyLine,
    close: async () => {
      for (const child of children) killGroup(child, "SIGKILL");
      for (const c of connections) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP server on 127.0.0.1 that accepts connections and never says a word. */
export async function startHungTarget(): Promise<DemoTarget> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    // Read and discard (never answer), so the client's FIN closes this end too: the demo
    // runs in the handler's process, whose leak gauge counts every open TCP socket.
    socket.resume();
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
