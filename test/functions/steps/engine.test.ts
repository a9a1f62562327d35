/** The last step against the scripted ssh2 server on loopback: a real session. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authorize } from "../../../functions/invocation/steps/authorize.ts";
import { budget } from "../../../functions/invocation/steps/budget.ts";
import { engine } from "../../../functions/invocation/steps/engine.ts";
import { hostTrust } from "../../../functions/invocation/steps/host-trust.ts";
import { readSecrets } from "../../../functions/invocation/steps/read-secrets.ts";
import { validate } from "../../../functions/invocation/steps/validate.ts";
import { generateEd25519KeyPair } from "../../helpers/keys.ts";
import { type Ssh2Server, startSsh2Server } from "../../helpers/ssh2-server.ts";
import { loopbackPolicy, testRuntime } from "../support.ts";
import { runStepsUnderTest } from "./harness.ts";

let server: Ssh2Server;
beforeAll(async () => {
  server = await startSsh2Server();
});
afterAll(async () => {
  await server?.close();
});

const STEPS = [validate, budget, authorize, readSecrets, hostTrust, engine];
const secret = { privateKey: generateEd25519KeyPair().private };

describe("step engine (last)", () => {
  it("runs the session and settles its result; the rest is never called", async () => {
    const { runtime } = testRuntime({
      policy: loopbackPolicy([server.port]),
      credentials: { default: secret },
      knownHosts: `${server.knownHostsLine}\n`,
    });
    const run = await runStepsUnderTest(STEPS, {
      runtime,
      input: { host: "127.0.0.1", port: server.port, username: "u", command: "echo hi" },
    });
    expect(run.thrown).toBeUndefined();
    // The scripted server echoes the command it got: the policy's, under the remote bound.
    expect(run.result?.status).toBe("succeeded");
    expect(run.result?.stdout).toContain("-c 'echo hi'");
    expect(run.invocation.audit.address).toBe("127.0.0.1");
    expect(run.nextCalls).toBe(0);
  });

  it("refuses to dial when the reads left less than minBudgetMs (phase credentials)", async () => {
    const { runtime } = testRuntime({
      policy: loopbackPolicy([server.port]),
      knownHosts: `${server.knownHostsLine}\n`,
    });
    // The credential read takes most of a 600 ms budget: under 250 ms are left afterwards.
    runtime.credentials = {
      get: () => new Promise((resolve) => setTimeout(() => resolve(secret), 450)),
    };
    const before = server.events.length;
    const run = await runStepsUnderTest(STEPS, {
      runtime,
      input: {
        host: "127.0.0.1",
        port: server.port,
        username: "u",
        command: "echo hi",
        timeoutMs: 600,
      },
    });
    expect(run.thrown).toMatchObject({ name: "DeadlineExceeded", phase: "credentials" });
    expect((run.thrown as Error).message).toMatch(/ms left after reading the credential/);
    expect(server.events.slice(before)).toEqual([]);
  });
});
