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
  /**
   * Who is notified when an alarm fires (subscribed to the enriched topic: alarm + hosts +
   * runbook link), and where the runbooks are published. @default nobody (the topics exist)
   */
  readonly alarms?: {
    readonly emails?: readonly string[];
    readonly httpsEndpoints?: readonly string[];
    /** Base URL of docs/runbooks as your team publishes it. @default RUNBOOK_BASE_URL */
    readonly runbookBaseUrl?: string;
  };
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
    alarms: {
      type: "object",
      additionalProperties: false,
      properties: {
        emails: { type: "array", items: { type: "string", pattern: "^[^@\\s]+@[^@\\s]+$" } },
        httpsEndpoints: { type: "array", items: { type: "string", pattern: "^https://\\S+$" } },
        runbookBaseUrl: { type: "string", pattern: "^https://\\S+[^/]$" },
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
