import { createHash } from "node:crypto";
import net from "node:net";
import ssh2, {
  type Algorithms,
  type AuthContext,
  type Connection,
  type ServerChannel,
  type Session,
} from "ssh2";
// ssh2 is CommonJS: its values come from the default export under ESM.
import { demoKeyPair } from "./demo-key.ts";

const { Server, utils } = ssh2;

/**
 * A scripted ssh2 `Server` on loopback: the one in-process SSH server of the project. The demo
 * targets (`demo-targets.ts`) are a script on it, and so are the tests' fault servers
 * (`test/helpers/ssh2-server.ts` re-exports it). Local mode only: never imported by a deployed
 * handler.
 */

/** What to do with one authentication attempt. */
export type AuthDecision =
  /** USERAUTH_SUCCESS. */
  | "accept"
  /** USERAUTH_FAILURE, no partial success. */
  | "reject"
  /** Never reply: the client waits (AuthTimeout tests). */
  | "never"
  /** USERAUTH_FAILURE with partial success set: the server keeps asking for more. */
  | "partial";

/** What to do with a channel open or an exec request. */
export type RequestDecision = "accept" | "reject" | "never";

/** Passed to an exec handler: the accepted channel plus shortcuts for common behaviours. */
export interface ExecContext {
  command: string;
  channel: ServerChannel;
  connection: Connection;
  /** Write to stdout. */
  stdout(data: string | Buffer): void;
  /** Write to stderr (extended data). */
  stderr(data: string | Buffer): void;
  /** Send exit-status (number) or exit-signal (e.g. "TERM"); does not close. */
  exit(codeOrSignal: number | string): void;
  /** EOF + CHANNEL_CLOSE. */
  close(): void;
  /** Write `bytes` bytes to stdout (or stderr), honouring back-pressure; resolves when written. */
  flood(bytes: number, stream?: "stdout" | "stderr"): Promise<void>;
  /** Stop reading stdin: the window is never re-opened, so the client's writes back up. */
  stopReading(): void;
  /** Everything the client has written to stdin so far (while reading). */
  stdin(): Buffer;
}

/** Server behaviour; every hook is optional. */
export interface Ssh2ServerScript {
  /**
   * Authentication: a fixed decision or a function of the attempt. Default: reject the
   * `none` method (so clients actually present a credential) and accept any other.
   */
  auth?: AuthDecision | ((ctx: AuthContext) => AuthDecision);
  /** Session channel open. Default "accept". */
  session?: RequestDecision;
  /** With `session` "accept": confirm the channel open only after this many ms. Default 0. */
  sessionDelayMs?: number;
  /** Exec request reply. Default "accept". */
  execRequest?: RequestDecision;
  /**
   * What the accepted exec does. Default: {@link execBehaviours.echo} — writes the command
   * and a newline to stdout, exit 0, close.
   */
  exec?: (ctx: ExecContext) => void | Promise<void>;
  /** Reply to client `signal` requests on the session (they are always recorded). */
  onSignal?: (name: string, ctx: ExecContext | undefined) => void;
  /** Server identification override (e.g. "SSH-2.0-Fake"); ssh2 prefixes "SSH-2.0-". */
  ident?: string;
  /** Host key pair (OpenSSH format). Default: one ed25519 key per process. */
  hostKey?: { private: string; public: string };
  /** Algorithms the server offers (e.g. only one `kex`). Default: ssh2's. */
  algorithms?: Algorithms;
}

/** What the server saw, in order: tests assert on it (e.g. "no auth attempt was made"). */
export type ServerEvent =
  | { type: "connection"; remotePort: number }
  | { type: "auth"; method: string; username: string; decision: AuthDecision }
  | { type: "ready" }
  | { type: "session"; decision: RequestDecision }
  /** The session channel open was confirmed (after `sessionDelayMs`). */
  | { type: "session-confirmed" }
  | { type: "exec"; command: string; decision: RequestDecision }
  | { type: "signal"; name: string }
  | { type: "channel-close" }
  | { type: "connection-end" };

