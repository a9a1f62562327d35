import { randomUUID } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { AuthenticationType, ClientChannel, ConnectConfig } from "ssh2";
import { Deadline } from "./deadline.ts";
import {
  AuthFailed,
  atHop,
  ChannelRejected,
  ConnectionLost,
  classifyError,
  DeadlineExceeded,
  EngineError,
  HostKeyMismatch,
  HostKeyUnknown,
  ProtocolError,
  phaseTimeoutError,
} from "./errors.ts";
import { type ErrorPhase, PHASES, type Phase, type RemoteCleanup, type Status } from "./names.ts";
import { checkRequest } from "./request-check.ts";
import { BannerGate } from "./session/banner-gate.ts";
import { type PreparedAuth, prepareAuth } from "./session/credentials.ts";
import { fingerprintSha256, type HostKeyPolicy, hostKeyTrust } from "./session/host-keys.ts";
import { JumpHost } from "./session/jump.ts";
import { Keepalive, type KeepaliveSettings } from "./session/keepalive.ts";
import {
  type CaptureSpill,
  DEFAULT_SPILL_MAX_BYTES,
  OutputCapture,
} from "./session/output-capture.ts";
import { wrapWithRemoteBound } from "./session/remote-bound.ts";
import { signFirstAttempt } from "./session/sign-first.ts";
import { Client, sendChannelKeepalive, sendGlobalKeepalive, sendSignal } from "./session/ssh2.ts";
import type { PhaseTimings, RunOptions, RunRequest, RunResult } from "./types.ts";

/** Bytes kept per stream when the request does not say (SPEC §4). */
export const DEFAULT_MAX_OUTPUT_BYTES = 65_536;
/** After the exit status, how long remaining output and the channel close may take. */
export const EXIT_GRACE_MS = 250;
/**
 * Of the teardown reserve, what waiting for the remote cleanup confirmation never takes: kept
 * for DISCONNECT and FIN. The default reserve (250 ms) gives the confirmation 125 ms; a short
 * budget whose reserve is below this waits for none (and reports "signalled").
 */
export const CLEANUP_CONFIRM_KEEP_MS = 125;
/**
 * The polite part of teardown (DISCONNECT, FIN, waiting for the peer's close) stops this long
 * before the budget ends, so the destroy and the resolution land before the deadline even when
 * a loaded event loop fires timers late.
 */
export const TEARDOWN_SLACK_MS = 30;
/** TCP keepalive: first probe after this much idle time (SSH keepalive does the fast work). */
const TCP_KEEPALIVE_INITIAL_MS = 15_000;

/**
 * Runs one command on one host over one SSH session, inside one deadline (SPEC §3, §11).
 *
 * Resolves to the SPEC §5 result. Everything the remote or the network does — refusal, hang,
 * reset, bad key, failed command — is reported in `result.error`; it rejects only for
 * programming errors (missing options). When it resolves, the session's socket is destroyed
 * and its timers and listeners are gone.
 */
export async function runCommand(request: RunRequest, options: RunOptions): Promise<RunResult> {
  if (options === null || typeof options !== "object" || options.secret === undefined) {
    throw new TypeError("runCommand: options.secret is required");
  }
  if (
    options.budgetMs === undefined &&
    options.signal === undefined &&
    request?.timeoutMs === undefined
  ) {
    throw new TypeError(
      "runCommand: a bound is required (options.budgetMs, options.signal or request.timeoutMs)",
    );
  }
  if (request?.via !== undefined && options.via?.secret === undefined) {
    throw new TypeError("runCommand: options.via.secret is required when request.via is set");
  }
  return new Session(request, options).run();
}

const TIMING_KEYS: Record<Phase, keyof Omit<PhaseTimings, "totalMs">> = {
  resolve: "resolveMs",
  connect: "connectMs",
  banner: "bannerMs",
  handshake: "handshakeMs",
  auth: "authMs",
  channel: "channelMs",
  exec: "execMs",
  teardown: "teardownMs",
};

