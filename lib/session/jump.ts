/**
 * One jump host (request `via`, OpenSSH `ProxyJump` with one hop), inside the session's own
 * {@link Deadline}. The jump host is an {@link SshConnection} — the same banner gate, host key
 * check (the same trust rules as the target), one-attempt auth and keepalive as the target's —
 * plus one step of its own: `forward`, a `direct-tcpip` channel to the target, which becomes
 * the transport of the target session. What lives here is what only a hop has: its phases
 * timed apart (`via.timings`), its errors tagged with their hop, the forward's failures, and
 * handing a later loss of the jump connection to the target session.
 *
 * Every error is an `EngineError` tagged with its hop: `via` for everything the jump host did
 * or failed to do, `target` for the forward's "connect failed" (the jump host could not reach
 * the target) and a forward that is never confirmed (the jump host's connect to the target
 * hangs), which are the target's `connect` phase seen through the jump host.
 */
import type { ClientChannel } from "ssh2";
import type { Deadline } from "../deadline.ts";
import {
  atHop,
  ChannelRejected,
  ConnectionLost,
  ConnectRefused,
  ConnectTimeout,
  callerAbortError,
  classifyError,
  EngineError,
  phaseTimeoutError,
  TargetNotAllowed,
} from "../errors.ts";
import type { Hop, Phase } from "../names.ts";
import type { HopTimings, JumpHostRequest, RunOptions, RunResult, Secret } from "../types.ts";
import { type SessionProgress, SshConnection } from "./connection.ts";
import { prepareAuth } from "./credentials.ts";
import { hostKeyTrust } from "./host-keys.ts";
import type { KeepaliveSettings } from "./keepalive.ts";
import { destinationSpelling, resolveAddress } from "./resolve.ts";

/** RFC 4254 §5.1 SSH_OPEN_CONNECT_FAILED: the jump host could not connect to the target. */
const OPEN_CONNECT_FAILED = 2;

/** The jump host's phases, in order (result `via.timings`). */
export const JUMP_PHASES = [
  "resolve",
  "connect",
  "banner",
  "handshake",
  "auth",
  "forward",
] as const;
export type JumpPhase = (typeof JUMP_PHASES)[number];

export interface JumpHostOptions {
  deadline: Deadline;
  secret: Secret;
  credentialName?: string | undefined;
  /** The operator's known hosts: the same text, and the same rules, as for the target. */
  knownHosts?: string | undefined;
  /** Whether `via.hostKey` alone may vouch for the jump host. @default true */
  allowRequestPins?: boolean | undefined;
  /** @default node:dns lookup */
  lookup?: RunOptions["lookup"] | undefined;
  checkAddress?: ((address: string, family: 4 | 6, hop: Hop) => void) | undefined;
  /**
   * SSH keepalive on the jump connection once the forward is open (global requests: OpenSSH
   * and Dropbear answer them), so a jump host that goes silent is found and reported at hop
   * `via` before the target's own keepalive, which starts later, blames the target.
   */
  keepalive?: KeepaliveSettings | false | undefined;
  /** The target session's progress: its phase and whether the command started. */
  progress: SessionProgress;
  /** `RunOptions.readsInPlace`, for the jump connection's own socket. @default true */
  readsInPlace?: boolean | undefined;
  /** Where the `direct-tcpip` channel goes: the request's target, as given. */
  target: { host: string; port: number };
  /**
   * The jump connection failed after the forward was handed over: the target session fails
   * with this `ConnectionLost` at hop `via`, in its own phase.
   */
  onLost: (err: EngineError) => void;
}

/** One jump host: its {@link SshConnection} and the forward; {@link close} releases both. */
export class JumpHost {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  address: string | null = null;

  readonly #hop: JumpHostRequest;
  readonly #o: JumpHostOptions;
  readonly #timings: Partial<Record<JumpPhase, number>> = {};
  /** The jump connection's own progress, in engine phase names (the forward is `channel`). */
  readonly #progress: SessionProgress = { phase: "resolve", commandStarted: false };
  readonly #conn: SshConnection;

