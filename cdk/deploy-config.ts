/**
 * The deploy config (issue 12 item 4): one JSON file per stage, named by the CDK context
 * `config` (`npx cdk deploy -c config=deploy/prod.json`). Everything an operator decides
 * lives here, so deploying never means editing code or SSM by hand.
 *
 * The policy file is checked by the runtime's own `Policy` constructor: a policy that the
 * deployed function would refuse on its first request fails synth with the same message.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { Ajv } from "ajv";
import { Policy, type PolicyDocument } from "../functions/policy/policy.ts";
import { DEFAULT_METRIC_NAMESPACE, ERROR_NAMES, type ErrorName } from "../lib/names.ts";
import { FLEET_PERCENTAGES } from "./constructs/fleet-workflow.ts";
import { DEFAULT_API_THROTTLE } from "./constructs/run-api.ts";

/** The deploy config file. Paths are relative to the file itself. */
export interface DeployConfig {
  /** Prefixes every named resource; two stages share an account without colliding. */
  readonly stage: string;
  /** @default the CLI's account and region (environment-agnostic stack) */
  readonly account?: string;
  readonly region?: string;
  /** Policy document (JSON, the format of docs/local-mode.md). @default deny all */
  readonly policyFile?: string;
  /** OpenSSH known_hosts text. @default none: every host key is unknown until set */
  readonly knownHostsFile?: string;
  /** Credential names: one placeholder secret each, under the stage's secret prefix. */
  readonly credentials?: readonly string[];
  /** Place both functions in this VPC. @default not in a VPC (public targets only) */
  readonly vpc?: VpcPlacement;
  /** Alarm routing (docs/alarms.md, "Routes"; docs/deploy.md, "Alarms"). @default nobody subscribed (the topics exist) */
  readonly alarms?: AlarmRoutingConfig;
  /**
   * Service level objectives (docs/alarms.md, "SLOs"), in percent over 30 days:
   * `availabilityTarget`, the AvailabilityBurn alarms' budget; `boundedTarget`, the BoundedBurn
   * alarms' budget. @default { availabilityTarget: 99.9, boundedTarget: 99.9 }
   */
  readonly slo?: { readonly availabilityTarget?: number; readonly boundedTarget?: number };
  /**
   * Reserved concurrent executions per function, and how the task function's share splits:
   * `fleet` is the ceiling on a fleet's `maxConcurrency`, `singleHost` what a fleet at that
   * ceiling leaves for single-host runs; `fleet + singleHost <= task` (synth error otherwise).
   * @default api unreserved, task DEFAULT_TASK_RESERVED_CONCURRENCY (50), singleHost a fifth
   *   of task (10), fleet task − singleHost (40)
   */
  readonly reservedConcurrency?: {
    readonly api?: number;
    readonly task?: number;
    readonly fleet?: number;
    readonly singleHost?: number;
  };
  /**
   * The per-host circuit breaker (docs/fleet.md): `errors` (SPEC §6 names that count against a
   * host; a `*Timeout` counts only when its phase's own cap expired), `threshold` (distinct
   * failed requests in the window that quarantine a host), `windowSeconds`,
   * `quarantineSeconds`, `probeSeconds` (longest a half-open probe holds the host).
   * @default BREAKER_ERRORS, 3, 600, 900, 120
   */
  readonly breaker?: {
    readonly errors?: readonly ErrorName[];
    readonly threshold?: number;
    readonly windowSeconds?: number;
    readonly quarantineSeconds?: number;
    readonly probeSeconds?: number;
  };
  /**
   * CloudWatch namespace. Per stage by default, so one stage's metrics never trip another
   * stage's alarms in a shared account.
   * @default "BoundedSsh/<stage>"
   */
  readonly metricNamespace?: string;
  /**
   * Fleet controls (docs/fleet.md, "Fleet controls"): defaults for a fleet input that does not
   * name them, and the most hosts an inline list may name. A count or a percentage (one of
   * FLEET_PERCENTAGES; "0%" too for maxErrors and maxConcurrency).
   * @default maxErrors "100%", batches ["100%"], maxConcurrency 10, inlineHostLimit 400
   */
  readonly fleet?: {
    readonly maxErrors?: number | string;
    readonly batches?: readonly (number | string)[];
    readonly maxConcurrency?: number | string;
    readonly inlineHostLimit?: number;
  };
  /**
   * Full output to S3 (docs/fleet.md). @default mode "request" (only requests with
   * `spill: true` under rules with `allowSpill`), maxBytes 1 GiB, objects kept 30 days
   */
  readonly spill?: {
    readonly mode?: "request" | "always";
    readonly maxBytes?: number;
    readonly expirationDays?: number;
  };
  /**
   * Per-container cache lifetimes, seconds (0: read on every invocation; at most 3600). Each is
   * the longest a change takes to reach a warm container after it is stored: a new `@revoked`
   * line or a removed known_hosts entry (`knownHostsSeconds`), a removed rule or caller
   * (`policySeconds`), a rotated or deleted credential (`credentialsSeconds`). docs/security.md,
   * "Revocation time". @default 300 each
   */
  readonly cache?: {
    readonly policySeconds?: number;
    readonly knownHostsSeconds?: number;
    readonly credentialsSeconds?: number;
  };
  /**
   * The API stage's throttle (API Gateway's token bucket, across all callers): `rateLimit`
   * steady requests per second, `burstLimit` the bucket's size. Over it API Gateway answers
   * 429 `{"message":"Too Many Requests"}` before any Lambda runs (bounded-ssh/client retries
   * it with full jitter). Both are capped by the account's regional API Gateway quota.
   * @default DEFAULT_API_THROTTLE (10 per second, burst 20)
   */
  readonly apiThrottle?: {
    readonly rateLimit?: number;
    readonly burstLimit?: number;
  };

