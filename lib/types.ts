import type { ErrorName, ErrorPhase, Hop, Phase, RemoteCleanup, Status } from "./names.ts";

/**
 * One jump host (OpenSSH `ProxyJump` with one hop): the engine logs in here and opens a
 * `direct-tcpip` channel to the target's `host`:`port`, then runs the target session over it.
 * The fields follow the target's rules and defaults.
 */
export interface JumpHostRequest {
  /** DNS name or IP literal, resolved by the engine (the target's name by the jump host). */
  host: string;
  /** @default 22 */
  port?: number;
  username: string;
  /** Name of a stored credential for the jump host. @default "default" */
  credential?: string;
  /** Pin of the jump host's key: `SHA256:<base64>` fingerprint or an OpenSSH public key line. */
  hostKey?: string;
}

/** The request (SPEC §4): API body and Step Functions input. */
export interface RunRequest {
  /** DNS name or IP literal. */
  host: string;
  /** @default 22 */
  port?: number;
  username: string;
  /** 1 byte – 16 KiB, no NUL. */
  command: string;
  /** Name of a stored credential, never the secret. @default "default" */
  credential?: string;
  /** Pin: `SHA256:<base64>` fingerprint or an OpenSSH public key line. */
  hostKey?: string;
  /** Caller's cap on the whole session. */
  timeoutMs?: number;
  /** Reach the target through this jump host, inside the same deadline. */
  via?: JumpHostRequest;
  /** Bytes kept per stream (head + tail). @default 65536 */
  maxOutputBytes?: number;
  /** Written to the command's stdin, then EOF. */
  stdin?: string;
  /** Step Functions: throw `CommandFailed` instead of returning. @default false */
  failOnNonZeroExit?: boolean;
  /**
   * Handlers with an idempotency store: a repeat with the same key (per caller) returns the
   * recorded result without dialling. The engine ignores it.
   */
  idempotencyKey?: string;
  /**
   * Handlers: upload a stream that exceeds `maxOutputBytes` whole to the deployment's spill
   * bucket, where the caller's rule allows it (`allowSpill`). The engine ignores it: spilling
   * is {@link RunOptions.spill}. @default false
   */
  spill?: boolean;
}

/**
 * Where a stream that outgrew `maxOutputBytes` is written whole (an S3 upload in the Lambda
 * handlers; anything with back-pressure elsewhere). The engine opens one per stream, at the
 * first byte that would be dropped, writes the retained prefix and then every later chunk.
 */
export interface OutputSpill {
  /** Queues a chunk; false asks the engine to stop reading the stream until {@link drained}. */
  write(chunk: Buffer): boolean;
  /** Settles when more may be written; rejects when the sink has failed. */
  drained(): Promise<void>;
  /** No more chunks: settles when the object is complete and durable. */
  end(): Promise<{ bucket: string; key: string }>;
  /** Gives up (session failed, deadline, size limit): releases the sink, keeps nothing. */
  abort(reason: Error): void;
}

/** Full-output spilling: where to, and how much at most. */
export interface SpillOptions {
  /** Opens the sink of one stream; called at most once per stream per session. */
  open(stream: "stdout" | "stderr"): OutputSpill;
  /**
   * Largest stream spilled; a longer stream's upload is aborted (`output.spillError`) while
   * the stream is still drained. @default 1 GiB
   */
  maxBytes?: number;
}

/** A stream uploaded whole: `sha256` and `bytes` are those of the full stream. */
export interface SpillObject {
  bucket: string;
  key: string;
  bytes: number;
  sha256: string;
}

/** The secret a credential name resolves to. Never part of the request, never logged. */
export type Secret =
  | {
      privateKey: string | Buffer;
      passphrase?: string;
      password?: undefined;
      certificateAuthority?: undefined;
    }
  | {
      password: string;
      privateKey?: undefined;
      passphrase?: undefined;
      certificateAuthority?: undefined;
    }
  | {
      certificateAuthority: CertificateAuthority;
      privateKey?: undefined;
      passphrase?: undefined;
      password?: undefined;
    };

/**
 * A user certificate authority (SPEC §9): every session authenticates with a fresh ed25519
 * key pair and an OpenSSH user certificate this CA signs for the request's username, the
 * exact command, and until the session's deadline (lib/session/certificate.ts).
 */
