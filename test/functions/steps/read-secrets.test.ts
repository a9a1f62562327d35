import { describe, expect, it } from "vitest";
import { authorize } from "../../../functions/invocation/steps/authorize.ts";
import { readSecrets } from "../../../functions/invocation/steps/read-secrets.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import type { PolicyDocument } from "../../../functions/policy/policy.ts";
import { CALLER, LOOPBACK_DENY, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const KEY = { privateKey: "not parsed here" };
const POLICY: PolicyDocument = {
  denyCidrs: LOOPBACK_DENY,
  replaceDefaultDenyCidrs: true,
  rules: [
    {
      id: "target",
      callers: [CALLER],
      targets: { hosts: ["behind.example"], ports: [22], usernames: ["*"] },
      allowNamesBehindJumpHost: true,
      commands: { patterns: ["echo [ -~]*"] },
    },
    {
      id: "bastion",
      callers: [CALLER],
      targets: { hosts: ["bastion.example"], ports: [22], usernames: ["*"] },
      credentials: ["bastion"],
      allowAsJumpHost: true,
      commands: { patterns: ["true"] },
    },
  ],
};
const STEPS = [validate, authorize, readSecrets];
const REQUEST = { host: "behind.example", username: "u", command: "echo hi" };

describe("step readSecrets", () => {
  it("reads the credential, the jump host's and the known hosts", async () => {
    const { runtime } = testRuntime({
      policy: POLICY,
      credentials: { default: KEY, bastion: { password: "p" } },
      knownHosts: "behind.example ssh-ed25519 AAAA\n",
    });
    const run = await runStepsUnderTest(STEPS, {
      runtime,
      input: { ...REQUEST, via: { host: "bastion.example", username: "j", credential: "bastion" } },
    });
    expect(run.thrown).toBeUndefined();
    expect(run.ctx.secrets).toEqual({
      secret: KEY,
      viaSecret: { password: "p" },
      knownHosts: "behind.example ssh-ed25519 AAAA\n",
    });
    expect(run.nextCalls).toBe(1);
  });

  it("refuses with the store's error naming the credential, before the rest runs", async () => {
    const { runtime } = testRuntime({ policy: POLICY, credentials: {} });
    const run = await runStepsUnderTest(STEPS, { runtime, input: REQUEST });
    expect(run.thrown).toMatchObject({ name: "CredentialInvalid", phase: "credentials" });
    expect((run.thrown as Error).message).toMatch(/credential "default"/);
    expect(run.nextCalls).toBe(0);
  });

  it("is CredentialUnavailable (cause kept) when known hosts can not be read", async () => {
    const { runtime } = testRuntime({ policy: POLICY, credentials: { default: KEY } });
    const down = new Error("ssm throttled");
    runtime.knownHosts = {
      get: async () => {
        throw down;
      },
    };
    const run = await runStepsUnderTest(STEPS, { runtime, input: REQUEST });
    expect(run.thrown).toMatchObject({ name: "CredentialUnavailable", phase: "credentials" });
    expect((run.thrown as Error).message).toBe("known hosts could not be read");
    expect((run.thrown as Error).cause).toBe(down);
  });
});
