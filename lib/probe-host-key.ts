import { Deadline } from "./deadline.ts";
import { ProtocolError } from "./errors.ts";
import { PhaseRunner } from "./phase-runner.ts";
import { SshConnection } from "./session/connection.ts";
import { fingerprintSha256, type HostKeyPolicy, keyTypeOfBlob } from "./session/host-keys.ts";
import { resolveAddress } from "./session/resolve.ts";
import type { PhaseCaps, RunOptions } from "./types.ts";

/** The host key a server presented. */
export interface ProbedHostKey {
  /** Key type, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The public-key blob, base64 (the second field of a known_hosts line). */
  keyBase64: string;
  /** `SHA256:…` as OpenSSH prints it. */
  fingerprintSha256: string;
}

/** Options of {@link probeHostKey}; one of `budgetMs` and `signal` is required. */
export interface ProbeHostKeyOptions {
  /** Bound on the whole probe (TCP connect, banner, key exchange). */
  budgetMs?: number;
  /** Cancels the probe (`DeadlineExceeded`). */
  signal?: AbortSignal;
  /** Per-phase caps, as {@link RunOptions.phaseCaps} (`resolve` … `handshake` apply). */
  phaseCaps?: PhaseCaps;
  /** DNS lookup override, as {@link RunOptions.lookup}. @default node:dns lookup */
  lookup?: RunOptions["lookup"];
}

/**
 * Connects to `host:port`, runs the key exchange far enough to see the server's host key and
 * hangs up: the key is refused, so no authentication is attempted and no credential exists.
 * This is trust on first use made explicit: the caller shows the fingerprint to a human.
 * It runs the engine's own phases (`resolve`, `connect`, `banner`, `handshake`: the same
 * connection, banner gate, per-phase caps and classifier as {@link runCommand}), so a failure
 * has the name a session would report.
 *
 * @param target - `host` (a name or an IP literal) and `port` (default 22).
 * @param options - The bound: `budgetMs` for the whole probe and/or a `signal`; `phaseCaps`
 *   and `lookup` as in {@link RunOptions}.
 * @returns The presented key: type, base64 blob (a known_hosts line's second field) and its
 *   `SHA256:` fingerprint as OpenSSH prints it.
 * @throws {TypeError} (as a rejection) For a programming error, before any connection:
 *   neither `budgetMs` nor `signal` given.
 * @throws {EngineError} (as a rejection) A classified error when no key was seen, as a
 *   session would report it: `DnsLookupFailed` or `ResolveTimeout` (the name),
 *   `ConnectRefused` or `ConnectTimeout` (TCP), `BannerTimeout` (accepted, no SSH banner: a
 *   tarpit or not an SSH port), `HandshakeTimeout` or `ProtocolError` (the key exchange),
 *   `DeadlineExceeded` (the signal aborted).
 *
 * @example Show the fingerprint to a human, then write the known_hosts line.
 * ```ts
 * import { appendFileSync } from "node:fs";
 * import { probeHostKey } from "bounded-ssh";
 *
 * const key = await probeHostKey({ host: "10.0.3.7", port: 22 }, { budgetMs: 5_000 });
 * console.log(`10.0.3.7 presents ${key.keyType} ${key.fingerprintSha256}`);
 * // Only once someone has compared the fingerprint out of band:
 * appendFileSync("known_hosts", `10.0.3.7 ${key.keyType} ${key.keyBase64}\n`);
 * ```
 */
export async function probeHostKey(
  target: { host: string; port?: number },
  options: ProbeHostKeyOptions,
): Promise<ProbedHostKey> {
  if (options.budgetMs === undefined && options.signal === undefined) {
    throw new TypeError("probeHostKey: a bound is required (budgetMs or signal)");
  }
  const port = target.port ?? 22;
  const deadline = new Deadline({
    budgetMs: options.budgetMs,
    signal: options.signal,
    caps: options.phaseCaps,
  });
  const run = new PhaseRunner(deadline);
  const conn = new SshConnection({ deadline, progress: run, keepalive: false });
  let presented: Buffer | undefined;
  // Records the key and refuses it: the connection ends before authentication.
  const recordAndRefuse: HostKeyPolicy = {
    serverHostKeyAlgorithms: undefined,
    source: "probe (every key is refused)",
    verify: (blob) => {
      presented ??= Buffer.from(blob);
      return "unknown";
    },
  };
  try {
    const address = await resolveAddress(target.host, options, (w) => run.step("resolve", w));
    await run.step("connect", () => conn.dial(address, port));
    await run.step("banner", () =>
      conn.startSsh({
        host: target.host,
        port,
        username: "bssh-probe",
        // Never sent: the key is refused before authentication.
        auth: { type: "password", password: "" },
        hostKeys: recordAndRefuse,
      }),
    );
    await run.step("handshake", () => conn.handshake());
  } catch (err) {
    // Refusing the key ends the handshake with HostKeyUnknown: the expected way out.
    if (!presented) throw conn.classify(err);
  } finally {
    await run.teardown(() => conn.close());
  }
  if (!presented) {
    // The handshake cannot complete without the verifier's consent.
    throw new ProtocolError("key exchange completed without a host key", { phase: "handshake" });
  }
  const keyType = keyTypeOfBlob(presented);
  if (!keyType) throw new ProtocolError("malformed host key", { phase: "handshake" });
  return {
    keyType,
    keyBase64: presented.toString("base64"),
    fingerprintSha256: fingerprintSha256(presented),
  };
}