interface Milestone {
  promise: Promise<void>;
  done: () => void;
}

function milestone(): Milestone {
  let done!: () => void;
  const promise = new Promise<void>((resolve) => {
    done = resolve;
  });
  return { promise, done };
}

/** One session: owns the socket, the ssh2 client and the channel, and releases all three. */
class Session {
  readonly #req: RunRequest;
  readonly #opts: RunOptions;
  readonly #deadline: Deadline;
  readonly #port: number;
  readonly #requestId: string;
  #phase: ErrorPhase = "request";
  #phaseStart = 0;
  readonly #timings: Partial<Record<Phase, number>> = {};
  #address: string | null = null;

  /** The target session's transport: our TCP socket, or the jump host's forward (`via`). */
  #socket: net.Socket | Duplex | undefined;
  #jump: JumpHost | undefined;
  #socketClosed: Promise<void> = Promise.resolve();
  #gate: BannerGate | undefined;
  #client: Client | undefined;
  #channel: ClientChannel | undefined;
  #channelClosed = false;
  #channelDone: Promise<void> = Promise.resolve();
  /** Both readable sides have ended (every chunk was handed to its capture). */
  #streamsEnded: Promise<unknown> = Promise.resolve();

  // The first failure of the session wins; every phase races against it.
  readonly #failure: Promise<never>;
  #rejectFailure!: (err: EngineError) => void;
  #failedWith: EngineError | undefined;
  #tearingDown = false;
  /** Key exchange completed: from here on teardown says goodbye before destroying. */
  #sessionUp = false;

  #commandStarted = false;
  #hostKeyRefusal: HostKeyUnknown | HostKeyMismatch | undefined;
  #ident: string | undefined;
  #hostKeySha256: string | undefined;
  readonly #stdout: OutputCapture;
  readonly #stderr: OutputCapture;
  #exit: { code: number | null; signal: string | null } | undefined;
  #remoteBound = false;
  #signalSent = false;
  /** An exit status or exit signal arrived after the engine signalled the command. */
  #cleanupConfirmed = false;
  #keepalive: Keepalive | undefined;

  readonly #identSeen = milestone();
  readonly #kexDone = milestone();
  readonly #authDone = milestone();
  /** Any exit status or exit signal, even one that arrives during teardown. */
  readonly #exitSeen = milestone();
  #exitSeenFlag = false;

