import { Match } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { HANDLER_ENV } from "../../cdk/config.ts";
import { DEFAULT_METRIC_NAMESPACE, RETRYABLE_ERRORS } from "../../lib/names.ts";
import { REQUEST_FIELDS, REQUEST_SCHEMA } from "../../lib/request-schema.ts";
import { definitionOf, synthOnce } from "./synth.ts";

const { template } = synthOnce();

type Resources = Record<string, { Properties: Record<string, unknown> }>;

describe("functions", () => {
  it("run nodejs24.x on arm64 with explicit timeouts and memory", () => {
    for (const timeout of [25, 60]) {
      template.hasResourceProperties("AWS::Lambda::Function", {
        Runtime: "nodejs24.x",
        Architectures: ["arm64"],
        Timeout: timeout,
        MemorySize: 512,
        LoggingConfig: { LogGroup: Match.anyValue() },
      });
    }
  });

  it("tell the API handler its edge and reserve, in the names the handlers read", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Timeout: 25,
      Environment: {
        Variables: Match.objectLike({
          [HANDLER_ENV.edgeTimeoutMs]: "29000",
          [HANDLER_ENV.reserveMs]: "2000",
          [HANDLER_ENV.secretPrefix]: "bounded-ssh/credentials/",
          [HANDLER_ENV.metricsNamespace]: DEFAULT_METRIC_NAMESPACE,
          [HANDLER_ENV.policyParameter]: Match.anyValue(),
          [HANDLER_ENV.knownHostsParameter]: Match.anyValue(),
        }),
      },
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Timeout: 60,
      Environment: {
        Variables: Match.objectLike({
          [HANDLER_ENV.reserveMs]: "3000",
          // Tasks run only for the two state machines, named (no reference: no cycle).
          [HANDLER_ENV.stateMachineArns]: {
            "Fn::Join": [
              "",
              Match.arrayWith([Match.stringLikeRegexp(":stateMachine:Test-SingleHost,arn:")]),
            ],
          },
        }),
      },
    });
  });

  it("tell the API handler which API, stage and account its events must name", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Timeout: 25,
      Environment: {
        Variables: Match.objectLike({
          [HANDLER_ENV.apiId]: { Ref: Match.stringLikeRegexp("^RunApi") },
          [HANDLER_ENV.apiStage]: "v1",
          [HANDLER_ENV.apiAccount]: { Ref: "AWS::AccountId" },
        }),
      },
    });
  });

  it("reserve concurrency for the task function (fleets cannot starve or flood the account)", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Timeout: 60,
      ReservedConcurrentExecutions: 50,
    });
  });

  it("keep idempotency records and the host breaker in DynamoDB tables with TTL, named to both functions", () => {
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
      TimeToLiveSpecification: { AttributeName: "expiration", Enabled: true },
    });
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [{ AttributeName: "host", KeyType: "HASH" }],
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
    });
    for (const timeout of [25, 60]) {
      template.hasResourceProperties("AWS::Lambda::Function", {
        Timeout: timeout,
        Environment: {
          Variables: Match.objectLike({
            [HANDLER_ENV.idempotencyTable]: {
              Ref: Match.stringLikeRegexp("^FleetStateIdempotency"),
            },
            [HANDLER_ENV.breakerTable]: { Ref: Match.stringLikeRegexp("^FleetStateBreaker") },
          }),
        },
      });
    }
  });

  it("spill full output to a private, SSL-only, expiring bucket both functions may only put to", () => {
    template.hasResourceProperties("AWS::S3::Bucket", {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            ExpirationInDays: 30,
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          }),
        ],
      },
    });
    for (const timeout of [25, 60]) {
      template.hasResourceProperties("AWS::Lambda::Function", {
        Timeout: timeout,
        Environment: {
          Variables: Match.objectLike({
            [HANDLER_ENV.spillBucket]: { Ref: Match.stringLikeRegexp("^SpillBucket") },
            [HANDLER_ENV.spillMode]: "request",
            [HANDLER_ENV.spillMaxBytes]: String(1024 ** 3),
          }),
        },
      });
    }
    const policies = JSON.stringify(template.findResources("AWS::IAM::Policy"));
    // Put (and abort) under spill/ only: never read, list or delete spilled output.
    expect(policies).toMatch(/"s3:PutObject"/);
    expect(policies).toMatch(/\{"Fn::GetAtt":\["SpillBucket[0-9A-F]+","Arn"\]\},"\/spill\/\*"/);
    expect(policies).not.toMatch(/SpillBucket[0-9A-F]+","Arn"\]\},"\/\*"/);
    const spillStatements = (
      Object.values(template.findResources("AWS::IAM::Policy")) as {
        Properties: {
          PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] };
        };
      }[]
    )
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((st) => JSON.stringify(st.Resource).includes("SpillBucket"));
    expect(spillStatements.length).toBeGreaterThan(0);
    for (const st of spillStatements) {
      for (const action of [st.Action].flat()) expect(action).toMatch(/^s3:(Put|Abort)/);
    }
  });

  it("log the signing principal's ARN in the API access log", () => {
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      AccessLogSetting: {
        Format: Match.stringLikeRegexp('"userArn":"\\$context.identity.userArn"'),
      },
    });
  });

  it("may read secrets only under the credential prefix", () => {
    template.hasResourceProperties("AWS::IAM::Policy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Action: "secretsmanager:GetSecretValue",
            Effect: "Allow",
            Resource: {
              "Fn::Join": [
                "",
                Match.arrayWith([Match.stringLikeRegexp(":secret:bounded-ssh/credentials/\\*$")]),
              ],
            },
          },
        ]),
      },
    });
    // No statement anywhere grants secretsmanager on a bare wildcard.
    const policies = template.findResources("AWS::IAM::Policy") as Resources;
    const text = JSON.stringify(policies);
    expect(text).not.toMatch(/"secretsmanager:\*"/);
    expect(text).not.toMatch(
      /"Action":"secretsmanager:GetSecretValue","Effect":"Allow","Resource":"\*"/,
    );
  });

  it("has log groups with retention", () => {
    template.hasResourceProperties("AWS::Logs::LogGroup", { RetentionInDays: 30 });
  });
});

