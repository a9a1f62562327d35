import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { App, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { CURRENTLY_RECOMMENDED_FLAGS } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { BoundedSshStack, deployConfigProps } from "../../cdk/bounded-ssh-stack.ts";
import { HANDLER_ENV } from "../../cdk/config.ts";
import { PLACEHOLDER_SECRET } from "../../cdk/constructs/stage-config.ts";
import {
  DeployConfigError,
  loadDeployConfig,
  loadDeployConfigFile,
} from "../../cdk/deploy-config.ts";
import { Policy, type PolicyDocument } from "../../functions/policy/policy.ts";
import { alarmName } from "../../operations/alarm-catalog.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const EXAMPLE = path.join(ROOT, "examples/deploy/example.json");
// A tiny stand-in entry: these tests are about names and placement, not the bundle.
const FIXTURE = path.join(ROOT, "test/cdk/fixtures/handler.ts");
/** The context `cdk synth` gets from cdk.json (feature flags), so tests synth what the CLI does. */
const CDK_CONTEXT = (
  JSON.parse(readFileSync(path.join(ROOT, "cdk.json"), "utf8")) as {
    context: Record<string, unknown>;
  }
).context;

/** Synthesizes one app holding a stack per config, with cdk-nag, like `cdk/app.ts`. */
function synthStages(files: string[]): Template[] {
  const app = new App({ context: CDK_CONTEXT });
  const stacks = files.map((file) => {
    const props = deployConfigProps(loadDeployConfigFile(file));
    return new BoundedSshStack(app, props.stackName!, {
      ...props,
      apiEntry: FIXTURE,
      taskEntry: FIXTURE,
    });
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
  return stacks.map((s) => Template.fromStack(s));
}

/** A copy of the example config (and its files) with some fields replaced. */
function variant(change: Record<string, unknown>, policy?: unknown): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bssh-deploy-"));
  const example = JSON.parse(readFileSync(EXAMPLE, "utf8")) as Record<string, unknown>;
  for (const f of ["policy.json", "known_hosts"]) {
    writeFileSync(path.join(dir, f), readFileSync(path.join(ROOT, "examples/deploy", f)));
  }
  if (policy !== undefined) writeFileSync(path.join(dir, "policy.json"), JSON.stringify(policy));
  const file = path.join(dir, "deploy.json");
  writeFileSync(file, JSON.stringify({ ...example, ...change }));
  return file;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

describe("the example deploy config", () => {
  const [template] = synthStages([EXAMPLE]) as [Template];
  const example = JSON.parse(readFileSync(EXAMPLE, "utf8")) as {
    vpc: { subnetIds: string[]; awsApiCidr: string };
  };
  const policyFile = JSON.parse(
    readFileSync(path.join(ROOT, "examples/deploy/policy.json"), "utf8"),
  ) as PolicyDocument;

  it("places both SSH functions in the VPC's subnets with the one security group", () => {
    // The alarm enrichment function talks only to AWS APIs: it stays out of the VPC.
    const functions = Object.fromEntries(
      Object.entries(template.findResources("AWS::Lambda::Function") as Resources).filter(
        ([id]) => !id.startsWith("Monitoring"),
      ),
    );
    const sgs = Object.keys(template.findResources("AWS::EC2::SecurityGroup"));
    expect(sgs).toHaveLength(1);
    expect(Object.keys(functions)).toHaveLength(2);
    for (const fn of Object.values(functions)) {
      expect(fn.Properties?.VpcConfig).toEqual({
        SubnetIds: example.vpc.subnetIds,
        SecurityGroupIds: [{ "Fn::GetAtt": [sgs[0], "GroupId"] }],
      });
    }
  });

  it("lets the security group out only to the policy's CIDRs and ports and to AWS APIs", () => {
    const expected = [];
    const seen = new Set<string>();
    for (const rule of policyFile.rules) {
      for (const cidr of rule.targets.cidrs ?? []) {
        for (const port of rule.targets.ports ?? [22]) {
          if (seen.has(`${cidr}:${port}`)) continue;
          seen.add(`${cidr}:${port}`);
          expected.push({ CidrIp: cidr, FromPort: port, ToPort: port, IpProtocol: "tcp" });
        }
      }
    }
    expected.push({
      CidrIp: example.vpc.awsApiCidr,
      FromPort: 443,
      ToPort: 443,
      IpProtocol: "tcp",
    });
    const [sg] = Object.values(template.findResources("AWS::EC2::SecurityGroup")) as [
      { Properties: { SecurityGroupEgress: Record<string, unknown>[] } },
    ];
    const egress = sg.Properties.SecurityGroupEgress.map(({ Description: _, ...rule }) => rule);
    expect(egress).toEqual(expected);
    expect(template.findResources("AWS::EC2::SecurityGroupEgress")).toEqual({});
  });

  it("loads the policy and known_hosts files into the stage's SSM parameters", () => {
    template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/staging/bounded-ssh/policy",
      Value: JSON.stringify(policyFile),
    });
    template.hasResourceProperties("AWS::SSM::Parameter", {
      Name: "/staging/bounded-ssh/known-hosts",
      Value: readFileSync(path.join(ROOT, "examples/deploy/known_hosts"), "utf8"),
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          [HANDLER_ENV.secretPrefix]: "staging/bounded-ssh/credentials/",
          [HANDLER_ENV.policyParameter]: { Ref: Match.stringLikeRegexp("ConfigPolicy") },
          [HANDLER_ENV.metricsNamespace]: "BoundedSsh/staging",
        }),
      },
    });
  });

  it("creates a retained placeholder secret per credential name", () => {
    for (const name of ["default", "deploy-key"]) {
      template.hasResource("AWS::SecretsManager::Secret", {
        DeletionPolicy: "Retain",
        Properties: Match.objectLike({
          Name: `staging/bounded-ssh/credentials/${name}`,
          SecretString: JSON.stringify(PLACEHOLDER_SECRET),
        }),
      });
    }
  });

  it("reserves concurrency, subscribes people to the page topic, links the team's runbooks", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: "staging-bounded-ssh-api",
      ReservedConcurrentExecutions: 20,
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: "staging-bounded-ssh-task",
      ReservedConcurrentExecutions: 50,
    });
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "oncall@example.com",
      TopicArn: { Ref: Match.stringLikeRegexp("TopicsPageTopic") },
    });
    const runbooks = "https://git.example.com/platform/bounded-ssh/blob/main/docs/runbooks";
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "staging-BoundedSsh-LeakedSockets",
      AlarmDescription: Match.stringLikeRegexp(`RUNBOOK: ${runbooks}/LeakedSockets\\.md`),
    });
  });
});