/** A running scripted ssh2 server. */
export interface Ssh2Server {
  host: "127.0.0.1";
  port: number;
  /** `ssh-ed25519 AAAA…` */
  hostKeyLine: string;
  /** `SHA256:…` (base64 without padding, as OpenSSH prints it). */
  hostKeyFingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…` */
  knownHostsLine: string;
  /** Events seen so far. */
  events: ServerEvent[];
  /** Currently open accepted sockets. */
  openSockets(): number;
  /** Closes the listener and destroys every accepted socket. */
  close(): Promise<void>;
}

/** Ready-made exec behaviours for {@link Ssh2ServerScript.exec}. */
export const execBehaviours = {
  /** Echo the command on stdout, exit 0, close. */
  echo: (ctx: ExecContext) => {
    ctx.stdout(`${ctx.command}\n`);
    ctx.exit(0);
    ctx.close();
  },
  /** Write the given output, exit with `code`, close. */
  exitWith:
    (code: number, out: { stdout?: string; stderr?: string } = {}) =>
    (ctx: ExecContext) => {
      if (out.stdout) ctx.stdout(out.stdout);
      if (out.stderr) ctx.stderr(out.stderr);
      ctx.exit(code);
      ctx.close();
    },
  /** Exit by signal (e.g. "KILL"), close. */
  exitWithSignal: (signal: string) => (ctx: ExecContext) => {
    ctx.exit(signal);
    ctx.close();
  },
  /** Never exit, never close (CommandTimeout). */
  neverExit: () => (_ctx: ExecContext) => {},
  /** Send exit status but never close the channel (the engine's exit grace). */
  exitWithoutClose: (code: number, stdout?: string) => (ctx: ExecContext) => {
    if (stdout) ctx.stdout(stdout);
    ctx.exit(code);
  },
  /** Close the channel without any exit status. */
  closeWithoutExit: (stdout?: string) => (ctx: ExecContext) => {
    if (stdout) ctx.stdout(stdout);
    ctx.close();
  },
  /** Write `bytes` bytes, then exit 0 and close. */
  flood:
    (bytes: number, stream: "stdout" | "stderr" = "stdout") =>
    async (ctx: ExecContext) => {
      await ctx.flood(bytes, stream);
      ctx.exit(0);
      ctx.close();
    },
  /** Stop reading stdin and never exit. */
  stopReading: () => (ctx: ExecContext) => {
    ctx.stopReading();
  },
  /** Read stdin until EOF, echo it on stdout, exit 0, close. */
  catStdin: () => (ctx: ExecContext) => {
    ctx.channel.on("end", () => {
      ctx.stdout(ctx.stdin());
      ctx.exit(0);
      ctx.close();
    });
  },
} as const;

/** SHA256 fingerprint of a public key blob, OpenSSH style. */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** One ed25519 host key per process is enough: each test may still start many servers. */
let hostKeyCache: { private: string; public: string } | undefined;

function makeExecContext(command: string, channel: ServerChannel, connection: Connection) {
  const received: Buffer[] = [];
  let reading = true;
  channel.on("data", (chunk: Buffer) => {
    if (reading) received.push(chunk);
  });
  const ctx: ExecContext = {
    command,
    channel,
    connection,
    stdout: (data) => {
      channel.write(data);
    },
    stderr: (data) => {
      channel.stderr.write(data);
    },
    exit: (codeOrSignal) => {
      if (typeof codeOrSignal === "number") channel.exit(codeOrSignal);
      else channel.exit(codeOrSignal, false, "");
    },
    close: () => {
      channel.end();
    },
    flood: async (bytes, stream = "stdout") => {
      const target = stream === "stdout" ? channel : channel.stderr;
      const chunk = Buffer.alloc(32 * 1024, 0x61);
      let left = bytes;
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!target.write(piece)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              target.off("drain", done);
              channel.off("close", done);
              resolve();
            };
            target.once("drain", done);
            channel.once("close", done);
          });
          if (channel.destroyed) return;
        }
      }
    },
    stopReading: () => {
      reading = false;
      // Paused and never consumed: ssh2 adjusts the window only as data is read.
      channel.pause();
    },
    stdin: () => Buffer.concat(received),
  };
  return ctx;
}

/**
 * Starts a scripted ssh2 `Server` on 127.0.0.1 (ephemeral port) with an ed25519 host key.
 * Default script: accept any real credential, exec echoes its command and exits 0.
 */
export async function startSsh2Server(script: Ssh2ServerScript = {}): Promise<Ssh2Server> {
  hostKeyCache ??= demoKeyPair();
  const hostKey = script.hostKey ?? hostKeyCache;
  const parsed = utils.parseKey(hostKey.public);
  if (parsed instanceof Error) throw parsed;
  const blob = parsed.getPublicSSH();
  const hostKeyLine = `${parsed.type} ${blob.toString("base64")}`;
  const events: ServerEvent[] = [];
  const sockets = new Set<net.Socket>();

  const server = new Server(
    {
      hostKeys: [hostKey.private],
      ...(script.ident ? { ident: script.ident } : {}),
      ...(script.algorithms ? { algorithms: script.algorithms } : {}),
    },
    (client: Connection) => {
      // Swallow client errors (resets, protocol errors): the client side is what's under test.
      client.on("error", () => {});
      client.on("end", () => events.push({ type: "connection-end" }));
      client.on("authentication", (ctx: AuthContext) => {
        let decision: AuthDecision;
        if (typeof script.auth === "function") decision = script.auth(ctx);
        else if (script.auth) decision = script.auth;
        else decision = ctx.method === "none" ? "reject" : "accept";
        events.push({ type: "auth", method: ctx.method, username: ctx.username, decision });
        if (decision === "accept") ctx.accept();
        else if (decision === "reject") ctx.reject(["publickey", "password"]);
        else if (decision === "partial") ctx.reject(["publickey", "password"], true);
        // "never": leave the request unanswered
      });
      client.on("ready", () => {
        events.push({ type: "ready" });
        client.on("session", (accept, reject) => {
          const decision = script.session ?? "accept";
          events.push({ type: "session", decision });
          if (decision === "reject") {
            reject();
            return;
          }
          if (decision === "never") return;
          if (script.sessionDelayMs) {
            const timer = setTimeout(() => openSession(accept), script.sessionDelayMs);
            client.once("close", () => clearTimeout(timer));
          } else openSession(accept);
        });
        const openSession = (accept: () => Session) => {
          const session: Session = accept();
          events.push({ type: "session-confirmed" });
          let execCtx: ExecContext | undefined;
          session.on("signal", (acceptSignal, _reject, info) => {
            events.push({ type: "signal", name: info.name });
            acceptSignal?.();
            script.onSignal?.(info.name, execCtx);
          });
          session.on("close", () => events.push({ type: "channel-close" }));
          session.on("exec", (acceptExec, rejectExec, info) => {
            const execDecision = script.execRequest ?? "accept";
            events.push({ type: "exec", command: info.command, decision: execDecision });
            if (execDecision === "reject") {
              rejectExec();
              return;
            }
            if (execDecision === "never") return;
            const channel = acceptExec();
            execCtx = makeExecContext(info.command, channel, client);
            const handler = script.exec ?? execBehaviours.echo;
            Promise.resolve(handler(execCtx)).catch(() => {
              // The client may vanish mid-write; that is the client's business.
            });
          });
        };
      });
    },
  );
  server.on("error", () => {});

  // Our own listener, handing sockets to ssh2: this is how close() can reach every socket.
  const listener = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    // Like sshd: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per round trip.
    socket.setNoDelay(true);
    socket.once("close", () => sockets.delete(socket));
    events.push({ type: "connection", remotePort: socket.remotePort ?? 0 });
    server.injectSocket(socket);
  });
  const port = await listen(listener);

  return {
    host: "127.0.0.1",
    port,
    hostKeyLine,
    hostKeyFingerprint: fingerprintOfBlob(blob),
    knownHostsLine: `[127.0.0.1]:${port} ${hostKeyLine}`,
    events,
    openSockets: () => sockets.size,
    close: () => closeListener(listener, sockets),
  };
}

/** Listens on 127.0.0.1:0 and resolves the port. */
export function listen(server: net.Server, backlog?: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    const onListening = () => {
      server.off("error", reject);
      const addr = server.address();
      resolve(typeof addr === "object" && addr !== null ? addr.port : 0);
    };
    if (backlog === undefined) server.listen(0, "127.0.0.1", onListening);
    else server.listen(0, "127.0.0.1", backlog, onListening);
  });
}

/** Closes a listener and destroys its accepted sockets; resolves once the listener is closed. */
export function closeListener(server: net.Server, sockets: Iterable<net.Socket>): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
