import { describe, expect, it } from "vitest";
import { authorize } from "../../../functions/invocation/steps/authorize.ts";
import { hopTrust, hostTrust } from "../../../functions/invocation/steps/host-trust.ts";
import { readSecrets } from "../../../functions/invocation/steps/read-secrets.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import type { PolicyDocument } from "../../../functions/policy/policy.ts";
import { generateEd25519KeyPair } from "../../helpers/keys.ts";
import { fingerprintOfBlob } from "../../helpers/ssh2-server.ts";
import { CALLER, LOOPBACK_DENY, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

const hostKey = generateEd25519KeyPair().public;
const PIN = fingerprintOfBlob(Buffer.from(hostKey.split(" ")[1]!, "base64"));
const KEY_SECRET = { privateKey: "k" };
const PASSWORD = { password: "p" };

const hop = (overrides: Partial<Parameters<typeof hopTrust>[0]>) =>
  hopTrust({
    hop: "target",
    host: "h.example",
    port: 22,
    pin: PIN,
    rulesAllowPins: true,
    secret: KEY_SECRET,
    knownHosts: undefined,
    ...overrides,
  });

describe("hopTrust: one refusal for either hop", () => {
  it("lets a pin vouch alone only when the rules allow pins and no password is sent", () => {
    expect(hop({})).toMatchObject({ trust: { kind: "pin" }, allowRequestPins: true });
    expect(() => hop({ rulesAllowPins: false })).toThrow(
      "host h.example:22 is not in the operator's known hosts and the caller's rule does not allow request pins (allowRequestPins); add the host's key to known_hosts",
    );
    expect(() => hop({ secret: PASSWORD })).toThrow(
      "a request pin alone never vouches for a host that receives a password: add h.example:22 to the operator's known hosts, or use a key credential",
    );
  });

  it("names the jump host and marks the error hop via", () => {
    let thrown: unknown;
    try {
      hop({ hop: "via", rulesAllowPins: false });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ name: "TargetNotAllowed", phase: "policy", hop: "via" });
    expect((thrown as Error).message).toBe(
      "jump host h.example:22 (via.hostKey) is not in the operator's known hosts and the caller's rule does not allow request pins (allowRequestPins); add its key to known_hosts",
    );
    expect(() => hop({ hop: "via", secret: PASSWORD })).toThrow(
      "add jump host h.example:22 to the operator's known hosts, or use a key credential for via.credential",
    );
  });

  it("trusts known hosts without a pin, and a pin only narrows them", () => {
    const knownHosts = `h.example ${hostKey}\n`;
    expect(hop({ pin: undefined, knownHosts }).trust.kind).toBe("known_hosts");
    expect(hop({ knownHosts, rulesAllowPins: false }).trust.kind).toBe("pin+known_hosts");
  });
});

describe("step hostTrust", () => {
  const policy = (allowRequestPins: boolean): PolicyDocument => ({
    denyCidrs: LOOPBACK_DENY,
    replaceDefaultDenyCidrs: true,
    rules: [
      {
        id: "r",
        callers: [CALLER],
        targets: { hosts: ["h.example"], ports: [22], usernames: ["*"] },
        commands: { patterns: ["echo [ -~]*"] },
        allowRequestPins,
      },
    ],
  });
  const input = { host: "h.example", username: "u", command: "echo hi", hostKey: PIN };
  const steps = [validate, authorize, readSecrets, hostTrust];

  it("says what vouched for the target and what the engine may trust", async () => {
    const { runtime } = testRuntime({
      policy: policy(true),
      credentials: { default: KEY_SECRET },
    });
    const run = await runStepsUnderTest(steps, { runtime, input });
    expect(run.thrown).toBeUndefined();
    expect(run.invocation.audit.hostKeySource).toBe("pin");
    expect(run.ctx.pins).toEqual({ allowRequestPins: true });
    expect(run.nextCalls).toBe(1);
  });

  it("refuses an unlisted host whose pin may not vouch, before the rest runs", async () => {
    const { runtime } = testRuntime({
      policy: policy(false),
      credentials: { default: KEY_SECRET },
    });
    const run = await runStepsUnderTest(steps, { runtime, input });
    expect(run.thrown).toMatchObject({ name: "TargetNotAllowed", phase: "policy" });
    expect(run.nextCalls).toBe(0);
  });
});
