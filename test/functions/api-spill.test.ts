import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import {
  configFromEnv,
  type SpillSettings,
  settingsFromEnv,
} from "../../functions/config/config.ts";
import { awsRuntime } from "../../functions/runtime/runtime.ts";
import { S3SpillStore } from "../../functions/spill/s3-spill.ts";
import type { RunResult } from "../../lib/types.ts";
import { type LocalS3, startS3rver } from "../helpers/s3rver.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { CALLER, fakeContext, loopbackPolicy, testRuntime, v1Event } from "./support.ts";

// The API handler with spilling on: request field, rule permission, deploy mode, S3 (s3rver).

let sshd: SshdServer;
let s3: LocalS3;
beforeAll(async () => {
  [sshd, s3] = await Promise.all([startSshd(), startS3rver()]);
});
afterAll(async () => {
  await Promise.all([sshd?.stop(), s3?.close()]);
});

const BIG = 3_000_000;

function setup(options: { allowSpill?: boolean; spill?: Partial<SpillSettings> | null }) {
  const policy = loopbackPolicy([sshd.port]);
  policy.rules[0]!.allowSpill = options.allowSpill ?? false;
  const spill =
    options.spill === null
      ? undefined
      : { bucket: s3.bucket, mode: "request" as const, maxBytes: 1024 ** 3, ...options.spill };
  const { runtime, captured } = testRuntime({
    policy,
    credentials: { default: { privateKey: sshd.keys.ed25519.privateKey } },
    knownHosts: sshd.knownHostsLine,
    settings: { spill },
  });
  if (spill) runtime.spill = new S3SpillStore({ client: s3.client, bucket: spill.bucket });
  return { handler: createApiHandler(runtime), captured };
}

const body = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    host: "127.0.0.1",
    port: sshd.port,
    username: sshd.username,
    command: `printf %0${BIG}d 0`,
    maxOutputBytes: 1024,
    ...extra,
  });

describe("API handler, spilling full output to S3", () => {
  it("uploads the whole stream when the request asks and the rule allows it", async () => {
    const { handler } = setup({ allowSpill: true });
    const response = await handler(v1Event(body({ spill: true })), fakeContext());
    expect(response.statusCode).toBe(200);
    const result = JSON.parse(response.body) as RunResult;
    expect(result.output.stdoutBytes).toBe(BIG);
    const object = result.output.stdoutObject!;
    expect(object).toMatchObject({ bucket: s3.bucket, bytes: BIG });
    expect(object.key).toMatch(
      new RegExp(
        `^spill/123456789012/role/ops-runner/\\d{4}/\\d{2}/\\d{2}/${result.requestId}/stdout$`,
      ),
    );
    expect(object.sha256).toBe(result.output.stdoutSha256);
    expect(await s3.digest(object.key)).toEqual({ bytes: BIG, sha256: object.sha256 });
  });

  it("refuses spill: true with 403 CommandNotAllowed when the rule lacks allowSpill", async () => {
    const { handler } = setup({ allowSpill: false });
    const response = await handler(v1Event(body({ spill: true })), fakeContext());
    expect(response.statusCode).toBe(403);
    const answer = JSON.parse(response.body) as { error: { name: string; message: string } };
    expect(answer.error.name).toBe("CommandNotAllowed");
    expect(answer.error.message).toContain("allowSpill");
  });

  it("refuses spill: true with 400 ValidationError where no bucket is configured", async () => {
    const { handler } = setup({ allowSpill: true, spill: null });
    const response = await handler(v1Event(body({ spill: true })), fakeContext());
    expect(response.statusCode).toBe(400);
    const answer = JSON.parse(response.body) as { error: { name: string; message: string } };
    expect(answer.error.name).toBe("ValidationError");
    expect(answer.error.message).toContain("BSSH_SPILL_BUCKET");
  });

  it("keeps only head + tail without spill: true in request mode", async () => {
    const { handler } = setup({ allowSpill: true });
    const response = await handler(v1Event(body()), fakeContext());
    const result = JSON.parse(response.body) as RunResult;
    expect(result.output).toMatchObject({ stdoutBytes: BIG, truncated: true });
    expect(result.output.stdoutObject).toBeUndefined();
  });

  it("spills every oversized stream in always mode, whatever the rule", async () => {
    const { handler } = setup({ allowSpill: false, spill: { mode: "always" } });
    const response = await handler(v1Event(body()), fakeContext());
    const result = JSON.parse(response.body) as RunResult;
    expect(result.output.stdoutObject?.bytes).toBe(BIG);
  });
});

describe("spill settings from the environment", () => {
  it("defaults to request mode and 1 GiB once a bucket is set, and is off without one", () => {
    expect(settingsFromEnv({}).spill).toBeUndefined();
    expect(settingsFromEnv({ BSSH_SPILL_BUCKET: "b" }).spill).toEqual({
      bucket: "b",
      mode: "request",
      maxBytes: 1024 ** 3,
    });
    expect(
      settingsFromEnv({
        BSSH_SPILL_BUCKET: "b",
        BSSH_SPILL_MODE: "always",
        BSSH_SPILL_MAX_BYTES: "5000",
      }).spill,
    ).toEqual({ bucket: "b", mode: "always", maxBytes: 5000 });
  });

  it.each([
    [{ BSSH_SPILL_BUCKET: "b", BSSH_SPILL_MODE: "sometimes" }, "BSSH_SPILL_MODE"],
    [{ BSSH_SPILL_BUCKET: "b", BSSH_SPILL_MAX_BYTES: "0" }, "BSSH_SPILL_MAX_BYTES"],
    [{ BSSH_SPILL_BUCKET: "b", BSSH_SPILL_MAX_BYTES: "1.5" }, "BSSH_SPILL_MAX_BYTES"],
    [{ BSSH_SPILL_MODE: "always" }, "BSSH_SPILL_BUCKET"],
  ])("refuses a malformed spill configuration %j", (env, message) => {
    expect(() => settingsFromEnv(env)).toThrow(message);
  });
});

describe("the deployed runtime's spill store", () => {
  it("loads the S3 SDK lazily: a sink opens only after ready()", async () => {
    const runtime = awsRuntime(
      configFromEnv({ BSSH_POLICY: '{"rules":[]}', BSSH_SPILL_BUCKET: "b" }),
    );
    expect(runtime.settings.spill?.mode).toBe("request");
    expect(() => runtime.spill!.open("req", "stdout", CALLER)).toThrow(/ready\(\) was not awaited/);
    await runtime.spill!.ready!();
    expect(runtime.preload?.length).toBeGreaterThan(0);
  });
});
