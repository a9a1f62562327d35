/**
 * The fault matrix: ONE table of every way a remote can misbehave and what the engine must
 * report for it. The vitest matrix (fault-matrix.test.ts) and the soak (test/soak/soak.ts)
 * both run this table; docs/fault-lab.md documents it.
 */
import { runCommand } from "../../lib/index.ts";
import type { ErrorName, ErrorPhase, Phase, Status } from "../../lib/names.ts";
import type { RunOptions, RunRequest, RunResult } from "../../lib/types.ts";
import type { SshdServer } from "../helpers/sshd.ts";
import type { Farm, FarmServer } from "./farm.ts";
import type { FaultServerSpec, ProxyAction } from "./farm-protocol.ts";

/** The spec allows the handler to return this long after its deadline (SPEC §3). */
export const OVERSHOOT_MARGIN_MS = 50;

/** What a case must produce. `error: null` means no error (status says how it ended). */
export interface Expected {
  status: Status;
  error: ErrorName | null;
  phase: ErrorPhase;
  retryable?: boolean;
  commandStarted?: boolean;
  exitCode?: number | null;
}

/** Passed to a case's phase hook: acts on this session's own server (a per-session proxy). */
export interface PhaseHookContext {
  control(action: ProxyAction): Promise<void>;
  /** Milliseconds since the session started. */
  elapsed(): number;
  /** Records a named instant (ms since start), e.g. when the peer went silent. */
  mark(name: string): void;
}

export interface FaultCase {
  /** Short id, unique in the table. */
  id: string;
  /** What the remote does, in words (the docs table). */
  fault: string;
  /** The server: a farm spec (built from the real sshd's port where it proxies), or the sshd. */
  server: (sshdPort: number) => FaultServerSpec | "sshd";
  /** One server per session (its phase hook controls it) instead of one shared server. */
  perSession?: boolean;
  budgetMs: number;
  request?: Partial<RunRequest>;
  options?: Partial<RunOptions>;
  onPhase?: (phase: Phase, ctx: PhaseHookContext) => void;
  expect: Expected;
  /**
   * Another outcome that is equally correct because the kernel decides the race, not the
   * engine (e.g. an RST that lands before the connect completes is a failed connect).
   */
  orElse?: Expected;
  /** Extra checks on the outcome; return problems as strings. */
  check?: (o: FaultOutcome) => string[];
  /** Cheap and self-contained: part of the soak mix. */
  soak?: boolean;
}

export interface FaultOutcome {
  case: FaultCase;
  result: RunResult;
  elapsedMs: number;
  budgetMs: number;
  /** elapsed − budget: how far past its deadline the session returned (negative = before). */
  overshootMs: number;
  marks: Record<string, number>;
}

const MiB = 1024 * 1024;
const LONG_COMMAND = "sleep 30";

/** Checks that a `ConnectionLost` came from SSH keepalive in time: interval × (count + 1). */
function keepaliveDetection(intervalMs: number, countMax: number, marginMs: number) {
  return (o: FaultOutcome): string[] => {
    const silentAt = o.marks.silent;
    if (silentAt === undefined) return ["the peer was never made silent"];
    const detectedIn = o.elapsedMs - silentAt - (o.result.timings.teardownMs ?? 0);
    const limit = intervalMs * (countMax + 1) + marginMs;
    return detectedIn <= limit
      ? []
      : [`keepalive detection took ${Math.round(detectedIn)} ms > ${limit} ms`];
  };
}

