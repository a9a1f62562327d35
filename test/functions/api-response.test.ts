/**
 * The HTTP adapter: status per error (derived from lib's error table), the SPEC §6 body, the
 * status recorded for the audit line. Real middy core, a fake Lambda context.
 */
import middy from "@middy/core";
import type { APIGatewayProxyResult } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { HTTP_STATUS, parseApiBody } from "../../functions/http/api-http.ts";
import { apiResponse } from "../../functions/http/api-response.ts";
import { createInvocation } from "../../functions/invocation/create-invocation.ts";
import { engineErrors } from "../../functions/invocation/engine-error.ts";
import { type Invocation, invocationOf } from "../../functions/invocation/invocation.ts";
import { ERROR_CLASSES } from "../../lib/errors.ts";
import { ERROR_NAMES, RETRYABLE_ERRORS } from "../../lib/names.ts";
import { fakeContext, v2Event } from "./support.ts";

function stack(handle: () => Promise<APIGatewayProxyResult>) {
  let invocation: Invocation | undefined;
  const handler = middy(async (_e: unknown, context: object) => {
    invocation = invocationOf(context);
    return handle();
  })
    .use(createInvocation({ source: "api", settings: { reserveMs: 0, edgeTimeoutMs: 29_000 } }))
    .use(apiResponse())
    .use(engineErrors());
  return { handler, invocation: () => invocation! };
}

describe("apiResponse", () => {
  it("answers each SPEC §6 error with its status and the contract's error body", async () => {
    for (const name of ERROR_NAMES) {
      // Prepare
      const { handler, invocation } = stack(async () => {
        throw new ERROR_CLASSES[name]("what happened", { phase: "request" });
      });
      // Act
      const response = await handler({}, fakeContext());
      // Assess
      expect(response.statusCode, name).toBe(HTTP_STATUS[name]);
      expect(JSON.parse(response.body)).toEqual({
        error: {
          name,
          phase: "request",
          message: "what happened",
          retryable:
            (RETRYABLE_ERRORS as readonly string[]).includes(name) || name === "ConnectionLost",
          commandStarted: false,
        },
      });
      expect(invocation().audit.statusCode).toBe(HTTP_STATUS[name]);
    }
  });

  it("keeps the statuses of the contract: 400, 403, 409, 500, 502, 503, 504", () => {
    expect(HTTP_STATUS).toMatchObject({
      ValidationError: 400,
      TargetNotAllowed: 403,
      CommandInProgress: 409,
      CredentialUnavailable: 500,
      InternalError: 500,
      ConnectRefused: 502,
      HostQuarantined: 503,
      BannerTimeout: 504,
      DeadlineExceeded: 504,
    });
  });

  it("refines a ValidationError to 413 / 415 for the body's size and type", async () => {
    // Prepare
    const tooBig = stack(async () => {
      parseApiBody(v2Event(JSON.stringify({ pad: "x".repeat(200) })), 100);
      return { statusCode: 200, body: "" };
    });
    const wrongType = stack(async () => {
      parseApiBody(v2Event("{}", { contentType: "text/plain" }), 100);
      return { statusCode: 200, body: "" };
    });
    // Act
    const big = await tooBig.handler({}, fakeContext());
    const type = await wrongType.handler({}, fakeContext());
    // Assess
    expect(big.statusCode).toBe(413);
    expect(type.statusCode).toBe(415);
    expect(JSON.parse(type.body).error.name).toBe("ValidationError");
  });

  it("answers a bug with 500 InternalError and a generic message, and records the status", async () => {
    // Prepare
    const { handler, invocation } = stack(async () => {
      throw new TypeError("cannot read properties of undefined (reading 'secret')");
    });
    // Act
    const response = await handler({}, fakeContext());
    // Assess
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain("secret");
    expect(JSON.parse(response.body).error).toMatchObject({
      name: "InternalError",
      message: "internal error",
    });
    expect(invocation().audit.statusCode).toBe(500);
  });

  it("answers middy's early timeout with 504 DeadlineExceeded", async () => {
    // Prepare: a handler that never answers, 200 ms of Lambda time.
    const { handler } = stack(() => new Promise<APIGatewayProxyResult>(() => {}));
    // Act
    const response = await handler({}, fakeContext({ timeoutMs: 200 }));
    // Assess
    expect(response.statusCode).toBe(504);
    expect(JSON.parse(response.body).error.name).toBe("DeadlineExceeded");
  });

  it("records the status of a response the handler built", async () => {
    // Prepare
    const { handler, invocation } = stack(async () => ({ statusCode: 200, body: "{}" }));
    // Act
    await handler({}, fakeContext());
    // Assess
    expect(invocation().audit.statusCode).toBe(200);
  });
});
