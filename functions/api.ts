/**
 * API Gateway entry point (REST API v1 and HTTP API v2 payloads): `POST /run`, IAM-authorized.
 * A thin middy stack over `execute()` → lib `runCommand`. Bad input is always a 4xx with a
 * message naming the field; session errors map to SPEC §6 statuses with the result attached.
 */
import middy from "@middy/core";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import type { APIGatewayProxyResult, Context } from "aws-lambda";
import { REQUEST_LIMITS } from "../lib/request-schema.ts";
import { metricsMiddleware } from "./metrics/middleware.ts";
import { apiResponse } from "./middleware/api-response.ts";
import { auditLog } from "./middleware/audit-log.ts";
import { bindRequest, requestOf } from "./middleware/bind-request.ts";
import { invocationDeadline } from "./middleware/invocation-deadline.ts";
import {
  type ApiEvent,
  apiEdgeStart,
  apiRequestId,
  errorBody,
  httpStatusOf,
  jsonResponse,
  parseApiBody,
} from "./shared/api-http.ts";
import { auditFactsOf } from "./shared/audit-facts.ts";
import { verifiedApiCaller } from "./shared/callers.ts";
import { defaultRuntime } from "./shared/default-runtime.ts";
import { errorOfResult, execute } from "./shared/execute.ts";
import { invocationOf } from "./shared/invocation.ts";
import { preloadModules } from "./shared/lazy.ts";
import type { Runtime } from "./shared/runtime.ts";
import { auditOptions } from "./shared/stack-options.ts";

/** Builds the API handler over a runtime (tests and local mode pass their own). */
export function createApiHandler(runtime: Runtime) {
  return middy<ApiEvent, APIGatewayProxyResult, Error, Context>()
    .use(metricsMiddleware(runtime.metrics))
    .use(auditLog(auditOptions(runtime)))
    .use(invocationDeadline({ settings: runtime.settings, edgeStart: apiEdgeStart }))
    .use(preloadModules(runtime.preload))
    .use(httpHeaderNormalizer())
    .use(apiResponse())
    .use(bindRequest())
    .handler(async (event, context) => {
      const request = requestOf(context);
      const facts = auditFactsOf(request, "api");
      facts.apiRequestId = apiRequestId(event);
      // Before the body is read: an event not written by the deployed API is refused.
      invocationOf(request).caller = verifiedApiCaller(event, runtime.settings.api);
      const body = parseApiBody(event, REQUEST_LIMITS.bodyBytes);
      facts.bodyBytes = body.bytes;
      const result = await execute({ internal: request.internal, context }, runtime, body.value);
      const error = errorOfResult(result);
      // succeeded/failed: 200 with the result; any session error: its SPEC §6 status.
      if (!error) return jsonResponse(200, result);
      return jsonResponse(httpStatusOf(error), errorBody(error, result));
    });
}

let cached: Promise<ReturnType<typeof createApiHandler>> | undefined;

/** The deployed handler: runtime from the environment (AWS, or local mode via BSSH_CONFIG). */
export const handler = (event: ApiEvent, context: Context): Promise<APIGatewayProxyResult> => {
  cached ??= defaultRuntime().then(createApiHandler);
  cached.catch(() => {
    cached = undefined;
  });
  return cached.then((handle) => handle(event, context));
};
