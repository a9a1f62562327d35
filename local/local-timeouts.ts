import { settingsFromEnv } from "../functions/config/config.ts";
import { ENV, LOCAL_ENV } from "../operations/environment.ts";
import { DEFAULT_API_TIMEOUTS_MS, DEFAULT_TASK_TIMEOUTS_MS } from "../operations/timeouts.ts";
import { UsageError } from "./cli.ts";

/**
 * Timeouts of the deployed functions (`operations/timeouts.ts`, which the CDK app deploys), so
 * local runs match them without loading the CDK app.
 */
const DEPLOYED = {
  api: DEFAULT_API_TIMEOUTS_MS,
  task: DEFAULT_TASK_TIMEOUTS_MS,
} as const;

/** The local function timeout and reserve of an entry point, after the environment. */
export interface LocalTimeouts {
  functionTimeoutMs: number;
  reserveMs: number;
}

function positiveMs(env: NodeJS.ProcessEnv, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${key}=${JSON.stringify(raw)}: must be a number of milliseconds > 0`);
  }
  return value;
}

/**
 * The deployed function's timeout and reserve for `entry` (API or Step Functions task),
 * overridden by `BSSH_FUNCTION_TIMEOUT_MS` / `BSSH_RESERVE_MS`. Also checks every other
 * handler variable, so a bad one is reported at start.
 */
export function localTimeouts(
  entry: "api" | "task",
  env: NodeJS.ProcessEnv = process.env,
): LocalTimeouts {
  const deployed = DEPLOYED[entry];
  let reserveMs: number;
  try {
    const settings = settingsFromEnv(env);
    reserveMs =
      env[ENV.reserveMs] === undefined || env[ENV.reserveMs] === ""
        ? deployed.reserveMs
        : settings.reserveMs;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    functionTimeoutMs: positiveMs(env, LOCAL_ENV.functionTimeoutMs, deployed.functionTimeoutMs),
    reserveMs,
  };
}
