import { describe, expect, it } from "vitest";
import { Invocation } from "../../functions/invocation/invocation.ts";
import { classifyError, InternalError } from "../../lib/errors.ts";
import { attachEngineError, buildResult, engineErrorOf } from "../../lib/result.ts";

function failedResult(error: InternalError) {
  const result = buildResult({
    requestId: "r-1",
    target: { host: "h", port: 22, address: null, username: "u" },
    phase: "auth",
    error: error.toJSON(),
    totalMs: 5,
    deadline: { budgetMs: 1000, remainingMs: 995 },
  });
  attachEngineError(result, error);
  return result;
}

describe("an engine InternalError reaches the handlers with its own stack and cause", () => {
  it("says nothing of the bug to the caller; the detail stays in cause", () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'key')");
    const err = classifyError(bug, { phase: "auth", commandStarted: false });
    expect(err).toBeInstanceOf(InternalError);
    expect(err.message).toBe("internal error during auth");
    expect(err.cause).toBe(bug);
    expect(classifyError("a string", { phase: "exec", commandStarted: true }).message).toBe(
      "internal error during exec (a non-error was thrown)",
    );
  });

  it("rides on the result, invisible to JSON, and is what the invocation records", () => {
    const bug = new TypeError("boom");
    const err = classifyError(bug, { phase: "auth", commandStarted: false });
    const result = failedResult(err as InternalError);
    expect(engineErrorOf(result)).toBe(err);
    expect(JSON.stringify(result)).not.toContain("boom");
    expect(JSON.parse(JSON.stringify(result)).error.message).toBe("internal error during auth");

    const invocation = new Invocation({
      source: "api",
      requestId: "r-1",
      functionArn: undefined,
      reserveMs: 100,
      mustReturnWithinMs: 1000,
    });
    try {
      invocation.result = result;
      const recorded = invocation.fail(new Error("thrown later"));
      // The same object: its stack points at the bug's site, its cause is the TypeError.
      expect(recorded).toBe(err);
      expect(recorded.cause).toBe(bug);
    } finally {
      invocation.end();
    }
  });
});
