import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { ArnFormat, Aws, Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as destinations from "aws-cdk-lib/aws-lambda-destinations";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import type { Severity } from "../../operations/alarm-catalog.ts";
import { ENRICHMENT_ENV } from "../../operations/environment.ts";
import { handlerBundling } from "../bundling.ts";
import { nodejsBundling } from "../constructs/nodejs-bundling.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Properties of {@link AlarmEnrichment}. */
export interface AlarmEnrichmentProps {
  readonly stage: string;
  /** The route it serves (`page`, `ticket`, `fleet`): its description, and nothing else. */
  readonly route: Severity;
  /** What CloudWatch notifies for this route (its input). */
  readonly alarmTopic: sns.ITopic;
  /** The route's topic people subscribe to (its output, and its on-failure destination). */
  readonly enrichedTopic: sns.ITopic;
  /** Key of both topics. */
  readonly topicKey: kms.IKey;
  readonly functionLogGroups: readonly logs.ILogGroup[];
  readonly workflowLogGroups: readonly logs.ILogGroup[];
  readonly runbookBaseUrl: string;
  readonly dashboardName: string;
  /** @default Duration.seconds(60): the query gets this minus a 3 s publish reserve */
  readonly timeout?: Duration;
}

/**
 * The enrichment function of one route, subscribed to its alarm topic: publishes the plain
 * alarm to the route's topic at once, then runs the alarm's saved query and publishes the hosts
 * (totals, groups, top rows, capped and escaped) as a follow-up (`functions/alarm-enrichment/`).
 * One per route, same code (one bundle): a storm of fleet alarms never queues ahead of a page,
 * a failed enrichment falls back to its own route's topic, and each may publish only there.
 *
 * @example
 * new AlarmEnrichment(this, "Enrichment", {
 *   stage: "prod",
 *   route: "page",
 *   alarmTopic: topics.alarms.page,
 *   enrichedTopic: topics.routes.page,
 *   topicKey: topics.key,
 *   functionLogGroups: [apiLogs, taskLogs],
 *   workflowLogGroups: [singleHostLogs, fleetLogs],
 *   runbookBaseUrl: RUNBOOK_BASE_URL,
 *   dashboardName: "prod-BoundedSsh-Stack",
 * });
 */
export class AlarmEnrichment extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly logGroup: logs.LogGroup;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the topics and key, the log groups it queries, the runbook and dashboard.
   */
  constructor(scope: Construct, id: string, props: AlarmEnrichmentProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: `bounded-ssh alarm enrichment (${props.route}): query the handler logs, publish enriched alarms`,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["logs:StartQuery"],
        resources: [...props.functionLogGroups, ...props.workflowLogGroups].map(
          (g) => g.logGroupArn,
        ),
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // Query ids have no ARN: these two actions take no resource-level scope.
        actions: ["logs:GetQueryResults", "logs:StopQuery"],
        resources: ["*"],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // Which children of the composite page are in ALARM.
        actions: ["cloudwatch:DescribeAlarms"],
        resources: [
          stack.formatArn({
            service: "cloudwatch",
            resource: "alarm",
            resourceName: `${props.stage}-BoundedSsh-*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    props.enrichedTopic.grantPublish(role);
    // Publishing to an encrypted topic needs the topic key.
    props.topicKey.grant(role, "kms:Decrypt", "kms:GenerateDataKey*");

    const dashboardUrl = `https://console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards:name=${props.dashboardName}`;
    this.function = new nodejs.NodejsFunction(this, "Handler", {
      entry: path.join(ROOT, "functions/alarm-enrichment/handler.ts"),
      handler: "handler",
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout ?? Duration.seconds(60),
      memorySize: 256,
      role,
      logGroup: this.logGroup,
      // SNS invokes asynchronously. The plain page is published first, before any query; the
      // hosts follow in a second message (functions/alarm-enrichment/enrich.ts). A failed
      // enrichment (publish refused, crash, timeout) is retried twice (the plain page with it); after that Lambda sends the invocation record - the original alarm
      // notification plus the error - to the route's topic itself, so the people subscribed
      // there still get the page, unenriched. Nothing is lost silently.
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      onFailure: new destinations.SnsDestination(props.enrichedTopic),
      environment: {
        [ENRICHMENT_ENV.stage]: props.stage,
        [ENRICHMENT_ENV.enrichedTopicArn]: props.enrichedTopic.topicArn,
        [ENRICHMENT_ENV.functionLogGroups]: stack.toJsonString(
          props.functionLogGroups.map((g) => g.logGroupName),
        ),
        [ENRICHMENT_ENV.workflowLogGroups]: stack.toJsonString(
          props.workflowLogGroups.map((g) => g.logGroupName),
        ),
        [ENRICHMENT_ENV.runbookBaseUrl]: props.runbookBaseUrl,
        [ENRICHMENT_ENV.dashboardUrl]: dashboardUrl,
        NODE_OPTIONS: "--enable-source-maps",
      },
      bundling: nodejsBundling(handlerBundling({ lazyChunk: false })),
    });
    // The route's subscriber, and the only one: its messages carry no attributes (CloudWatch's
    // own), the enriched ones do.
    props.alarmTopic.addSubscription(new subscriptions.LambdaSubscription(this.function));
    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "logs:GetQueryResults and logs:StopQuery act on a query id, which has no ARN; StartQuery is limited to the handler and workflow log groups.",
    });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:${props.stage}-BoundedSsh-*]`,
      reason:
        "DescribeAlarms on this stage's own alarms (one name prefix), to name the page's children in ALARM.",
    });
    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
      reason:
        "SNS needs GenerateDataKey/GenerateDataKeyWithoutPlaintext on the one topic key to publish to the encrypted enriched topic.",
    });
  }
}
