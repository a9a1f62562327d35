/**
 * The demo's SSH targets, embedded so `npm run demo` needs no sshd: an ssh2 `Server` that runs
 * each exec with `sh -c` on this machine (a demo, on loopback, for one generated key only),
 * and a raw TCP target that accepts and never sends its identification line (the incident).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import net from "node:net";
import type { ParsedKey } from "ssh2";
import { demoKeyPair } from "./demo-key.ts";
import { type ExecContext, listen, startSsh2Server } from "./ssh2-server.ts";

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

/**
 * An ssh2 server on 127.0.0.1 accepting one public key, running commands with `sh -c`: a
 * script on the project's one in-process server ({@link startSsh2Server}). Honours SSH
 * `signal` requests and kills every command whose session ends.
 */
export async function startDemoSshServer(options: {
  username: string;
  authorizedKey: ParsedKey;
}): Promise<DemoSshServer> {
  const allowed = options.authorizedKey;
  const allowedBlob = allowed.getPublicSSH();
  const children = new Set<ChildProcess>();
  const running = new WeakMap<ExecContext, ChildProcess>();

  const server = await startSsh2Server({
    hostKey: demoKeyPair(),
    auth: (ctx) =>
      ctx.method === "publickey" &&
      ctx.username === options.username &&
      ctx.key.algo === allowed.type &&
      ctx.key.data.length === allowedBlob.length &&
      timingSafeEqual(ctx.key.data, allowedBlob) &&
      (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true)
        ? "accept"
        : "reject",
    onSignal: (name, ctx) => {
      const child = ctx && running.get(ctx);
      if (child) killGroup(child, `SIG${name}` as NodeJS.Signals);
    },
    exec: (ctx) => {
      const stream = ctx.channel;
      const proc = spawn("/bin/sh", ["-c", ctx.command], {
        detached: true,
        env: { ...process.env, SHELL: "/bin/sh" },
        stdio: ["pipe", "pipe", "pipe"],
      });
      running.set(ctx, proc);
      children.add(proc);
      stream.on("close", () => killGroup(proc, "SIGKILL"));
      proc.stdout?.on("data", (d: Buffer) => ctx.stdout(d));
      proc.stderr?.on("data", (d: Buffer) => ctx.stderr(d));
      stream.on("data", (d: Buffer) => proc.stdin?.write(d));
      stream.on("end", () => proc.stdin?.end());
      proc.stdin?.on("error", () => {});
      proc.on("error", () => {});
      proc.on("close", (code, signal) => {
        children.delete(proc);
        try {
          ctx.exit(signal ? signal.replace(/^SIG/, "") : (code ?? 0));
          ctx.close();
        } catch {
          // The client is gone; nothing to tell it.
        }
      });
    },
  });
  return {
    port: server.port,
    hostKeyLine: server.hostKeyLine,
    close: async () => {
      for (const child of children) killGroup(child, "SIGKILL");
      await server.close();
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
