import { ArnFormat, type Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as ssm from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";
import { DEFAULT_METRIC_NAMESPACE } from "../../lib/names.ts";
import { HANDLER_ENV } from "../config.ts";

/** Where a VPC-attached function may reach SSH targets. */
export interface SshEgress {
  /** CIDR ranges of the SSH targets (the policy narrows further per caller). */
  readonly targetCidrs: readonly string[];
  /** @default [22] */
  readonly sshPorts?: readonly number[];
  /**
   * Where AWS API calls (Secrets Manager, SSM, CloudWatch) go on 443: VPC endpoint or NAT.
   * @default ec2.Peer.anyIpv4()
   */
  readonly awsApiPeer?: ec2.IPeer;
}

/** Properties of {@link SshFunction}. */
export interface SshFunctionProps {
  /** Handler entry file exporting `handler`. */
  readonly entry: string;
  /** Lambda timeout; checked against the outer edge by `validateTimeoutOrder`. */
  readonly timeout: Duration;
  /** Kept back for teardown, metrics and the response. */
  readonly reserve: Duration;
  /** API Gateway integration timeout, for the API function only. @default none */
  readonly apiEdge?: Duration;
  /** @default 512 — ssh2's pure-JS crypto is CPU-bound and Lambda CPU scales with memory */
  readonly memorySize?: number;
  /** Reserved concurrency. @default unreserved */
  readonly reservedConcurrentExecutions?: number;
  /** Secrets Manager name prefix of the credentials. */
  readonly secretPrefix: string;
  /** KMS key the credential secrets are encrypted with. @default the AWS-managed key */
  readonly secretsKey?: kms.IKey;
  /** Policy parameter (JSON). */
  readonly policyParameter: ssm.IStringParameter;
  /** Known-hosts parameter (OpenSSH known_hosts text). */
  readonly knownHostsParameter: ssm.IStringParameter;
  /** @default DEFAULT_METRIC_NAMESPACE */
  readonly metricNamespace?: string;
  /** @default "api" — PutMetricData with EMF fallback */
  readonly metricsMode?: "api" | "emf" | "both";
  /** How the audit line records the command. @default "plain" (the handler's default) */
  readonly auditCommand?: "plain" | "hash";
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Place the function in this VPC. @default not in a VPC */
  readonly vpc?: ec2.IVpc;
  /** @default the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Egress rules when in a VPC. Required with `vpc`. */
  readonly egress?: SshEgress;
}

/**
 * One bundled handler with its own log group, a role limited to its credential prefix and
 * two SSM parameters, and (in a VPC) a security group that reaches only SSH targets.
 */
export class SshFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly logGroup: logs.LogGroup;
  readonly securityGroup?: ec2.SecurityGroup;
  /** The function timeout, for alarms on Duration near it. */
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: SshFunctionProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.timeout = props.timeout;

    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // An explicit role instead of AWSLambdaBasicExecutionRole: logs only to our log group.
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "bounded-ssh handler: own logs, credential prefix, policy + known hosts",
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    const secretArnPrefix = stack.formatArn({
      service: "secretsmanager",
      resource: "secret",
      resourceName: `${props.secretPrefix}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["secretsmanager:GetSecretValue"],
        resources: [secretArnPrefix],
      }),
    );
    props.secretsKey?.grantDecrypt(role);
    props.policyParameter.grantRead(role);
    props.knownHostsParameter.grantRead(role);
    const namespace = props.metricNamespace ?? DEFAULT_METRIC_NAMESPACE;
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["cloudwatch:PutMetricData"],
        resources: ["*"],
        // PutMetricData has no resource ARN; the namespace condition is the real scope.
        conditions: { StringEquals: { "cloudwatch:namespace": namespace } },
      }),
    );

    if (props.vpc) {
      if (!props.egress) throw new Error(`${this.node.path}: 'egress' is required with 'vpc'`);
      this.securityGroup = new ec2.SecurityGroup(this, "Egress", {
        vpc: props.vpc,
        allowAllOutbound: false,
        description: "bounded-ssh: SSH to configured targets, HTTPS to AWS APIs only",
      });
      for (const cidr of props.egress.targetCidrs) {
        for (const port of props.egress.sshPorts ?? [22]) {
          this.securityGroup.addEgressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), "SSH target");
        }
      }
      this.securityGroup.addEgressRule(
        props.egress.awsApiPeer ?? ec2.Peer.anyIpv4(),
        ec2.Port.tcp(443),
        "AWS APIs (Secrets Manager, SSM, CloudWatch)",
      );
      role.addManagedPolicy(
        iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaVPCAccessExecutionRole"),
      );
      Validations.of(role).acknowledge({
        id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
        reason:
          "ENI management for VPC placement; the AWS-managed policy tracks the actions Lambda needs.",
      });
    }

    const environment: Record<string, string> = {
      [HANDLER_ENV.reserveMs]: String(props.reserve.toMilliseconds()),
      [HANDLER_ENV.secretPrefix]: props.secretPrefix,
      [HANDLER_ENV.policyParameter]: props.policyParameter.parameterName,
      [HANDLER_ENV.knownHostsParameter]: props.knownHostsParameter.parameterName,
      [HANDLER_ENV.auditCommand]: props.auditCommand ?? "plain",
      [HANDLER_ENV.metricsMode]: props.metricsMode ?? "api",
      [HANDLER_ENV.metricsNamespace]: namespace,
      // The bundle is minified: stack traces in the logs are only readable through the map.
      NODE_OPTIONS: "--enable-source-maps",
    };
    if (props.apiEdge) {
      environment[HANDLER_ENV.edgeTimeoutMs] = String(props.apiEdge.toMilliseconds());
    }

    this.function = new nodejs.NodejsFunction(this, "Handler", {
      entry: props.entry,
      handler: "handler",
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout,
      memorySize: props.memorySize ?? 512,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      role,
      logGroup: this.logGroup,
      environment,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? props.vpcSubnets : undefined,
      securityGroups: this.securityGroup ? [this.securityGroup] : undefined,
      // A retried async invocation would run a remote command twice: callers own retries.
      retryAttempts: 0,
      bundling: {
        format: nodejs.OutputFormat.CJS,
        target: "node24",
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // ssh2's native addons cannot be bundled; ssh2 falls back to pure JS without them.
        // The AWS SDK v3 ships with the nodejs24.x runtime (CDK's default external, kept).
        externalModules: ["cpu-features", "*.node", "@aws-sdk/*"],
        forceDockerBundling: false,
      },
    });

    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${props.secretPrefix}*]`,
      reason:
        "Credentials are looked up by name at run time; the grant is limited to the credential prefix (Secrets Manager appends a random suffix to every ARN).",
    });
    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "cloudwatch:PutMetricData has no resource-level ARN; the statement is conditioned on the project's metric namespace.",
    });
  }
}