describe("alarm routes in the deploy config", () => {
  const [template] = synthStages([EXAMPLE]) as [Template];
  const subscriptions = () =>
    Object.values(template.findResources("AWS::SNS::Subscription")).map(
      (r) => r.Properties as Record<string, unknown>,
    );
  const on = (route: string) =>
    subscriptions().filter((p) => JSON.stringify(p.TopicArn).includes(`Topics${route}Topic`));

  it("subscribes each route's people to that route's topic only, with their filter policies", () => {
    expect(on("Page").map((p) => [p.Protocol, p.Endpoint])).toEqual([
      ["email", "oncall@example.com"],
      [
        "https",
        "https://events.pagerduty.com/integration/0123456789abcdef0123456789abcdef/enqueue",
      ],
    ]);
    expect(on("Ticket").map((p) => [p.Protocol, p.Endpoint, p.FilterPolicy])).toEqual([
      ["email", "ssh-platform@example.com", { state: ["ALARM"] }],
    ]);
    const fleet = on("Fleet");
    expect(fleet.map((p) => p.Protocol)).toEqual(["email", "lambda"]);
    expect(fleet[1]).toMatchObject({
      Endpoint: "arn:aws:lambda:eu-west-1:123456789012:function:fleet-chat-notifier",
      FilterPolicy: { part: ["hosts", "only"] },
    });
    // The pager's address is on no other route.
    expect(subscriptions().filter((p) => p.Endpoint === "oncall@example.com")).toHaveLength(1);
  });

  it("names each route's enrichment function by stage and route", () => {
    for (const name of [
      "staging-bounded-ssh-alarm-enrichment",
      "staging-bounded-ssh-alarm-enrichment-ticket",
      "staging-bounded-ssh-alarm-enrichment-fleet",
    ]) {
      template.hasResourceProperties("AWS::Lambda::Function", { FunctionName: name });
    }
  });

  const refused = (alarms: unknown) => {
    try {
      loadDeployConfigFile(variant({ alarms }));
    } catch (error) {
      expect(error).toBeInstanceOf(DeployConfigError);
      return (error as Error).message;
    }
    throw new Error("accepted");
  };
  const page = (...subscriptions: unknown[]) => ({ routes: { page: { subscriptions } } });

  it.each([
    [
      page({ protocol: "email", address: "oncall" }),
      /subscriptions\/0 address "oncall" is not an email address/,
    ],
    [page({ protocol: "https", url: "http://hooks.example.com/x" }), /must be https:\/\//],
    [page({ protocol: "https", url: "not a url" }), /url "not a url" is not a URL/],
    [
      page({ protocol: "https", url: "https://hooks.slack.com/services/T0/B0/x" }),
      /a Slack incoming webhook: it refuses SNS's JSON .* AWS Chatbot to the page topic, or a function/,
    ],
    [
      page({ protocol: "lambda", functionArn: "my-function" }),
      /functionArn "my-function" is not a Lambda function ARN/,
    ],
    [
      page({ protocol: "email", url: "https://x.example" }),
      /protocol email takes address, not url/,
    ],
    [
      page(
        { protocol: "email", address: "a@b.example" },
        { protocol: "email", address: "a@b.example" },
      ),
      /subscriptions\/1 subscribes a@b.example to the page topic twice/,
    ],
    [
      { ...page({ protocol: "email", address: "a@b.example" }), emails: ["a@b.example"] },
      /subscribes a@b.example to the page topic twice \(alarms.emails/,
    ],
    [
      page({ protocol: "sms", address: "+100" }),
      /\/alarms\/routes\/page\/subscriptions\/0\/protocol must be equal to one of the allowed values/,
    ],
    [
      page({ protocol: "email", address: "a@b.example", filter: { severty: ["page"] } }),
      /filter must NOT have additional properties .*severty/,
    ],
    [
      { routes: { pager: { subscriptions: [] } } },
      /\/alarms\/routes must NOT have additional properties .*pager/,
    ],
  ])("refuses %j with a clear error", (alarms, message) => {
    expect(refused(alarms)).toMatch(message);
  });
});

describe("cdk.json", () => {
  it("sets every feature flag aws-cdk-lib recommends, and turns telemetry and notices off", () => {
    const cdkJson = JSON.parse(readFileSync(path.join(ROOT, "cdk.json"), "utf8")) as {
      notices: unknown;
    };
    expect(CDK_CONTEXT).toMatchObject(CURRENTLY_RECOMMENDED_FLAGS);
    expect(CDK_CONTEXT["cli-telemetry"]).toBe(false);
    expect(cdkJson.notices).toBe(false);
  });
});

describe("deploy config checks at synth", () => {
  it("fails with the runtime's own error for a policy the handler would refuse", () => {
    const bad = {
      rules: [
        {
          id: "broken",
          callers: ["arn:aws:iam::123456789012:role/ops"],
          targets: { cidrs: ["10.0.3.0/24"], usernames: ["deploy"] },
          commands: {},
        },
      ],
    };
    let runtimeMessage = "";
    try {
      new Policy(bad as unknown as PolicyDocument);
    } catch (error) {
      runtimeMessage = (error as Error).message;
    }
    expect(runtimeMessage).not.toBe("");
    expect(() => loadDeployConfigFile(variant({}, bad))).toThrow(runtimeMessage);
  });

  it("refuses a breaker setting that is not a SPEC §6 name or not a positive integer", () => {
    expect(() =>
      loadDeployConfigFile(variant({ breaker: { errors: ["BannerTimeout", "Nope"] } })),
    ).toThrow(/breaker\/errors\/1/);
    expect(() => loadDeployConfigFile(variant({ breaker: { threshold: 0 } }))).toThrow(
      /breaker\/threshold/,
    );
    expect(
      loadDeployConfigFile(
        variant({ breaker: { errors: ["BannerTimeout"], threshold: 5, probeSeconds: 60 } }),
      ).config.breaker,
    ).toEqual({ errors: ["BannerTimeout"], threshold: 5, probeSeconds: 60 });
  });

  it("takes both SLO targets and refuses one that is no percentage, naming it", () => {
    expect(
      loadDeployConfigFile(variant({ slo: { availabilityTarget: 99.5, boundedTarget: 99.99 } }))
        .config.slo,
    ).toEqual({ availabilityTarget: 99.5, boundedTarget: 99.99 });
    expect(() => loadDeployConfigFile(variant({ slo: { boundedTarget: 100 } }))).toThrow(
      /slo\/boundedTarget/,
    );
    expect(() => loadDeployConfigFile(variant({ slo: { boundedTaget: 99 } }))).toThrow(
      /boundedTaget/,
    );
  });

  it("refuses unknown fields and a bad stage name, naming them", () => {
    expect(() => loadDeployConfigFile(variant({ stag: "x" }))).toThrow(/stag/);
    expect(() => loadDeployConfigFile(variant({ stage: "Prod_1" }))).toThrow(/\/stage/);
    expect(() => loadDeployConfigFile(variant({ reservedConcurrency: { api: 0 } }))).toThrow(
      DeployConfigError,
    );
  });

  it("passes the spill settings to both functions and the bucket, and refuses bad ones", () => {
    const [template] = synthStages([
      variant({ spill: { mode: "always", maxBytes: 5_000_000, expirationDays: 7 } }),
    ]) as [Template];
    for (const name of ["staging-bounded-ssh-api", "staging-bounded-ssh-task"]) {
      template.hasResourceProperties("AWS::Lambda::Function", {
        FunctionName: name,
        Environment: {
          Variables: Match.objectLike({
            [HANDLER_ENV.spillMode]: "always",
            [HANDLER_ENV.spillMaxBytes]: "5000000",
          }),
        },
      });
    }
    template.hasResourceProperties("AWS::S3::Bucket", {
      LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 7 })] },
    });
    expect(() => loadDeployConfigFile(variant({ spill: { mode: "sometimes" } }))).toThrow(
      /spill\/mode/,
    );
    expect(() => loadDeployConfigFile(variant({ spill: { maxBytes: 0 } }))).toThrow(
      /spill\/maxBytes/,
    );
  });

  it("refuses a VPC deploy whose policy names hosts without CIDRs", () => {
    const hostsOnly = {
      rules: [
        {
          id: "by-name",
          callers: ["arn:aws:iam::123456789012:role/ops"],
          targets: { hosts: ["*.example.internal"], usernames: ["deploy"] },
          commands: { patterns: ["uptime"] },
        },
      ],
    };
    expect(() => loadDeployConfigFile(variant({}, hostsOnly))).toThrow(/by-name names hosts only/);
    const { vpc: _, ...noVpc } = JSON.parse(readFileSync(EXAMPLE, "utf8")) as Record<
      string,
      unknown
    >;
    const loaded = loadDeployConfig(
      { ...(noVpc as { stage: string }), policyFile: undefined },
      path.dirname(EXAMPLE),
    );
    expect(loaded.sshEgress).toEqual([]);
  });
});