export const FAULTS: FaultCase[] = [
  {
    id: "healthy",
    fault: "healthy real sshd (control case)",
    server: () => "sshd",
    budgetMs: 3_000,
    request: { command: "echo ok" },
    expect: { status: "succeeded", error: null, phase: "exec", exitCode: 0 },
    check: (o) => (o.result.stdout === "ok\n" ? [] : [`stdout ${JSON.stringify(o.result.stdout)}`]),
    soak: true,
  },
  {
    id: "closed-port",
    fault: "nothing listens (RST to SYN)",
    server: () => ({ kind: "closedPort" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ConnectRefused",
      phase: "connect",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "full-accept-queue",
    fault: "connect never completes (listener's accept queue full, SYN dropped)",
    server: () => ({ kind: "fullAcceptQueue" }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "ConnectTimeout",
      phase: "connect",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "accept-then-rst",
    fault: "accepts, then RST",
    server: () => ({ kind: "acceptThenReset" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ConnectionLost",
      phase: "banner",
      retryable: true,
      commandStarted: false,
    },
    // Under load the RST can arrive before Node saw the connect complete: the kernel then
    // reports the connect itself as failed (ECONNRESET).
    orElse: {
      status: "error",
      error: "ConnectRefused",
      phase: "connect",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "accept-then-fin",
    fault: "accepts, then FIN",
    server: () => ({ kind: "acceptThenFin" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ConnectionLost",
      phase: "banner",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "tarpit",
    fault: "accepts TCP, never sends a banner (the incident)",
    server: () => ({ kind: "tarpit" }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "BannerTimeout",
      phase: "banner",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "banner-byte-by-byte-slow",
    fault: "banner one byte every 100 ms (40 bytes: beyond a 1 s budget)",
    server: () => ({ kind: "bannerByteByByte", delayMs: 100 }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "BannerTimeout",
      phase: "banner",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "banner-byte-by-byte-fast",
    fault: "real sshd's banner one byte per TCP segment, 5 ms apart (inside the budget)",
    server: (port) => ({ kind: "splitBannerProxy", targetPort: port, segments: 10_000 }),
    budgetMs: 3_000,
    request: { command: "echo ok" },
    expect: { status: "succeeded", error: null, phase: "exec", exitCode: 0 },
    soak: true,
  },
  ...[2, 3, 10].map(
    (segments): FaultCase => ({
      id: `banner-${segments}-segments`,
      fault: `real sshd's banner split into ${segments} TCP segments`,
      server: (port) => ({ kind: "splitBannerProxy", targetPort: port, segments }),
      budgetMs: 3_000,
      request: { command: "echo ok" },
      expect: { status: "succeeded", error: null, phase: "exec", exitCode: 0 },
      soak: true,
    }),
  ),
  {
    id: "preamble-1000-lines",
    fault: "1,000 text lines before the real sshd's banner (RFC 4253 §4.2)",
    server: (port) => ({ kind: "junkThenProxy", targetPort: port, lines: 1_000 }),
    budgetMs: 3_000,
    request: { command: "echo ok" },
    expect: { status: "succeeded", error: null, phase: "exec", exitCode: 0 },
    soak: true,
  },
  {
    id: "endless-junk",
    fault: "endless bytes without a newline",
    server: () => ({ kind: "endlessJunk" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ProtocolError",
      phase: "banner",
      retryable: false,
      commandStarted: false,
    },
    // Memory stays bounded: the gate gives up at its line limit, long before the budget.
    check: (o) =>
      o.elapsedMs < 500 ? [] : [`took ${Math.round(o.elapsedMs)} ms: the gate did not give up`],
    soak: true,
  },
  {
    id: "ssh1-banner",
    fault: "`SSH-1.5-` identification",
    server: () => ({ kind: "ssh1Banner" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ProtocolError",
      phase: "banner",
      retryable: false,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "banner-then-silence",
    fault: "valid banner, then nothing",
    server: () => ({ kind: "bannerThenSilence" }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "HandshakeTimeout",
      phase: "handshake",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "no-common-kex",
    fault: "server offers only diffie-hellman-group1-sha1 (not in ssh2's client defaults)",
    server: () => ({ kind: "restrictedKex", kex: ["diffie-hellman-group1-sha1"] }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ProtocolError",
      phase: "handshake",
      retryable: false,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "kex-stall",
    fault:
      "real sshd's banner and KEXINIT arrive, then key exchange stalls (client's KEX never reaches it)",
    server: (port) => ({ kind: "kexStallProxy", targetPort: port }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "HandshakeTimeout",
      phase: "handshake",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "auth-never-answered",
    fault: "authentication request never answered",
    server: () => ({ kind: "ssh2", auth: "never" }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "AuthTimeout",
      phase: "auth",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "auth-partial-success",
    fault: "authentication answered with partial success, again and again",
    server: () => ({ kind: "ssh2", auth: "partial" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "AuthFailed",
      phase: "auth",
      retryable: false,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "channel-open-refused",
    fault: "session channel open refused",
    server: () => ({ kind: "ssh2", session: "reject" }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ChannelRejected",
      phase: "channel",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "channel-open-unanswered",
    fault: "session channel open never answered",
    server: () => ({ kind: "ssh2", session: "never" }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "ChannelTimeout",
      phase: "channel",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "exec-refused",
    fault: "exec request refused",
    server: () => ({ kind: "ssh2", execRequest: "reject" }),
    budgetMs: 1_000,
    // The answer to a sent exec request is the command's time; the refusal says it never ran.
    expect: {
      status: "error",
      error: "ChannelRejected",
      phase: "exec",
      retryable: true,
      commandStarted: false,
    },
    soak: true,
  },
  {
    id: "exec-unanswered",
    fault: "exec request never answered",
    server: () => ({ kind: "ssh2", execRequest: "never" }),
    budgetMs: 1_000,
    // The server has the request and may run the command: never "not started", never retried.
    expect: {
      status: "timed_out",
      error: "CommandTimeout",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    },
    check: (o) =>
      o.result.remoteCleanup === "signalled" ? [] : [`remoteCleanup ${o.result.remoteCleanup}`],
    soak: true,
  },
  {
    id: "command-never-exits",
    fault: "command never exits",
    server: () => ({ kind: "ssh2", exec: { name: "neverExit" } }),
    budgetMs: 1_000,
    expect: {
      status: "timed_out",
      error: "CommandTimeout",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    },
    check: (o) =>
      o.result.remoteCleanup === "signalled" ? [] : [`remoteCleanup ${o.result.remoteCleanup}`],
    soak: true,
  },
  {
    id: "exit-without-close",
    fault: "exit status 3, channel never closed",
    server: () => ({ kind: "ssh2", exec: { name: "exitWithoutClose", code: 3, stdout: "out\n" } }),
    budgetMs: 3_000,
    // The streams never end: what was read is not known to be the whole output.
    expect: {
      status: "error",
      error: "OutputIncomplete",
      phase: "exec",
      retryable: false,
      commandStarted: true,
      exitCode: 3,
    },
    check: (o) => [
      ...(o.result.stdout === "out\n" ? [] : [`stdout ${JSON.stringify(o.result.stdout)}`]),
      ...(o.result.output.complete === false ? [] : ["output.complete is not false"]),
      // Ends after the idle grace (1 s of silence after the exit status), not at the deadline.
      ...(o.elapsedMs < 2_200 ? [] : [`took ${Math.round(o.elapsedMs)} ms: grace not applied`]),
    ],
    soak: true,
  },
  {
    id: "close-without-exit",
    fault: "channel closed without an exit status",
    server: () => ({ kind: "ssh2", exec: { name: "closeWithoutExit", stdout: "partial\n" } }),
    budgetMs: 1_000,
    expect: {
      status: "error",
      error: "ConnectionLost",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    },
    soak: true,
  },
  {
    id: "stdin-never-read",
    fault: "server stops reading stdin; 8 MiB of stdin",
    server: () => ({ kind: "ssh2", exec: { name: "stopReading" } }),
    budgetMs: 1_500,
    request: { stdin: "x".repeat(8 * MiB) },
    expect: {
      status: "timed_out",
      error: "CommandTimeout",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    },
  },
  {
    id: "silent-after-ready",
    fault:
      "peer goes silent once the command runs (proxy drops everything); SSH keepalive 500 ms × 2",
    server: (port) => ({ kind: "proxy", targetPort: port }),
    perSession: true,
    budgetMs: 5_000,
    request: { command: LONG_COMMAND },
    options: { keepalive: { intervalMs: 500, countMax: 2 } },
    onPhase: (phase, ctx) => {
      if (phase === "exec") void ctx.control("goSilent").then(() => ctx.mark("silent"));
    },
    expect: {
      status: "error",
      error: "ConnectionLost",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    },
    check: keepaliveDetection(500, 2, 300),
  },
  {
    id: "rst-mid-output",
    fault: "RST while the command is writing output",
    server: (port) => ({ kind: "proxy", targetPort: port }),
    perSession: true,
    budgetMs: 3_000,
    request: { command: "while :; do echo tick; sleep 0.02; done" },
    onPhase: (phase, ctx) => {
      if (phase === "exec") {
        setTimeout(() => void ctx.control("resetAll").then(() => ctx.mark("reset")), 300);
      }
    },
    expect: {
      status: "error",
      error: "ConnectionLost",
      phase: "exec",
      retryable: false,
      commandStarted: true,
    },
    check: (o) => [
      ...(o.result.output.stdoutBytes > 0 ? [] : ["no output before the reset"]),
      ...(o.elapsedMs < 1_500 ? [] : [`took ${Math.round(o.elapsedMs)} ms after an RST`]),
    ],
  },
  {
    id: "fin-ignored-at-teardown",
    fault: "peer never answers the client's FIN at teardown",
    server: (port) => ({ kind: "proxy", targetPort: port, swallowClientFin: true }),
    budgetMs: 3_000,
    request: { command: "echo ok" },
    expect: { status: "succeeded", error: null, phase: "exec", exitCode: 0 },
    check: (o) => {
      const t = o.result.timings.teardownMs ?? Number.NaN;
      // Teardown cap: 250 ms default (DEFAULT_PHASE_CAPS.teardown); a few ms of slack.
      return t <= 250 + 20 ? [] : [`teardown took ${t} ms > cap 250 ms`];
    },
    soak: true,
  },
  {
    id: "server-waits-for-client-banner",
    fault: "server sends its banner only after the client's",
    server: (port) => ({ kind: "clientFirstProxy", targetPort: port }),
    budgetMs: 3_000,
    request: { command: "echo ok" },
    expect: { status: "succeeded", error: null, phase: "exec", exitCode: 0 },
    soak: true,
  },
];

/** Shared state to run cases: the farm, the real sshd, and servers created so far. */
export interface FaultLab {
  farm: Farm;
  sshd: SshdServer;
  /** Shared servers by case id (created by {@link prepareServers}). */
  servers: Map<string, FarmServer>;
}

/** Creates the shared server of every case that has one (per-session cases are skipped). */
export async function prepareServers(lab: FaultLab, cases: FaultCase[]): Promise<void> {
  await Promise.all(
    cases.map(async (c) => {
      if (c.perSession || lab.servers.has(c.id)) return;
      const spec = c.server(lab.sshd.port);
      if (spec === "sshd") return;
      lab.servers.set(c.id, await lab.farm.create(spec));
    }),
  );
}

/**
 * Runs one session of a case and measures it. Never throws for what the remote does.
 * `budgetMs` overrides the table's budget (the soak runs timeout rows on shorter budgets).
 */
export async function runFault(
  lab: FaultLab,
  c: FaultCase,
  budgetMs = c.budgetMs,
): Promise<FaultOutcome> {
  const spec = c.server(lab.sshd.port);
  let server: FarmServer | undefined;
  let own = false;
  if (spec !== "sshd") {
    server = lab.servers.get(c.id);
    if (!server) {
      server = await lab.farm.create(spec);
      own = true;
    }
  }
  const marks: Record<string, number> = {};
  const start = performance.now();
  const elapsed = () => performance.now() - start;
  const ctx: PhaseHookContext = {
    control: (action) => (server ? lab.farm.control(server, action) : Promise.resolve()),
    elapsed,
    mark: (name) => {
      marks[name] = elapsed();
    },
  };
  try {
    const result = await runCommand(
      {
        host: "127.0.0.1",
        port: server?.port ?? lab.sshd.port,
        username: lab.sshd.username,
        command: "true",
        hostKey: server?.hostKeyFingerprint ?? lab.sshd.hostKeyFingerprint,
        ...c.request,
      },
      {
        secret: { privateKey: lab.sshd.keys.ed25519.privateKey },
        ...c.options,
        budgetMs,
        ...(c.onPhase ? { onPhase: (phase: Phase) => c.onPhase?.(phase, ctx) } : {}),
      },
    );
    const elapsedMs = elapsed();
    return { case: c, result, elapsedMs, budgetMs, overshootMs: elapsedMs - budgetMs, marks };
  } finally {
    if (own && server) await lab.farm.close(server);
  }
}

/** Every way the outcome differs from the table (empty = as expected): both kinds below. */
export function problems(o: FaultOutcome): string[] {
  return [...outcomeProblems(o), ...timingProblems(o)];
}

/** Timing only: returned past budget + 50 ms, or a row's own timing check. */
export function timingProblems(o: FaultOutcome): string[] {
  const out: string[] = [];
  if (o.overshootMs > OVERSHOOT_MARGIN_MS) {
    out.push(`returned ${Math.round(o.overshootMs)} ms after its ${o.budgetMs} ms budget`);
  }
  out.push(...(o.case.check?.(o) ?? []));
  return out;
}

/** What ended the session: status, error name, phase, retryable, commandStarted, exit code. */
export function outcomeProblems(o: FaultOutcome): string[] {
  const alternative = o.case.orElse;
  if (alternative && sameOutcome(o.result, alternative)) return problemsAgainst(o, alternative);
  return problemsAgainst(o, o.case.expect);
}

/** Same status, error name and phase as `e` (the rest is checked by problemsAgainst). */
function sameOutcome(r: RunResult, e: Expected): boolean {
  const phase = r.error?.phase ?? r.phase;
  return r.status === e.status && (r.error?.name ?? null) === e.error && phase === e.phase;
}

function problemsAgainst(o: FaultOutcome, e: Expected): string[] {
  const r = o.result;
  const out: string[] = [];
  const got = r.error
    ? `${r.error.name}@${r.error.phase} retryable=${r.error.retryable} started=${r.error.commandStarted}: ${r.error.message}`
    : `no error, status ${r.status}, exit ${r.exitCode}`;
  if (r.status !== e.status) out.push(`status ${r.status}, expected ${e.status} (${got})`);
  if ((r.error?.name ?? null) !== e.error) {
    out.push(`error ${r.error?.name ?? "none"}, expected ${e.error ?? "none"} (${got})`);
  }
  const phase = r.error?.phase ?? r.phase;
  if (phase !== e.phase) out.push(`phase ${phase}, expected ${e.phase} (${got})`);
  if (e.retryable !== undefined && r.error?.retryable !== e.retryable) {
    out.push(`retryable ${r.error?.retryable}, expected ${e.retryable}`);
  }
  if (e.commandStarted !== undefined && r.error?.commandStarted !== e.commandStarted) {
    out.push(`commandStarted ${r.error?.commandStarted}, expected ${e.commandStarted}`);
  }
  if (e.exitCode !== undefined && r.exitCode !== e.exitCode) {
    out.push(`exit code ${r.exitCode}, expected ${e.exitCode}`);
  }
  return out;
}
