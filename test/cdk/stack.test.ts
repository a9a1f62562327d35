import { existsSync } from "node:fs";
import { Match } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { HANDLER_ENV } from "../../cdk/config.ts";
import { ALARM_KINDS, QUERY, runbookPath } from "../../cdk/constructs/monitoring.ts";
import { DEFAULT_METRIC_NAMESPACE, METRIC, RETRYABLE_ERRORS } from "../../lib/names.ts";
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
  it("retry lib's RETRYABLE_ERRORS but HostQuarantined, with backoff and full jitter, per attempt timeout > Lambda", () => {
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
      expect(retry?.ErrorEquals).toEqual(RETRYABLE_ERRORS.filter((n) => n !== "HostQuarantined"));
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

describe("monitoring", () => {
  const alarms = template.findResources("AWS::CloudWatch::Alarm") as Resources;
  const byName = (name: string) =>
    Object.values(alarms).find((a) => a.Properties.AlarmName === `BoundedSsh-${name}`)?.Properties;

  it("alarms on the metric names lib/names.ts defines", () => {
    expect(byName("HandshakeHangs")).toMatchObject({
      MetricName: METRIC.HandshakeHangs,
      Namespace: DEFAULT_METRIC_NAMESPACE,
      Statistic: "Sum",
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      TreatMissingData: "notBreaching",
    });
    expect(byName("ConnectTimeouts")).toMatchObject({
      MetricName: METRIC.Timeouts,
      Dimensions: [{ Name: "Phase", Value: "connect" }],
      Threshold: 5,
    });
    expect(byName("CommandTimeouts")).toMatchObject({
      MetricName: METRIC.Timeouts,
      Dimensions: [{ Name: "Phase", Value: "exec" }],
    });
    expect(byName("LeakedSockets")).toMatchObject({
      MetricName: METRIC.LeakedSockets,
      Statistic: "Maximum",
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
  });

  it("flags a Lambda duration at 90% of its timeout and any hard timeout as a deadline overrun", () => {
    const overrun = byName("DeadlineOverrun") as { Metrics: { Expression?: string }[] };
    const expression = overrun.Metrics.find((q) => q.Expression)?.Expression ?? "";
    expect(expression).toContain(">= 22500"); // 0.9 × 25 s API function
    expect(expression).toContain(">= 54000"); // 0.9 × 60 s task function
    expect(expression).toContain("FILL(hard, 0)");
    expect(expression).toContain("FILL(sfnHard, 0)");
  });

  it("covers every alarm kind of SPEC §8, each notifying SNS with a runbook and a saved query", () => {
    const names = Object.values(alarms).map((a) => a.Properties.AlarmName as string);
    for (const name of [
      "HandshakeHangs",
      "ConnectTimeouts",
      "CommandTimeouts",
      "LeakedSockets",
      "DeadlineOverrun",
      "LambdaErrors-Api",
      "LambdaErrors-Task",
      "LambdaThrottles-Api",
      "LambdaThrottles-Task",
      "WorkflowFailures-SingleHost",
      "WorkflowFailures-Fleet",
    ]) {
      expect(names).toContain(`BoundedSsh-${name}`);
    }
    const queries = Object.values(QUERY);
    for (const alarm of Object.values(alarms)) {
      const p = alarm.Properties;
      expect(p.AlarmActions).toEqual([{ Ref: expect.stringMatching(/AlarmTopic/) }]);
      expect(p.TreatMissingData).toBeDefined();
      const description = p.AlarmDescription as string;
      expect(description).toMatch(
        /^WHAT: .+\nCHECK: 1\) .+; 2\) .+; 3\) .+\.\nRUNBOOK: docs\/runbooks\/\w+\.md\nQUERY: /,
      );
      expect(queries.some((q) => description.includes(q))).toBe(true);
    }
  });

  it("has a runbook page for every alarm kind", () => {
    for (const kind of ALARM_KINDS) expect(existsSync(runbookPath(kind)), kind).toBe(true);
  });

  it("saves Logs Insights queries that list hosts by error and phase from the audit line", () => {
    template.hasResourceProperties("AWS::Logs::QueryDefinition", {
      Name: QUERY.HostsByError,
      QueryString: Match.stringLikeRegexp(
        'filter type = "bounded-ssh.audit"[\\s\\S]*by target.host, target.port, error.name, phase',
      ),
    });
  });

  it("counts Lambda's own timeout line as a hard timeout", () => {
    template.hasResourceProperties("AWS::Logs::MetricFilter", {
      FilterPattern: '"Task timed out after"',
      MetricTransformations: [Match.objectLike({ MetricName: "LambdaHardTimeouts" })],
    });
  });

  it("has a dashboard", () => {
    template.resourceCountIs("AWS::CloudWatch::Dashboard", 1);
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
