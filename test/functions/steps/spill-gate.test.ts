import { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { authorize } from "../../../functions/invocation/steps/authorize.ts";
import { spillGate } from "../../../functions/invocation/steps/spill-gate.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { S3SpillStore } from "../../../functions/spill/s3-spill.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const REQUEST = { host: "127.0.0.1", username: "u", command: "echo hi", spill: true };

// The gate only asks whether a store exists: this client is never sent a request.
function withBucket(allowSpill: boolean) {
  const policy = loopbackPolicy([22]);
  policy.rules[0]!.allowSpill = allowSpill;
  const { runtime } = testRuntime({
    policy,
    settings: { spill: { bucket: "b", mode: "request", maxBytes: 1024 } },
  });
  const client = new S3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:9" });
  runtime.spill = new S3SpillStore({ client, bucket: "b" });
  return runtime;
}

describe("step spillGate", () => {
  it("refuses request spill in a deployment without a bucket, naming the setting", async () => {
    const { runtime } = testRuntime({ policy: loopbackPolicy([22]) });
    const run = await runStepsUnderTest([validate, authorize, spillGate], {
      runtime,
      input: REQUEST,
    });
    expect(run.thrown).toMatchObject({ name: "ValidationError", phase: "request" });
    expect((run.thrown as Error).message).toMatch(/BSSH_SPILL_BUCKET/);
    expect(run.nextCalls).toBe(0);
  });

  it("refuses request spill when the rule does not allow it, and passes when it does", async () => {
    const refused = await runStepsUnderTest([validate, authorize, spillGate], {
      runtime: withBucket(false),
      input: REQUEST,
    });
    expect(refused.thrown).toMatchObject({ name: "CommandNotAllowed", phase: "policy" });
    expect((refused.thrown as Error).message).toMatch(/rule loopback \(allowSpill\)/);
    const allowed = await runStepsUnderTest([validate, authorize, spillGate], {
      runtime: withBucket(true),
      input: REQUEST,
    });
    expect(allowed.thrown).toBeUndefined();
    expect(allowed.nextCalls).toBe(1);
  });
});