  constructor(request: RunRequest, options: RunOptions) {
    this.#req = request;
    this.#opts = options;
    // request.timeoutMs is the caller's cap on the whole session (SPEC §4).
    const budgets = [options.budgetMs, request?.timeoutMs].filter(
      (ms): ms is number => typeof ms === "number" && Number.isFinite(ms),
    );
    this.#deadline = new Deadline({
      budgetMs: budgets.length > 0 ? Math.min(...budgets) : undefined,
      signal: options.signal,
      caps: options.phaseCaps,
    });
    this.#port = request?.port ?? 22;
    this.#requestId = options.requestId ?? randomUUID();
    const maxOutput = Number.isSafeInteger(request?.maxOutputBytes)
      ? (request.maxOutputBytes as number)
      : DEFAULT_MAX_OUTPUT_BYTES;
    const spill = options.spill;
    const spillOf = (stream: "stdout" | "stderr"): CaptureSpill | undefined =>
      spill && {
        open: () => spill.open(stream),
        maxBytes: spill.maxBytes ?? DEFAULT_SPILL_MAX_BYTES,
      };
    this.#stdout = new OutputCapture(maxOutput, spillOf("stdout"));
    this.#stderr = new OutputCapture(maxOutput, spillOf("stderr"));
    this.#failure = new Promise<never>((_, reject) => {
      this.#rejectFailure = reject;
    });
    this.#failure.catch(() => {});
  }

  async run(): Promise<RunResult> {
    let error: EngineError | undefined;
    try {
      checkRequest(this.#req);
      if (this.#deadline.remaining() <= 0 || this.#deadline.aborted) {
        throw new DeadlineExceeded("no time left to start a session", { phase: "request" });
      }
      const auth = prepareAuth(this.#opts.secret, this.#opts.credentialName);
      let hostKeys: HostKeyPolicy;
      if (this.#req.via !== undefined) {
        // Jump host (request `via`, lib/session/jump.ts): the target's transport is the jump
        // host's direct-tcpip forward, opened inside this session's deadline.
        this.#addressBehindJump();
        hostKeys = this.#hostKeyPolicy();
        await this.#openJump();
      } else {
        await this.#resolve();
        hostKeys = this.#hostKeyPolicy();
        await this.#connect();
      }
      await this.#banner(auth, hostKeys);
      await this.#step("handshake", () => this.#kexDone.promise);
      await this.#step("auth", () => this.#authDone.promise);
      const channel = await this.#openChannel();
      await this.#exec(channel);
      await this.#finishSpills();
    } catch (err) {
      error = this.#classify(err);
      if (error.name === "ConnectionLost" && this.#jump?.down) atHop(error, "via");
      // The output is incomplete: no object may claim to be the whole stream.
      this.#abortSpills(`the session ended with ${error.name} before the output was complete`);
      // A command that reported its exit status is finished, whatever happened after.
      if (this.#exit !== undefined && this.#phase === "exec") error = undefined;
      else if (this.#phase === "exec") this.#stopRemoteCommand();
    }
    // Errors before the session (credentials, policy) are reported in their own phase.
    const endedIn =
      error && !(PHASES as readonly string[]).includes(error.phase) ? error.phase : this.#phase;
    await this.#teardown();
    return this.#result(error, endedIn);
  }

  // ---- phases -------------------------------------------------------------------------

  /** Runs one phase bounded by its allowance, the caller's signal and the session's failure. */
  async #step<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    this.#enter(phase);
    const allowance = this.#deadline.allowance(phase);
    try {
      return await this.#deadline.bound(
        allowance,
        Promise.race([work(), this.#failure]),
        () => phaseTimeoutError(phase, allowance, this.#commandStarted),
        () =>
          new DeadlineExceeded(`cancelled by the caller during ${phase}`, {
            phase,
            commandStarted: this.#commandStarted,
          }),
      );
    } finally {
      this.#leave(phase);
    }
  }

  #enter(phase: Phase): void {
    this.#phase = phase;
    this.#phaseStart = performance.now();
    this.#opts.onPhase?.(phase);
  }

  #leave(phase: Phase): void {
    this.#timings[phase] = performance.now() - this.#phaseStart;
  }

  async #resolve(): Promise<void> {
    const host = this.#req.host;
    const literal = net.isIP(host);
    let family: 4 | 6;
    if (literal !== 0) {
      // IP literals skip the resolve phase: its timing stays null.
      this.#address = host;
      family = literal === 6 ? 6 : 4;
    } else {
      const lookup = this.#opts.lookup ?? defaultLookup;
      const found = await this.#step("resolve", () => lookup(host));
      this.#address = found.address;
      family = found.family;
    }
    try {
      this.#opts.checkAddress?.(this.#address, family, "target");
    } catch (err) {
      // A refusal never reveals what the name resolved to (the caller could map a private
      // network through it); `checkAddress` saw the address and can record it.
      this.#address = null;
      throw classifyError(err, { phase: "resolve", commandStarted: false });
    }
  }

  /**
   * Behind a jump host the target's name is resolved by the jump host: only an IP literal is
   * known here, and only it is checked (`checkAddress`).
   */
  #addressBehindJump(): void {
    const literal = net.isIP(this.#req.host);
    if (literal === 0) return;
    this.#address = this.#req.host;
    try {
      this.#opts.checkAddress?.(this.#address, literal === 6 ? 6 : 4, "target");
    } catch (err) {
      this.#address = null;
      throw atHop(classifyError(err, { phase: "resolve", commandStarted: false }), "target");
    }
  }

  /** Logs in at the jump host and takes its forward to the target as the transport. */
  async #openJump(): Promise<void> {
    const via = this.#opts.via!;
    const jump = new JumpHost(this.#req.via!, {
      deadline: this.#deadline,
      secret: via.secret,
      credentialName: via.credentialName,
      knownHosts: this.#opts.knownHosts,
      allowRequestPins: via.allowRequestPins,
      lookup: this.#opts.lookup ?? defaultLookup,
      checkAddress: this.#opts.checkAddress,
      target: { host: this.#req.host, port: this.#port },
      keepalive: this.#keepaliveSettings(),
      onLost: (detail) =>
        this.#fail(
          new ConnectionLost(`connection to the jump host lost during ${this.#phase}: ${detail}`, {
            phase: this.#phase,
            commandStarted: this.#commandStarted,
            hop: "via",
          }),
        ),
    });
    this.#jump = jump;
    let channel: Duplex;
    try {
      channel = await jump.open();
    } catch (err) {
      // The result's phase is the jump host's (its errors carry it).
      if (err instanceof EngineError) this.#phase = err.phase;
      throw err;
    }
    channel.on("error", () => {});
    this.#socket = channel;
    // The forward ends with its channel's close, or with the jump host's socket.
    this.#socketClosed = Promise.race([
      new Promise<void>((done) => channel.once("close", () => done())),
      jump.closed,
    ]);
  }

  async #connect(): Promise<void> {
    const address = this.#address!;
    await this.#step(
      "connect",
      () =>
        new Promise<void>((resolve, reject) => {
          // The engine owns the socket: TCP keepalive and TCP_NODELAY on (ssh2 sets neither),
          // and a handle teardown can always destroy.
          const sock = net.connect({
            host: address,
            port: this.#port,
            noDelay: true,
            keepAlive: true,
            keepAliveInitialDelay: TCP_KEEPALIVE_INITIAL_MS,
          });
          this.#socket = sock;
          this.#socketClosed = new Promise<void>((done) => sock.once("close", () => done()));
          // Permanent: errors after connect reach ssh2 through the gate; none may crash us.
          sock.on("error", () => {});
          const onError = (err: Error) => {
            sock.off("connect", onConnect);
            reject(err);
          };
          const onConnect = () => {
            sock.off("error", onError);
            resolve();
          };
          sock.once("connect", onConnect);
          sock.once("error", onError);
        }),
    );
  }

  async #banner(auth: PreparedAuth, hostKeys: HostKeyPolicy): Promise<void> {
    const sock = this.#socket!;
    await this.#step("banner", async () => {
      const gate = new BannerGate(sock, {
        onIdent: (ident) => {
          this.#ident = ident;
          // The banner phase is over now, not a microtask later: ssh2 parses the server's
          // KEXINIT from the same chunk synchronously, and an error there (no common
          // algorithm, a broken packet, a FIN) belongs to the handshake.
          this.#phase = "handshake";
          this.#identSeen.done();
        },
        onProtocolError: (message) => this.#fail(new ProtocolError(message, { phase: "banner" })),
      });
      this.#gate = gate;
      const client = new Client();
      this.#client = client;
      client.on("error", (err) => this.#fail(err));
      client.on("close", () =>
        this.#fail(
          new ConnectionLost(`connection closed by the server during ${this.#phase}`, {
            phase: this.#phase,
            commandStarted: this.#commandStarted,
          }),
        ),
      );
      client.once("handshake", () => {
        this.#sessionUp = true;
        this.#kexDone.done();
      });
      client.once("ready", () => {
        this.#startKeepalive(client);
        this.#authDone.done();
      });
      client.connect(this.#clientConfig(gate, auth, hostKeys));
      if (auth.type === "publickey") {
        signFirstAttempt(client, auth.key, (err) =>
          this.#fail(
            new AuthFailed(`signing with the private key failed: ${err.message}`, {
              phase: "auth",
            }),
          ),
        );
      }
      await this.#identSeen.promise;
    });
  }

  #clientConfig(gate: BannerGate, auth: PreparedAuth, hostKeys: HostKeyPolicy): ConnectConfig {
    const username = this.#req.username;
    let attempts = 0;
    return {
      sock: gate,
      username,
      // The engine's deadline bounds every phase; ssh2's own timer would only race it.
      readyTimeout: 0,
      // ssh2's keepalive uses only global requests, which TinySSH never answers: the engine
      // runs its own (#startKeepalive).
      keepaliveInterval: 0,
      ...(hostKeys.serverHostKeyAlgorithms
        ? { algorithms: { serverHostKey: hostKeys.serverHostKeyAlgorithms as never } }
        : {}),
      // Synchronous form: ssh2 treats a returned Promise as acceptance.
      hostVerifier: (key: Buffer): boolean => {
        this.#hostKeySha256 = fingerprintSha256(key);
        const verdict = hostKeys.verify(key);
        if (verdict === "trusted") return true;
        const refusal =
          verdict === "unknown"
            ? new HostKeyUnknown(
                `host key ${this.#hostKeySha256} of ${this.#req.host}:${this.#port} is not trusted: no ${hostKeys.source}; no credential was sent`,
                { phase: "handshake" },
              )
            : new HostKeyMismatch(
                `host key ${this.#hostKeySha256} of ${this.#req.host}:${this.#port} differs from the ${hostKeys.source} — possible impostor; no credential was sent`,
                { phase: "handshake" },
              );
        this.#hostKeyRefusal = refusal;
        this.#fail(refusal);
        return false;
      },
      // One attempt with exactly the method we hold: no `none` probe, no retries that hide
      // a wrong credential behind the server's patience.
      authHandler: (_methodsLeft, _partial, next) => {
        attempts += 1;
        if (attempts > 1) {
          next(false as unknown as AuthenticationType);
          return;
        }
        next(
          (auth.type === "publickey"
            ? { type: "publickey", username, key: auth.key }
            : { type: "password", username, password: auth.password }) as never,
        );
      },
    };
  }

  #keepaliveSettings(): KeepaliveSettings | undefined {
    const configured = this.#opts.keepalive;
    if (configured === false) return undefined;
    if (configured) return configured;
    // Detection takes interval × (countMax + 1): about half the budget, at most a minute.
    const budget = this.#deadline.remaining();
    const intervalMs = Number.isFinite(budget)
      ? Math.min(15_000, Math.max(1_000, Math.floor(budget / 8)))
      : 15_000;
    return { intervalMs, countMax: 3 };
  }

  /**
   * SSH keepalive from auth to teardown: a global request until the channel is open, then a
   * channel request (`keepalive@openssh.com`, want-reply) as OpenSSH's client does — every
   * server answers that one, TinySSH included. A peer that stops answering is ConnectionLost.
   */
  #startKeepalive(client: Client): void {
    const settings = this.#keepaliveSettings();
    if (!settings || this.#tearingDown) return;
    this.#keepalive = new Keepalive(
      settings,
      this.#deadline,
      (onReply) => {
        const channel = this.#channel;
        if (channel) return !this.#channelClosed && sendChannelKeepalive(client, channel, onReply);
        return sendGlobalKeepalive(client, onReply);
      },
      (missed) => {
        const err = new Error(
          `no answer to ${missed} keepalive requests sent every ${settings.intervalMs} ms`,
        );
        // The classifier's mark for "the peer went silent" (ssh2 uses it for its own keepalive).
        this.#fail(Object.assign(err, { level: "client-timeout" }));
      },
    );
    this.#keepalive.start();
  }

  async #openChannel(): Promise<ClientChannel> {
    const client = this.#client!;
    const execAllowance = this.#deadline.allowance("exec");
    let command = this.#req.command;
    if (this.#opts.remoteBound !== false && Number.isFinite(execAllowance)) {
      command = wrapWithRemoteBound(command, execAllowance);
      this.#remoteBound = true;
    }
    return this.#step(
      "channel",
      () =>
        new Promise<ClientChannel>((resolve, reject) => {
          client.exec(command, (err, channel) => {
            if (this.#failedWith) reject(this.#failedWith);
            else if (err) {
              reject(
                new ChannelRejected(`server refused the session channel or exec: ${err.message}`, {
                  phase: "channel",
                }),
              );
            } else {
              this.#attachChannel(channel);
              resolve(channel);
            }
          });
        }),
    );
  }

  /**
   * Attaches to the channel synchronously inside ssh2's exec callback: a fast command's
   * output, exit status and close can arrive in the same read as the exec reply, and an
   * `exit` event emitted before anyone listens is lost for good.
   */
  #attachChannel(channel: ClientChannel): void {
    this.#channel = channel;
    this.#channelDone = new Promise<void>((resolve, reject) => {
      const closed = new Promise<void>((done) => {
        channel.once("close", () => {
          this.#channelClosed = true;
          done();
        });
      });
      // Always drain both streams: an unread stream never closes and stalls the command. A
      // spill that cannot keep up pauses its stream (SSH flow control then holds the remote);
      // `drained()` never rejects, so a failed spill resumes the stream at once.
      const read = (stream: NodeJS.ReadableStream, capture: OutputCapture) => {
        stream.on("data", (chunk: Buffer) => {
          if (capture.write(chunk)) return;
          stream.pause();
          void capture.drained().then(() => stream.resume());
        });
        return new Promise<void>((done) => stream.once("end", () => done()));
      };
      this.#streamsEnded = Promise.all([
        read(channel, this.#stdout),
        read(channel.stderr, this.#stderr),
      ]);
      channel.once("exit", (code: number | null, signal?: string) => {
        this.#exitSeenFlag = true;
        this.#exitSeen.done();
        // Once the outcome is decided (e.g. CommandTimeout), a late exit status that arrives
        // during teardown must not change the result.
        if (this.#tearingDown) return;
        this.#exit = {
          code: typeof code === "number" ? code : null,
          signal: typeof signal === "string" ? signal.replace(/^SIG/, "") : null,
        };
        // Finished: wait a short grace for the rest of the output and the close, no more
        // (a spilled stream's rest is awaited by #finishSpills, inside the exec allowance).
        const grace = Math.min(EXIT_GRACE_MS, this.#deadline.allowance("exec"));
        void this.#deadline.wait(grace, closed).then(() => resolve());
      });
      void closed.then(() => {
        if (this.#exit !== undefined) resolve();
        else {
          reject(
            new ConnectionLost("channel closed without an exit status", {
              phase: "exec",
              commandStarted: true,
            }),
          );
        }
      });
    });
    this.#channelDone.catch(() => {});
  }

  async #exec(channel: ClientChannel): Promise<void> {
    this.#commandStarted = true;
    await this.#step("exec", () => {
      if (this.#req.stdin !== undefined) channel.end(this.#req.stdin);
      else channel.end();
      return this.#channelDone;
    });
  }

  /**
   * Completes the spilled streams once every chunk has been read, inside the exec allowance
   * (the teardown reserve stays). An upload that does not finish in time is aborted: the
   * result keeps head + tail and says why in `output.spillError`.
   */
  async #finishSpills(): Promise<void> {
    const captures = [this.#stdout, this.#stderr].filter((c) => c.spilling);
    if (captures.length === 0) return;
    const done = this.#deadline.wait(
      this.#deadline.allowance("exec"),
      this.#streamsEnded.then(() => Promise.all(captures.map((c) => c.finish()))),
    );
    if (!(await done)) {
      this.#abortSpills("the upload did not complete within the session's deadline");
    }
  }

  #abortSpills(reason: string): void {
    for (const capture of [this.#stdout, this.#stderr]) capture.abortSpill(new Error(reason));
  }

  /**
   * Asks the server to signal the command while the channel is open (at the protocol level:
   * ssh2's `channel.signal()` drops it after EOF). Teardown then waits, inside its reserve,
   * for the exit that confirms it.
   */
  #stopRemoteCommand(): void {
    const channel = this.#channel;
    const client = this.#client;
    if (!channel || !client || this.#channelClosed || this.#exit !== undefined) return;
    if (!this.#socket || this.#socket.destroyed) return;
    try {
      this.#signalSent = sendSignal(client, channel, "TERM");
    } catch {
      // A socket that fails now is torn down next; the remote bound still stops the command.
    }
  }

  // ---- failure, teardown, result ------------------------------------------------------

  #fail(err: unknown): void {
    if (this.#failedWith || this.#tearingDown) return;
    const classified = this.#classify(err);
    // Jump host: the forward died because the jump host's connection did.
    if (classified.name === "ConnectionLost" && this.#jump?.down) atHop(classified, "via");
    this.#failedWith = classified;
    this.#rejectFailure(classified);
  }

  #classify(err: unknown): EngineError {
    const phase: Phase =
      this.#phase === "request" || this.#phase === "policy" || this.#phase === "credentials"
        ? "resolve"
        : this.#phase;
    return classifyError(err, {
      phase,
      commandStarted: this.#commandStarted,
      hostKeyRefusal: this.#hostKeyRefusal,
    });
  }

  async #teardown(): Promise<void> {
    this.#tearingDown = true;
    this.#keepalive?.stop();
    // Idempotent: covers a caller's abort while an upload was still completing.
    this.#abortSpills("the session ended before the upload completed");
    const start = performance.now();
    this.#opts.onPhase?.("teardown");
    const sock = this.#socket;
    if (this.#signalSent && sock && !sock.destroyed) {
      // Confirmed, not assumed: the server reports the command's end (exit-signal TERM, or an
      // exit status) in time, or the result says only "signalled". CLEANUP_CONFIRM_KEEP_MS
      // stays for DISCONNECT and FIN: a server that ignores signal requests (TinySSH, ssh2's
      // Server) must not push every such session to the very end of its budget.
      const confirmMs = this.#deadline.allowance("teardown") - CLEANUP_CONFIRM_KEEP_MS;
      if (confirmMs > 0) {
        await this.#deadline.wait(
          confirmMs,
          Promise.race([this.#exitSeen.promise, this.#socketClosed]),
        );
      }
      this.#cleanupConfirmed = this.#exitSeenFlag;
    }
    if (sock && !sock.destroyed && this.#sessionUp) {
      // Polite first (signal already queued, DISCONNECT, FIN) while time allows, so sshd
      // reads them and ends the session; then destroy the socket we own: a peer that ignores
      // FIN must not keep it open. Before key exchange there is nobody to be polite to (a
      // tarpit never reads), so the socket is destroyed at once.
      try {
        this.#client?.end();
      } catch {
        // ssh2 may throw on a half-dead transport; destroying below covers it.
      }
      const politeMs = Math.max(0, this.#deadline.allowance("teardown") - TEARDOWN_SLACK_MS);
      // Through a jump host, half of it: the jump host gets its own goodbye below.
      await this.#deadline.wait(this.#jump ? politeMs / 2 : politeMs, this.#socketClosed);
    }
    if (sock) sock.destroy();
    // Jump host (request `via`): its connection goes after the target's, politely while the
    // reserve allows; when close() returns its socket is gone (and the forward with it).
    await this.#jump?.close(
      this.#deadline,
      Math.max(0, this.#deadline.allowance("teardown") - TEARDOWN_SLACK_MS),
    );
    // 'close' follows destroy() within one turn of the loop; after it the handle is gone.
    if (sock) await this.#socketClosed;
    this.#gate?.destroy();
    if (this.#client) {
      const client = this.#client;
      client.removeAllListeners();
      // ssh2 can still emit late errors on a dead transport; they must never crash the process.
      client.on("error", () => {});
    }
    this.#channel?.removeAllListeners();
    this.#channel?.stderr.removeAllListeners();
    this.#timings.teardown = performance.now() - start;
  }

  #hostKeyPolicy(): HostKeyPolicy {
    // checkRequest has already refused a malformed pin.
    return hostKeyTrust({
      knownHosts: this.#opts.knownHosts,
      pin: this.#req.hostKey,
      host: this.#req.host,
      port: this.#port,
      address: this.#address ?? undefined,
      // A pin alone never vouches for a server that would receive a password.
      allowPinOnly:
        this.#opts.allowRequestPins !== false && typeof this.#opts.secret.password !== "string",
    });
  }

  #result(error: EngineError | undefined, endedIn: ErrorPhase): RunResult {
    const out = this.#stdout.text();
    const err = this.#stderr.text();
    const spillErrors = (["stdout", "stderr"] as const)
      .map((name) => {
        const message = (name === "stdout" ? this.#stdout : this.#stderr).spillError;
        return message === undefined ? undefined : `${name}: ${message}`;
      })
      .filter((m) => m !== undefined);
    let status: Status;
    if (error) status = error.name.endsWith("Timeout") ? "timed_out" : "error";
    else status = this.#exit?.code === 0 && this.#exit.signal === null ? "succeeded" : "failed";
    const timings = Object.fromEntries(
      Object.entries(TIMING_KEYS).map(([phase, key]) => {
        const ms = this.#timings[phase as Phase];
        return [key, ms === undefined ? null : round(ms)];
      }),
    ) as Omit<PhaseTimings, "totalMs">;
    const remaining = this.#deadline.remaining();
    const result: RunResult = {
      requestId: this.#requestId,
      status,
      target: {
        host: this.#req.host,
        port: this.#port,
        address: this.#address,
        username: this.#req.username,
      },
      exitCode: this.#exit?.code ?? null,
      signal: this.#exit?.signal ?? null,
      stdout: out.text,
      stderr: err.text,
      output: {
        stdoutBytes: this.#stdout.bytes,
        stderrBytes: this.#stderr.bytes,
        truncated: this.#stdout.truncated || this.#stderr.truncated,
        stdoutSha256: out.sha256,
        stderrSha256: err.sha256,
        stdoutEncoding: out.encoding,
        stderrEncoding: err.encoding,
        ...(this.#stdout.object ? { stdoutObject: this.#stdout.object } : {}),
        ...(this.#stderr.object ? { stderrObject: this.#stderr.object } : {}),
        ...(spillErrors.length > 0 ? { spillError: spillErrors.join("; ") } : {}),
      },
      phase: endedIn,
      timings: { ...timings, totalMs: round(this.#deadline.elapsed()) },
      deadline: {
        budgetMs: Number.isFinite(this.#deadline.budgetMs) ? this.#deadline.budgetMs : null,
        remainingMs: Number.isFinite(remaining) ? round(remaining) : null,
      },
      remoteCleanup: this.#remoteCleanup(error),
    };
    if (error) {
      result.error = {
        name: error.name,
        phase: error.phase,
        message: error.message,
        retryable: error.retryable,
        commandStarted: error.commandStarted,
      };
      if (this.#req?.via !== undefined) result.error.hop = error.hop ?? "target";
    }
    if (this.#jump) {
      const jump = this.#jump;
      result.via = {
        host: jump.host,
        port: jump.port,
        address: jump.address,
        username: jump.username,
        timings: jump.timings(),
      };
      if (jump.ident !== undefined && jump.hostKeySha256 !== undefined) {
        result.via.server = { ident: jump.ident, hostKeySha256: jump.hostKeySha256 };
      }
    }
    if (this.#ident !== undefined && this.#hostKeySha256 !== undefined) {
      result.server = { ident: this.#ident, hostKeySha256: this.#hostKeySha256 };
    }
    return result;
  }

  #remoteCleanup(error: EngineError | undefined): RemoteCleanup {
    if (error === undefined || !this.#commandStarted || this.#exit !== undefined) {
      return "not_needed";
    }
    if (this.#signalSent) return this.#cleanupConfirmed ? "confirmed" : "signalled";
    if (this.#remoteBound) return "remote_bound";
    return "unknown";
  }
}

async function defaultLookup(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const found = await dnsLookup(host, { order: "ipv4first" });
  return { address: found.address, family: found.family === 6 ? 6 : 4 };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