export interface CertificateAuthority {
  /** The CA's ed25519 private key (OpenSSH or PEM format, as `ssh-keygen` writes it). */
  privateKey: string | Buffer;
  passphrase?: string;
  /** The certificate's `source-address` critical option: comma-separated CIDRs. */
  sourceAddress?: string;
  /**
   * Seconds `valid_before` may lie beyond the session's deadline, for host clocks that run
   * ahead. 0 to 300. @default 30
   */
  expirySkewSeconds?: number;
}

/**
 * Sees the command's output as it arrives: each chunk of `stdout` or `stderr`, in order per
 * stream, as a copy the callback owns. Called synchronously from the socket's read: keep it
 * fast (no back-pressure; a slow callback slows the whole session's reading). The capture,
 * byte counts and SHA-256 are the same with or without it. A callback that throws (or returns
 * a promise that rejects) ends the session with `InternalError` in `exec` (its error is the
 * `cause`): catch inside it to keep the session going whatever happens to your consumer.
 * A promise that rejects after `runCommand` resolved is ignored.
 */
export type OnOutput = (stream: "stdout" | "stderr", chunk: Buffer) => void | Promise<void>;

/** Per-phase caps in milliseconds. Each phase is also bounded by what is left of the budget. */
export type PhaseCaps = Partial<Record<Phase, number>>;

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Total time for the whole session, teardown included. At least one of budgetMs/signal. */
  budgetMs?: number;
  /**
   * Cancels the session; the phase in progress fails with `DeadlineExceeded`. A `reason`
   * named `TimeoutError` (`AbortSignal.timeout()`) is a timeout, `status: "timed_out"`; any
   * other abort is a cancellation, `status: "error"` (SPEC §5).
   */
  signal?: AbortSignal;
  /** The resolved credential. */
  secret: Secret;
  /** The credential's name, for error messages only (`CredentialInvalid` says which to fix). */
  credentialName?: string;
  /**
   * The operator's OpenSSH known_hosts text: authoritative. When it lists the host, the key
   * must be one of its keys and match the request's `hostKey` pin as well; `@revoked` always
   * applies.
   */
  knownHosts?: string;
  /**
   * Whether the request's `hostKey` pin alone may vouch for a host `knownHosts` does not list.
   * @default true (a library caller is the operator; the Lambda handlers pass their rule's
   * `allowRequestPins`, and false with a password credential)
   */
  allowRequestPins?: boolean;
  /** Per-phase caps (merged over {@link DEFAULT_PHASE_CAPS}). */
  phaseCaps?: PhaseCaps;
  /**
   * Called with the resolved address before any connection is made (policy: DNS must not
   * smuggle a target in). Throw an `EngineError` (e.g. `TargetNotAllowed`) to refuse. `hop`
   * says whose address it is: the jump host's (`via`) or the target's. Behind a jump host the
   * target's name is resolved by the jump host: only a target given as an IP literal is checked.
   */
  checkAddress?: (address: string, family: 4 | 6, hop: Hop) => void;
  /**
   * The jump host's credential, required when the request has `via`. The jump host's key is
   * checked against the same {@link knownHosts} under the same rules as the target's.
   */
  via?: {
    secret: Secret;
    /** For error messages only. */
    credentialName?: string;
    /** As {@link RunOptions.allowRequestPins}, for `via.hostKey`. @default true */
    allowRequestPins?: boolean;
  };
  /** DNS lookup override (tests, custom resolvers). @default node:dns lookup */
  lookup?: (host: string) => Promise<{ address: string; family: 4 | 6 }>;
  /**
   * Wrap the command in coreutils `timeout -k` so it dies on the remote even if the client
   * vanishes. Disable for targets without coreutils or without a POSIX login shell.
   * @default true
   */
  remoteBound?: boolean;
  /**
   * Read the socket into one process-wide buffer reused by every read, instead of a new buffer
   * per read (half the external allocations of a drain, and the major GCs they trigger:
   * docs/benchmarks.md "Drain"). Takes effect only with the project's ssh2 patch and its
   * pure-JS deciphers (`READS_IN_PLACE`); otherwise ignored. The first decipher failure of a
   * connection that has handed ssh2 a read in place (after authentication; a packet whose MAC
   * or tag does not verify) ends that session with an error naming it (`ProtocolError`; at hop
   * `via`, `ConnectionLost`) and turns in-place reads off for the rest of the process
   * (`readsInPlaceWithdrawn()`). `false` reads into a new buffer per read, on the jump
   * connection too. @default true
   */
  readsInPlace?: boolean;
  /** SSH keepalive after auth. @default { intervalMs: derived from the budget, countMax: 3 } */
  keepalive?: { intervalMs: number; countMax: number } | false;
  /** Request id echoed in the result. @default a random UUID */
  requestId?: string;
  /** Called when each phase starts (observability, tests). */
  onPhase?: (phase: Phase) => void;
  /**
   * Called with each chunk of output as it arrives (stream name + Buffer): see
   * {@link OnOutput}. Must be fast; a throw ends the session with `InternalError`.
   */
  onOutput?: OnOutput;
  /**
   * Upload a stream that exceeds `maxOutputBytes` whole, with back-pressure, inside the
   * deadline. @default none: only head + tail are kept
   */
  spill?: SpillOptions;
}

