import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { App, Duration, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunApi } from "../../cdk/constructs/run-api.ts";
import { HTTP_STATUS } from "../../functions/http/api-http.ts";
import {
  ERROR_SCHEMA_JSON,
  GATEWAY_ERRORS,
  generateErrorSchemaJson,
  generateOpenApiJson,
  OPENAPI_JSON,
} from "../../scripts/generate-openapi.ts";
import { type RealApi, startRealApi } from "./real-api.ts";
import { fakeContext, loopbackPolicy, v1Event, v2Event } from "./support.ts";

type Doc = {
  paths: { "/run": { post: { responses: Record<string, unknown> } } };
};
const doc = JSON.parse(readFileSync(OPENAPI_JSON, "utf8")) as Doc;
const responses = doc.paths["/run"].post.responses;

// The whole document is one schema resource: each response's schema is reached by JSON
// pointer, and its `#/components/schemas/…` refs resolve inside the document as an OpenAPI 3.1
// tool resolves them. strict off: OpenAPI's own keywords (paths, info, …) are not JSON Schema.
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(doc, "openapi");
const validatorOf = (status: number) =>
  ajv.compile({
    $ref: `openapi#/paths/~1run/post/responses/${status}/content/application~1json/schema`,
  });

/** The response matches the document: a listed status, and a body valid for that status. */
function expectDocumented(response: { statusCode: number; body: string }): unknown {
  expect(Object.keys(responses)).toContain(String(response.statusCode));
  const body = JSON.parse(response.body) as unknown;
  const validate = validatorOf(response.statusCode);
  const ok = validate(body);
  expect(ok, JSON.stringify(validate.errors)).toBe(true);
  return body;
}

describe("schemas/openapi.json and schemas/error.schema.json", () => {
  it("are generated (run npm run generate)", async () => {
    expect(readFileSync(OPENAPI_JSON, "utf8")).toBe(await generateOpenApiJson());
    expect(readFileSync(ERROR_SCHEMA_JSON, "utf8")).toBe(generateErrorSchemaJson());
  });

  it("list every status the handler and API Gateway can answer", () => {
    const expected = new Set(
      [
        200,
        413,
        415,
        ...Object.values(HTTP_STATUS),
        ...Object.keys(GATEWAY_ERRORS).map(Number),
      ].map(String),
    );
    expect(new Set(Object.keys(responses))).toEqual(expected);
  });

  it("accept API Gateway's own { message } bodies where API Gateway sends them, and nothing else", () => {
    for (const [status, { messages }] of Object.entries(GATEWAY_ERRORS)) {
      for (const message of messages) expect(validatorOf(Number(status))({ message })).toBe(true);
    }
    expect(validatorOf(429)({ message: "Too Many Requests", extra: 1 })).toBe(false);
    expect(validatorOf(409)({ message: "Too Many Requests" })).toBe(false);
    expect(validatorOf(200)({ message: "Too Many Requests" })).toBe(false);
  });
});

describe("the OpenAPI document against the deployed edge's own 400", () => {
  it("the body-validation gateway response (BAD_REQUEST_BODY) renders the documented envelope", () => {
    // Prepare: the API construct as the stack builds it.
    const stack = new Stack(new App(), "Edge");
    const handler = new lambda.Function(stack, "F", {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: "index.handler",
      code: lambda.Code.fromInline("exports.handler = async () => ({})"),
    });
    new RunApi(stack, "Api", { handler, integrationTimeout: Duration.seconds(29) });
    const responses = Template.fromStack(stack).findResources("AWS::ApiGateway::GatewayResponse", {
      Properties: { ResponseType: "BAD_REQUEST_BODY" },
    });
    const [response] = Object.values(responses) as {
      Properties: { StatusCode: string; ResponseTemplates: Record<string, string> };
    }[];
    // Act: API Gateway substitutes its validation text (here one without quotes).
    const body = response!.Properties.ResponseTemplates["application/json"]!.replace(
      "$context.error.validationErrorString",
      "[object has missing required properties (command)]",
    );
    // Assess
    expect(response!.Properties.StatusCode).toBe("400");
    expect(
      expectDocumented({ statusCode: Number(response!.Properties.StatusCode), body }),
    ).toMatchObject({ error: { name: "ValidationError", phase: "request" } });
  });
});