  // --- callers' own state machines (issue 24 item 1) ---
  /**
   * ARNs of state machines of your own that run the task (built with `boundedSshTask`,
   * cdk/constructs/bounded-ssh-task.ts): the task function serves them besides the stack's two
   * (`BSSH_STATE_MACHINE_ARNS`). Their role needs `lambda:InvokeFunction` on the task function
   * (CDK grants it when the state machine is built with the builder), a policy rule must name
   * the ARN in `callers`, and the account must keep their definition and role to the deployer
   * (docs/security.md, "The remaining boundary: `lambda:InvokeFunction`").
   * @default none
   */
  readonly callerStateMachines?: readonly string[];
}

// --- alarm routing (issue 22 item 3) ------------------------------------------------------

/** The routes people subscribe to (`operations/alarm-catalog.ts` `ROUTES`). */
export type AlarmRoute = "page" | "ticket" | "fleet";

/** Message attributes a subscription may filter on (functions/alarm-enrichment/enrich.ts). */
export const FILTER_ATTRIBUTES = ["severity", "stage", "alarm", "kind", "state", "part"] as const;

/** One subscriber of a route's topic. */
export type AlarmSubscription = (
  | { readonly protocol: "email"; readonly address: string }
  | { readonly protocol: "https"; readonly url: string; readonly rawMessageDelivery?: boolean }
  /** A function (yours, e.g. a chat webhook formatter); its owner lets SNS invoke it. */
  | { readonly protocol: "lambda"; readonly functionArn: string }
) & {
  /**
   * SNS filter policy on the message attributes: attribute → accepted values, e.g.
   * `{ "state": ["ALARM"], "part": ["hosts"] }`. @default every message of the route
   */
  readonly filter?: Partial<Record<(typeof FILTER_ATTRIBUTES)[number], readonly string[]>>;
};

/** Who is notified of each route, suppression, and where the runbooks are published. */
export interface AlarmRoutingConfig {
  /** Subscribers per route; any number each. */
  readonly routes?: Partial<
    Record<AlarmRoute, { readonly subscriptions: readonly AlarmSubscription[] }>
  >;
  /** Legacy: subscribed to EVERY route (page, ticket and fleet), as before the routes. */
  readonly emails?: readonly string[];
  /** Legacy: subscribed to EVERY route (page, ticket and fleet), as before the routes. */
  readonly httpsEndpoints?: readonly string[];
  /**
   * Notifications stay quiet while the stage's `Maintenance` alarm is in ALARM (a deploy, a
   * maintenance window) and `extensionMinutes` after. @default enabled, 10 minutes
   */
  readonly maintenance?: { readonly enabled?: boolean; readonly extensionMinutes?: number };
  /** Base URL of docs/runbooks as your team publishes it. @default RUNBOOK_BASE_URL */
  readonly runbookBaseUrl?: string;
}

