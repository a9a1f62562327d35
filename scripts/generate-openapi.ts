/**
 * Generates the API's published description from the contract's schemas (docs/contract.md §4–§6):
 * `schemas/error.schema.json` (the error envelope `{ error, result? }` every non-200 answer of
 * the handler has) and `schemas/openapi.json` (OpenAPI 3.1 for `POST /run`: the request and
 * result schemas, the envelope, API Gateway's own `{ message }` bodies, and every status the
 * handler can answer, derived from lib's error table). `npm run generate` runs it after the
 * request schema's generator; tests fail while either committed file is stale
 * (test/functions/openapi.test.ts, which also checks real handler responses against it).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runCli } from "../local/cli.ts";

/** Path of the published error-envelope schema. */
export const ERROR_SCHEMA_JSON = fileURLToPath(
  new URL("../schemas/error.schema.json", import.meta.url),
);
/** Path of the published OpenAPI document. */
export const OPENAPI_JSON = fileURLToPath(new URL("../schemas/openapi.json", import.meta.url));

const RESULT_SCHEMA_JSON = fileURLToPath(new URL("../schemas/result.schema.json", import.meta.url));
const REQUEST_SCHEMA_JSON = fileURLToPath(
  new URL("../schemas/request.schema.json", import.meta.url),
);

/**
 * Statuses the handler answers besides the error table's: a `ValidationError` refined by the
 * body parser (`parseApiBody` in functions/http/api-http.ts, `withHttpStatus`).
 */
export const REFINED_STATUSES: Readonly<Record<number, string>> = {
  413: "request body over the limit (ValidationError)",
  415: "content type not application/json (ValidationError)",
};

/**
 * API Gateway's own answers, sent before (or instead of) the handler's, with a `{ message }`
 * body (gateway response types, docs.aws.amazon.com/apigateway/latest/developerguide/
 * supported-gateway-response-types.html). The texts are API Gateway's defaults; 400
 * BAD_REQUEST_BODY is customised by cdk/constructs/run-api.ts into the error envelope, so a
 * 400 with `{ message }` is only a malformed request API Gateway refused otherwise.
 */
export const GATEWAY_ERRORS: Readonly<
  Record<number, { readonly types: string; readonly messages: readonly string[] }>
> = {
  400: { types: "BAD_REQUEST_PARAMETERS, DEFAULT_4XX", messages: ["Bad Request"] },
  403: {
    types:
      "MISSING_AUTHENTICATION_TOKEN, INVALID_SIGNATURE, EXPIRED_TOKEN, ACCESS_DENIED (IAM policy), WAF_FILTERED",
    messages: [
      "Missing Authentication Token",
      "The security token included in the request is invalid.",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
      "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z (20260101T001000Z - 5 min.)",
      "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:********7890:abc123/v1/POST/run",
      "Forbidden",
    ],
  },
  413: { types: "REQUEST_TOO_LARGE (over API Gateway's 10 MB)", messages: ["Request Too Long"] },
  429: {
    types: "THROTTLED (the stage's rate/burst limit, deploy config `apiThrottle`)",
    messages: ["Too Many Requests"],
  },
  500: {
    types: "API_CONFIGURATION_ERROR, DEFAULT_5XX",
    messages: ["Internal server error"],
  },
  502: {
    types: "a Lambda error or malformed proxy response (the function crashed or ran out of time)",
    messages: ["Internal server error"],
  },
  504: {
    types:
      "INTEGRATION_TIMEOUT (the integration's 29 s ran out: whether the command started is unknown)",
    messages: ["Endpoint request timed out"],
  },
};

/** Status → the error names that answer it (lib/names.ts `ERRORS`, functions/http). */
export async function handlerStatuses(): Promise<Map<number, string[]>> {
  // Imported here so --help answers before anything loads.
  const { HTTP_STATUS } = await import("../functions/http/api-http.ts");
  const byStatus = new Map<number, string[]>();
  for (const [name, status] of Object.entries(HTTP_STATUS)) {
    byStatus.set(status, [...(byStatus.get(status) ?? []), name]);
  }
  for (const [status, what] of Object.entries(REFINED_STATUSES)) {
    byStatus.set(Number(status), [...(byStatus.get(Number(status)) ?? []), what]);
  }
  return byStatus;
}

/** A draft-07 schema of schemas/ as a 2020-12 (OpenAPI 3.1) schema: `definitions` → `$defs`. */
export function toDraft2020(schema: Record<string, unknown>): Record<string, unknown> {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== "object") return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "$schema") continue;
      if (key === "$ref" && typeof value === "string") {
        out[key] = value.replace("#/definitions/", "#/$defs/");
      } else out[key === "definitions" ? "$defs" : key] = walk(value);
    }
    return out;
  };
  return walk(schema) as Record<string, unknown>;
}

/** The error envelope's schema (draft-07, like the other schemas/ files). */
export function errorSchema(): Record<string, unknown> {
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: "https://bounded-ssh/error.json",
    title: "bounded-ssh error envelope",
    description:
      "Body of every error the API handler answers (docs/contract.md §6): `error` (the result's error object) and `result` whenever one exists (every error after validation). API Gateway's edge validation (400) sends it without `result`. GENERATED by scripts/generate-openapi.ts; do not edit.",
    type: "object",
    additionalProperties: false,
    required: ["error"],
    properties: {
      error: { $ref: "result.json#/properties/error" },
      result: { $ref: "result.json" },
    },
  };
}