describe("the OpenAPI document against the real handler's responses", () => {
  let api: RealApi;
  beforeAll(async () => {
    api = await startRealApi();
  });
  afterAll(async () => {
    await api.close();
  });
  const body = (extra: Record<string, unknown> = {}): string => JSON.stringify(api.request(extra));

  it("200 succeeded and 200 failed (non-zero exit)", async () => {
    const handler = api.handler();
    const ok = await handler(v1Event(body()), fakeContext());
    expect(ok.statusCode).toBe(200);
    expect(expectDocumented(ok)).toMatchObject({ status: "succeeded" });
    const failed = await handler(v2Event(body({ command: "exit 3" })), fakeContext());
    expect(failed.statusCode).toBe(200);
    expect(expectDocumented(failed)).toMatchObject({ status: "failed", exitCode: 3 });
  });

  it.each([
    [
      "400 ValidationError (unknown field)",
      400,
      "ValidationError",
      (): string => body({ colour: "red" }),
      undefined,
    ],
    ["400 ValidationError (invalid JSON)", 400, "ValidationError", (): string => "{", undefined],
    [
      "413 ValidationError (body too large)",
      413,
      "ValidationError",
      (): string => body({ stdin: "x".repeat(200_000) }),
      undefined,
    ],
    [
      "415 ValidationError (content type)",
      415,
      "ValidationError",
      (): string => body(),
      "text/plain",
    ],
    [
      "403 CommandNotAllowed",
      403,
      "CommandNotAllowed",
      (): string => body({ command: "rm -rf /" }),
      undefined,
    ],
  ] as const)("%s", async (_title, status, name, makeBody, contentType) => {
    const response = await api.handler()(
      v1Event(makeBody(), contentType ? { contentType } : {}),
      fakeContext(),
    );
    expect(response.statusCode).toBe(status);
    expect(expectDocumented(response)).toMatchObject({ error: { name } });
  });

  it("403 TargetNotAllowed for an unknown caller", async () => {
    const response = await api.handler()(
      v1Event(body(), { caller: "arn:aws:iam::999999999999:user/mallory" }),
      fakeContext(),
    );
    expect(response.statusCode).toBe(403);
    expect(expectDocumented(response)).toMatchObject({ error: { name: "TargetNotAllowed" } });
  });

  it("500 CredentialInvalid", async () => {
    const policy = loopbackPolicy([api.server.port]);
    policy.rules[0]!.credentials = ["default", "nope"];
    const response = await api.handler({ policy })(
      v1Event(body({ credential: "nope" })),
      fakeContext(),
    );
    expect(response.statusCode).toBe(500);
    expect(expectDocumented(response)).toMatchObject({ error: { name: "CredentialInvalid" } });
  });

  it("502 HostKeyUnknown", async () => {
    const response = await api.handler({ knownHosts: "" })(v2Event(body()), fakeContext());
    expect(response.statusCode).toBe(502);
    expect(expectDocumented(response)).toMatchObject({ error: { name: "HostKeyUnknown" } });
  });

  it("504 BannerTimeout (a hung target) and 504 DeadlineExceeded", async () => {
    const handler = api.handler();
    const hung = await handler(
      v2Event(body({ port: api.hung.port, timeoutMs: 500 })),
      fakeContext(),
    );
    expect(hung.statusCode).toBe(504);
    expect(expectDocumented(hung)).toMatchObject({
      error: { name: "BannerTimeout", retryable: true },
      result: { status: "timed_out" },
    });
    const late = await handler(v1Event(body()), fakeContext({ timeoutMs: 1_700 }));
    expect(late.statusCode).toBe(504);
    expect(expectDocumented(late)).toMatchObject({ error: { name: "DeadlineExceeded" } });
  });

  it("refuses a body that breaks the document (the check can fail)", () => {
    expect(validatorOf(504)({ error: { name: "BannerTimeout" } })).toBe(false);
    expect(validatorOf(200)({ status: "succeeded" })).toBe(false);
  });
});