const SUBSCRIPTION_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["protocol"],
  properties: {
    protocol: { enum: ["email", "https", "lambda"] },
    address: { type: "string" },
    url: { type: "string" },
    rawMessageDelivery: { type: "boolean" },
    functionArn: { type: "string" },
    filter: {
      type: "object",
      additionalProperties: false,
      minProperties: 1,
      properties: Object.fromEntries(
        FILTER_ATTRIBUTES.map((a) => [
          a,
          { type: "array", minItems: 1, items: { type: "string", minLength: 1 } },
        ]),
      ),
    },
  },
} as const;

const ROUTE_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["subscriptions"],
  properties: { subscriptions: { type: "array", items: SUBSCRIPTION_SCHEMA } },
} as const;

const ALARMS_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    routes: {
      type: "object",
      additionalProperties: false,
      properties: { page: ROUTE_SCHEMA, ticket: ROUTE_SCHEMA, fleet: ROUTE_SCHEMA },
    },
    emails: { type: "array", items: { type: "string", pattern: "^[^@\\s]+@[^@\\s]+$" } },
    httpsEndpoints: { type: "array", items: { type: "string", pattern: "^https://\\S+$" } },
    maintenance: {
      type: "object",
      additionalProperties: false,
      properties: {
        enabled: { type: "boolean" },
        extensionMinutes: { type: "integer", minimum: 0, maximum: 1440 },
      },
    },
    runbookBaseUrl: { type: "string", pattern: "^https://\\S+[^/]$" },
  },
} as const;

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const LAMBDA_ARN =
  /^arn:aws[a-z-]*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]+)?$/;
/** Chat webhooks that do not accept SNS's JSON (they need their own message shape). */
const CHAT_WEBHOOKS: readonly [RegExp, string][] = [
  [/^hooks\.slack\.com$/, "Slack"],
  [/(^|\.)webhook\.office\.com$/, "Microsoft Teams"],
  [/^hooks\.chime\.aws$/, "Amazon Chime"],
  [/^discord(app)?\.com$/, "Discord"],
];

/**
 * The routing checks a schema cannot say clearly: each subscription's protocol and endpoint,
 * chat webhooks that would refuse SNS's messages, duplicates. Returns problems, one a line.
 */
function routingProblems(alarms: AlarmRoutingConfig | undefined): string[] {
  const problems: string[] = [];
  for (const [route, r] of Object.entries(alarms?.routes ?? {})) {
    const seen = new Set<string>();
    for (const [i, sub] of (r?.subscriptions ?? []).entries()) {
      const at = `/alarms/routes/${route}/subscriptions/${i}`;
      const fields = Object.keys(sub).filter((k) => k !== "protocol" && k !== "filter");
      const want = {
        email: ["address"],
        https: ["url", "rawMessageDelivery"],
        lambda: ["functionArn"],
      }[sub.protocol];
      const stray = fields.filter((f) => !want.includes(f));
      if (stray.length) {
        problems.push(
          `${at} protocol ${sub.protocol} takes ${want.join(", ")}, not ${stray.join(", ")}`,
        );
        continue;
      }
      let endpoint = "";
      if (sub.protocol === "email") {
        endpoint = sub.address ?? "";
        if (!EMAIL.test(endpoint)) {
          problems.push(
            `${at} address ${JSON.stringify(endpoint)} is not an email address (name@example.com)`,
          );
        }
      } else if (sub.protocol === "https") {
        endpoint = sub.url ?? "";
        let url: URL | undefined;
        try {
          url = new URL(endpoint);
        } catch {
          problems.push(`${at} url ${JSON.stringify(endpoint)} is not a URL (https://host/path)`);
        }
        if (url && url.protocol !== "https:") {
          problems.push(
            `${at} url ${JSON.stringify(endpoint)} must be https:// (SNS sends alarms to it; plain http would expose them)`,
          );
        } else if (url) {
          const chat = CHAT_WEBHOOKS.find(([re]) => re.test(url.hostname));
          if (chat) {
            problems.push(
              `${at} url is a ${chat[1]} incoming webhook: it refuses SNS's JSON (subscription confirmation and notifications). Subscribe AWS Chatbot to the ${route} topic, or a function that formats the message (protocol "lambda")`,
            );
          }
        }
      } else {
        endpoint = sub.functionArn ?? "";
        if (!LAMBDA_ARN.test(endpoint)) {
          problems.push(
            `${at} functionArn ${JSON.stringify(endpoint)} is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)`,
          );
        }
      }
      const legacy = sub.protocol === "email" ? alarms?.emails : alarms?.httpsEndpoints;
      if (
        endpoint &&
        (seen.has(`${sub.protocol} ${endpoint}`) || (legacy ?? []).includes(endpoint))
      ) {
        problems.push(
          `${at} subscribes ${endpoint} to the ${route} topic twice (alarms.emails and alarms.httpsEndpoints already subscribe to every route)`,
        );
      }
      seen.add(`${sub.protocol} ${endpoint}`);
    }
  }
  return problems;
}