describe("API", () => {
  it("serves POST /run with IAM authorization and body validation", () => {
    template.hasResourceProperties("AWS::ApiGateway::Method", {
      HttpMethod: "POST",
      AuthorizationType: "AWS_IAM",
      RequestValidatorId: Match.anyValue(),
      RequestModels: { "application/json": Match.anyValue() },
      Integration: Match.objectLike({ TimeoutInMillis: 29000, Type: "AWS_PROXY" }),
    });
    template.hasResourceProperties("AWS::ApiGateway::RequestValidator", {
      ValidateRequestBody: true,
    });
    template.hasResourceProperties("AWS::ApiGateway::Model", {
      Schema: Match.objectLike({
        additionalProperties: false,
        required: ["host", "username", "command"],
      }),
    });
  });

  it("validates bodies at the edge with a model derived from the one request schema (via included)", () => {
    const [model] = Object.values(template.findResources("AWS::ApiGateway::Model"));
    const schema = model?.Properties.Schema as {
      properties: Record<string, { properties?: Record<string, unknown>; maxLength?: number }>;
    };
    // Every request field, no more: a field the handlers accept is never refused at the edge.
    expect(Object.keys(schema.properties).sort()).toEqual([...REQUEST_FIELDS].sort());
    const via = REQUEST_SCHEMA.properties.via as { properties: Record<string, unknown> };
    expect(Object.keys(schema.properties.via?.properties ?? {}).sort()).toEqual(
      Object.keys(via.properties).sort(),
    );
    expect(schema.properties.username?.maxLength).toBe(
      REQUEST_SCHEMA.properties.username.maxLength,
    );
    expect(JSON.stringify(schema)).not.toContain('"pattern"');
  });

  it("throttles and writes access logs", () => {
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
      MethodSettings: Match.arrayWith([
        Match.objectLike({
          ThrottlingRateLimit: 10,
          ThrottlingBurstLimit: 20,
          DataTraceEnabled: false,
        }),
      ]),
    });
  });
});

describe("workflows", () => {
  it("retry lib's RETRYABLE_ERRORS but HostQuarantined and CommandInProgress, with backoff and full jitter, per attempt timeout > Lambda", () => {
    for (const [prefix, taskState] of [
      ["WorkflowsSingleHost", "RunCommand"],
      ["WorkflowsFleet", "InlineRunHost"],
    ] as const) {
      const asl = definitionOf(template, prefix);
      const states = findStates(asl);
      const task = states[taskState] as {
        Retry: { ErrorEquals: string[]; BackoffRate: number; JitterStrategy: string }[];
        TimeoutSeconds: number;
      };
      const retry = task.Retry.find((r) => r.ErrorEquals.includes("BannerTimeout"));
      // CommandInProgress has its own retrier (it waits out the first attempt's deadline).
      expect(retry?.ErrorEquals).toEqual(
        RETRYABLE_ERRORS.filter((n) => n !== "HostQuarantined" && n !== "CommandInProgress"),
      );
      expect(retry).toMatchObject({ BackoffRate: 2, JitterStrategy: "FULL", MaxAttempts: 2 });
      expect(task.TimeoutSeconds).toBeGreaterThan(60);
    }
  });

  it("uses a Distributed Map with concurrency and failure tolerance from the input, results to S3", () => {
    const states = findStates(definitionOf(template, "WorkflowsFleet"));
    expect(states.RunFleetInline).toMatchObject({
      MaxConcurrencyPath: "$.maxConcurrency",
      ToleratedFailurePercentagePath: "$.toleratedFailurePercentage",
      ItemProcessor: { ProcessorConfig: { Mode: "DISTRIBUTED" } },
    });
    expect(states.RunFleetFromS3).toMatchObject({
      ItemReader: {
        Resource: "arn:aws:states:::s3:getObject",
        Parameters: { "Key.$": "$.hostsKey" },
      },
      ResultWriter: {
        Resource: "arn:aws:states:::s3:putObject",
        Parameters: { Prefix: "fleet-results" },
      },
    });
  });
});

/** All states of a definition, nested processors included. */
function findStates(asl: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const visit = (node: { States?: Record<string, Record<string, unknown>> }) => {
    for (const [name, state] of Object.entries(node.States ?? {})) {
      out[name] = state;
      if (state.ItemProcessor) visit(state.ItemProcessor as typeof node);
    }
  };
  visit(asl as typeof visit extends (n: infer N) => void ? N : never);
  return out;
}
