import type { RunResult, StoreError } from "../../../lib/types.ts";
import { callErrorName } from "../../runtime/aws-clients.ts";

/**
 * Names store failures in the result (SPEC §5 `storeErrors`): the result object itself is
 * kept (the engine's error rides on it), its list extended.
 */
export function addStoreErrors(
  result: RunResult,
  errors: readonly StoreError[] | undefined,
): RunResult {
  if (errors && errors.length > 0) result.storeErrors = [...(result.storeErrors ?? []), ...errors];
  return result;
}

/** The name of a store call's error (`callErrorName`: the SDK's, or a network error's code). */
export const storeErrorName = callErrorName;