/** Where the functions run and what they may reach. */
export interface VpcPlacement {
  readonly vpcId: string;
  /** Private subnets with a route to the targets (and to AWS APIs). */
  readonly subnetIds: readonly string[];
  /** AZs of `subnetIds`, same order. @default the region's first AZs (names only) */
  readonly availabilityZones?: readonly string[];
  /**
   * Where calls to Secrets Manager, SSM and CloudWatch go on 443: the VPC CIDR when the VPC
   * has interface endpoints for them, `0.0.0.0/0` through a NAT gateway.
   */
  readonly awsApiCidr: string;
}

const NAME = "^[A-Za-z0-9_+=.@-][A-Za-z0-9/_+=.@-]*$";
const CIDR4 = "^(\\d{1,3}\\.){3}\\d{1,3}/\\d{1,2}$";

/** JSON Schema of {@link DeployConfig}; unknown fields are refused (typos never pass). */
/**
 * A state machine ARN as the task function verifies it (functions/request/callers.ts): a
 * state machine, not an execution, version or alias.
 */
export const CALLER_STATE_MACHINE_ARN =
  /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;

export const DEPLOY_CONFIG_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["stage"],
  properties: {
    $schema: { type: "string" },
    stage: { type: "string", pattern: "^[a-z][a-z0-9-]{0,15}$" },
    account: { type: "string", pattern: "^\\d{12}$" },
    region: { type: "string", pattern: "^[a-z]{2}(-[a-z]+)+-\\d$" },
    policyFile: { type: "string", minLength: 1 },
    knownHostsFile: { type: "string", minLength: 1 },
    credentials: {
      type: "array",
      uniqueItems: true,
      items: { type: "string", pattern: NAME, maxLength: 128 },
    },
    vpc: {
      type: "object",
      additionalProperties: false,
      required: ["vpcId", "subnetIds", "awsApiCidr"],
      properties: {
        vpcId: { type: "string", pattern: "^vpc-[0-9a-f]{8,17}$" },
        subnetIds: {
          type: "array",
          minItems: 1,
          uniqueItems: true,
          items: { type: "string", pattern: "^subnet-[0-9a-f]{8,17}$" },
        },
        availabilityZones: { type: "array", items: { type: "string", minLength: 1 } },
        awsApiCidr: { type: "string", pattern: CIDR4 },
      },
    },
    alarms: ALARMS_SCHEMA,
    // --- slo (issue 22 item 1) ---
    slo: {
      type: "object",
      additionalProperties: false,
      properties: {
        availabilityTarget: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 100 },
        boundedTarget: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 100 },
      },
    },
    reservedConcurrency: {
      type: "object",
      additionalProperties: false,
      properties: {
        api: { type: "integer", minimum: 1 },
        task: { type: "integer", minimum: 1 },
        fleet: { type: "integer", minimum: 1 },
        singleHost: { type: "integer", minimum: 1 },
      },
    },
    breaker: {
      type: "object",
      additionalProperties: false,
      properties: {
        errors: {
          type: "array",
          uniqueItems: true,
          items: { type: "string", enum: [...ERROR_NAMES] },
        },
        threshold: { type: "integer", minimum: 1 },
        windowSeconds: { type: "integer", minimum: 1 },
        quarantineSeconds: { type: "integer", minimum: 1 },
        probeSeconds: { type: "integer", minimum: 1 },
      },
    },
    metricNamespace: { type: "string", pattern: "^[A-Za-z0-9._/#:-]{1,255}$" },
    fleet: {
      type: "object",
      additionalProperties: false,
      properties: {
        maxErrors: {
          anyOf: [{ type: "integer", minimum: 0 }, { enum: ["0%", ...FLEET_PERCENTAGES] }],
        },
        batches: {
          type: "array",
          minItems: 1,
          items: { anyOf: [{ type: "integer", minimum: 1 }, { enum: [...FLEET_PERCENTAGES] }] },
        },
        maxConcurrency: {
          anyOf: [{ type: "integer", minimum: 0 }, { enum: ["0%", ...FLEET_PERCENTAGES] }],
        },
        inlineHostLimit: { type: "integer", minimum: 1 },
      },
    },
    spill: {
      type: "object",
      additionalProperties: false,
      properties: {
        mode: { enum: ["request", "always"] },
        maxBytes: { type: "integer", minimum: 1 },
        expirationDays: { type: "integer", minimum: 1 },
      },
    },
    callerStateMachines: {
      type: "array",
      uniqueItems: true,
      // Checked by checkDeployConfig (a message naming the ARN's shape).
      items: { type: "string" },
    },
    apiThrottle: {
      type: "object",
      additionalProperties: false,
      properties: {
        // API Gateway's default account quota (10 000 rps, burst 5 000) bounds a stage's.
        rateLimit: { type: "number", exclusiveMinimum: 0, maximum: 10_000 },
        burstLimit: { type: "integer", minimum: 1, maximum: 5_000 },
      },
    },
    cache: {
      type: "object",
      additionalProperties: false,
      properties: {
        policySeconds: { type: "integer", minimum: 0, maximum: 3600 },
        knownHostsSeconds: { type: "integer", minimum: 0, maximum: 3600 },
        credentialsSeconds: { type: "integer", minimum: 0, maximum: 3600 },
      },
    },
  },
} as const;

