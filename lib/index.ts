/** bounded-ssh engine: one bounded SSH session per call. No AWS imports below this folder. */
export { DEFAULT_PHASE_CAPS, Deadline } from "./deadline.ts";
export * from "./errors.ts";
export * from "./metrics.ts";
export * from "./names.ts";
export { type ProbedHostKey, type ProbeHostKeyOptions, probeHostKey } from "./probe-host-key.ts";
export { REQUEST_LIMITS } from "./request-schema.ts";
export { runCommand } from "./run-command.ts";
export { DEFAULT_SPILL_MAX_BYTES } from "./session/output-capture.ts";
export { readsInPlaceWithdrawn } from "./session/reads-in-place.ts";
export type * from "./types.ts";
export { validateRequest } from "./validate-request.ts";
