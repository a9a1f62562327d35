/**
 * API Gateway entry point (REST API v1 and HTTP API v2 payloads): `POST /run`, IAM-authorized.
 * A thin middy stack over `execute()` → lib `runCommand`. Bad input is always a 4xx with a
 * message naming the field; session errors map to SPEC §6 statuses with the result attached.
 */
import middy from "@middy/core";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import type { APIGatewayProxyResult, Context } from "aws-lambda";
import { auditFactsOf } from "./audit/audit-facts.ts";
import { auditLog } from "./audit/audit-log.ts";
import { auditOptions } from "./audit/audit-options.ts";
import {
  type ApiEvent,
  apiEdgeStart,
  apiRequestId,
  errorBody,
  httpStatusOf,
  jsonResponse,
  parseApiBody,
} from "./http/api-http.ts";
import { apiResponse } from "./http/api-response.ts";
import { bindRequest, requestOf } from "./invocation/bind-request.ts";
import { errorOfResult, execute } from "./invocation/execute.ts";
import { invocationOf } from "./invocation/invocation.ts";
import { invocationDeadline } from "./invocation/invocation-deadline.ts";
import { metricsMiddleware } from "./metrics/middleware.ts";
import { verifiedApiCaller } from "./request/callers.ts";
import { REQUEST_LIMITS } from "./request/request-schema.ts";
import { defaultRuntime } from "./runtime/default-runtime.ts";
import { preloadModules } from "./runtime/lazy.ts";
import type { Runtime } from "./runtime/runtime.ts";

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