/** SSM String parameters hold at most 8 KB (advanced tier; the construct picks the tier). */
const SSM_ADVANCED_BYTES = 8_192;

/** A deploy config with its files read and checked: what the stack is built from. */
export interface LoadedDeployConfig {
  readonly config: DeployConfig;
  /** Policy JSON as stored in SSM, accepted by the runtime's `Policy`. */
  readonly policyText: string;
  readonly policy: PolicyDocument;
  readonly knownHostsText: string | undefined;
  /** What the VPC security group lets out to SSH targets (from the policy's rules). */
  readonly sshEgress: readonly { readonly cidr: string; readonly port: number }[];
}

/** Thrown for any problem with the config or its files; the message names the file. */
export class DeployConfigError extends Error {
  override readonly name = "DeployConfigError";
}

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile<DeployConfig>(DEPLOY_CONFIG_SCHEMA);

/** Checks a config object (no files read). Throws {@link DeployConfigError}. */
export function checkDeployConfig(value: unknown, where = "deploy config"): DeployConfig {
  if (!validate(value)) {
    const problems = (validate.errors ?? []).map(
      (e) =>
        `${e.instancePath || "/"} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`,
    );
    throw new DeployConfigError(`${where}: invalid\n  - ${problems.join("\n  - ")}`);
  }
  const routing = routingProblems(value.alarms);
  if (routing.length) {
    throw new DeployConfigError(`${where}: invalid\n  - ${routing.join("\n  - ")}`);
  }
  const throttle = { ...DEFAULT_API_THROTTLE, ...value.apiThrottle };
  if (throttle.burstLimit < throttle.rateLimit) {
    throw new DeployConfigError(
      `${where}: apiThrottle.burstLimit (${throttle.burstLimit}) is below apiThrottle.rateLimit ` +
        `(${throttle.rateLimit}): the bucket could never hold one second's requests; raise burstLimit`,
    );
  }
  for (const [i, arn] of (value.callerStateMachines ?? []).entries()) {
    if (!CALLER_STATE_MACHINE_ARN.test(arn)) {
      throw new DeployConfigError(
        `${where}: callerStateMachines[${i}] ${JSON.stringify(arn)} is not a state machine ARN ` +
          "(arn:aws:states:<region>:<account>:stateMachine:<name>; not an execution, version or " +
          "alias ARN): the task function would refuse its executions",
      );
    }
    // The task function serves only state machines of its own account and region
    // (functions/request/callers.ts): another would be refused on every execution.
    const [, , , region, account] = arn.split(":");
    for (const [field, mine, theirs] of [
      ["account", value.account, account],
      ["region", value.region, region],
    ] as const) {
      if (mine !== undefined && theirs !== mine) {
        throw new DeployConfigError(
          `${where}: callerStateMachines[${i}] ${JSON.stringify(arn)} is in ${field} ${theirs}, ` +
            `the deployment in ${mine}: the task function serves only state machines of its own ` +
            "account and region; deploy the state machine there",
        );
      }
    }
  }
  const vpc = value.vpc;
  if (vpc?.availabilityZones && vpc.availabilityZones.length !== vpc.subnetIds.length) {
    throw new DeployConfigError(`${where}: vpc.availabilityZones must match vpc.subnetIds`);
  }
  return value;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new DeployConfigError(`${what} ${file} could not be read: ${(error as Error).message}`);
  }
}

