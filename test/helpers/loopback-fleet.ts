/**
 * Many SSH hosts on distinct loopback addresses, as in production: every host is its own
 * address (127.R.a.b) on one fixed port (22 by default), so the fleet's requests name hosts,
 * not ports. One in-process ssh2 `Server` answers every healthy address (each address has its
 * own TCP listener handing sockets to it with `injectSocket`); dead hosts are either tarpits
 * (accept TCP, never send a banner: the incident) or closed (nothing listens: the kernel answers
 * RST, ConnectRefused).
 *
 * Exec: a command containing `exit N` exits N, anything else echoes the command and exits 0.
 *
 * Needs root when the port is below 1024. Binds only inside 127.0.0.0/8: the second octet R is
 * picked at random (64–191) and another one is tried when an address is taken, so runs in
 * parallel worktrees do not collide.
 */
import net from "node:net";
import ssh2, { type AuthContext, type Connection, type Session } from "ssh2";
import { demoKeyPair } from "../../local/demo-key.ts";

const { Server, utils } = ssh2;

export type FleetHostRole = "healthy" | "tarpit" | "closed";

export interface FleetHost {
  /** The host's loopback address (127.R.a.b). */
  host: string;
  role: FleetHostRole;
}

export interface LoopbackFleet {
  hosts: FleetHost[];
  port: number;
  /** One known_hosts line covering every address of the fleet (`127.R.*.* ssh-ed25519 …`). */
  knownHostsLine: string;
  /** Sessions the ssh2 Server saw reach exec, and TCP connections each tarpit accepted. */
  stats(): { execs: number; tarpitAccepts: number };
  close(): Promise<void>;
}

export interface LoopbackFleetOptions {
  count: number;
  /** Role of host `i` (default: every 20th host from the 20th is dead, tarpit and closed alternating). */
  roleOf?: (index: number) => FleetHostRole;
  /** @default 22 */
  port?: number;
}

/** 5 % dead or hung: hosts 19, 39, 59… alternate tarpit, closed; host 0 is healthy. */
export function fivePercentDead(index: number): FleetHostRole {
  if (index % 20 !== 19) return "healthy";
  return Math.floor(index / 20) % 2 === 0 ? "tarpit" : "closed";
}

const ADDRESSES_PER_BLOCK = 250;

function addressOf(octet: number, index: number): string {
  return `127.${octet}.${Math.floor(index / ADDRESSES_PER_BLOCK)}.${(index % ADDRESSES_PER_BLOCK) + 1}`;
}

function listenOn(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog: 64 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Starts the fleet. Every listener and accepted socket is closed by `close()`.
 * @throws when no free second octet was found in 5 tries.
 */
export async function startLoopbackFleet(options: LoopbackFleetOptions): Promise<LoopbackFleet> {
  const port = options.port ?? 22;
  const roleOf = options.roleOf ?? fivePercentDead;
  if (options.count > ADDRESSES_PER_BLOCK * 256) throw new Error("too many hosts for one /16");
  const hostKey = demoKeyPair();
  const parsed = utils.parseKey(hostKey.public);
  if (parsed instanceof Error) throw parsed;
  const keyLine = `${parsed.type} ${parsed.getPublicSSH().toString("base64")}`;
  const sockets = new Set<net.Socket>();
  let execs = 0;
  let tarpitAccepts = 0;

  const ssh = new Server({ hostKeys: [hostKey.private] }, (client: Connection) => {
    client.on("error", () => {});
    client.on("authentication", (ctx: AuthContext) => {
      if (ctx.method === "none") ctx.reject(["publickey"]);
      else ctx.accept();
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        const session: Session = accept();
        session.on("exec", (acceptExec, _reject, info) => {
          execs++;
          const channel = acceptExec();
          // The command may come wrapped (`exec timeout -k 2 7.5 sh -c 'exit 1'`, remote bound).
          const code = /\bexit (\d+)/.exec(info.command);
          if (!code) channel.write(`${info.command}\n`);
          channel.exit(code ? Number(code[1]) : 0);
          channel.end();
        });
      });
    });
  });
  ssh.on("error", () => {});
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
  };
  const healthy = (socket: net.Socket) => {
    track(socket);
    socket.setNoDelay(true);
    ssh.injectSocket(socket);
  };
  const tarpit = (socket: net.Socket) => {
    track(socket);
    tarpitAccepts++;
    // Read and drop what the client sends, answer nothing; close once the client has gone
    // (else every abandoned connection stays in CLOSE-WAIT until the fleet closes).
    socket.resume();
    socket.once("end", () => socket.destroy());
  };

  for (let attempt = 0; attempt < 5; attempt++) {
    const octet = 64 + Math.floor(Math.random() * 128);
    const listeners: net.Server[] = [];
    const hosts: FleetHost[] = [];
    try {
      for (let i = 0; i < options.count; i++) {
        const role = roleOf(i);
        const host = addressOf(octet, i);
        hosts.push({ host, role });
        if (role === "closed") continue;
        const listener = net.createServer(role === "healthy" ? healthy : tarpit);
        listeners.push(listener);
        await listenOn(listener, host, port);
      }
    } catch (err) {
      await Promise.all(listeners.map((l) => closeServer(l)));
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") continue;
      throw err;
    }
    return {
      hosts,
      port,
      knownHostsLine: `127.${octet}.*.* ${keyLine}`,
      stats: () => ({ execs, tarpitAccepts }),
      close: async () => {
        for (const s of sockets) s.destroy();
        await Promise.all(listeners.map((l) => closeServer(l)));
      },
    };
  }
  throw new Error(
    `no free 127.R.0.0/16 block on port ${port} in 5 tries: something listens on every tried address (a server bound to 0.0.0.0:${port}, such as a system sshd, takes the port on all of 127.0.0.0/8); stop it or bind it to one address`,
  );
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}
