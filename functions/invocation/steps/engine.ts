import { DeadlineExceeded } from "../../../lib/errors.ts";
import type { RunOptions, RunResult } from "../../../lib/types.ts";
import { CALL_CAPS } from "../../runtime/aws-clients.ts";
import { loadEngine } from "../../runtime/lazy.ts";
import type { RunContext } from "./run-context.ts";

/**
 * Step (last): loads the engine, readies the spill store, measures what is left of the budget
 * and runs the session (`runCommand`); the result, whatever its status, settles the path.
 * The resolved address is checked against the rules here, for each hop (`checkAddress`).
 */
export async function engine(ctx: RunContext): Promise<RunResult> {
  const { invocation, runtime, request, authorization, secrets, pins } = ctx;
  const { settings } = runtime;
  // Loaded on first use (cold start); before the budget is measured, so it counts.
  const { runCommand } = await loadEngine();
  const spillStore = runtime.spill;
  const spill =
    settings.spill !== undefined &&
    spillStore !== undefined &&
    (settings.spill.mode === "always" || request.spill === true)
      ? { store: spillStore, maxBytes: settings.spill.maxBytes }
      : undefined;
  if (spill) await spill.store.ready?.();
  const budgetMs = invocation.sessionRemaining();
  if (budgetMs < settings.minBudgetMs) {
    throw new DeadlineExceeded(
      `only ${Math.max(0, Math.round(budgetMs))} ms left after reading the credential`,
      { phase: "credentials" },
    );
  }
  const { requestId, audit } = invocation;
  const options: RunOptions = {
    budgetMs,
    secret: secrets.secret,
    credentialName: authorization.credential,
    allowRequestPins: pins.allowRequestPins,
    checkAddress: (address, family, hop) => {
      if (hop !== "via") audit.address = address;
      authorization.checkAddress(address, family, hop);
    },
    requestId,
    phaseCaps: settings.phaseCaps,
    remoteBound: settings.remoteBound,
    signal: invocation.signal,
  };
  if (secrets.knownHosts !== undefined) options.knownHosts = secrets.knownHosts;
  if (pins.via && authorization.via && secrets.viaSecret) {
    options.via = {
      secret: secrets.viaSecret,
      credentialName: authorization.via.credential,
      allowRequestPins: pins.via.allowRequestPins,
    };
  }
  if (runtime.lookup) options.lookup = runtime.lookup;
  if (spill) {
    options.spill = {
      // The verified caller is in the key: read access is granted per caller by prefix.
      open: (stream) => spill.store.open(requestId, stream, invocation.caller ?? ""),
      maxBytes: spill.maxBytes,
    };
  }
  const result = await runCommand({ ...request, command: authorization.command }, options);
  // A failed spill's AbortMultipartUpload: waited for within the reserve, then cut, so no
  // S3 call outlives the invocation (functions/spill/s3-spill.ts).
  if (spill) {
    await spill.store.settle?.(requestId, invocation.reserveSignal(CALL_CAPS.spillAbortMs));
  }
  return result;
}