function fitsSsm(text: string, what: string): void {
  const bytes = Buffer.byteLength(text);
  if (bytes > SSM_ADVANCED_BYTES) {
    throw new DeployConfigError(
      `${what} is ${bytes} bytes; an SSM parameter holds at most ${SSM_ADVANCED_BYTES}`,
    );
  }
}

/**
 * Reads and checks a config and its files. The policy goes through `new Policy(document)`,
 * the constructor the deployed handler runs, so its error message is the runtime's own.
 */
export function loadDeployConfig(config: DeployConfig, baseDir: string): LoadedDeployConfig {
  let policyText = JSON.stringify({ rules: [] });
  let where = "default policy";
  if (config.policyFile) {
    where = path.resolve(baseDir, config.policyFile);
    policyText = readText(where, "policy file");
  }
  let policy: PolicyDocument;
  try {
    policy = JSON.parse(policyText) as PolicyDocument;
    new Policy(policy);
  } catch (error) {
    throw new DeployConfigError(`policy ${where}: ${(error as Error).message}`, { cause: error });
  }
  // Stored minified: the SSM size limit counts bytes, and the handler parses it anyway.
  policyText = JSON.stringify(policy);
  fitsSsm(policyText, `policy ${where}`);

  let knownHostsText: string | undefined;
  if (config.knownHostsFile) {
    const file = path.resolve(baseDir, config.knownHostsFile);
    knownHostsText = readText(file, "known_hosts file");
    fitsSsm(knownHostsText, `known_hosts ${file}`);
  }

  const sshEgress: { cidr: string; port: number }[] = [];
  if (config.vpc) {
    const seen = new Set<string>();
    for (const [i, rule] of policy.rules.entries()) {
      const id = rule.id ?? `rules[${i}]`;
      const cidrs = rule.targets.cidrs ?? [];
      if (cidrs.length === 0) {
        throw new DeployConfigError(
          `policy ${where}: rule ${id} names hosts only; in a VPC the security group is built ` +
            "from the rules' targets.cidrs, so give the rule the CIDRs its hosts resolve to",
        );
      }
      for (const cidr of cidrs) {
        for (const port of rule.targets.ports ?? [22]) {
          const key = `${cidr}:${port}`;
          if (!seen.has(key)) sshEgress.push({ cidr, port });
          seen.add(key);
        }
      }
    }
  }
  return { config, policyText, policy, knownHostsText, sshEgress };
}

/** Reads, checks and loads the config file at `file`. */
export function loadDeployConfigFile(file: string): LoadedDeployConfig {
  const text = readText(file, "deploy config");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new DeployConfigError(`deploy config ${file}: ${(error as Error).message}`);
  }
  return loadDeployConfig(checkDeployConfig(raw, `deploy config ${file}`), path.dirname(file));
}

/** Physical names of one stage: the one place a stage prefix is applied. */
export function stageNames(stage: string) {
  const base = `${stage}-bounded-ssh`;
  return {
    stackName: base,
    apiFunction: `${base}-api`,
    taskFunction: `${base}-task`,
    enrichmentFunction: `${base}-alarm-enrichment`,
    /** The enrichment function of a route: the page route keeps the unsuffixed name. */
    routeEnrichmentFunction: (route: AlarmRoute) =>
      route === "page" ? `${base}-alarm-enrichment` : `${base}-alarm-enrichment-${route}`,
    /** Lambda's own convention, so the console's "View logs" finds them. */
    functionLogGroup: (functionName: string) => `/aws/lambda/${functionName}`,
    /** `/aws/vendedlogs/` keeps Step Functions off the account's log resource-policy limit. */
    stateMachineLogGroup: (machineName: string) => `/aws/vendedlogs/states/${machineName}`,
    apiAccessLogGroup: `/aws/apigateway/${base}-access`,
    policyParameter: `/${stage}/bounded-ssh/policy`,
    knownHostsParameter: `/${stage}/bounded-ssh/known-hosts`,
    secretPrefix: `${stage}/bounded-ssh/credentials/`,
    restApi: `${base}-api`,
    queryDefinition: (name: string) => `${stage}/${name}`,
    metricNamespace: `${DEFAULT_METRIC_NAMESPACE}/${stage}`,
  } as const;
}
