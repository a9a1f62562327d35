import net from "node:net";
import type { Duplex } from "node:stream";
import type { AuthenticationType, ClientChannel, ConnectConfig } from "ssh2";
import type { Deadline } from "../deadline.ts";
import {
  AuthFailed,
  atHop,
  ChannelRejected,
  ConnectionLost,
  classifyError,
  type EngineError,
  HostKeyMismatch,
  HostKeyUnknown,
  ProtocolError,
} from "../errors.ts";
import type { ErrorPhase, Hop, Phase } from "../names.ts";
import { BannerGate } from "./banner-gate.ts";
import type { PreparedAuth } from "./credentials.ts";
import { fingerprintSha256, type HostKeyPolicy } from "./host-keys.ts";
import { Keepalive, type KeepaliveSettings } from "./keepalive.ts";
import { SessionOutput } from "./output-capture.ts";
import { readsInPlaceWithdrawn, withdrawOnDecipherFailure } from "./reads-in-place.ts";
import { signFirstAttempt } from "./sign-first.ts";
import {
  CIPHER_ORDER,
  Client,
  closedByPeer,
  execWhenSent,
  HOST_CERT_ALGORITHMS,
  READS_IN_PLACE,
  sendChannelKeepalive,
  sendGlobalKeepalive,
  sendSignal,
} from "./ssh2.ts";

/**
 * After the exit status, how long the output may stay silent before the engine stops waiting
 * for its end (EOF or channel close). An idle grace: every chunk that arrives restarts it, so a
 * stream still flowing (a slow link, re-keys) is read to its end however long that takes
 * inside the exec allowance. Stopping early means the output is incomplete (`OutputIncomplete`),
 * never a success, so this only decides how soon a stream that will not end (a background
 * process holding stdout open) is given up on: above Linux's minimum TCP retransmission
 * timeout (200 ms) plus a retransmission, and a loaded event loop.
 */