/** The text of schemas/error.schema.json. */
export function generateErrorSchemaJson(): string {
  return `${JSON.stringify(errorSchema(), null, 2)}\n`;
}

const json = (schema: unknown) => ({ content: { "application/json": { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** The OpenAPI 3.1 document (as an object). */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const read = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  const byStatus = await handlerStatuses();
  const statuses = [...new Set([...byStatus.keys(), ...Object.keys(GATEWAY_ERRORS).map(Number)])];
  statuses.sort((a, b) => a - b);
  const responses: Record<string, unknown> = {
    "200": {
      description:
        "The command ran: result `status` `succeeded` or `failed` (any exit code; docs/contract.md §5).",
      ...json(ref("RunResult")),
    },
  };
  for (const status of statuses) {
    const names = byStatus.get(status);
    const gateway = GATEWAY_ERRORS[status];
    const parts = [
      names ? `The handler: ${names.join(", ")} (error envelope).` : undefined,
      gateway
        ? `API Gateway itself: ${gateway.types} (\`{ message }\`, e.g. ${gateway.messages.map((m) => JSON.stringify(m)).join(" / ")}).`
        : undefined,
      status === 400
        ? "Edge validation of the body (BAD_REQUEST_BODY) answers the error envelope with ValidationError and no result."
        : undefined,
    ].filter((p): p is string => p !== undefined);
    const schemas = [
      ...(names || status === 400 ? [ref("ErrorEnvelope")] : []),
      ...(gateway ? [ref("GatewayError")] : []),
    ];
    responses[String(status)] = {
      description: parts.join(" "),
      ...json(schemas.length === 1 ? schemas[0] : { oneOf: schemas }),
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "bounded-ssh",
      version: (
        read(fileURLToPath(new URL("../package.json", import.meta.url))) as {
          version: string;
        }
      ).version,
      description:
        "Bounded remote command execution over SSH: one session, one hard deadline (docs/api.md, docs/contract.md). IAM-authorized: sign each request with SigV4 for service `execute-api` (bounded-ssh/client does). GENERATED by scripts/generate-openapi.ts from schemas/request.schema.json, schemas/result.schema.json and lib/names.ts; do not edit.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    servers: [
      {
        url: "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}",
        variables: {
          apiId: { default: "abc123", description: "the stack output RunUrl names it" },
          region: { default: "eu-west-1" },
          stage: { default: "v1" },
        },
      },
    ],
    security: [{ sigv4: [] }],
    paths: {
      "/run": {
        post: {
          operationId: "run",
          summary: "Run one command on one host over SSH, inside one deadline",
          requestBody: { required: true, ...json(ref("RunRequest")) },
          responses,
        },
      },
    },
    components: {
      securitySchemes: {
        sigv4: {
          type: "apiKey",
          name: "Authorization",
          in: "header",
          "x-amazon-apigateway-authtype": "awsSigv4",
          description:
            "AWS Signature Version 4 for service `execute-api` (API Gateway AuthorizationType IAM); the signing principal is the caller the policy sees.",
        },
      },
      schemas: {
        RunRequest: toDraft2020(read(REQUEST_SCHEMA_JSON)),
        RunResult: toDraft2020(read(RESULT_SCHEMA_JSON)),
        ErrorEnvelope: toDraft2020(errorSchema()),
        GatewayError: {
          $id: "https://bounded-ssh/gateway-error.json",
          title: "API Gateway error",
          description:
            "API Gateway's own answer (throttled, unsigned or denied, integration timeout, too large): no `error`, so nothing says whether the command started.",
          type: "object",
          additionalProperties: false,
          required: ["message"],
          properties: { message: { type: "string" } },
        },
      },
    },
  };
}

/** The text of schemas/openapi.json. */
export async function generateOpenApiJson(): Promise<string> {
  return `${JSON.stringify(await openApiDocument(), null, 2)}\n`;
}

const HELP = `
usage: npm run generate

Generates everything derived from the contract's schemas, in order:
  lib/request-validator.generated.ts and schemas/request.schema.json (from lib/request-schema.ts,
    scripts/generate-validator.ts),
  schemas/error.schema.json (the error envelope) and schemas/openapi.json (OpenAPI 3.1 for
    POST /run, from the request and result schemas and lib's error table),
  docs/api.md's Step Functions ASL block (from the task-state builder,
    scripts/generate-task-asl.ts; it synthesizes a small CDK app).
Run it after editing a schema, an error's status or the task builder; tests fail while any
generated file is stale.

cost: a few seconds (the ASL block loads aws-cdk-lib); rewrites those four files and one block of
docs/api.md in the checkout (review with git diff).
`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runCli("generate", HELP, async () => {
    // The request schema first: the OpenAPI document embeds the published file.
    const validator = await import("./generate-validator.ts");
    writeFileSync(validator.GENERATED_VALIDATOR, validator.generateValidatorSource());
    console.log(`wrote ${validator.GENERATED_VALIDATOR}`);
    writeFileSync(validator.REQUEST_SCHEMA_JSON, validator.generateRequestSchemaJson());
    console.log(`wrote ${validator.REQUEST_SCHEMA_JSON}`);
    writeFileSync(ERROR_SCHEMA_JSON, generateErrorSchemaJson());
    console.log(`wrote ${ERROR_SCHEMA_JSON}`);
    writeFileSync(OPENAPI_JSON, await generateOpenApiJson());
    console.log(`wrote ${OPENAPI_JSON}`);
    const { writeTaskAslDoc } = await import("./generate-task-asl.ts");
    await writeTaskAslDoc();
  });
}
