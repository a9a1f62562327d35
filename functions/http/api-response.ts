import type { MiddlewareObj } from "@middy/core";
import { auditFactsOf } from "../audit/audit-facts.ts";
import { invocationOf } from "../invocation/invocation.ts";
import { asEngineError, errorBody, httpStatusOf, jsonResponse } from "./api-http.ts";

/**
 * API error responses (SPEC §6): whatever was thrown — by a middleware, the handler, a bug —
 * becomes the error's HTTP status with `{error, result?}`. A bug is `InternalError` (500)
 * with a generic message; bad input never reaches here as anything but a 4xx.
 * Also records the status sent, for the audit line.
 */
export function apiResponse(): MiddlewareObj {
  return {
    after: (request) => {
      const status = (request.response as { statusCode?: unknown } | undefined)?.statusCode;
      if (typeof status === "number") auditFactsOf(request).statusCode = status;
    },
    onError: (request) => {
      const record = invocationOf(request);
      const error = asEngineError(request.error);
      record.error ??= error;
      const status = httpStatusOf(error);
      auditFactsOf(request).statusCode = status;
      request.response = jsonResponse(status, errorBody(error, record.result));
    },
  };
}
