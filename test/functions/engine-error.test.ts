/**
 * The one error mapper: anything thrown in functions/ becomes a SPEC §6 error, the same way
 * for every consumer. Real middy core, a fake Lambda context.
 */
import middy from "@middy/core";
import { describe, expect, it } from "vitest";
import { createInvocation } from "../../functions/invocation/create-invocation.ts";
import { engineErrors, toEngineError } from "../../functions/invocation/engine-error.ts";
import { invocationOf } from "../../functions/invocation/invocation.ts";
import { BannerTimeout, EngineError } from "../../lib/errors.ts";
import { fakeContext } from "./support.ts";

describe("toEngineError", () => {
  it("keeps an EngineError as it is", () => {
    const error = new BannerTimeout("banner phase did not finish", { phase: "banner" });
    expect(toEngineError(error)).toBe(error);
  });

  it("maps middy's early timeout and an aborted AbortSignal.timeout to DeadlineExceeded", () => {
    // Prepare: middy's error is an Error named TimeoutError with cause { package }.
    const middyTimeout = Object.assign(new Error("[AbortError]: The operation was aborted."), {
      name: "TimeoutError",
      cause: { package: "@middy/core" },
    });
    const signalTimeout = new DOMException("signal timed out", "TimeoutError");
    // Act + Assess
    for (const thrown of [middyTimeout, signalTimeout]) {
      const error = toEngineError(thrown, "exec");
      expect(error).toMatchObject({ name: "DeadlineExceeded", phase: "exec", retryable: false });
      expect(error.cause).toBe(thrown);
    }
  });

  it("maps a middy HTTP 400 to ValidationError and anything else to a generic InternalError", () => {
    const refused = toEngineError(Object.assign(new Error("bad"), { statusCode: 400 }));
    expect(refused).toMatchObject({ name: "ValidationError", phase: "request" });
    for (const thrown of [new TypeError("x is undefined"), "a string", null, { secret: "k" }]) {
      const error = toEngineError(thrown);
      expect(error).toBeInstanceOf(EngineError);
      expect(error).toMatchObject({ name: "InternalError", message: "internal error" });
      expect(error.cause).toBe(thrown);
    }
  });
});

describe("engineErrors middleware", () => {
  it("records the mapped error on the invocation and hands it to every later onError", async () => {
    // Prepare
    const seen: unknown[] = [];
    const handler = middy(async () => {
      throw new RangeError("bug");
    })
      .use(createInvocation({ source: "task", settings: { reserveMs: 0, edgeTimeoutMs: 29_000 } }))
      .use({
        onError: (request) => {
          seen.push(request.error, invocationOf(request.context).error);
        },
      })
      .use(engineErrors());
    // Act
    const thrown = await handler({}, fakeContext()).catch((e: unknown) => e);
    // Assess: the caller, the later middleware and the invocation hold the same InternalError.
    expect(thrown).toMatchObject({ name: "InternalError" });
    expect(seen).toEqual([thrown, thrown]);
  });

  it("keeps the error a session result carries, whatever is thrown afterwards", async () => {
    // Prepare: the session ended in BannerTimeout, then middy's early timeout fired.
    const handler = middy(async (_e: unknown, context: object) => {
      invocationOf(context).result = {
        error: {
          name: "BannerTimeout",
          phase: "banner",
          message: "banner phase did not finish within 5000 ms",
          retryable: true,
          commandStarted: false,
        },
        phase: "banner",
      } as never;
      throw Object.assign(new Error("timeout"), { name: "TimeoutError" });
    })
      .use(createInvocation({ source: "task", settings: { reserveMs: 0, edgeTimeoutMs: 29_000 } }))
      .use(engineErrors());
    // Act
    const thrown = await handler({}, fakeContext()).catch((e: unknown) => e);
    // Assess
    expect(thrown).toBeInstanceOf(BannerTimeout);
  });
});
