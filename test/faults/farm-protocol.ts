/** Messages between the test process and the fault farm (see farm-server.ts). */
import type { AuthDecision, RequestDecision } from "../helpers/ssh2-server.ts";
import type { DependencyServerSpec, FaultMoment } from "./dependency-farm.ts";
import type { ProxyMode } from "./dependency-proxy.ts";

/** Server-side exec behaviours of the scripted ssh2 server, by name (IPC carries no functions). */
export type ExecSpec =
  | { name: "echo" }
  | { name: "neverExit" }
  | { name: "exitWithoutClose"; code: number; stdout?: string }
  | { name: "closeWithoutExit"; stdout?: string }
  | { name: "stopReading" }
  | { name: "zeroFlood"; bytes: number };

/** One misbehaving server. Proxies forward to a real server on 127.0.0.1:targetPort. */
export type FaultServerSpec =
  | { kind: "fullAcceptQueue" }
  | { kind: "closedPort" }
  | { kind: "tarpit" }
  | { kind: "acceptThenReset"; afterMs?: number }
  | { kind: "acceptThenFin"; afterMs?: number }
  | { kind: "bannerByteByByte"; delayMs: number }
  | { kind: "endlessJunk" }
  | { kind: "ssh1Banner" }
  | { kind: "bannerThenSilence" }
  | { kind: "splitBannerProxy"; targetPort: number; segments: number; delayMs?: number }
  | { kind: "junkThenProxy"; targetPort: number; lines: number }
  | { kind: "proxy"; targetPort: number; swallowClientFin?: boolean }
  | { kind: "clientFirstProxy"; targetPort: number }
  | { kind: "kexStallProxy"; targetPort: number }
  | { kind: "restrictedKex"; kex: string[] }
  | {
      kind: "ssh2";
      auth?: AuthDecision;
      session?: RequestDecision;
      execRequest?: RequestDecision;
      exec?: ExecSpec;
    }
  | DependencyServerSpec;

export type ProxyAction = "goSilent" | "resetAll" | "stopReading" | "swallowClientFin";

export type FarmRequest =
  | { id: number; op: "create"; spec: FaultServerSpec }
  | { id: number; op: "control"; handle: number; action: ProxyAction }
  | { id: number; op: "close"; handle: number }
  | { id: number; op: "stats" }
  /** Dependency lab: switch a fault proxy now, or arm it on a target for `at`. */
  | {
      id: number;
      op: "depFault";
      handle: number;
      mode: ProxyMode;
      at?: { target: number; moment: FaultMoment };
    }
  /** Dependency lab: a secret / parameter in a backend. */
  | { id: number; op: "depSeed"; handle: number; name: string; value: string }
  /** Dependency lab: execs a target has seen. */
  | { id: number; op: "depExecs"; handle: number }
  /** Dependency lab: the request lines a fault proxy has seen. */
  | { id: number; op: "depSeen"; handle: number };

export interface FarmReply {
  id: number;
  ok: boolean;
  error?: string;
  handle?: number;
  port?: number;
  hostKeyFingerprint?: string;
  rssBytes?: number;
  /** `depExecs`: execs seen. */
  count?: number;
  /** `depSeen`: request lines. */
  lines?: string[];
}
