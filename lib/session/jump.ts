/**
 * One jump host (request `via`, OpenSSH `ProxyJump` with one hop), inside the session's own
 * {@link Deadline}: resolve, connect, banner, handshake (host key under the same trust rules
 * as the target), auth, then a `direct-tcpip` channel to the target. The channel is the
 * transport of the target session; the jump client is released by {@link JumpHost.close}.
 *
 * Every error is an `EngineError` tagged with its hop: `via` for everything the jump host did
 * or failed to do, `target` for the forward's "connect failed" (the jump host could not reach
 * the target) and a forward that is never confirmed (the jump host's connect to the target
 * hangs), which are the target's `connect` phase seen through the jump host.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import net from "node:net";
import type { AuthenticationType, ClientChannel, ConnectConfig } from "ssh2";
import type { Deadline } from "../deadline.ts";
import {
  AuthFailed,
  atHop,
  ChannelRejected,
  ConnectionLost,
  ConnectRefused,
  ConnectTimeout,
  classifyError,
  DeadlineExceeded,
  EngineError,
  HostKeyMismatch,
  HostKeyUnknown,
  ProtocolError,
  phaseTimeoutError,
} from "../errors.ts";
import type { Hop, Phase } from "../names.ts";
import type { HopTimings, JumpHostRequest, RunOptions, RunResult, Secret } from "../types.ts";
import { BannerGate } from "./banner-gate.ts";
import type { SessionProgress } from "./connection.ts";
import { type PreparedAuth, prepareAuth } from "./credentials.ts";
import { fingerprintSha256, hostKeyTrust } from "./host-keys.ts";
import { Keepalive, type KeepaliveSettings } from "./keepalive.ts";
import { signFirstAttempt } from "./sign-first.ts";
import { Client, sendGlobalKeepalive } from "./ssh2.ts";

/** RFC 4254 §5.1 SSH_OPEN_CONNECT_FAILED: the jump host could not connect to the target. */
const OPEN_CONNECT_FAILED = 2;
/** TCP keepalive of the jump connection (as the target's). */
const TCP_KEEPALIVE_INITIAL_MS = 15_000;

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
  /** Where the `direct-tcpip` channel goes: the request's target, as given. */
  target: { host: string; port: number };
  /**
   * The jump connection failed after the forward was handed over: the target session fails
   * with this `ConnectionLost` at hop `via`, in its own phase.
   */
  onLost: (err: EngineError) => void;
}

/** One jump host: owns its socket and ssh2 client; {@link close} releases both. */
export class JumpHost {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  address: string | null = null;
  ident: string | undefined;
  hostKeySha256: string | undefined;

  readonly #hop: JumpHostRequest;
  readonly #o: JumpHostOptions;
  readonly #timings: Partial<Record<JumpPhase, number>> = {};
  #phase: JumpPhase = "resolve";
  #socket: net.Socket | undefined;
  #socketClosed: Promise<void> = Promise.resolve();
  #gate: BannerGate | undefined;
  #client: Client | undefined;
  #sessionUp = false;
  #open = false;
  #keepalive: Keepalive | undefined;
  /** When the jump host last answered a keepalive (or the forward opened). */
  #lastAnswerAt = 0;
  #settings: KeepaliveSettings | undefined;
  #closing = false;
  #hostKeyRefusal: HostKeyUnknown | HostKeyMismatch | undefined;
  readonly #failure: Promise<never>;
  #rejectFailure!: (err: EngineError) => void;
  #failed = false;
  /** The jump connection ended, closed or failed (whoever noticed first). */
  #down = false;

