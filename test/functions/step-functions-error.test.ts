/**
 * The Step Functions adapter: the thrown error's name is the SPEC §6 name and its message the
 * JSON a Catch reads. Real middy core, a fake Lambda context.
 */
import middy from "@middy/core";
import { describe, expect, it } from "vitest";
import { createInvocation } from "../../functions/invocation/create-invocation.ts";
import { engineErrors } from "../../functions/invocation/engine-error.ts";
import { invocationOf } from "../../functions/invocation/invocation.ts";
import { stepFunctionsError } from "../../functions/step-functions/step-functions-error.ts";
import { HostQuarantined } from "../../lib/errors.ts";
import { bannerTimeoutResult } from "./metrics-fixtures.ts";
import { fakeContext } from "./support.ts";

function stack(handle: (context: object) => Promise<unknown>, includeOutput = false) {
  return middy(async (_event: unknown, context: object) => handle(context))
    .use(createInvocation({ source: "task", settings: { reserveMs: 0, edgeTimeoutMs: 29_000 } }))
    .use(stepFunctionsError({ includeOutput }))
    .use(engineErrors());
}

describe("stepFunctionsError", () => {
  it("throws the SPEC name with the contract's error JSON when there is no result", async () => {
    // Prepare
    const handler = stack(async () => {
      throw new HostQuarantined("host is quarantined", { phase: "policy" });
    });
    // Act
    const thrown = (await handler({}, fakeContext()).catch((e: unknown) => e)) as Error;
    // Assess
    expect(thrown.name).toBe("HostQuarantined");
    expect(JSON.parse(thrown.message)).toEqual({
      error: {
        name: "HostQuarantined",
        phase: "policy",
        message: "host is quarantined",
        retryable: true,
        commandStarted: false,
      },
    });
  });

  it("carries the result, streams emptied, when the session produced one", async () => {
    // Prepare
    const result = { ...bannerTimeoutResult(), stdout: "secret-ish output", stderr: "e" };
    const handler = stack(async (context) => {
      invocationOf(context).result = result;
      throw new Error("anything");
    });
    // Act
    const thrown = (await handler({}, fakeContext()).catch((e: unknown) => e)) as Error;
    // Assess: the result's own error wins over what was thrown.
    expect(thrown.name).toBe("BannerTimeout");
    const cause = JSON.parse(thrown.message) as typeof result;
    expect(cause.stdout).toBe("");
    expect(cause.stderr).toBe("");
    expect(cause.output).toEqual(result.output);
  });

  it("names a bug InternalError with a generic message", async () => {
    // Prepare
    const handler = stack(async () => {
      throw new TypeError("undefined is not a function");
    });
    // Act
    const thrown = (await handler({}, fakeContext()).catch((e: unknown) => e)) as Error;
    // Assess
    expect(thrown.name).toBe("InternalError");
    expect(thrown.message).not.toContain("undefined is not a function");
  });

  it("rejects unknown options", () => {
    expect(() => stepFunctionsError({ include: true } as never)).toThrow(/unknown option include/);
  });
});