/**
 * Milliseconds each phase took (`resolveMs` … `teardownMs`, one per `PHASES` entry; null
 * for a phase that never ran) and the whole session (`totalMs`).
 */
export type PhaseTimings = { [P in Phase as `${P}Ms`]: number | null } & { totalMs: number };

/** Phase timings of the jump host (result `via.timings`), ms; null when the phase did not run. */
export interface HopTimings {
  resolveMs: number | null;
  connectMs: number | null;
  bannerMs: number | null;
  handshakeMs: number | null;
  authMs: number | null;
  /** From the `direct-tcpip` open request until the jump host confirmed the forward. */
  forwardMs: number | null;
}

/** Which bound ended a phase: its own cap, or the caller's budget (`ResultError.bound`). */
export type TimeoutBound = "phase" | "budget";

export interface ResultError {
  name: ErrorName;
  phase: ErrorPhase;
  /** Present on every error of a request with `via`: where it happened. */
  hop?: Hop;
  /**
   * On a phase timeout (`*Timeout` from the engine's deadline): which bound expired — the
   * phase's own cap (`"phase"`: the peer was slow) or what the caller's budget left
   * (`"budget"`: the request was too short for the phase). SPEC §6.
   */
  bound?: TimeoutBound;
  message: string;
  retryable: boolean;
  commandStarted: boolean;
}

/** The result (SPEC §5). */
export interface RunResult {
  requestId: string;
  status: Status;
  target: { host: string; port: number; address: string | null; username: string };
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  output: {
    stdoutBytes: number;
    stderrBytes: number;
    truncated: boolean;
    stdoutSha256: string;
    stderrSha256: string;
    /**
     * The counts and SHA-256 cover the whole streams: the server ended both (EOF or channel
     * close) before the session stopped reading, or no command ran. False after
     * `OutputIncomplete`, `CommandTimeout`, `ConnectionLost`… in `exec`.
     */
    complete: boolean;
    /** `base64` when the kept bytes are not valid UTF-8. */
    stdoutEncoding: "utf8" | "base64";
    stderrEncoding: "utf8" | "base64";
    /** The whole stdout, when it was spilled and the upload completed. */
    stdoutObject?: SpillObject;
    stderrObject?: SpillObject;
    /** Why a spill was not kept (upload failure, size limit, deadline); head + tail remain. */
    spillError?: string;
  };
  phase: ErrorPhase;
  error?: ResultError;
  timings: PhaseTimings;
  /** `null` when the session was bounded only by a signal. */
  deadline: { budgetMs: number | null; remainingMs: number | null };
  server?: { ident: string; hostKeySha256: string };
  /** Present when the request had `via`: the jump host and its own phase timings. */
  via?: {
    host: string;
    port: number;
    address: string | null;
    username: string;
    timings: HopTimings;
    server?: { ident: string; hostKeySha256: string };
  };
  remoteCleanup: RemoteCleanup;
  /**
   * Stores of the deployment (idempotency record, host breaker) that failed or did not answer
   * in time after the command's outcome was known: the result is still the session's own.
   * Absent when every store call succeeded (SPEC §5).
   */
  storeErrors?: StoreError[];
}

/** One failed store call of an invocation (SPEC §5, `storeErrors`). */
export interface StoreError {
  /** Which store: `idempotency` or `breaker`. */
  store: string;
  /** What was being done, e.g. `recordResult`, `removeRecord`, `recordOutcome`. */
  operation: string;
  /** The error's name, e.g. `TimeoutError`, `ProvisionedThroughputExceededException`. */
  name: string;
  /** What it means for the caller (a retry with the same idempotency key, the breaker). */
  message: string;
}
