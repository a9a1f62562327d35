import type { MiddlewareObj, Request } from "@middy/core";
import { recordedError } from "../invocation/engine-error.ts";
import { invocationOf } from "../invocation/invocation.ts";
import { errorBody, httpStatusOf, jsonResponse } from "./api-http.ts";

/**
 * API responses (SPEC §6), the one place an error becomes an HTTP answer: whatever was thrown
 * — by a middleware, the handler (a settled error), a bug — is the invocation's error by now
 * (the error mapper ran first) and becomes its HTTP status with `{error, result?}`. Also
 * records the status sent, for the audit line.
 *
 * @example Outside {@link compose} (which registers all of these): after `createInvocation`,
 * whose invocation it reads, and before `engineErrors`, which records the error it maps.
 * middy(handler)
 *   .use(createInvocation({ source: "api", settings }))
 *   .use(httpHeaderNormalizer())
 *   .use(apiResponse())
 *   .use(engineErrors());
 */
export function apiResponse(): MiddlewareObj {
  const apiResponseAfter = (request: Request): void => {
    const status = (request.response as { statusCode?: unknown } | undefined)?.statusCode;
    if (typeof status === "number") invocationOf(request.context).audit.statusCode = status;
  };
  const apiResponseOnError = (request: Request): void => {
    const invocation = invocationOf(request.context);
    const error = recordedError(request);
    const status = httpStatusOf(error);
    invocation.audit.statusCode = status;
    request.response = jsonResponse(status, errorBody(error, invocation.result));
  };
  return { after: apiResponseAfter, onError: apiResponseOnError };
}
