import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { FaultMoment } from "./dependency-farm.ts";
import type { ProxyMode } from "./dependency-proxy.ts";
import type { FarmReply, FarmRequest, FaultServerSpec, ProxyAction } from "./farm-protocol.ts";

const FARM_SCRIPT = fileURLToPath(new URL("./farm-server.ts", import.meta.url));

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** A server hosted by the farm. */
export interface FarmServer {
  handle: number;
  host: "127.0.0.1";
  port: number;
  /** Set for ssh2-based servers: pin it as the request's `hostKey`. */
  hostKeyFingerprint?: string;
}

/** The test side of the fault farm: a child process hosting every fault server. */
export interface Farm {
  create(spec: FaultServerSpec): Promise<FarmServer>;
  control(server: FarmServer, action: ProxyAction): Promise<void>;
  close(server: FarmServer): Promise<void>;
  /** Dependency lab: switches a fault proxy now, or when `at.target`'s command reaches `at.moment`. */
  depFault(
    proxy: FarmServer,
    mode: ProxyMode,
    at?: { target: FarmServer; moment: FaultMoment },
  ): Promise<void>;
  /** Dependency lab: puts a secret / parameter into a backend. */
  depSeed(backend: FarmServer, name: string, value: string): Promise<void>;
  /** Dependency lab: execs a target has seen. */
  depExecs(target: FarmServer): Promise<number>;
  /** Dependency lab: request lines a fault proxy has seen (with the mode at the time). */
  depSeen(proxy: FarmServer): Promise<string[]>;
  /** Farm process RSS (bytes). */
  rss(): Promise<number>;
  pid: number;
  /** Closes every server and ends the farm process (by its PID). */
  stop(): Promise<void>;
}

/**
 * Starts the farm (`node --import tsx farm-server.ts`, IPC). Its sockets live in another
 * process, so this process's `getActiveResourcesInfo()` sees only client handles (plus the
 * IPC pipe, which is no session resource type).
 */
export async function startFarm(): Promise<Farm> {
  const child: ChildProcess = fork(FARM_SCRIPT, [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map<number, (reply: FarmReply) => void>();
  let nextId = 1;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`fault farm exited early (code ${code})`)));
    child.once("message", () => resolve());
  });
  child.on("message", (reply: FarmReply) => {
    const done = pending.get(reply.id);
    pending.delete(reply.id);
    done?.(reply);
  });
  const call = (req: WithoutId<FarmRequest>): Promise<FarmReply> => {
    const id = nextId++;
    return new Promise<FarmReply>((resolve, reject) => {
      pending.set(id, (reply) => {
        if (reply.ok) resolve(reply);
        else reject(new Error(`fault farm ${req.op} failed: ${reply.error}`));
      });
      child.send({ ...req, id });
    });
  };
  return {
    pid: child.pid!,
    async create(spec) {
      const r = await call({ op: "create", spec });
      return {
        handle: r.handle!,
        host: "127.0.0.1",
        port: r.port!,
        ...(r.hostKeyFingerprint ? { hostKeyFingerprint: r.hostKeyFingerprint } : {}),
      };
    },
    async control(server, action) {
      await call({ op: "control", handle: server.handle, action });
    },
    async close(server) {
      await call({ op: "close", handle: server.handle });
    },
    async depFault(proxy, mode, at) {
      await call({
        op: "depFault",
        handle: proxy.handle,
        mode,
        ...(at ? { at: { target: at.target.handle, moment: at.moment } } : {}),
      });
    },
    async depSeed(backend, name, value) {
      await call({ op: "depSeed", handle: backend.handle, name, value });
    },
    async depExecs(target) {
      return (await call({ op: "depExecs", handle: target.handle })).count!;
    },
    async depSeen(proxy) {
      return (await call({ op: "depSeen", handle: proxy.handle })).lines!;
    },
    async rss() {
      return (await call({ op: "stats" })).rssBytes!;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // Disconnecting makes the farm close its servers and exit; kill it by PID if it lingers.
      child.disconnect();
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
