import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from "aws-lambda";

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
      accountId: "000000000000",
      apiId: "local",
      authorizer: null,
      protocol: "HTTP/1.1",
      httpMethod: req.method,
      path: `/local${req.path}`,
      stage: "local",
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
      accountId: "000000000000",
      apiId: "local",
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
      stage: "$default",
      time: new Date(req.receivedAt).toISOString(),
      timeEpoch: req.receivedAt,
      // IAM authorizer context, as HTTP API reports it (not in the v2 base type).
      authorizer: { iam: { userArn: req.callerArn } },
    } as APIGatewayProxyEventV2["requestContext"],
  };
}
