/**
 * API Gateway entry point (REST API v1 and HTTP API v2 payloads): `POST /run`, IAM-authorized.
 * Entry point → {@link compose} → the invocation → `execute()` → lib `runCommand`. Bad input is
 * always a 4xx with a message naming the field; session errors map to SPEC §6 statuses with
 * the result attached.
 */
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import type { APIGatewayProxyResult, Context } from "aws-lambda";
import { REQUEST_LIMITS } from "../lib/request-schema.ts";
import {
  type ApiEvent,
  apiEdgeStart,
  apiRequestId,
  jsonResponse,
  parseApiBody,
} from "./http/api-http.ts";
import { apiResponse } from "./http/api-response.ts";
import { compose } from "./invocation/compose.ts";
import { execute } from "./invocation/execute.ts";
import { verifiedApiCaller } from "./request/callers.ts";
import { defaultRuntime } from "./runtime/default-runtime.ts";
import type { Runtime } from "./runtime/runtime.ts";

/**
 * Builds the API handler over a runtime (tests and local mode pass their own): the caller is
 * verified from the event's `requestContext`, the body parsed, then `execute` settles the
 * request; `succeeded`/`failed` answer 200 with the result, any error its SPEC §6 status with
 * `{error, result?}` (`apiResponse`).
 *
 * @param runtime settings, stores and policy of the container (`awsRuntime`, `testRuntime`).
 * @returns a middy handler `(event, context) => Promise<APIGatewayProxyResult>`.
 * @throws never for a request: every failure, a bug included, is an HTTP answer.
 * @example
 * const handler = createApiHandler(awsRuntime(configFromEnv(process.env)));
 * const response = await handler(apiGatewayEvent, lambdaContext);
 * response.statusCode; // 200, or the §6 status of `JSON.parse(response.body).error.name`
 */
export function createApiHandler(runtime: Runtime) {
  return compose<ApiEvent, APIGatewayProxyResult>(
    {
      source: "api",
      runtime,
      edgeStart: apiEdgeStart,
      adapter: [httpHeaderNormalizer(), apiResponse()],
    },
    async (event, invocation) => {
      invocation.audit.apiRequestId = apiRequestId(event);
      // Before the body is read: an event not written by the deployed API is refused.
      invocation.caller = verifiedApiCaller(event, runtime.settings.api);
      const body = parseApiBody(event, REQUEST_LIMITS.bodyBytes);
      invocation.audit.bodyBytes = body.bytes;
      const { result, error } = await execute(invocation, runtime, body.value);
      // succeeded/failed: 200 with the result; an error: apiResponse() answers its status.
      if (error) throw error;
      return jsonResponse(200, result);
    },
  );
}

let cached: Promise<ReturnType<typeof createApiHandler>> | undefined;

/**
 * The deployed handler: the AWS runtime from the container's configuration (functions/config),
 * built on the first invocation and kept for the container.
 *
 * @param event an API Gateway REST (v1) or HTTP API (v2) event for `POST /run`.
 * @param context the Lambda context.
 * @throws the configuration's error when the container is misconfigured (retried next call).
 */
export const handler = (event: ApiEvent, context: Context): Promise<APIGatewayProxyResult> => {
  cached ??= defaultRuntime().then(createApiHandler);
  cached.catch(() => {
    cached = undefined;
  });
  return cached.then((handle) => handle(event, context));
};
