import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { hostKeyFields, killTrees, serveInetd } from "./lab-server.ts";
import {
  allProcesses,
  descendantsOf,
  freePort,
  isRoot,
  keygen,
  killPid,
  SSHD_PATH,
  type SshdServer,
  startSshd,
} from "./sshd.ts";

const execFileAsync = promisify(execFile);
export const IP_PATH = "/usr/sbin/ip";

/**
 * A jump-host lab. A network namespace of its own (unique name, deleted by {@link JumpLab.stop})
 * holds the TARGET: a real OpenSSH sshd listening on 127.0.0.1 INSIDE the namespace, which
 * this process (root namespace) cannot reach. Jump hosts are real sshd too, served
 * inetd-style: a listener on 127.0.0.1 in the root namespace spawns, per connection,
 * `ip netns exec <ns> sshd -i` with the accepted socket on stdin/stdout, so the jump sshd
 * lives in the namespace and its direct-tcpip to 127.0.0.1:<port> lands on the target.
 * Everything it starts is ended by PID. Root and iproute2 required: missing ones throw.
 */
export interface JumpLab {
  ns: string;
  /** The target sshd (inside the namespace; `host` 127.0.0.1 there). */
  target: SshdServer;
  /** A listener inside the namespace that accepts and never writes a byte. */
  silentTargetPort: number;
  /** A port inside the namespace where nothing listens. */
  closedTargetPort: number;
  /** Starts an inetd-style jump sshd with these extra config lines. */
  jump(extraConfig?: string[]): Promise<JumpServer>;
  /** A raw listener on 127.0.0.1 (root namespace) that accepts and never writes (no banner). */
  tarpit(): Promise<{ port: number; stop(): Promise<void> }>;
  stop(): Promise<void>;
}

export interface JumpServer {
  host: "127.0.0.1";
  port: number;
  hostKeyLine: string;
  hostKeyFingerprint: string;
  knownHostsLine: string;
  /** stderr of the per-connection sshd processes so far. */
  log(): string;
  /** Kills the per-connection sshd processes now (by PID): open sessions through it drop. */
  killSessions(): Promise<void>;
  /**
   * Freezes the per-connection sshd processes (SIGSTOP, by PID): the jump host goes silent
   * while its TCP connections stay open — a hung machine. `killSessions`/`stop` end them.
   */
  freezeSessions(): void;
  stop(): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(IP_PATH, args);
  return stdout;
}

async function namespacePids(ns: string): Promise<number[]> {
  try {
    return (await ip("netns", "pids", ns))
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number);
  } catch {
    return [];
  }
}

/** A node listener inside the namespace that accepts and stays silent; resolves its process. */
async function silentListenerInNs(ns: string, port: number): Promise<ChildProcess> {
  const script = `const s=require("net").createServer(()=>{});s.listen(${port},"127.0.0.1",()=>console.log("ready"));`;
  const child = spawn(IP_PATH, ["netns", "exec", ns, process.execPath, "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    const timer = setTimeout(
      () => reject(new Error(`silent listener did not start: ${err}`)),
      10_000,
    );
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.stdout!.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`silent listener exited (${code}): ${err}`));
    });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

export async function startJumpLab(): Promise<JumpLab> {
  if (!isRoot) throw new Error("the jump-host lab needs root (network namespaces, sshd -i)");
  if (!existsSync(IP_PATH)) throw new Error(`the jump-host lab needs iproute2 (${IP_PATH})`);
  const ns = `bssh-jmp-${randomBytes(4).toString("hex")}`;
  const stoppers: (() => Promise<void>)[] = [];
  let nsCreated = false;
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => {});
    stoppers.length = 0;
    if (!nsCreated) return;
    // Anything still in the namespace was started by this lab.
    for (const pid of await namespacePids(ns)) killPid(pid, "SIGKILL");
    await ip("netns", "del", ns).catch(() => {});
    nsCreated = false;
  };
  try {
    await ip("netns", "add", ns);
    nsCreated = true;
    await ip("-n", ns, "link", "set", "lo", "up");
    const target = await startSshd({
      netns: ns,
      listenAddress: "127.0.0.1",
      passwordAuthentication: false,
    });
    stoppers.push(() => target.stop());
    const silentTargetPort = await freePort();
    const silent = await silentListenerInNs(ns, silentTargetPort);
    stoppers.push(() => killTrees([silent]));
    const closedTargetPort = await freePort();

    const dir = await mkdtemp(path.join(os.tmpdir(), "bssh-jump-"));
    stoppers.push(() => rm(dir, { recursive: true, force: true }));
    let jumps = 0;

    const jump = async (extraConfig: string[] = []): Promise<JumpServer> => {
      jumps += 1;
      const name = `jump${jumps}`;
      const hostKey = await keygen(dir, `${name}_host_ed25519_key`, ["-t", "ed25519", "-N", ""]);
      const hostKeyLine = hostKey.publicKey.split(" ").slice(0, 2).join(" ");
      const config = [
        // First: sshd keeps the first value it reads for an option.
        ...extraConfig,
        `HostKey ${path.join(dir, `${name}_host_ed25519_key`)}`,
        // The target's authorized_keys: the same client keys log in at both hops.
        `AuthorizedKeysFile ${path.join(target.dir, "authorized_keys")}`,
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "UseDNS no",
        "LogLevel VERBOSE",
      ];
      const configPath = path.join(dir, `${name}_sshd_config`);
      await writeFile(configPath, `${config.join("\n")}\n`, { mode: 0o644 });
      const log = { text: "" };
      const inetd = await serveInetd((sock) => {
        const child = spawn(
          IP_PATH,
          ["netns", "exec", ns, SSHD_PATH, "-i", "-e", "-f", configPath],
          { stdio: [sock, sock, "pipe"] },
        );
        child.stderr!.on("data", (c: Buffer) => {
          log.text += c.toString();
        });
        return child;
      });
      stoppers.push(() => inetd.stop());
      return {
        host: "127.0.0.1",
        port: inetd.port,
        ...hostKeyFields(inetd.port, hostKeyLine),
        log: () => log.text,
        killSessions: () => inetd.killChildren(),
        freezeSessions: () => {
          const procs = allProcesses();
          for (const child of inetd.children) {
            if (child.pid === undefined) continue;
            killPid(child.pid, "SIGSTOP");
            for (const pid of descendantsOf(child.pid, procs)) killPid(pid, "SIGSTOP");
          }
        },
        stop: () => inetd.stop(),
      };
    };

    const tarpit = async () => {
      const sockets = new Set<net.Socket>();
      const server = net.createServer((sock) => {
        sockets.add(sock);
        sock.on("error", () => {});
        // Read (and drop) what the client sends, so its FIN is seen and this side closes.
        sock.resume();
        sock.once("close", () => sockets.delete(sock));
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
      });
      let stopped = false;
      const stopTarpit = async () => {
        if (stopped) return;
        stopped = true;
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      };
      stoppers.push(stopTarpit);
      return { port: (server.address() as net.AddressInfo).port, stop: stopTarpit };
    };

    return { ns, target, silentTargetPort, closedTargetPort, jump, tarpit, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
