import type { MiddlewareObj } from "@middy/core";
import { invocationOf } from "../invocation/invocation.ts";
import { errorBody, httpStatusOf, jsonResponse } from "./api-http.ts";

/**
 * API error responses (SPEC §6): whatever was thrown — by a middleware, the handler, a bug —
 * is the invocation's error by now (the error mapper ran first) and becomes its HTTP status
 * with `{error, result?}`. Also records the status sent, for the audit line.
 */
export function apiResponse(): MiddlewareObj {
  return {
    after: (request) => {
      const status = (request.response as { statusCode?: unknown } | undefined)?.statusCode;
      if (typeof status === "number") invocationOf(request.context).audit.statusCode = status;
    },
    onError: (request) => {
      const invocation = invocationOf(request.context);
      const error = invocation.fail(request.error);
      const status = httpStatusOf(error);
      invocation.audit.statusCode = status;
      request.response = jsonResponse(status, errorBody(error, invocation.result));
    },
  };
}