/** Physical-name property of each resource type whose name is account- or region-wide. */
const PHYSICAL_NAME: Record<string, string> = {
  "AWS::Lambda::Function": "FunctionName",
  "AWS::StepFunctions::StateMachine": "StateMachineName",
  "AWS::Logs::LogGroup": "LogGroupName",
  "AWS::SSM::Parameter": "Name",
  "AWS::SecretsManager::Secret": "Name",
  "AWS::CloudWatch::Alarm": "AlarmName",
  "AWS::CloudWatch::Dashboard": "DashboardName",
  "AWS::Logs::QueryDefinition": "Name",
  "AWS::ApiGateway::RestApi": "Name",
  "AWS::SNS::Topic": "TopicName",
  "AWS::EC2::SecurityGroup": "GroupName",
  "AWS::S3::Bucket": "BucketName",
  "AWS::IAM::Role": "RoleName",
  "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
  "AWS::KMS::Alias": "AliasName",
  "AWS::Logs::MetricFilter": "FilterName",
};
/** Must be named (with the stage), or a second stage could not be told apart by an operator. */
const MUST_BE_NAMED = [
  "AWS::Lambda::Function",
  "AWS::StepFunctions::StateMachine",
  "AWS::Logs::LogGroup",
  "AWS::SSM::Parameter",
  "AWS::SecretsManager::Secret",
  "AWS::CloudWatch::Alarm",
];
/** Names scoped inside a parent (an API, a role): equal across stages by design. */
const SCOPED_NAMES = new Set([
  "AWS::ApiGateway::Stage",
  "AWS::ApiGateway::Model",
  "AWS::IAM::Policy",
]);