  constructor(hop: JumpHostRequest, options: JumpHostOptions) {
    this.#hop = hop;
    this.#o = options;
    this.host = hop.host;
    this.port = hop.port ?? 22;
    this.username = hop.username;
    this.#failure = new Promise<never>((_, reject) => {
      this.#rejectFailure = reject;
    });
    this.#failure.catch(() => {});
  }

  /** The result's `via`: the jump host, its timings, and its server once seen. */
  report(): NonNullable<RunResult["via"]> {
    return {
      host: this.host,
      port: this.port,
      address: this.address,
      username: this.username,
      timings: this.timings(),
      ...(this.ident !== undefined && this.hostKeySha256 !== undefined
        ? { server: { ident: this.ident, hostKeySha256: this.hostKeySha256 } }
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
      return await this.#open_();
    } catch (err) {
      // The result's phase is the jump host's (its errors carry it).
      if (err instanceof EngineError) this.#o.progress.phase = err.phase;
      throw err;
    }
  }

  async #open_(): Promise<ClientChannel> {
    let auth: PreparedAuth;
    try {
      auth = prepareAuth(this.#o.secret, this.#o.credentialName);
    } catch (err) {
      throw this.#classify(err);
    }
    await this.#resolve();
    const trust = hostKeyTrust({
      knownHosts: this.#o.knownHosts,
      pin: this.#hop.hostKey,
      host: this.host,
      port: this.port,
      address: this.address ?? undefined,
      allowPinOnly:
        this.#o.allowRequestPins !== false && typeof this.#o.secret.password !== "string",
    });
    const sock = await this.#step("connect", () => this.#connect());
    const kexDone = deferred();
    const authDone = deferred();
    await this.#step("banner", () => {
      const identSeen = deferred();
      const gate = new BannerGate(sock, {
        onIdent: (ident) => {
          this.ident = ident;
          // As the target's: KEXINIT parsed from the same chunk belongs to the handshake.
          this.#phase = "handshake";
          identSeen.done();
        },
        onProtocolError: (message) => this.#fail(new ProtocolError(message, { phase: "banner" })),
      });
      this.#gate = gate;
      const client = new Client();
      this.#client = client;
      client.on("error", (err) => this.#fail(err));
      client.on("close", () =>
        this.#fail(
          new ConnectionLost(`jump host closed the connection during ${this.#phaseName()}`, {
            phase: this.#phaseName(),
          }),
        ),
      );
      client.once("handshake", () => {
        this.#sessionUp = true;
        kexDone.done();
      });
      client.once("ready", () => authDone.done());
      let attempts = 0;
      const config: ConnectConfig = {
        sock: gate,
        username: this.username,
        readyTimeout: 0,
        keepaliveInterval: 0,
        ...(trust.serverHostKeyAlgorithms
          ? { algorithms: { serverHostKey: trust.serverHostKeyAlgorithms as never } }
          : {}),
        // Synchronous form: ssh2 treats a returned Promise as acceptance.
        hostVerifier: (key: Buffer): boolean => {
          this.hostKeySha256 = fingerprintSha256(key);
          const verdict = trust.verify(key);
          if (verdict === "trusted") return true;
          const where = `jump host ${this.host}:${this.port}`;
          this.#hostKeyRefusal =
            verdict === "unknown"
              ? new HostKeyUnknown(
                  `host key ${this.hostKeySha256} of ${where} is not trusted: no ${trust.source}; no credential was sent`,
                  { phase: "handshake", hop: "via" },
                )
              : new HostKeyMismatch(
                  `host key ${this.hostKeySha256} of ${where} differs from the ${trust.source} — possible impostor; no credential was sent`,
                  { phase: "handshake", hop: "via" },
                );
          this.#fail(this.#hostKeyRefusal);
          return false;
        },
        // One attempt with exactly the credential held, as for the target.
        authHandler: (_methodsLeft, _partial, next) => {
          attempts += 1;
          if (attempts > 1) {
            next(false as unknown as AuthenticationType);
            return;
          }
          next(
            (auth.type === "publickey"
              ? { type: "publickey", username: this.username, key: auth.key }
              : { type: "password", username: this.username, password: auth.password }) as never,
          );
        },
      };
      client.connect(config);
      if (auth.type === "publickey") {
        signFirstAttempt(client, auth.key, (err) =>
          this.#fail(
            new AuthFailed(`signing with the jump host's private key failed: ${err.message}`, {
              phase: "auth",
            }),
          ),
        );
      }
      return identSeen.promise;
    });
    await this.#step("handshake", () => kexDone.promise);
    await this.#step("auth", () => authDone.promise);
    const channel = await this.#step("forward", () => this.#forward());
    this.#open = true;
    this.#startKeepalive();
    return channel;
  }

  /**
   * Says goodbye to the jump host (DISCONNECT, FIN) for at most `politeMs`, then destroys the
   * socket and waits for its close: after this no handle of the hop is alive. Idempotent.
   */
  async close(deadline: Deadline, politeMs: number): Promise<void> {
    this.#closing = true;
    this.#keepalive?.stop();
    const sock = this.#socket;
    if (sock && !sock.destroyed && this.#sessionUp && politeMs > 0) {
      try {
        this.#client?.end();
      } catch {
        // A half-dead transport: destroying below covers it.
      }
      await deadline.wait(politeMs, this.#socketClosed);
    }
    if (sock) {
      sock.destroy();
      await this.#socketClosed;
    }
    this.#gate?.destroy();
    if (this.#client) {
      this.#client.removeAllListeners();
      this.#client.on("error", () => {});
    }
  }

  /**
   * True once the jump host's connection ended, closed or failed. A target connection lost
   * while this is true was lost with the jump host (hop `via`), whichever event came first.
   */
  get down(): boolean {
    return this.#down || this.#failed || this.#silent();
  }

  /**
   * The jump host has not answered its keepalive for 1.5 intervals: a healthy one answers
   * every probe within a round trip, so a target that went silent at the same time went silent
   * with it (the target's keepalive can fire first: its ticks are not in step with these).
   */
  #silent(): boolean {
    const settings = this.#settings;
    if (!this.#keepalive || !settings) return false;
    return performance.now() - this.#lastAnswerAt > 1.5 * settings.intervalMs;
  }

  /** Settles when the jump host's socket has closed (the forward is gone with it). */
  get closed(): Promise<void> {
    return this.#socketClosed;
  }

  // ---- phases -------------------------------------------------------------------------

  /** The engine phase whose allowance (cap) a jump phase gets: the forward is the target's connect. */
  #capOf(phase: JumpPhase): Phase {
    return phase === "forward" ? "connect" : phase;
  }

  #phaseName(): Phase {
    return this.#phase === "forward" ? "channel" : this.#phase;
  }

  async #step<T>(phase: JumpPhase, work: () => Promise<T>): Promise<T> {
    this.#phase = phase;
    const start = performance.now();
    const deadline = this.#o.deadline;
    const allowance = deadline.allowance(this.#capOf(phase));
    try {
      return await deadline.bound(
        allowance,
        Promise.race([work(), this.#failure]),
        () =>
          phase === "forward"
            ? new ConnectTimeout(
                `jump host ${this.host}:${this.port} did not confirm the forward to ${this.#o.target.host}:${this.#o.target.port} within ${Math.round(allowance)} ms (its connect to the target did not complete)`,
                { phase: "connect", hop: "target" },
              )
            : atHop(phaseTimeoutError(phase, allowance, false), "via"),
        () =>
          new DeadlineExceeded(`cancelled by the caller during the jump host's ${phase}`, {
            phase: this.#phaseName(),
            hop: "via",
          }),
      );
    } catch (err) {
      throw this.#classify(err);
    } finally {
      this.#timings[phase] = performance.now() - start;
    }
  }

  async #resolve(): Promise<void> {
    const literal = net.isIP(this.host);
    let family: 4 | 6;
    if (literal !== 0) {
      this.address = this.host;
      family = literal === 6 ? 6 : 4;
    } else {
      const lookup = this.#o.lookup ?? defaultLookup;
      const found = await this.#step("resolve", () => lookup(this.host));
      this.address = found.address;
      family = found.family;
    }
    try {
      this.#o.checkAddress?.(this.address, family, "via");
    } catch (err) {
      // As for the target: a refusal never reveals what the name resolved to.
      this.address = null;
      throw atHop(classifyError(err, { phase: "resolve", commandStarted: false }), "via");
    }
  }

  #connect(): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const sock = net.connect({
        host: this.address!,
        port: this.port,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: TCP_KEEPALIVE_INITIAL_MS,
      });
      this.#socket = sock;
      this.#socketClosed = new Promise<void>((done) => sock.once("close", () => done()));
      sock.on("error", () => {
        this.#down = true;
      });
      sock.once("end", () => {
        this.#down = true;
      });
      sock.once("close", () => {
        this.#down = true;
      });
      const onError = (err: Error) => {
        sock.off("connect", onConnect);
        reject(err);
      };
      const onConnect = () => {
        sock.off("error", onError);
        resolve(sock);
      };
      sock.once("connect", onConnect);
      sock.once("error", onError);
    });
  }

  #forward(): Promise<ClientChannel> {
    const { host, port } = this.#o.target;
    return new Promise<ClientChannel>((resolve, reject) => {
      this.#client!.forwardOut("127.0.0.1", 0, host, port, (err, channel) => {
        if (err) {
          const reason = (err as { reason?: unknown }).reason;
          const why = err.message.replace(/^\(SSH\) /, "");
          reject(
            reason === OPEN_CONNECT_FAILED
              ? new ConnectRefused(
                  `jump host ${this.host}:${this.port} could not connect to ${host}:${port}: ${why}`,
                  { phase: "connect", hop: "target" },
                )
              : new ChannelRejected(
                  `jump host ${this.host}:${this.port} refused the forward (direct-tcpip) to ${host}:${port}: ${why}`,
                  { phase: "channel", hop: "via" },
                ),
          );
          return;
        }
        // Errors after the open reach the target session through its banner gate.
        channel.on("error", () => {});
        resolve(channel);
      });
    });
  }

  /** As the target's: configured, or derived from the budget left (half of it, ≤ 1 min). */
  #keepaliveSettings(): KeepaliveSettings | undefined {
    const configured = this.#o.keepalive;
    if (configured === false) return undefined;
    if (configured) return configured;
    const budget = this.#o.deadline.remaining();
    const intervalMs = Number.isFinite(budget)
      ? Math.min(15_000, Math.max(1_000, Math.floor(budget / 8)))
      : 15_000;
    return { intervalMs, countMax: 3 };
  }

  #startKeepalive(): void {
    const settings = this.#keepaliveSettings();
    const client = this.#client;
    if (!settings || !client || this.#closing) return;
    this.#settings = settings;
    this.#lastAnswerAt = performance.now();
    this.#keepalive = new Keepalive(
      settings,
      this.#o.deadline,
      (onReply) =>
        sendGlobalKeepalive(client, () => {
          this.#lastAnswerAt = performance.now();
          onReply();
        }),
      (missed) => {
        const err = new Error(
          `no answer to ${missed} keepalive requests sent every ${settings.intervalMs} ms`,
        );
        // The classifier's mark for "the peer went silent".
        this.#fail(Object.assign(err, { level: "client-timeout" }));
      },
    );
    this.#keepalive.start();
  }

  #fail(err: unknown): void {
    if (this.#closing || this.#failed) return;
    this.#failed = true;
    const classified = this.#classify(err);
    if (this.#open) {
      // Forward already handed over: the target session fails with the jump's loss.
      const { phase, commandStarted } = this.#o.progress;
      this.#o.onLost(
        new ConnectionLost(
          `connection to jump host ${this.host}:${this.port} lost during ${phase}: ${classified.message}`,
          { phase, commandStarted, hop: "via" },
        ),
      );
      return;
    }
    this.#rejectFailure(classified);
  }

  #classify(err: unknown): EngineError {
    return atHop(
      classifyError(err, {
        phase: this.#phaseName(),
        commandStarted: false,
        hostKeyRefusal: this.#hostKeyRefusal,
      }),
      "via",
    );
  }
}

interface Deferred {
  promise: Promise<void>;
  done: () => void;
}

function deferred(): Deferred {
  let done!: () => void;
  const promise = new Promise<void>((resolve) => {
    done = resolve;
  });
  return { promise, done };
}

/**
 * The target's address behind a jump host: the jump host resolves the target's name, so only
 * an IP literal is known here, and only it is checked (`checkAddress`, hop `target`).
 */
export function addressBehindJump(
  host: string,
  options: Pick<RunOptions, "checkAddress">,
): string | null {
  const literal = net.isIP(host);
  if (literal === 0) return null;
  try {
    options.checkAddress?.(host, literal === 6 ? 6 : 4, "target");
  } catch (err) {
    throw atHop(classifyError(err, { phase: "resolve", commandStarted: false }), "target");
  }
  return host;
}

async function defaultLookup(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const found = await dnsLookup(host, { order: "ipv4first" });
  return { address: found.address, family: found.family === 6 ? 6 : 4 };
}
