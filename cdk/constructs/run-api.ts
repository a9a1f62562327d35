import { type Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigateway";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { REQUEST_SCHEMA } from "../../lib/request-schema.ts";

/** The stage's throttle when none is configured (API Gateway token bucket, all callers). */
export const DEFAULT_API_THROTTLE = { rateLimit: 10, burstLimit: 20 } as const;

/** Properties of {@link RunApi}. */
export interface RunApiProps {
  /** The API handler (`functions/api.ts`). */
  readonly handler: lambda.IFunction;
  /** API Gateway integration timeout; must exceed the handler's timeout (checked at synth). */
  readonly integrationTimeout: Duration;
  /** Steady requests per second across all callers (stage throttle). @default 10 */
  readonly throttlingRateLimit?: number;
  /** Token bucket size (stage throttle), at least the rate. @default 20 */
  readonly throttlingBurstLimit?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default "v1" */
  readonly stageName?: string;
  /**
   * The REST API's name. Set here, never on the L1 afterwards: API Gateway's metrics (and the
   * ApiEdge alarms reading them) carry it as the `ApiName` dimension. @default the construct id
   */
  readonly restApiName?: string;
}

/**
 * `POST /run` behind IAM authorization. The body model mirrors SPEC §4 so malformed requests
 * are refused at the edge before a Lambda is billed; the handler still validates (it is the
 * authority, and Step Functions bypasses this API).
 *
 * @example
 * const api = new RunApi(this, "Api", {
 *   handler: apiFunction.function,
 *   integrationTimeout: Duration.seconds(29),
 * });
 */
export class RunApi extends Construct {
  readonly api: apigw.RestApi;
  readonly accessLogs: logs.LogGroup;
  /** The deployment stage's name, as a plain string (the API function's env names it). */
  readonly stageName: string;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the handler, integration timeout, throttling and log retention.
   */
  constructor(scope: Construct, id: string, props: RunApiProps) {
    super(scope, id);
    this.stageName = props.stageName ?? "v1";
    const rateLimit = props.throttlingRateLimit ?? DEFAULT_API_THROTTLE.rateLimit;
    const burstLimit = props.throttlingBurstLimit ?? DEFAULT_API_THROTTLE.burstLimit;
    if (!(rateLimit > 0) || !Number.isInteger(burstLimit) || burstLimit < Math.max(1, rateLimit)) {
      throw new Error(
        `RunApi: throttle rate ${rateLimit}/s, burst ${burstLimit}: the rate must be > 0 and the burst an integer at least the rate`,
      );
    }
    this.accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.api = new apigw.RestApi(this, "Api", {
      ...(props.restApiName ? { restApiName: props.restApiName } : {}),
      description: "bounded-ssh: bounded remote command execution over SSH",
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // Stage logging needs the account-level CloudWatch role.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: this.stageName,
        throttlingRateLimit: rateLimit,
        throttlingBurstLimit: burstLimit,
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        // Request/response bodies carry commands and output: never log them.
        dataTraceEnabled: false,
        metricsEnabled: true,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        // The standard fields plus the signing principal's ARN (what the policy sees).
        accessLogFormat: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: apigw.AccessLogField.contextRequestId(),
            ip: apigw.AccessLogField.contextIdentitySourceIp(),
            caller: apigw.AccessLogField.contextIdentityCaller(),
            user: apigw.AccessLogField.contextIdentityUser(),
            userArn: apigw.AccessLogField.contextIdentityUserArn(),
            requestTime: apigw.AccessLogField.contextRequestTime(),
            httpMethod: apigw.AccessLogField.contextHttpMethod(),
            resourcePath: apigw.AccessLogField.contextResourcePath(),
            status: apigw.AccessLogField.contextStatus(),
            protocol: apigw.AccessLogField.contextProtocol(),
            responseLength: apigw.AccessLogField.contextResponseLength(),
          }),
        ),
      },
    });

    const model = this.api.addModel("RunRequest", {
      contentType: "application/json",
      modelName: "RunRequest",
      schema: RUN_REQUEST_SCHEMA,
    });
    const validator = this.api.addRequestValidator("BodyValidator", {
      validateRequestBody: true,
      // No parameters are declared, so this checks nothing extra but keeps the validator total.
      validateRequestParameters: true,
    });

    const run = this.api.root.addResource("run");
    run.addMethod(
      "POST",
      new apigw.LambdaIntegration(props.handler, {
        proxy: true,
        timeout: props.integrationTimeout,
      }),
      {
        authorizationType: apigw.AuthorizationType.IAM,
        requestValidator: validator,
        requestModels: { "application/json": model },
      },
    );

    // Edge validation failures keep the SPEC §6 error shape (name + field) instead of
    // API Gateway's generic "Invalid request body".
    this.api.addGatewayResponse("BadBody", {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: "400",
      templates: {
        "application/json":
          '{"error":{"name":"ValidationError","phase":"request","message":"$context.error.validationErrorString","retryable":false,"commandStarted":false}}',
      },
    });

    Validations.of(this.api).acknowledge({
      id: "AwsSolutions-APIG3",
      reason:
        "IAM-authorized regional API for internal callers; WAF adds no protection beyond SigV4 here and is attachable per deployment.",
    });
    Validations.of(this.api).acknowledge({
      id: "AwsSolutions-COG4",
      reason:
        "Callers are AWS principals authenticated with SigV4 (AuthorizationType.IAM), not Cognito users.",
    });
    Validations.of(this.api).acknowledge({
      id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
      reason:
        "The account-level API Gateway logging role; AWS documents this managed policy for it.",
    });
  }
}

/** Keywords of the request schema that API Gateway's draft-4 model validation understands. */
const MODEL_KEYWORDS = new Set([
  "type",
  "required",
  "additionalProperties",
  "properties",
  "minimum",
  "maximum",
  "minLength",
  "maxLength",
]);

/**
 * The edge model, derived from the one request schema (`lib/request-schema.ts`), never written
 * by hand: the same fields (nested `via` included), types, limits and unknown-field refusal.
 * `pattern` is left to the handler's validator (its regex dialect is ECMAScript, API
 * Gateway's is Java's; the handler's messages name the field and the fix).
 */
export function requestModelSchema(schema: object = REQUEST_SCHEMA): apigw.JsonSchema {
  const convert = (node: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (!MODEL_KEYWORDS.has(key)) continue;
      out[key] =
        key === "properties"
          ? Object.fromEntries(
              Object.entries(value as Record<string, Record<string, unknown>>).map(([k, v]) => [
                k,
                convert(v),
              ]),
            )
          : value;
    }
    return out;
  };
  return {
    schema: apigw.JsonSchemaVersion.DRAFT4,
    title: "RunRequest",
    ...convert(schema as Record<string, unknown>),
  } as apigw.JsonSchema;
}

const RUN_REQUEST_SCHEMA = requestModelSchema();