  constructor(hop: JumpHostRequest, options: JumpHostOptions) {
    this.#hop = hop;
    this.#o = options;
    this.host = hop.host;
    this.port = hop.port ?? 22;
    this.username = hop.username;
    this.#conn = new SshConnection({
      deadline: options.deadline,
      progress: this.#progress,
      keepalive: options.keepalive,
      keepaliveAtAuth: false,
      hop: "via",
      readsInPlace: options.readsInPlace,
    });
  }

  /** The server's identification line, once seen. */
  get ident(): string | undefined {
    return this.#conn.ident;
  }

  /** SHA-256 fingerprint of the key the jump host presented, once seen. */
  get hostKeySha256(): string | undefined {
    return this.#conn.hostKeySha256;
  }

  /** The result's `via`: the jump host, its timings, and its server once seen. */
  report(): NonNullable<RunResult["via"]> {
    const { ident, hostKeySha256 } = this;
    return {
      host: this.host,
      port: this.port,
      address: this.address,
      username: this.username,
      timings: this.timings(),
      ...(ident !== undefined && hostKeySha256 !== undefined
        ? { server: { ident, hostKeySha256 } }
        : {}),
    };
  }

  /** The jump host's phase timings so far (ms, one decimal; null for phases not run). */
  timings(): HopTimings {
    const t = (phase: JumpPhase) => {
      const ms = this.#timings[phase];
      return ms === undefined ? null : Math.round(ms * 10) / 10;
    };
    return {
      resolveMs: t("resolve"),
      connectMs: t("connect"),
      bannerMs: t("banner"),
      handshakeMs: t("handshake"),
      authMs: t("auth"),
      forwardMs: t("forward"),
    };
  }

  /**
   * Logs in at the jump host and opens the forward to the target; resolves with the channel
   * (the target session's transport). Rejects with an `EngineError` tagged with its hop; the
   * caller still calls {@link close}.
   */
  async open(): Promise<ClientChannel> {
    try {
      return await this.#open();
    } catch (err) {
      const classified = this.#conn.classify(err);
      // The result's phase is the jump host's (its errors carry it).
      this.#o.progress.phase = classified.phase;
      throw classified;
    }
  }

  async #open(): Promise<ClientChannel> {
    const conn = this.#conn;
    const auth = prepareAuth(this.#o.secret, this.#o.credentialName);
    // As for the target: a refusal never reveals what the name resolved to.
    this.address = await resolveAddress(
      this.host,
      this.#o,
      (lookup) => this.#step("resolve", lookup),
      "via",
    );
    const hostKeys = hostKeyTrust({
      knownHosts: this.#o.knownHosts,
      pin: this.#hop.hostKey,
      host: this.host,
      port: this.port,
      address: this.address,
      allowPinOnly:
        this.#o.allowRequestPins !== false && typeof this.#o.secret.password !== "string",
    });
    const ssh = { host: this.host, port: this.port, username: this.username, auth, hostKeys };
    await this.#step("connect", () => conn.dial(this.address!, this.port));
    await this.#step("banner", () => conn.startSsh(ssh));
    await this.#step("handshake", () => conn.handshake());
    await this.#step("auth", () => conn.authenticated());
    const channel = await this.#step("forward", () => this.#forward());
    conn.startKeepalive();
    // From here a failure of the jump connection is the target session's loss.
    conn.failure.catch((err: EngineError) => {
      const { phase, commandStarted } = this.#o.progress;
      this.#o.onLost(
        new ConnectionLost(
          `connection to jump host ${this.host}:${this.port} lost during ${phase}: ${err.message}`,
          { phase, commandStarted, hop: "via" },
        ),
      );
    });
    return channel;
  }

  /**
   * Says goodbye to the jump host (DISCONNECT, FIN) while the teardown reserve allows — or not
   * at all with `polite: false` — then destroys the socket and waits for its close: after this
   * no handle of the hop is alive. Idempotent: later calls return the first one's promise.
   */
  async close(polite = true): Promise<void> {
    await this.#conn.close(polite);
  }

  /**
   * True once the jump host's connection ended, closed or failed, or stopped answering its
   * keepalive. A target connection lost while this is true was lost with the jump host (hop
   * `via`), whichever event came first: the target's keepalive ticks are not in step with
   * the jump host's, and can fire first.
   */
  get down(): boolean {
    return this.#conn.down;
  }

  // ---- phases -------------------------------------------------------------------------

  /**
   * One phase of the jump host, bounded like a target phase by the same deadline; the forward
   * gets the target's `connect` allowance (it is the jump host's connect to the target) and
   * reports its errors in phase `channel`.
   */
  async #step<T>(phase: JumpPhase, work: () => Promise<T>): Promise<T> {
    const errorPhase: Phase = phase === "forward" ? "channel" : phase;
    this.#progress.phase = errorPhase;
    const start = performance.now();
    const deadline = this.#o.deadline;
    const allowance = deadline.allowance(phase === "forward" ? "connect" : phase);
    const bound = deadline.boundOf(phase === "forward" ? "connect" : phase);
    try {
      return await deadline.bound(
        allowance,
        work(),
        () =>
          phase === "forward"
            ? new ConnectTimeout(
                `jump host ${this.host}:${this.port} did not confirm the forward to ${this.#o.target.host}:${this.#o.target.port} within ${Math.round(allowance)} ms (its connect to the target did not complete)`,
                { phase: "connect", hop: "target", bound },
              )
            : phaseTimeoutError(phase, allowance, false, bound),
        () =>
          callerAbortError(deadline.abortReason, `during the jump host's ${phase}`, {
            phase: errorPhase,
            hop: "via",
          }),
      );
    } finally {
      this.#timings[phase] = performance.now() - start;
    }
  }

  /** The forward step: what only a jump host does. Names the jump host's refusal. */
  async #forward(): Promise<ClientChannel> {
    const { port } = this.#o.target;
    // An address is forwarded as the address that was checked, never as its spelling.
    const spelled = destinationSpelling(this.#o.target.host);
    const host = spelled.kind === "address" ? spelled.address : this.#o.target.host;
    try {
      return await this.#conn.forwardOut(host, port);
    } catch (err) {
      if (err instanceof EngineError) throw err;
      const reason = (err as { reason?: unknown }).reason;
      const why = (err as Error).message.replace(/^\(SSH\) /, "");
      throw reason === OPEN_CONNECT_FAILED
        ? new ConnectRefused(
            `jump host ${this.host}:${this.port} could not connect to ${host}:${port}: ${why}`,
            { phase: "connect", hop: "target" },
          )
        : new ChannelRejected(
            `jump host ${this.host}:${this.port} refused the forward (direct-tcpip) to ${host}:${port}: ${why}`,
            { phase: "channel", hop: "via" },
          );
    }
  }
}

/**
 * The target's address behind a jump host: the jump host resolves the target's name, so only
 * an address is known here — however it is spelled (`127.1`, `0x7f.1`, `2130706433`, `[::1]`,
 * `::ffff:7f00:1`: the jump host's resolver reads them all as addresses) — and it is checked in
 * canonical form (`checkAddress`, hop `target`), and forwarded as such. A spelling that looks
 * like an address but is none (`127.0.0.1.`) is refused the same way a name is: the caller's
 * `checkAddress` is given it as is, and no address can contain it.
 */
export function addressBehindJump(
  host: string,
  options: Pick<RunOptions, "checkAddress">,
): string | null {
  const spelled = destinationSpelling(host);
  if (spelled.kind === "name") return null;
  try {
    if (spelled.kind === "ambiguous") {
      throw new TargetNotAllowed(
        `host ${host} behind a jump host looks like an IP address but is none: give the address in standard form`,
        { phase: "resolve" },
      );
    }
    options.checkAddress?.(spelled.address, spelled.family, "target");
  } catch (err) {
    throw atHop(classifyError(err, { phase: "resolve", commandStarted: false }), "target");
  }
  return spelled.address;
}