function physicalNames(template: Template): Map<string, string> {
  const names = new Map<string, string>();
  for (const [id, r] of Object.entries(template.toJSON().Resources as Resources)) {
    const key = PHYSICAL_NAME[r.Type];
    const value = key ? r.Properties?.[key] : undefined;
    if (value !== undefined) {
      names.set(`${r.Type} ${JSON.stringify(value)}`, id);
    } else if (MUST_BE_NAMED.includes(r.Type)) {
      throw new Error(`${r.Type} ${id} has no physical name`);
    }
  }
  return names;
}

describe("two stages in one account", () => {
  const templates = synthStages([
    variant({ stage: "staging" }),
    variant({ stage: "prod", credentials: ["default"] }),
  ]);

  it("share no physical name, and every name carries its stage", () => {
    const [a, b] = templates.map(physicalNames) as [Map<string, string>, Map<string, string>];
    const shared = [...a.keys()].filter((name) => b.has(name));
    expect(shared).toEqual([]);
    for (const [stage, names] of [
      ["staging", a],
      ["prod", b],
    ] as const) {
      for (const name of names.keys()) expect(name).toContain(stage);
    }
    expect(a.size).toBeGreaterThan(20);
  });

  it("leave no other literal name equal across stages", () => {
    const literalNames = (t: Template) => {
      const out: string[] = [];
      for (const r of Object.values(t.toJSON().Resources as Resources)) {
        if (SCOPED_NAMES.has(r.Type) || PHYSICAL_NAME[r.Type]) continue;
        for (const [k, v] of Object.entries(r.Properties ?? {})) {
          if (/Name$/.test(k) && typeof v === "string") out.push(`${r.Type} ${k} ${v}`);
        }
      }
      return out;
    };
    const [a, b] = templates.map(literalNames) as [string[], string[]];
    expect(a.filter((n) => b.includes(n))).toEqual([]);
  });

  it("publish metrics to separate namespaces", () => {
    for (const [t, stage] of [
      [templates[0]!, "staging"],
      [templates[1]!, "prod"],
    ] as const) {
      t.hasResourceProperties("AWS::CloudWatch::Alarm", {
        AlarmName: alarmName(stage, "LeakedSockets"),
        Namespace: `BoundedSsh/${stage}`,
      });
    }
  });
});
