/**
 * Per-row AWS endpoints for the dependency lab, with the deployed runtime unchanged.
 *
 * `awsRuntime()` builds its SDK clients without an explicit endpoint, as deployed. The SDK
 * then takes the endpoint from `AWS_ENDPOINT_URL_<SERVICE>` (read from `process.env` when a
 * client is built and when its first call resolves the endpoint), and the metrics publisher
 * reads `BSSH_CLOUDWATCH_ENDPOINT` when it builds its client. Rows run concurrently, each
 * against its own fault proxies, so one process-wide environment cannot serve them: while a
 * row's invocation runs (and everything it starts: promises, timers, lazy loads), reads of
 * `process.env` see the row's overlay first ({@link withAwsEnv}, an AsyncLocalStorage scope).
 * Outside a row, `process.env` is the process's own.
 */
import { AsyncLocalStorage } from "node:async_hooks";

const overlays = new AsyncLocalStorage<Readonly<Record<string, string>>>();
let installed = false;

/** Makes `process.env` consult the current row's overlay first. Idempotent. */
export function installScopedEnv(): void {
  if (installed) return;
  installed = true;
  const base = process.env;
  process.env = new Proxy(base, {
    get(target, key, receiver) {
      const overlay = overlays.getStore();
      if (overlay && typeof key === "string" && Object.hasOwn(overlay, key)) return overlay[key];
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      const overlay = overlays.getStore();
      if (overlay && typeof key === "string" && Object.hasOwn(overlay, key)) return true;
      return Reflect.has(target, key);
    },
  });
}

/** Runs `work` (and everything it starts) with `overlay` in front of `process.env`. */
export function withAwsEnv<T>(overlay: Readonly<Record<string, string>>, work: () => T): T {
  if (!installed) throw new Error("installScopedEnv() first");
  return overlays.run(overlay, work);
}

/** SDK service ids as the endpoint variables spell them (`AWS_ENDPOINT_URL_` + id). */
export const ENDPOINT_VARIABLES = {
  secretsmanager: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
  ssm: "AWS_ENDPOINT_URL_SSM",
  dynamodb: "AWS_ENDPOINT_URL_DYNAMODB",
  s3: "AWS_ENDPOINT_URL_S3",
  cloudwatch: "AWS_ENDPOINT_URL_CLOUDWATCH",
} as const;

/** Region and static credentials of every lab client: nothing may reach a real AWS endpoint. */
export const LAB_AWS_ENV = {
  AWS_REGION: "us-east-1",
  // s3rver accepts only its own key pair; the other stand-ins accept any.
  AWS_ACCESS_KEY_ID: "S3RVER",
  AWS_SECRET_ACCESS_KEY: "S3RVER",
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_CONFIG_FILE: "/dev/null",
  AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
} as const;