export const EXIT_IDLE_GRACE_MS = 1_000;
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
 * Where every dialled socket reads (net's `onread`): one buffer for the whole process. Reads
 * are synchronous on the event loop and each chunk is consumed or copied before its callback
 * returns ({@link SshConnection}'s #received), so connections never see each other's bytes.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Where the session stands, owned by the phase script (run-command.ts) and read here to
 * attribute a failure. The connection writes `phase` once: at the server's identification line
 * (see {@link SshConnection.startSsh}); and `commandStarted`, which only it can know: true
 * the moment the exec request is written, before it leaves (the command may run from then on,
 * answered or not), and back to false only when the server refuses that request
 * (see {@link SshConnection.openExec}).
 */
export interface SessionProgress {
  phase: ErrorPhase;
  /** The exec request was sent: the command started or may have started (SPEC §5). */
  commandStarted: boolean;
}

/** What the SSH layer needs to know about the target and the credential. */
export interface SshParams {
  /** For messages only: the host and port the caller asked for. */
  host: string;
  port: number;
  username: string;
  auth: PreparedAuth;
  hostKeys: HostKeyPolicy;
}

/** Options of {@link SshConnection}. */
export interface SshConnectionOptions {
  /** The session's one deadline: every wait in here goes through it. */
  deadline: Deadline;
  progress: SessionProgress;
  /**
   * Where the channel's stdout and stderr are drained to. A connection that runs no command
   * (a jump host's) has none. @default an empty capture
   */
  output?: SessionOutput | undefined;
  /** `RunOptions.keepalive`. @default derived from the budget left when it starts */
  keepalive?: KeepaliveSettings | false | undefined;
  /**
   * Whether SSH keepalive starts at `auth`; `false`: when the owner calls
   * {@link SshConnection.startKeepalive} (a jump host, once its forward is open). @default true
   */
  keepaliveAtAuth?: boolean | undefined;
  /**
   * `"via"`: this is the jump host's connection — its messages say so and every error it
   * classifies carries `hop: "via"`. @default the target (errors untagged: the script tags
   * them when the request has `via`)
   */
  hop?: Hop | undefined;
  /** `RunOptions.readsInPlace`: reads into the shared buffer (see {@link READ_BUFFER}). @default true */
  readsInPlace?: boolean | undefined;
}

/** How messages name the peer of a connection, by hop. */
const PEER_WORDS = {
  target: {
    where: (host: string, port: number) => `${host}:${port}`,
    closed: (phase: string) => `connection closed by the server during ${phase}`,
    key: "the private key",
  },
  via: {
    where: (host: string, port: number) => `jump host ${host}:${port}`,
    closed: (phase: string) => `jump host closed the connection during ${phase}`,
    key: "the jump host's private key",
  },
} as const;

/** The command's end as the server reported it. */
export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

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

/**
 * One SSH connection: owns its transport, the banner gate, the ssh2 client and the exec
 * channel, and releases all of them in {@link close}. It turns ssh2's events into milestones —
 * one method per phase, each settling when its phase is done — and into ONE failure: the
 * first error of the connection, already classified, rejects every pending milestone. It sets
 * no timer of its own for a phase: the phase script bounds each milestone with the deadline.
 *
 * ## Transport (the seam for a jump host)
 * The SSH session runs on a byte stream, obtained in one of two ways, exactly once:
 * - {@link dial}: a TCP connection this object opens and owns (`connect` phase);
 * - {@link useTransport}: any already-open `Duplex` handed over by the caller, e.g. a
 *   `direct-tcpip` channel opened through a jump host. The banner gate and the whole SSH
 *   handshake then run on that stream, inside the same deadline. Ownership passes here:
 *   {@link close} ends it politely and then destroys it, like its own socket, but waits for
 *   its `close` event only while the teardown allowance lasts (an ssh2 channel closes when
 *   the jump host answers CHANNEL_CLOSE). Whatever carries that stream (the jump host's own
 *   connection) stays the caller's: close it after this one, and destroy it, to release
 *   every handle.
 * Everything after the transport — {@link startSsh} onwards — does not know which it got.
 *
 * ## Both hops
 * A jump host is an SshConnection too (`hop: "via"`, lib/session/jump.ts): the same dial,
 * banner gate, host key check, one-attempt auth and keepalive, then {@link forwardOut} instead
 * of {@link openExec}; its channel is the target connection's {@link useTransport}.
 */
export class SshConnection {
  readonly #deadline: Deadline;
  readonly #progress: SessionProgress;
  readonly #output: SessionOutput;
  readonly #keepaliveOption: KeepaliveSettings | false | undefined;
  readonly #keepaliveAtAuth: boolean;
  readonly #hop: Hop | undefined;
  readonly #words: (typeof PEER_WORDS)[Hop];

  #transport: Duplex | undefined;
  /** The transport is our own TCP socket (dial), not a stream handed over (useTransport). */
  #dialled = false;
  #transportClosed: Promise<void> = Promise.resolve();
  /** The transport ended, closed or failed. */
  #transportDown = false;
  #gate: BannerGate | undefined;
  /** Reads land in {@link READ_BUFFER} (asked for, and safe with this ssh2). */
  readonly #readsInPlace: boolean;
  /**
   * True once a read was handed to ssh2 in place (then a decipher failure may be one's). Set
   * after the hand-off on purpose: a failure inside the first in-place chunk (ssh2 emits
   * `error` synchronously within it) cannot be a clobbered earlier read, since there was none.
   */
  #handedInPlace = false;
  #bytesRead = 0;
  /** The server-to-client cipher, once negotiated (for a decipher failure's message). */
  #inboundCipher = "unknown";
  /** ssh2 authenticated: inbound packets are all encrypted (see #received). */
  #sessionReady = false;
  #client: Client | undefined;
  #channel: ClientChannel | undefined;
  /** The session channel the exec request went out on, before the server answered it. */
  #execChannel: ClientChannel | undefined;
  /** Settles with the server's answer to the exec request (see {@link execute}). */
  #execAnswer: Promise<void> = Promise.resolve();
  #execAnswered = false;
  #channelClosed = false;
  /** ssh2 reported the transport closed: streams that end now were cut, not finished. */
  #transportLost = false;
  #channelDone: Promise<void> = Promise.resolve();
  #keepalive: Keepalive | undefined;
  #keepaliveIntervalMs = 0;
  /** When the peer last answered a keepalive (or the keepalive started). */
  #lastAnswerAt = 0;

  readonly #failure: Promise<never>;
  #rejectFailure!: (err: EngineError) => void;
  #failedWith: EngineError | undefined;
  #closing = false;
  #closed: Promise<boolean> | undefined;
  /** Key exchange completed: from here on close() says goodbye before destroying. */
  #sessionUp = false;

  #hostKeyRefusal: HostKeyUnknown | HostKeyMismatch | undefined;
  #ident: string | undefined;
  #hostKeySha256: string | undefined;
  #exit: ExitStatus | undefined;
  #signalSent = false;
  /** Any exit status or exit signal, even one that arrives while closing. */
  #exitSeen = false;

  // ---- milestones: one per phase, in order -------------------------------------------
  readonly #identSeen = milestone();
  readonly #kexDone = milestone();
  readonly #authDone = milestone();
  readonly #exitReported = milestone();
  /** close() began: whatever still waits for the peer stops. */
  readonly #closeStarted = milestone();

  constructor(options: SshConnectionOptions) {
    this.#deadline = options.deadline;
    this.#progress = options.progress;
    this.#output = options.output ?? new SessionOutput(0);
    this.#keepaliveOption = options.keepalive;
    this.#keepaliveAtAuth = options.keepaliveAtAuth !== false;
    this.#hop = options.hop;
    this.#readsInPlace =
      options.readsInPlace !== false && READS_IN_PLACE && !readsInPlaceWithdrawn();
    this.#words = PEER_WORDS[options.hop ?? "target"];
    this.#failure = new Promise<never>((_, reject) => {
      this.#rejectFailure = reject;
    });
    this.#failure.catch(() => {});
  }

  /** The server's identification line, once seen. */
  get ident(): string | undefined {
    return this.#ident;
  }

  /** SHA-256 fingerprint of the key the server presented, once seen. */
  get hostKeySha256(): string | undefined {
    return this.#hostKeySha256;
  }

  /** The command's exit, when the server reported it before close() began. */
  get exit(): ExitStatus | undefined {
    return this.#exit;
  }

  /** The engine asked the server to signal the command ({@link stopRemoteCommand}). */
  get signalSent(): boolean {
    return this.#signalSent;
  }

  // ---- transport ------------------------------------------------------------------------

  /**
   * Transport, kind 1: opens the TCP connection (milestone of `connect`). The engine owns the
   * socket: TCP keepalive and TCP_NODELAY on (ssh2 sets neither), and a handle close() can
   * always destroy.
   */
  dial(address: string, port: number): Promise<void> {
    const sock: net.Socket = net.connect({
      host: address,
      port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: TCP_KEEPALIVE_INITIAL_MS,
      // Reads land in one process-wide buffer instead of a new one per read (100 MB of
      // allocations, and the major GCs they trigger, per 100 MB drained). A chunk is valid
      // only during this callback: see #received. Only where ssh2 keeps no view of its input
      // (READS_IN_PLACE: its pure-JS deciphers, patched), unless the caller opted out
      // (RunOptions.readsInPlace: false) or a decipher failure withdrew it (reads-in-place.ts).
      ...(this.#readsInPlace
        ? { onread: { buffer: READ_BUFFER, callback: (n: number) => this.#received(sock, n) } }
        : {}),
    });
    this.useTransport(sock);
    this.#dialled = true;
    return this.#orFailure(
      new Promise<void>((resolve, reject) => {
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

  /**
   * One read of the dialled socket, in {@link READ_BUFFER} (reused by the next read of any
   * connection). Once authenticated (every inbound packet is then decrypted into a buffer of
   * its own, and ssh2 keeps nothing of its input), the banner gate hands the bytes to ssh2
   * in place; before that (the banner, the clear-text key exchange: ssh2 keeps views of
   * those packets), or when the gate would have to queue them, they are copied.
   */
  #received(sock: net.Socket, n: number): boolean {
    const chunk = READ_BUFFER.subarray(0, n);
    const gate = this.#gate;
    this.#bytesRead += n;
    if (this.#sessionReady && gate?.receiveInPlace(chunk)) this.#handedInPlace = true;
    else sock.emit("data", Buffer.from(chunk));
    return true; // go on reading (the gate pauses the socket itself when ssh2 falls behind)
  }

  /**
   * Transport, kind 2: runs the session on an already-open stream (a jump host's
   * `direct-tcpip` channel) instead of dialling. Takes ownership: close() ends and destroys
   * it. Call at most once, and before {@link startSsh}.
   */
  useTransport(stream: Duplex): void {
    if (this.#transport) throw new Error("SshConnection: the transport is already set");
    this.#transport = stream;
    this.#transportClosed = new Promise<void>((done) => stream.once("close", () => done()));
    const down = () => {
      this.#transportDown = true;
    };
    stream.once("end", down);
    stream.once("close", down);
    // Permanent: errors after connect reach ssh2 through the gate; none may crash us.
    stream.on("error", down);
  }

  /**
   * True once the connection is gone or has stopped answering: its transport ended, closed or
   * failed, it failed, or its keepalive has gone unanswered for 1.5 intervals (a healthy peer
   * answers every probe within a round trip). A jump host that is down carries nothing: a
   * target session lost meanwhile was lost with it.
   */
  get down(): boolean {
    const silent =
      this.#keepalive !== undefined &&
      performance.now() - this.#lastAnswerAt > 1.5 * this.#keepaliveIntervalMs;
    return this.#transportDown || this.#failedWith !== undefined || silent;
  }

  /**
   * The connection's first failure, already classified; never settles once close() began. For
   * a caller that waits on no milestone, e.g. a jump host whose forward carries the target.
   */
  get failure(): Promise<never> {
    return this.#failure;
  }

  // ---- SSH --------------------------------------------------------------------------------

  /**
   * Starts SSH on the transport (milestone of `banner`: the server's identification line).
   * ssh2 sends our identification at once; the key exchange and auth follow on their own and
   * settle {@link handshake} and {@link authenticated}.
   */
  startSsh(params: SshParams): Promise<void> {
    const transport = this.#transport;
    if (!transport) throw new Error("SshConnection: no transport (dial or useTransport first)");
    const gate = new BannerGate(transport, {
      onIdent: (ident) => {
        this.#ident = ident;
        // The banner phase is over now, not a microtask later: ssh2 parses the server's
        // KEXINIT from the same chunk synchronously, and an error there (no common
        // algorithm, a broken packet, a FIN) belongs to the handshake.
        this.#progress.phase = "handshake";
        this.#identSeen.done();
      },
      onProtocolError: (message) => this.fail(new ProtocolError(message, { phase: "banner" })),
    });
    this.#gate = gate;
    const client = new Client();
    this.#client = client;
    client.on("error", (err) =>
      // Only a connection that handed ssh2 a read in place (#received, after authentication)
      // can blame in-place reads: a failure before it, or over a jump channel, is not theirs.
      this.fail(
        this.#handedInPlace
          ? withdrawOnDecipherFailure(err, this.#inboundCipher, this.#bytesRead)
          : err,
      ),
    );
    client.on("close", () => {
      // Before ssh2 ends the channel's streams (it does so right after this event).
      this.#transportLost = true;
      this.fail(
        new ConnectionLost(this.#words.closed(this.#progress.phase), {
          phase: this.#progress.phase,
          commandStarted: this.#progress.commandStarted,
        }),
      );
    });
    client.once("handshake", (negotiated: { sc?: { cipher?: string; mac?: string } }) => {
      const { cipher, mac } = negotiated?.sc ?? {};
      this.#inboundCipher = cipher ? (mac ? `${cipher} + ${mac}` : cipher) : "unknown";
      this.#sessionUp = true;
      this.#kexDone.done();
    });
    client.once("ready", () => {
      this.#sessionReady = true;
      if (this.#keepaliveAtAuth) this.startKeepalive();
      this.#authDone.done();
    });
    client.connect(this.#clientConfig(gate, params));
    const { auth } = params;
    if (auth.type !== "password") {
      signFirstAttempt(client, auth, (err) =>
        this.fail(
          new AuthFailed(`signing with ${this.#words.key} failed: ${err.message}`, {
            phase: "auth",
          }),
        ),
      );
    }
    return this.#orFailure(this.#identSeen.promise);
  }

  /** Milestone of `handshake`: key exchange done, host key verified. */
  handshake(): Promise<void> {
    return this.#orFailure(this.#kexDone.promise);
  }

  /** Milestone of `auth`: the server accepted the credential. */
  authenticated(): Promise<void> {
    return this.#orFailure(this.#authDone.promise);
  }

  /**
   * Opens a `direct-tcpip` channel to `host:port` (a jump host's forward): resolves with the
   * channel, the transport of another connection. An open failure rejects with ssh2's error
   * as is (its `reason` is RFC 4254's) for the caller to name; the connection's own failure
   * rejects with that.
   */
  forwardOut(host: string, port: number): Promise<ClientChannel> {
    const client = this.#client!;
    return this.#orFailure(
      new Promise<ClientChannel>((resolve, reject) => {
        client.forwardOut("127.0.0.1", 0, host, port, (err, channel) => {
          if (err) reject(err);
          else {
            // Errors after the open reach its own connection through that one's banner gate.
            channel.on("error", () => {});
            resolve(channel);
          }
        });
      }),
    );
  }

  #clientConfig(gate: BannerGate, params: SshParams): ConnectConfig {
    const { username, auth, hostKeys } = params;
    let attempts = 0;
    return {
      sock: gate,
      username,
      // The engine's deadline bounds every phase; ssh2's own timer would only race it.
      readyTimeout: 0,
      // ssh2's keepalive uses only global requests, which TinySSH never answers: the engine
      // runs its own (startKeepalive).
      keepaliveInterval: 0,
      algorithms: {
        // Fastest measured first (docs/benchmarks.md, "Drain"); fixed here, not left to ssh2,
        // whose order depends on an optional native binding and CPU probe.
        cipher: CIPHER_ORDER as never,
        ...(hostKeys.serverHostKeyAlgorithms
          ? {
              // Host certificate types only where this ssh2 negotiates them (its patch).
              serverHostKey: hostKeys.serverHostKeyAlgorithms.filter(
                (a) => !a.includes("-cert-v01@") || HOST_CERT_ALGORITHMS.includes(a),
              ) as never,
            }
          : {}),
      },
      // Synchronous form: ssh2 treats a returned Promise as acceptance.
      hostVerifier: (key: Buffer): boolean => {
        this.#hostKeySha256 = fingerprintSha256(key);
        const verdict = hostKeys.verify(key);
        if (verdict === "trusted") return true;
        const target = this.#words.where(params.host, params.port);
        const refusal =
          verdict === "unknown"
            ? new HostKeyUnknown(
                `host key ${this.#hostKeySha256} of ${target} is not trusted: no ${hostKeys.source}; no credential was sent`,
                { phase: "handshake" },
              )
            : new HostKeyMismatch(
                `host key ${this.#hostKeySha256} of ${target} differs from the ${hostKeys.source} — possible impostor; no credential was sent`,
                { phase: "handshake" },
              );
        this.#hostKeyRefusal = refusal;
        this.fail(refusal);
        return false;
      },
      // One attempt with exactly the method we hold: no `none` probe, no retries that hide
      // a wrong credential behind the server's patience.
      authHandler: (_methodsLeft, _partial, next) => {
        attempts += 1;
        if (attempts > 1) {
          if (auth.type === "certificate") {
            // Says why, before ssh2's generic "All configured authentication methods failed".
            this.fail(
              new AuthFailed(
                `the server refused the certificate for ${JSON.stringify(username)} (${auth.minted.spec.keyId}): check its TrustedUserCAKeys, the principals it allows, and its clock; Dropbear and TinySSH have no certificate support`,
                { phase: "auth" },
              ),
            );
          }
          next(false as unknown as AuthenticationType);
          return;
        }
        next(
          (auth.type !== "password"
            ? { type: "publickey", username, key: auth.key }
            : { type: "password", username, password: auth.password }) as never,
        );
      },
    };
  }

  #keepaliveSettings(): KeepaliveSettings | undefined {
    const configured = this.#keepaliveOption;
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
   * SSH keepalive from auth (or from this call, see `keepaliveAtAuth`) to close: a global
   * request until the channel is open, then a channel request (`keepalive@openssh.com`,
   * want-reply) as OpenSSH's client does — every server answers that one, TinySSH included. A
   * peer that stops answering is ConnectionLost. Once only; not before auth nor after close().
   */
  startKeepalive(): void {
    const client = this.#client;
    if (this.#keepalive || !client) return;
    const settings = this.#keepaliveSettings();
    if (!settings || this.#closing) return;
    this.#keepaliveIntervalMs = settings.intervalMs;
    this.#lastAnswerAt = performance.now();
    this.#keepalive = new Keepalive(
      settings,
      this.#deadline,
      (onReply) => {
        const answered = () => {
          this.#lastAnswerAt = performance.now();
          onReply();
        };
        const channel = this.#channel;
        if (channel) return !this.#channelClosed && sendChannelKeepalive(client, channel, answered);
        return sendGlobalKeepalive(client, answered);
      },
      (missed) => {
        const err = new Error(
          `no answer to ${missed} keepalive requests sent every ${settings.intervalMs} ms`,
        );
        // The classifier's mark for "the peer went silent" (ssh2 uses it for its own keepalive).
        this.fail(Object.assign(err, { level: "client-timeout" }));
      },
    );
    this.#keepalive.start();
  }

  // ---- channel ----------------------------------------------------------------------------

  /**
   * Milestone of `channel`: a session channel is open and the exec request for `command` has
   * been written (ssh2 waits for the channel's confirmation, then sends it). From that moment
   * the command may run, whether or not the server ever answers: `progress.commandStarted`
   * turns true synchronously, just before the request is written, so no failure classified
   * after it can say the command did not start. The server's answer belongs to `exec`
   * ({@link execute}). A request not yet sent when the connection has failed or begun closing
   * (the channel phase timed out, then the confirmation came) is never sent.
   */
  openExec(command: string): Promise<void> {
    const client = this.#client!;
    const sent = milestone();
    this.#execAnswer = new Promise<void>((resolve, reject) => {
      const hooks = {
        maySend: () => this.#failedWith === undefined && !this.#closing,
        onSending: (channel: ClientChannel | undefined) => {
          this.#progress.commandStarted = true;
          this.#execChannel = channel;
          sent.done();
        },
      };
      const answered = (err: Error | undefined, channel: ClientChannel) => {
        this.#execAnswered = true;
        // Attached even to a session that gave up: the exit that confirms a signal still counts.
        if (!err) this.#attachChannel(channel);
        if (this.#failedWith) reject(this.#failedWith);
        else if (err && !this.#progress.commandStarted) {
          reject(
            new ChannelRejected(`server refused the session channel: ${err.message}`, {
              phase: "channel",
            }),
          );
        } else if (err && closedByPeer(this.#execChannel)) {
          reject(
            new ConnectionLost(
              "the server closed the channel without answering the exec request: the command may have run",
              { phase: "exec", commandStarted: true },
            ),
          );
        } else if (err) {
          // The server's explicit refusal (CHANNEL_FAILURE): it says it did not run the command.
          this.#progress.commandStarted = false;
          reject(
            new ChannelRejected(
              `server refused the exec request (${err.message}): the command did not run`,
              { phase: "exec" },
            ),
          );
        } else resolve();
      };
      if (!execWhenSent(client, command, hooks, answered)) {
        // ssh2's internals are not there to follow: count the request as sent now, so a
        // failure can only over-state that the command may have started, never hide it.
        hooks.onSending(undefined);
        client.exec(command, answered);
      }
    });
    this.#execAnswer.catch(() => {});
    // An open refusal rejects the answer before anything was sent: that is the channel's.
    return this.#orFailure(Promise.race([sent.promise, this.#execAnswer]));
  }

  /** The server answered the exec request (accepted or refused). */
  get execAnswered(): boolean {
    return this.#execAnswered;
  }

  /**
   * Milestone of `exec`: waits for the server's answer to the exec request, then sends stdin
   * (then EOF) and settles once the command's exit status arrived and its output was read to
   * the end (EOF or channel close), or the output stopped for {@link EXIT_IDLE_GRACE_MS}, or
   * the exec allowance ended (then `output.complete` is false and the result says
   * `OutputIncomplete`). Rejects with ChannelRejected when the server refused the exec request
   * (`commandStarted` back to false), with ConnectionLost when the channel closes without an
   * exit status.
   */
  async execute(stdin: string | undefined): Promise<void> {
    await this.#orFailure(this.#execAnswer);
    const channel = this.#channel!;
    if (stdin !== undefined) channel.end(stdin);
    else channel.end();
    return this.#orFailure(this.#channelDone);
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
      // A stream's end counts as the server's only while the transport lives: ssh2 ends the
      // streams of a connection that died, too.
      this.#output.drain(channel, channel.stderr, () => !this.#transportLost);
      channel.once("exit", (code: number | null, signal?: string) => {
        this.#exitSeen = true;
        this.#exitReported.done();
        // Once the outcome is decided (e.g. CommandTimeout), a late exit status that arrives
        // while closing must not change the result.
        if (this.#closing) return;
        this.#exit = {
          code: typeof code === "number" ? code : null,
          signal: typeof signal === "string" ? signal.replace(/^SIG/, "") : null,
        };
        // OpenSSH reports the exit as soon as the command ends, with output still queued
        // behind it (and behind re-keys): read on until the streams end.
        void this.#readToEnd(performance.now()).then(() => resolve());
      });
      void closed.then(() => {
        if (this.#exit !== undefined) return; // #readToEnd settles it once the streams end
        reject(
          new ConnectionLost("channel closed without an exit status", {
            phase: "exec",
            commandStarted: true,
          }),
        );
      });
    });
    this.#channelDone.catch(() => {});
  }

  /**
   * After the exit status: waits for the end of both streams (EOF or channel close) while
   * output keeps coming — an idle grace of {@link EXIT_IDLE_GRACE_MS} that every chunk
   * restarts, and that does not run while a spill holds a stream back — and the exec
   * allowance lasts. The one wait for the output's end: a spilled stream is completed only
   * after it (SessionOutput.finishSpills). When it gives up, `output.incompleteReason` says why.
   */
  async #readToEnd(exitAt: number): Promise<void> {
    const output = this.#output;
    const deadline = this.#deadline;
    const stop = Promise.race([output.ended, this.#closeStarted.promise]);
    for (;;) {
      if (output.endSeen) break;
      const allowance = deadline.allowance("exec");
      const quiet = Math.min(performance.now() - exitAt, output.quietMs());
      const graceLeft = output.waitingOnSpill ? EXIT_IDLE_GRACE_MS : EXIT_IDLE_GRACE_MS - quiet;
      if (this.#closing || deadline.aborted || allowance <= 0 || graceLeft <= 0) break;
      if (await deadline.wait(Math.min(graceLeft, allowance), stop)) continue;
      // Each turn of the event loop runs due timers before it reads sockets: after a busy
      // stretch the grace can expire with output already waiting. One turn reads it first.
      await new Promise<void>((next) => setImmediate(next));
    }
    if (output.complete) return;
    const waited = Math.round(performance.now() - exitAt);
    let reason: string;
    if (output.endSeen || this.#transportLost) {
      reason = `the connection was lost ${waited} ms after the exit status, before the output ended`;
    } else if (deadline.aborted) {
      reason = `the caller cancelled the session ${waited} ms after the exit status, before the output ended`;
    } else if (deadline.allowance("exec") <= 1) {
      // (≤ 1 ms: the exec phase's own timer may have fired a fraction of a millisecond early.)
      reason = `the session's time ran out ${waited} ms after the exit status, with output still arriving`;
    } else if (this.#closing) {
      reason = `the session ended ${waited} ms after the exit status, before the output did`;
    } else {
      reason =
        `no output and no end of the streams (EOF) for ${EXIT_IDLE_GRACE_MS} ms after the exit ` +
        "status: a process left in the background may hold stdout or stderr open (redirect its output)";
    }
    output.stoppedReading(reason);
  }

  /**
   * Asks the server to signal the command while the channel is open (at the protocol level:
   * ssh2's `channel.signal()` drops it after EOF). close() then waits, inside the teardown
   * reserve, for the exit that confirms it.
   */
  stopRemoteCommand(): void {
    // Before the server answered the exec request, the channel it went out on: the command
    // may run there all the same.
    const channel = this.#channel ?? this.#execChannel;
    const client = this.#client;
    if (!channel || !client || this.#channelClosed || this.#exit !== undefined) return;
    if (!this.#transport || this.#transport.destroyed) return;
    try {
      this.#signalSent = sendSignal(client, channel, "TERM");
    } catch {
      // A transport that fails now is torn down next; the remote bound still stops the command.
    }
  }

  // ---- failure ----------------------------------------------------------------------------

  /** Reports a failure of the connection; the first one wins, none after close() began. */
  fail(err: unknown): void {
    if (this.#failedWith || this.#closing) return;
    const classified = this.classify(err);
    this.#failedWith = classified;
    this.#rejectFailure(classified);
  }

  /** The project's error for anything thrown or emitted during this session (and its hop). */
  classify(err: unknown): EngineError {
    const at = this.#progress.phase;
    const phase: Phase =
      at === "request" || at === "policy" || at === "credentials" ? "resolve" : at;
    const classified = classifyError(err, {
      phase,
      commandStarted: this.#progress.commandStarted,
      hostKeyRefusal: this.#hostKeyRefusal,
    });
    return this.#hop ? atHop(classified, this.#hop) : classified;
  }

  /** A milestone, or the connection's first failure if that comes first. */
  #orFailure<T>(milestone: Promise<T>): Promise<T> {
    return Promise.race([milestone, this.#failure]);
  }

  // ---- teardown ---------------------------------------------------------------------------

  /**
   * Releases everything, inside what is left of the deadline (the teardown reserve):
   * waits for the confirmation of a signalled command, says goodbye (DISCONNECT, FIN) when
   * the session was up, then destroys the transport and waits for its close. Idempotent:
   * every call returns the first one's promise. Resolves true when the server confirmed the
   * end of a signalled command. When it resolves, no handle of this connection is alive.
   * `polite: false` skips the goodbye (a peer known to be gone): the transport is destroyed
   * at once.
   */
  close(polite = true): Promise<boolean> {
    this.#closed ??= this.#close(polite);
    return this.#closed;
  }

  async #close(polite: boolean): Promise<boolean> {
    this.#closing = true;
    this.#closeStarted.done();
    this.#keepalive?.stop();
    const transport = this.#transport;
    let confirmed = false;
    if (this.#signalSent && transport && !transport.destroyed) {
      // Confirmed, not assumed: the server reports the command's end (exit-signal TERM, or an
      // exit status) in time, or the result says only "signalled". CLEANUP_CONFIRM_KEEP_MS
      // stays for DISCONNECT and FIN: a server that ignores signal requests (TinySSH, ssh2's
      // Server) must not push every such session to the very end of its budget.
      const confirmMs = this.#deadline.allowance("teardown") - CLEANUP_CONFIRM_KEEP_MS;
      if (confirmMs > 0) {
        await this.#deadline.wait(
          confirmMs,
          Promise.race([this.#exitReported.promise, this.#transportClosed]),
        );
      }
      confirmed = this.#exitSeen;
    }
    if (polite && transport && !transport.destroyed && this.#sessionUp) {
      // Polite first (signal already queued, DISCONNECT, FIN) while time allows, so sshd
      // reads them and ends the session; then destroy the transport we own: a peer that
      // ignores FIN must not keep it open. Before key exchange there is nobody to be polite
      // to (a tarpit never reads), so the transport is destroyed at once.
      try {
        this.#client?.end();
      } catch {
        // ssh2 may throw on a half-dead transport; destroying below covers it.
      }
      await this.#deadline.wait(
        Math.max(0, this.#deadline.allowance("teardown") - TEARDOWN_SLACK_MS),
        this.#transportClosed,
      );
    }
    if (transport) {
      transport.destroy();
      // A dialled socket: 'close' follows destroy() within one turn of the loop; after it the
      // handle is gone. A given stream may need its peer to confirm (an ssh2 channel's
      // destroy() sends CHANNEL_CLOSE and closes on the answer): wait only while the
      // teardown allowance lasts; its carrier's owner destroys the rest.
      if (this.#dialled) await this.#transportClosed;
      else await this.#deadline.wait(this.#deadline.allowance("teardown"), this.#transportClosed);
    }
    this.#gate?.destroy();
    if (this.#client) {
      const client = this.#client;
      client.removeAllListeners();
      // ssh2 can still emit late errors on a dead transport; they must never crash the process.
      client.on("error", () => {});
    }
    this.#channel?.removeAllListeners();
    this.#channel?.stderr.removeAllListeners();
    return confirmed;
  }
}
