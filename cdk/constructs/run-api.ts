import { type Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigateway";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

/** Properties of {@link RunApi}. */
export interface RunApiProps {
  /** The API handler (`functions/api.ts`). */
  readonly handler: lambda.IFunction;
  /** API Gateway integration timeout; must exceed the handler's timeout (checked at synth). */
  readonly integrationTimeout: Duration;
  /** @default 10 requests per second */
  readonly throttlingRateLimit?: number;
  /** @default 20 */
  readonly throttlingBurstLimit?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default "v1" */
  readonly stageName?: string;
}

/**
 * `POST /run` behind IAM authorization. The body model mirrors SPEC §4 so malformed requests
 * are refused at the edge before a Lambda is billed; the handler still validates (it is the
 * authority, and Step Functions bypasses this API).
 */
export class RunApi extends Construct {
  readonly api: apigw.RestApi;
  readonly accessLogs: logs.LogGroup;
  /** The deployment stage's name, as a plain string (the API function's env names it). */
  readonly stageName: string;

  constructor(scope: Construct, id: string, props: RunApiProps) {
    super(scope, id);
    this.stageName = props.stageName ?? "v1";
    this.accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.api = new apigw.RestApi(this, "Api", {
      description: "bounded-ssh: bounded remote command execution over SSH",
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // Stage logging needs the account-level CloudWatch role.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: this.stageName,
        throttlingRateLimit: props.throttlingRateLimit ?? 10,
        throttlingBurstLimit: props.throttlingBurstLimit ?? 20,
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

/** JSON Schema (draft 4, as API Gateway requires) of the SPEC §4 request. */
const RUN_REQUEST_SCHEMA: apigw.JsonSchema = {
  schema: apigw.JsonSchemaVersion.DRAFT4,
  title: "RunRequest",
  type: apigw.JsonSchemaType.OBJECT,
  additionalProperties: false,
  required: ["host", "username", "command"],
  properties: {
    host: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 253 },
    port: { type: apigw.JsonSchemaType.INTEGER, minimum: 1, maximum: 65535 },
    username: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 256 },
    command: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 16384 },
    credential: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 256 },
    hostKey: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 16384 },
    timeoutMs: { type: apigw.JsonSchemaType.INTEGER, minimum: 1 },
    maxOutputBytes: { type: apigw.JsonSchemaType.INTEGER, minimum: 0 },
    stdin: { type: apigw.JsonSchemaType.STRING },
    failOnNonZeroExit: { type: apigw.JsonSchemaType.BOOLEAN },
    idempotencyKey: { type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: 128 },
    spill: { type: apigw.JsonSchemaType.BOOLEAN },
  },
};
