import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from "aws-lambda";
import type { AuditLine } from "../../functions/audit/audit-log.ts";
import { DEFAULT_SETTINGS, type HandlerSettings } from "../../functions/config/config.ts";
import { invalid } from "../../functions/credentials/credential-store.ts";
import type { Invocation } from "../../functions/invocation/invocation.ts";
import { DEFAULT_DENY_CIDRS, type PolicyDocument } from "../../functions/policy/policy.ts";
import { staticPolicy } from "../../functions/policy/policy-source.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import type { MetricDatum } from "../../lib/metrics.ts";
import type { Secret } from "../../lib/types.ts";
import { LOCAL_API, toApiEventV1, toApiEventV2, toTaskEvent } from "../../local/api-event.ts";

export { lambdaContext as fakeContext } from "../../local/lambda-context.ts";

export const CALLER = "arn:aws:iam::123456789012:role/ops-runner";
/** The state machine task events come from (the fake context's region and account). */
export const WORKFLOW = "arn:aws:states:local:000000000000:stateMachine:fleet-workflow";

/** A task event as the state machine builds it: `{ request, execution }`. */
export function taskEvent(request: unknown, stateMachine = WORKFLOW): unknown {
  return toTaskEvent(request, stateMachine);
}

/** The default deny list without loopback: the tests' targets listen on 127.0.0.1. */
export const LOOPBACK_DENY = DEFAULT_DENY_CIDRS.filter((range) => range !== "127.0.0.0/8");

/** Everything a test runtime saw: audit lines, invocations, metric batches, raw log lines. */
export interface Captured {
  audits: AuditLine[];
  records: Invocation[];
  metrics: MetricDatum[][];
  /** Every line written (audit + EMF), for key-material scans. */
  lines: string[];
}

/** A runtime with in-memory credentials and a static policy; nothing leaves the process. */
export function testRuntime(options: {
  policy: PolicyDocument;
  credentials?: Record<string, Secret>;
  knownHosts?: string;
  lookup?: Runtime["lookup"];
  settings?: Partial<HandlerSettings>;
}): { runtime: Runtime; captured: Captured } {
  const captured: Captured = { audits: [], records: [], metrics: [], lines: [] };
  const credentials = options.credentials ?? {};
  const runtime: Runtime = {
    settings: {
      ...DEFAULT_SETTINGS,
      api: { ...LOCAL_API },
      stateMachineArns: [WORKFLOW],
      ...options.settings,
    },
    credentials: {
      get: async (name) => {
        if (!Object.hasOwn(credentials, name)) throw invalid(name, "is not configured");
        return credentials[name]!;
      },
    },
    knownHosts: { get: async () => options.knownHosts },
    policy: staticPolicy(options.policy),
    writeAuditLine: (line) => captured.lines.push(line),
    observe: (record, line) => {
      captured.records.push(record);
      captured.audits.push(line);
    },
    metrics: {
      mode: "emf",
      writeLine: (line) => captured.lines.push(line),
      onPublished: (datums) => captured.metrics.push(datums),
    },
  };
  if (options.lookup) runtime.lookup = options.lookup;
  return { runtime, captured };
}

/** A policy allowing CALLER and WORKFLOW to run `echo …`/`exit N`/`sleep N` on loopback. */
export function loopbackPolicy(
  ports: number[],
  extra: Partial<PolicyDocument> = {},
): PolicyDocument {
  return {
    denyCidrs: LOOPBACK_DENY,
    replaceDefaultDenyCidrs: true,
    rules: [
      {
        id: "loopback",
        callers: [CALLER, WORKFLOW],
        targets: { cidrs: ["127.0.0.0/8"], ports, usernames: ["*"] },
        commands: {
          patterns: ["echo [ -~]*", "exit [0-9]+", "sleep [0-9.]+", "cat", "printf [ -~]*"],
        },
      },
    ],
    ...extra,
  };
}

interface EventOptions {
  caller?: string;
  contentType?: string | null;
  /** API Gateway's request timestamp. @default now */
  receivedAt?: number;
}

/** A REST API (v1) event for `POST /run` with a raw body. */
export function v1Event(body: string, options: EventOptions = {}): APIGatewayProxyEvent {
  const headers: Record<string, string> = {};
  if (options.contentType !== null)
    headers["Content-Type"] = options.contentType ?? "application/json";
  return toApiEventV1({
    method: "POST",
    path: "/run",
    headers,
    body,
    sourceIp: "127.0.0.1",
    receivedAt: options.receivedAt ?? Date.now(),
    callerArn: options.caller ?? CALLER,
  });
}

/** An HTTP API (v2) event for `POST /run` with a raw body. */
export function v2Event(body: string, options: EventOptions = {}): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = {};
  if (options.contentType !== null)
    headers["content-type"] = options.contentType ?? "application/json";
  return toApiEventV2({
    method: "POST",
    path: "/run",
    headers,
    body,
    sourceIp: "127.0.0.1",
    receivedAt: options.receivedAt ?? Date.now(),
    callerArn: options.caller ?? CALLER,
  });
}

/** Private-key material markers: none may appear in any log line. */
export const KEY_MARKERS = [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, /b3BlbnNzaC1rZXktdjE/];
