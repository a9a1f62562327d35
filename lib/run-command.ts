import { randomUUID } from "node:crypto";
import { Deadline } from "./deadline.ts";
import {
  atHop,
  CommandTimeout,
  callerAbortError,
  DeadlineExceeded,
  type EngineError,
} from "./errors.ts";
import { PHASES } from "./names.ts";
import { PhaseRunner } from "./phase-runner.ts";
import { attachEngineError, buildResult, remoteCleanupOf } from "./result.ts";
import { SshConnection } from "./session/connection.ts";
import { prepareAuth } from "./session/credentials.ts";
import { hostKeyTrust } from "./session/host-keys.ts";
import { addressBehindJump, JumpHost } from "./session/jump.ts";
import { SessionOutput } from "./session/output-capture.ts";
import { wrapWithRemoteBound } from "./session/remote-bound.ts";
import { resolveAddress } from "./session/resolve.ts";
import type { RunOptions, RunRequest, RunResult } from "./types.ts";
import { validateRequest } from "./validate-request.ts";

/** Bytes kept per stream when the request does not say (SPEC §4). */
export const DEFAULT_MAX_OUTPUT_BYTES = 65_536;

/**
 * Runs one command on one host over one SSH session, inside one deadline (SPEC §3, §11).
 *
 * Resolves to the SPEC §5 result. Everything the remote or the network does — refusal, hang,
 * reset, bad key, failed command — is reported in `result.error`; it rejects only for
 * programming errors (missing options). When it resolves, the session's socket is destroyed
 * and its timers and listeners are gone.
 *
 * This function is the phase script: check → plan → each phase in order → teardown → result.
 * Each phase is one `run.step(name, milestone)` line; how a phase is bounded lives in
 * {@link PhaseRunner}, what it waits for in {@link SshConnection}. With `request.via` the
 * jump host's own phases replace `resolve` and `connect` (lib/session/jump.ts).
 *
 * @param request - The SPEC §4 request (`host`, `username`, `command`; optionally `port`,
 *   `hostKey`, `stdin`, `timeoutMs`, `maxOutputBytes`, `via`, …). Untrusted input is fine: it
 *   is checked against the §4 schema first (`validateRequest(request, "engine")`), and a
 *   malformed one resolves to a `ValidationError` result naming the field; nothing is dialled.
 * @param options - What the request never carries: `secret` (private key, with `passphrase`,
 *   or password), at least one bound (`budgetMs`, `signal`, or the request's `timeoutMs`),
 *   `knownHosts`, `phaseCaps`, `keepalive`, `spill`, `onPhase`, and `via.secret` for a request
 *   with `via`.
 * @returns The §5 result: `status`, `exitCode`, kept `stdout`/`stderr` with byte counts and
 *   SHA-256, per-phase `timings`, `error` (name, phase, hop, retryable) when it failed.
 * @throws {TypeError} (as a rejection) Only for a programming error, before anything is
 *   dialled: `options.secret` is missing; no bound at all (no `options.budgetMs`, no
 *   `options.signal`, no `request.timeoutMs`); or `request.via` without `options.via.secret`.
 *
 * @example One command, bounded by a budget; the outcome is read from the result.
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { runCommand } from "bounded-ssh";
 *
 * const result = await runCommand(
 *   { host: "10.0.3.7", username: "deploy", command: "systemctl is-active nginx" },
 *   {
 *     secret: { privateKey: readFileSync("/etc/bssh/id_ed25519", "utf8") },
 *     knownHosts: readFileSync("/etc/bssh/known_hosts", "utf8"),
 *     budgetMs: 10_000,
 *   },
 * );
 * if (result.error) {
 *   // What failed, in which phase, and whether a retry is safe (the command did not start).
 *   console.error(result.error.name, result.error.phase, result.error.retryable);
 * } else {
 *   console.log(result.exitCode, result.stdout);
 * }
 * ```
 *
 * @example Through a jump host (`via`), cancelled with the caller's signal.
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { runCommand } from "bounded-ssh";
 *
 * const secret = { privateKey: readFileSync("/etc/bssh/id_ed25519", "utf8") };
 * const result = await runCommand(
 *   {
 *     host: "10.20.0.5",
 *     username: "deploy",
 *     command: "df -h /",
 *     via: { host: "bastion.example.com", username: "jump" },
 *   },
 *   {
 *     secret,
 *     via: { secret },
 *     knownHosts: readFileSync("/etc/bssh/known_hosts", "utf8"),
 *     signal: AbortSignal.timeout(15_000),
 *   },
 * );
 * // Both hops are timed; an error names the hop that failed.
 * console.log(result.via?.timings.forwardMs, result.error?.hop);
 * ```
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
  // Only for a well-formed `via`: a malformed one is the validator's (a ValidationError result).
  const via: unknown = request?.via;
  if (via !== null && typeof via === "object" && !Array.isArray(via) && !options.via?.secret) {
    throw new TypeError("runCommand: options.via.secret is required when request.via is set");
  }

  // ---- plan ------------------------------------------------------------------------------
  const deadline = sessionDeadline(request, options);
  const requestId = options.requestId ?? randomUUID();
  const port = request?.port ?? 22;
  const output = new SessionOutput(
    Number.isSafeInteger(request?.maxOutputBytes)
      ? (request.maxOutputBytes as number)
      : DEFAULT_MAX_OUTPUT_BYTES,
    options.spill,
    options.onOutput,
  );
  const run = new PhaseRunner(deadline, options.onPhase);
  const conn = new SshConnection({
    deadline,
    progress: run,
    output,
    keepalive: options.keepalive,
    readsInPlace: options.readsInPlace,
  });
  let address: string | null = null;
  /** Request `via`: the jump host whose forward is the transport (lib/session/jump.ts). */
  let jump: JumpHost | undefined;
  let remoteBound = false;
  let error: EngineError | undefined;

  // ---- the phases, in order --------------------------------------------------------------
  try {
    // The API's schema and messages (unknown fields, types, formats), minus the limits of
    // the deployment's transport: a ValidationError result, never a throw.
    validateRequest(request, "engine");
    if (deadline.aborted) {
      throw callerAbortError(deadline.abortReason, "before the session started", {
        phase: "request",
      });
    }
    if (deadline.remaining() <= 0) {
      throw new DeadlineExceeded("no time left to start a session", { phase: "request" });
    }
    // A certificate's `force-command` must equal the exec request's command byte for byte
    // (sshd runs force-command instead of whatever the request asks), so with a certificate
    // authority the remote bound is fixed here, from the allowance before connecting.
    const forcedCommand =
      options.secret.certificateAuthority !== undefined
        ? boundCommand(request.command, deadline.allowance("exec"), options)
        : undefined;
    const auth = prepareAuth(
      options.secret,
      options.credentialName,
      forcedCommand && {
        username: request.username,
        command: forcedCommand.command,
        requestId,
        deadlineEpochMs: Date.now() + deadline.remaining(),
      },
    );
    // Behind a jump host the jump host resolves the target's name.
    address = request.via
      ? addressBehindJump(request.host, options)
      : await resolveAddress(request.host, options, (w) => run.step("resolve", w));
    const hostKeys = hostKeyTrust({
      knownHosts: options.knownHosts,
      pin: request.hostKey, // validateRequest has already refused a malformed pin
      host: request.host,
      port,
      address: address ?? undefined,
      // A pin alone never vouches for a server that would receive a password.
      allowPinOnly:
        options.allowRequestPins !== false && typeof options.secret.password !== "string",
    });
    const ssh = { host: request.host, port, username: request.username, auth, hostKeys };
    if (!request.via) await run.step("connect", () => conn.dial(address!, port));
    else {
      // Jump host: log in there and run the target session over its direct-tcpip forward,
      // inside the same deadline; its own phases are timed in `result.via.timings`.
      jump = new JumpHost(request.via, {
        ...options.via!,
        deadline,
        progress: run,
        knownHosts: options.knownHosts,
        keepalive: options.keepalive,
        readsInPlace: options.readsInPlace,
        lookup: options.lookup,
        checkAddress: options.checkAddress,
        target: { host: request.host, port },
        onLost: (lost) => conn.fail(lost),
      });
      conn.useTransport(await jump.open());
    }
    await run.step("banner", () => conn.startSsh(ssh));
    await run.step("handshake", () => conn.handshake());
    await run.step("auth", () => conn.authenticated());
    const { command, bound } =
      forcedCommand ?? boundCommand(request.command, deadline.allowance("exec"), options);
    remoteBound = bound;
    // `channel` ends when the exec request is on the wire: the connection sets
    // run.commandStarted then (it may run from that moment, answered or not), and everything
    // after it, the server's answer included, is the command's time (`exec`).
    await run.step("channel", () => conn.openExec(command));
    // A throwing `onOutput` ends the command's wait like any failure in exec.
    await run.step("exec", () =>
      Promise.race([conn.execute(request.stdin), output.callbackFailed]),
    );
    await output.finishSpills(deadline, deadline.allowance("exec"));
  } catch (err) {
    error = conn.classify(err);
    // The session gave up: nothing new goes out on it (an exec request that a late channel
    // confirmation would release is never sent).
    conn.fail(error);
    if (error.name === "CommandTimeout" && !conn.execAnswered) {
      error = new CommandTimeout(
        `the server did not answer the exec request within ${Math.round(run.timings.exec ?? 0)} ms: the command may have started`,
        { phase: "exec", commandStarted: true, cause: error },
      );
    }
    // Through a jump host: a connection lost while the jump host's was down was lost with it.
    if (error.name === "ConnectionLost" && jump?.down) atHop(error, "via");
    output.abortSpills(`the session ended with ${error.name} before the output was complete`);
    // A command that reported its exit status is finished, whatever happened after; one
    // that started and did not is asked to stop. (Keyed on the command, not on a phase
    // name: a phase added after `channel` needs no change here.)
    // The caller's own `onOutput` failing is reported even then: it is theirs to know.
    if (run.commandStarted && conn.exit !== undefined) {
      if (error !== output.callbackError) error = undefined;
    } else if (run.commandStarted) conn.stopRemoteCommand();
  }

  // ---- teardown --------------------------------------------------------------------------
  // Errors before the session (credentials, policy) are reported in their own phase.
  const endedIn =
    error && !(PHASES as readonly string[]).includes(error.phase) ? error.phase : run.phase;
  const confirmed = await run.teardown(async () => {
    // Idempotent: covers a caller's abort while an upload was still completing.
    output.abortSpills("the session ended before the upload completed");
    // A jump host that is gone or silent carries nothing: release it first, which closes the
    // forward at once, so the target's teardown does not wait out the reserve on it.
    if (jump?.down) await jump.close(false);
    const confirmed = await conn.close();
    // The jump host's connection goes after the target session's, politely while the
    // reserve allows; when it returns no handle of the hop is alive.
    await jump?.close();
    return confirmed;
  });

  // ---- result ----------------------------------------------------------------------------
  // Every error of a request with `via` names its hop (the target's unless tagged "via").
  if (error && request?.via !== undefined) atHop(error, "target");
  const remaining = deadline.remaining();
  const result = buildResult({
    requestId,
    // A request that is not even an object still gets a result naming the problem.
    target: { host: request?.host ?? "", port, address, username: request?.username ?? "" },
    phase: endedIn,
    ...(error ? { error: error.toJSON(), timedOut: error.timedOut } : {}),
    ...(conn.exit ? { exit: conn.exit } : {}),
    output,
    timings: run.timings,
    totalMs: deadline.elapsed(),
    deadline: {
      budgetMs: Number.isFinite(deadline.budgetMs) ? deadline.budgetMs : null,
      remainingMs: Number.isFinite(remaining) ? remaining : null,
    },
    ...(conn.ident !== undefined && conn.hostKeySha256 !== undefined
      ? { server: { ident: conn.ident, hostKeySha256: conn.hostKeySha256 } }
      : {}),
    remoteCleanup: remoteCleanupOf({
      failed: error !== undefined,
      commandStarted: run.commandStarted,
      exited: conn.exit !== undefined,
      signalSent: conn.signalSent,
      confirmed,
      remoteBound,
    }),
  });
  if (jump) result.via = jump.report();
  if (error) attachEngineError(result, error);
  return result;
}

/** request.timeoutMs is the caller's cap on the whole session (SPEC §4). */
function sessionDeadline(request: RunRequest, options: RunOptions): Deadline {
  const budgets = [options.budgetMs, request?.timeoutMs].filter(
    (ms): ms is number => typeof ms === "number" && Number.isFinite(ms),
  );
  return new Deadline({
    budgetMs: budgets.length > 0 ? Math.min(...budgets) : undefined,
    signal: options.signal,
    caps: options.phaseCaps,
  });
}

/** The command the exec request carries: wrapped in the remote bound unless turned off. */
function boundCommand(
  command: string,
  execAllowance: number,
  options: RunOptions,
): { command: string; bound: boolean } {
  if (options.remoteBound === false || !Number.isFinite(execAllowance)) {
    return { command, bound: false };
  }
  return { command: wrapWithRemoteBound(command, execAllowance), bound: true };
}
