import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from "aws-lambda";

/** The API local events claim to come from; local mode's settings expect exactly it. */
export const LOCAL_API = { apiId: "local", stage: "local", accountId: "000000000000" } as const;

/** The state machine local task invocations (`npm run invoke`) run as, unless configured. */
export const LOCAL_STATE_MACHINE =
  "arn:aws:states:local:000000000000:stateMachine:bounded-ssh-local";

/**
 * A task event as a state machine builds it: the request under `request`, the execution
 * context beside it. Bare requests (example files) are wrapped; full events pass unchanged.
 */
export function toTaskEvent(input: unknown, stateMachine = LOCAL_STATE_MACHINE): unknown {
  if (input && typeof input === "object" && "execution" in input && "request" in input)
    return input;
  const name = stateMachine.split(":").pop();
  const prefix = stateMachine.replace(/:stateMachine:[^:]+$/, "");
  return {
    request: input,
    execution: { id: `${prefix}:execution:${name}:${randomUUID()}`, stateMachine },
  };
}

/** What the emulator knows about one HTTP request. */
export interface LocalHttpRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  sourceIp: string;
  /** Epoch ms when the request arrived (API Gateway's `requestTimeEpoch`). */
  receivedAt: number;
  /** The IAM principal API Gateway would report for a SigV4-signed request. */
  callerArn: string;
}

function singleHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(",") : value;
  }
  return out;
}

/** A REST API (payload v1) event, as API Gateway builds it with IAM authorization. */
export function toApiEventV1(req: LocalHttpRequest): APIGatewayProxyEvent {
  const headers = singleHeaders(req.headers);
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(headers)) multiValueHeaders[key] = [value];
  return {
    resource: "/run",
    path: req.path,
    httpMethod: req.method,
    headers,
    multiValueHeaders,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    body: req.body,
    isBase64Encoded: false,
    requestContext: {
      accountId: LOCAL_API.accountId,
      apiId: LOCAL_API.apiId,
      authorizer: null,
      protocol: "HTTP/1.1",
      httpMethod: req.method,
      path: `/local${req.path}`,
      stage: LOCAL_API.stage,
      requestId: randomUUID(),
      requestTimeEpoch: req.receivedAt,
      resourceId: "local",
      resourcePath: "/run",
      identity: {
        accessKey: null,
        accountId: "000000000000",
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: req.sourceIp,
        user: null,
        userAgent: headers["user-agent"] ?? null,
        userArn: req.callerArn,
      },
    },
  };
}

/** An HTTP API (payload v2) event with IAM authorization. */
export function toApiEventV2(req: LocalHttpRequest): APIGatewayProxyEventV2 {
  const headers = singleHeaders(req.headers);
  return {
    version: "2.0",
    routeKey: "POST /run",
    rawPath: req.path,
    rawQueryString: "",
    headers,
    body: req.body,
    isBase64Encoded: false,
    requestContext: {
      accountId: LOCAL_API.accountId,
      apiId: LOCAL_API.apiId,
      domainName: "localhost",
      domainPrefix: "localhost",
      http: {
        method: req.method,
        path: req.path,
        protocol: "HTTP/1.1",
        sourceIp: req.sourceIp,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey: "POST /run",
      stage: LOCAL_API.stage,
      time: new Date(req.receivedAt).toISOString(),
      timeEpoch: req.receivedAt,
      // IAM authorizer context, as HTTP API reports it (not in the v2 base type).
      authorizer: { iam: { userArn: req.callerArn } },
    } as APIGatewayProxyEventV2["requestContext"],
  };
}
