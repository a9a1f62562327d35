import net from "node:net";
import ssh2 from "ssh2";
import { Deadline } from "./deadline.ts";
import { callerAbortError, classifyError, ProtocolError, phaseTimeoutError } from "./errors.ts";
import { fingerprintSha256, keyTypeOfBlob } from "./session/host-keys.ts";

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
}

/**
 * Connects to `host:port`, runs the key exchange far enough to see the server's host key and
 * hangs up: the key is refused, so no authentication is attempted and no credential exists.
 * This is trust on first use made explicit: the caller shows the fingerprint to a human.
 * Rejects with a classified engine error (`ConnectRefused`, `HandshakeTimeout`, …).
 *
 * @param target - `host` (a name or an IP literal) and `port` (default 22).
 * @param options - The bound: `budgetMs` for the whole probe and/or a `signal`.
 * @returns The presented key: type, base64 blob (a known_hosts line's second field) and its
 *   `SHA256:` fingerprint as OpenSSH prints it.
 * @throws {TypeError} (as a rejection) For a programming error, before any connection:
 *   neither `budgetMs` nor `signal` given.
 * @throws {EngineError} (as a rejection) A classified error when no key was seen, e.g.
 *   `ConnectRefused` (refused, unreachable, unresolvable), `ConnectTimeout` or
 *   `HandshakeTimeout` (the budget ran out), `DeadlineExceeded` (the signal aborted),
 *   `ProtocolError` (a malformed key).
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
  const deadline = new Deadline({ budgetMs: options.budgetMs, signal: options.signal });
  const client = new ssh2.Client();
  // The probe owns its socket (as the engine does), so it can always destroy it.
  const socket = net.connect({ host: target.host, port: target.port ?? 22, noDelay: true });
  let presented: Buffer | undefined;
  let connected = false;
  const done = new Promise<Buffer>((resolve, reject) => {
    client.on("connect", () => {
      connected = true;
    });
    client.on("error", (err: Error) => {
      // Refusing the key ends the handshake with an error: the expected way out.
      if (presented) resolve(presented);
      else
        reject(
          classifyError(err, { phase: connected ? "handshake" : "connect", commandStarted: false }),
        );
    });
    client.on("close", () => {
      if (presented) resolve(presented);
      else
        reject(
          classifyError(new Error("closed before a host key"), {
            phase: "handshake",
            commandStarted: false,
          }),
        );
    });
    client.connect({
      sock: socket,
      // Never used: the key is refused before authentication.
      username: "bssh-probe",
      // The deadline bounds the probe; ssh2's own timers would only race it.
      readyTimeout: 0,
      keepaliveInterval: 0,
      // Synchronous form: ssh2 treats a returned Promise as acceptance.
      hostVerifier: (key: Buffer): boolean => {
        presented = Buffer.from(key);
        return false;
      },
    });
  });
  done.catch(() => {});
  try {
    const blob = await deadline.bound(
      deadline.remaining(),
      done,
      () => phaseTimeoutError(connected ? "handshake" : "connect", deadline.elapsed(), false),
      () =>
        callerAbortError(deadline.abortReason, "during the host key probe", { phase: "handshake" }),
    );
    const keyType = keyTypeOfBlob(blob);
    if (!keyType) throw new ProtocolError("malformed host key", { phase: "handshake" });
    return {
      keyType,
      keyBase64: blob.toString("base64"),
      fingerprintSha256: fingerprintSha256(blob),
    };
  } finally {
    client.removeAllListeners("close");
    client.on("error", () => {});
    client.end();
    // end() is polite; the socket must not outlive the probe.
    socket.destroy();
  }
}
