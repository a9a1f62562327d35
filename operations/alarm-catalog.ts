/**
 * The alarm catalog (SPEC §8, STYLE habit 9): one table, kind → meaning, severity, first checks,
 * saved query, runbook. Alarm descriptions, saved queries, the runbook headers and the
 * enrichment function's choice of query are all derived from it.
 *
 * Pure data: no aws-cdk-lib import, so the enrichment function bundles the same table.
 */
import { ERROR_NAMES, ERRORS, type ErrorName, PHASE_TIMEOUT_ERROR } from "../lib/names.ts";
import { AUDIT_FIELDS as F } from "./audit-fields.ts";
import type { QuerySpec } from "./queries.ts";

/**
 * Who an alarm is for, and how urgent (docs/alarms.md, "Routes"): `page` wakes this service's
 * on-call (each page-level alarm notifies on its own, so a second fault is never hidden behind a
 * first); `ticket` is for this service's team, today; `fleet` goes to the fleet's owners (their
 * hosts hang, refuse or time out: not this service failing), never to this service's pager.
 * Each is one SNS topic people subscribe to; messages carry it as the `severity` attribute.
 */
export type Severity = "page" | "ticket" | "fleet";
/** Every route, in the order the docs and the deploy config list them. */
export const ROUTES = ["page", "ticket", "fleet"] as const satisfies readonly Severity[];

/**
 * Suffix of the composite that carries an alarm's notifications when actions can be suppressed
 * (`<stage>-BoundedSsh-<Kind>[-<Subject>]-Notify`: the metric alarm, ALARM and NOT the stage's
 * `Maintenance` alarm; docs/alarms.md, "Suppression").
 */
export const NOTIFY_SUFFIX = "-Notify";

/** Name of the alarm that suppresses notifications during deploys and maintenance windows. */
export function maintenanceAlarmName(stage: string): string {
  return `${stage}-BoundedSsh-Maintenance`;
}

/**
 * Errors that mean "the remote stopped answering mid-protocol": the incident's family. The
 * hang-hosts insight rule counts distinct hosts with one of these, outside the exec phase
 * ({@link HANG_EXCLUDED_PHASES}).
 */
export const HANG_ERRORS = [
  "BannerTimeout",
  "HandshakeTimeout",
  "AuthTimeout",
  "ChannelTimeout",
  "ConnectionLost",
] as const satisfies readonly ErrorName[];

/**
 * Phases whose errors are not hangs: a `ConnectionLost` once the command runs is the command's
 * doing as often as the host's (`sudo reboot`, a service restart that drops sshd), so a reboot
 * run over 200 hosts is not 200 hung hosts. The `ConnectionLost` alarm still counts them.
 */
export const HANG_EXCLUDED_PHASES = ["exec"] as const;

const hosts = (id: string, errors: readonly ErrorName[] | "any"): QuerySpec => ({
  id,
  shape: "hosts",
  where:
    errors === "any"
      ? [{ field: F.errorName, present: true }]
      : [{ field: F.errorName, in: errors }],
  logGroups: "functions",
});

/**
 * Lambda's own hard-timeout line, whole (`<time> <request id> Task timed out after N seconds`):
 * anchored, so the runtime's `Invoke Error` line of an error whose message quotes the phrase (a
 * remote's DISCONNECT text, command output) is not listed as one. Listing only: no alarm reads
 * free text (docs/alarms.md, "What a remote cannot trip").
 */
export const LAMBDA_TIMEOUT_LINE = "^\\S+\\s+\\S+\\s+Task timed out after [0-9.]+ seconds\\s*$";

/**
 * Errors this service causes (the availability SLI's bad events; docs/alarms.md, "SLOs"): the
 * names of the error table (lib/names.ts) whose status class is `internal`, except
 * `CommandFailed` (the command's own non-zero exit, with `failOnNonZeroExit`: the host's
 * outcome). Today: `CredentialUnavailable` (the secret store did not answer), `CredentialInvalid`
 * (the stored key does not parse: this service's configuration) and `InternalError` (a bug).
 * Everything else is the target host's or the caller's doing (timeouts, refusals, auth
 * failures, host key problems, non-zero exits, policy refusals) and counts as good: the service
 * did its job and reported it. Derived, so a new `internal` name joins without an edit here.
 */
export const SERVICE_ERRORS: readonly ErrorName[] = ERROR_NAMES.filter(
  (name) => ERRORS[name].status === "internal" && name !== "CommandFailed",
);

/** The saved queries, by key. Host queries list first/last seen, address and source. */
export const QUERIES = {
  HostsByError: hosts("hosts-by-error-and-phase", "any"),
  HangHosts: {
    ...hosts("hang-hosts", HANG_ERRORS),
    where: [
      { field: F.errorName, in: HANG_ERRORS },
      { field: F.phase, notIn: HANG_EXCLUDED_PHASES },
    ],
  },
  ResolveTimeoutHosts: hosts("resolve-timeout-hosts", [PHASE_TIMEOUT_ERROR.resolve]),
  ConnectTimeoutHosts: hosts("connect-timeout-hosts", [PHASE_TIMEOUT_ERROR.connect]),
  AuthTimeoutHosts: hosts("auth-timeout-hosts", [PHASE_TIMEOUT_ERROR.auth]),
  ChannelTimeoutHosts: hosts("channel-timeout-hosts", [PHASE_TIMEOUT_ERROR.channel]),
  CommandTimeoutHosts: hosts("command-timeout-hosts", [PHASE_TIMEOUT_ERROR.exec]),
  ConnectionLostHosts: hosts("connection-lost-hosts", ["ConnectionLost"]),
  HostKeyMismatchHosts: hosts("host-key-mismatch-hosts", ["HostKeyMismatch"]),
  LeakedSockets: {
    id: "leaked-sockets",
    shape: "invocations",
    where: [{ field: F.leakedSockets, gt: 0 }],
    logGroups: "functions",
  },
  DeadlineOverruns: {
    id: "deadline-overruns",
    shape: "invocations",
    // Slack below zero is the only overrun the handler can still log; a hard timeout leaves
    // only Lambda's own line (the alarm reads Lambda's Duration, never this text).
    where: [{ field: F.slackMs, lt: 0 }],
    otherLines: LAMBDA_TIMEOUT_LINE,
    logGroups: "functions",
  },
  InvocationFailures: {
    id: "invocation-failures",
    shape: "invocations",
    where: [{ field: F.errorName, in: ["InternalError"] }],
    // Lambda's own failure lines: uncaught errors, crashes (a thrown error that is not a SPEC
    // name), runtime/init failures, hard timeouts. Never a bare ERROR (it matches every audit
    // line's `"error":null`), nor the task's "Invoke Error" lines for SPEC errors (by design).
    // The handlers' own ERROR line carries an InternalError's stack and cause (audit-log.ts).
    otherLines: `"message":"bounded-ssh unexpected error"|\\tERROR\\t(Uncaught|Unhandled)|"errorType":"(InternalError|Error|TypeError|ReferenceError|SyntaxError|RangeError)"|Runtime\\.[A-Za-z]+|INIT_REPORT.*Status: error|${LAMBDA_TIMEOUT_LINE}`,
    logGroups: "functions",
  },
  CallerVolume: { id: "caller-volume", shape: "callers", where: [], logGroups: "functions" },
  WorkflowFailures: {
    id: "workflow-failures",
    shape: "workflow",
    where: [],
    logGroups: "workflows",
  },
} as const satisfies Record<string, QuerySpec>;
export type QueryKey = keyof typeof QUERIES;

export interface CatalogEntry {
  readonly severity: Severity;
  /** What the alarm means, in one or two sentences (the description's first line). */
  readonly meaning: string;
  /** Why this threshold and severity (the alarm table, docs/metrics.md). */
  readonly why: string;
  readonly checks: readonly [string, string, string];
  /** The saved query that lists the hosts or invocations involved. */
  readonly query: QueryKey;
  /** Per-function / per-workflow instances; none = one alarm. */
  readonly subjects?: readonly string[];
  /** Severity of a subject when it differs from the kind's. */
  readonly subjectSeverity?: Readonly<Record<string, Severity>>;
}

/** Severity of one alarm of a kind. */
export function severityOf(kind: AlarmKind, subject?: string): Severity {
  const e: CatalogEntry = ALARM_CATALOG[kind];
  return (subject && e.subjectSeverity?.[subject]) || e.severity;
}

/**
 * The check every host runbook carries: the host queries list the host each error is
 * attributed to (`error.host`), with `error.hop` beside it when the request had a jump host.
 */
const HOP_VIA =
  "If hop is via, the jump host (the host column) is the suspect, not the targets behind it";

/** Every alarm kind. Names are public: `<stage>-BoundedSsh-<Kind>[-<Subject>]`. */
export const ALARM_CATALOG = {
  Page: {
    severity: "page",
    meaning:
      "Summary: at least one page-level bounded-ssh alarm is in ALARM (an SLO burning, leaked sockets, a real deadline overrun, an internal error, API function errors or a host-key mismatch). It notifies no one: each page-level alarm pages on its own, so a second fault is never hidden behind a first. Read it on the dashboard.",
    why: "One glance at 'is anything page-level firing'; never a notification, because a composite that pages once per incident hid every later fault (issue 22).",
    checks: [
      "Open the enriched notification or the dashboard: which child alarm is in ALARM",
      "Run the query: hosts, errors and phases of the last period",
      "Follow the runbook of the child alarm",
    ],
    query: "HostsByError",
  },
  HandshakeHangs: {
    severity: "fleet",
    meaning:
      "A share of the hosts contacted accepted TCP, then stopped answering (Banner/Handshake/Auth/ChannelTimeout, or ConnectionLost before the command ran; not during it, e.g. a reboot). Hang hosts (error.host:port) / hosts contacted (target.host:port), over the percentage and the minimum count. The hosts are broken, not this service.",
    why: "A ratio, not an absolute count: 20 wedged hosts of a 2,000-host run are 1 %, the fleet's broken hosts, not this service failing; so it goes to the fleet owners, never to this service's pager. ALARM while any of the last five periods breaches, so an hourly run that finds the same wedged hosts keeps one notification open instead of sending one per run.",
    checks: [
      `Run the query: which hosts, which phase (banner/handshake/auth/channel), since when (firstSeen). ${HOP_VIA}`,
      "From the same network: nc -v <host> <port> - does an SSH-2.0 line arrive within a second?",
      "Host side: sshd MaxStartups/load, UseDNS/PAM stalls, a middlebox answering TCP for a dead sshd",
    ],
    query: "HangHosts",
  },
  AvailabilityBurn: {
    severity: "page",
    subjectSeverity: { Budget: "ticket" },
    meaning:
      "The availability SLO's error budget is burning: bad / all invocations over 1 - SLO target. Bad = this service's faults (service-caused error names, API crashes, throttles, workflow hard timeouts); host outcomes (timeouts, refusals, auth, host keys, exit codes) count as good. Fast: 1 h and 5 min burn >= 14.4. Slow: 6 h and 30 min >= 6. Budget: 3 d and 6 h >= 1.",
    why: "Symptom, not cause: pages when callers feel this service fail, whichever cause; two windows so a page is both significant (long) and current (short), and resets soon after the fix. Budget is a ticket: slow burns are fixed in office hours.",
    checks: [
      "Which cause alarm fires beside it (InternalErrors, LambdaErrors-Api, LambdaThrottles, DeadlineOverrun)",
      "Run the query: the failing invocations, error names, stacks",
      "Recent deploys, secret rotation (Credential*), concurrency (throttles)",
    ],
    query: "InvocationFailures",
    subjects: ["Fast", "Slow", "Budget"],
  },
  BoundedBurn: {
    severity: "page",
    subjectSeverity: { Budget: "ticket" },
    meaning:
      "The bounded SLO's error budget is burning: unbounded / all invocations over 1 - SLO target. Unbounded = returned after its deadline (slack < 0), found a leaked socket, or hard-timed out (Lambda's Duration at the timeout, a workflow's Sandbox.Timedout event). Fast: 1 h and 5 min burn >= 14.4. Slow: 6 h and 30 min >= 6. Budget: 3 d and 6 h >= 1.",
    why: "The product's promise as a share of traffic: DeadlineOverrun and LeakedSockets page on the first unbounded invocation, this says it is systemic (a leaking container, a reserve too small for the load) rather than a one-off. Budget is a ticket: a steady trickle is fixed in office hours.",
    checks: [
      "Which cause alarm fires beside it: DeadlineOverrun (slack, hard timeouts) or LeakedSockets",
      "Run the query: invocations with slackMs < 0 and Lambda's own timeout lines; the leaked-sockets query for leaks",
      "Dashboard DeadlineSlack minimum and Duration vs timeout; recent deploys of lib/ or functions/",
    ],
    query: "DeadlineOverruns",
    subjects: ["Fast", "Slow", "Budget"],
  },
  LeakedSockets: {
    severity: "page",
    meaning:
      "An invocation found TCP sockets still open from an earlier one in its container: teardown missed a socket (a bug; the guarantee is zero).",
    why: "Any leak breaks the product's guarantee; leaks accumulate silently (the original incident).",
    checks: [
      "Run the query: request ids and log streams with leakedSockets > 0",
      "The previous invocation in that log stream: its error, phase and slackMs",
      "Recent deploys of lib/ or functions/; reproduce with npm run soak",
    ],
    query: "LeakedSockets",
  },
  DeadlineOverrun: {
    severity: "page",
    meaning:
      "A real overrun: Lambda killed a function at its timeout (Lambda's Duration at the timeout, or a workflow failure event whose error is Sandbox.Timedout) or a handler returned after its own deadline (DeadlineSlack below zero). Teardown and metrics may have been skipped. Must never happen; a run that uses its whole budget is not an overrun. Read from measurements and structured error names only: no text a remote or a command writes can trip it.",
    why: "Only real overruns: a healthy command may use its whole budget (timeout - reserve), so 'near the timeout' is normal. Never free text: a remote's DISCONNECT or a command's output can quote Lambda's words.",
    checks: [
      "Run the query: Lambda's own 'Task timed out' lines and audit lines with slackMs < 0",
      "Dashboard DeadlineSlack minimum: is the reserve (BSSH_RESERVE_MS) too small?",
      "Timeout order in cdk/config.ts; a blocking call outside the deadline (DNS, SDK)",
    ],
    query: "DeadlineOverruns",
  },
  InternalErrors: {
    severity: "page",
    meaning: "The engine or a handler hit InternalError: a bug, never expected.",
    why: "InternalError is never expected; one is a bug worth a page.",
    checks: [
      "Run the query: InternalError audit lines, and beside each (same correlation_id) the ERROR line bounded-ssh unexpected error with error.stack and the error.cause chain (key material redacted)",
      "Which phase; one target or every request",
      "Recent deploys; reproduce with npm run invoke on the logged request",
    ],
    query: "InvocationFailures",
  },
  LambdaErrors: {
    severity: "page",
    subjectSeverity: { Task: "ticket" },
    meaning:
      "Api: the API function failed invocations (it answers SSH errors with HTTP codes, so this is a crash: init failure, out of memory, unhandled rejection). Task: most task invocations failed for 15 minutes (the task function throws SSH errors by design, so only the rate means something: a systemic cause, not one bad host).",
    why: "Api pages on any failure (never expected); Task tickets on an error rate of 50% over three periods (single failing hosts are data).",
    checks: [
      "Run the query: runtime error lines and stack traces; for Task, hosts-by-error-and-phase (one error everywhere?)",
      "Init errors after a deploy (bundle, env vars, SSM parameter names); CredentialInvalid/TargetNotAllowed everywhere (secret or policy changed)",
      "Memory: max used vs configured in the REPORT lines; network-wide ConnectTimeout (VPC routes, NAT, egress)",
    ],
    query: "InvocationFailures",
    subjects: ["Api", "Task"],
  },
  HostKeyMismatch: {
    severity: "page",
    meaning:
      "A host presented a key different from the pinned or known one (HostKeyMismatch): possibly an impostor, or a rebuilt host. No credential was sent.",
    why: "A possible impostor on the SSH path is a security event: one is enough.",
    checks: [
      `Run the query: which hosts, addresses and callers. ${HOP_VIA}`,
      "Was the host rebuilt or its key rotated? Compare with the CMDB / the known hosts parameter",
      "If not: treat as an incident (DNS, routing, ARP) before updating any key",
    ],
    query: "HostKeyMismatchHosts",
  },
  ResolveTimeouts: {
    severity: "ticket",
    meaning: "DNS lookups of targets did not complete in time (ResolveTimeout).",
    why: "Sessions, not hosts: a resolver problem hits every name; a few are noise.",
    checks: [
      `Run the query: which names. ${HOP_VIA}`,
      "The VPC resolver / Route 53 Resolver endpoints; DHCP options",
      "Resolve the names from the same subnet",
    ],
    query: "ResolveTimeoutHosts",
  },
  ConnectTimeouts: {
    severity: "fleet",
    meaning: "TCP connects to targets did not complete in time (Timeouts, Phase=connect).",
    why: "Usually a host down or a network path (security group, NACL, route) to the fleet: the fleet owners' ticket, not a page.",
    checks: [
      `Run the query: which hosts and ports. ${HOP_VIA}`,
      "Security groups / NACLs / routes between the function and those hosts",
      "Host up? Firewall dropping SYNs? Wrong port in the request?",
    ],
    query: "ConnectTimeoutHosts",
  },
  AuthTimeouts: {
    severity: "fleet",
    meaning:
      "Servers stopped answering during user authentication (AuthTimeout): PAM, LDAP/NSS or home-directory stalls on the host.",
    why: "A single host's three attempts (retries) reach it; the page comes from HandshakeHangs when hosts multiply.",
    checks: [
      `Run the query: which hosts and usernames. ${HOP_VIA}`,
      "On the host: sshd's PAM/NSS (LDAP, SSSD) and home directory mounts",
      "Auth latency trend: PhaseLatency auth p99",
    ],
    query: "AuthTimeoutHosts",
  },
  ChannelTimeouts: {
    severity: "fleet",
    meaning:
      "Servers did not confirm the session channel open in time (ChannelTimeout; no exec request was sent, so it is retried): a stuck sshd child, a host too loaded to answer, MaxSessions on a server that queues instead of refusing.",
    why: "Per-session count; the page comes from HandshakeHangs when hosts multiply.",
    checks: [
      `Run the query: which hosts. ${HOP_VIA}`,
      "sshd MaxSessions and MaxStartups, the host's sshd children stuck before they open a session",
      "The host's load and sshd children",
    ],
    query: "ChannelTimeoutHosts",
  },
  ConnectionLost: {
    severity: "fleet",
    meaning:
      "Sessions lost their peer after connect (reset, keepalive failure): half-open peers, crashed or frozen hosts, middleboxes dropping idle flows.",
    why: "Per-session count, the command's phase included (a reboot run lands here, with the fleet owners, not in HandshakeHangs).",
    checks: [
      `Run the query: which hosts, which phase, commandStarted. ${HOP_VIA}`,
      "Did the host crash, freeze or reboot? Its console and uptime",
      "Middleboxes/NAT idle timeouts on the path",
    ],
    query: "ConnectionLostHosts",
  },
  CommandTimeouts: {
    severity: "fleet",
    meaning:
      "Remote commands outlived their time, or their exec request went unanswered (the message says so; the command may have run), and were stopped (CommandTimeout, Timeouts Phase=exec; never retried).",
    why: "The command's problem, not the transport's: a ticket for the command's owner.",
    checks: [
      "Run the query: which hosts and callers, remoteCleanup value (confirmed = the server reported the command's end; after signalled or remote_bound check the host)",
      "Is timeoutMs realistic for the command? Compare with PhaseLatency exec p99",
      "On the host: the command hanging on stdin, locks or I/O; was it killed?",
    ],
    query: "CommandTimeoutHosts",
  },
  LambdaThrottles: {
    severity: "ticket",
    meaning:
      "A function was throttled. API callers got HTTP 429/500; a workflow task got Lambda.TooManyRequestsException, which the workflows retry with backoff and full jitter (6 retries, up to 60 s apart); after those a single-host execution fails and a fleet host's outcome is error: Lambda.TooManyRequestsException (the run goes on).",
    why: "Capacity, not correctness: a ticket to raise concurrency or lower fleet maxConcurrency.",
    checks: [
      "Run the query: which callers drove the volume",
      "Account concurrency and reserved concurrency on the function",
      "Fleet runs: maxConcurrency in the execution input",
    ],
    query: "CallerVolume",
    subjects: ["Api", "Task"],
  },
  WorkflowFailures: {
    severity: "ticket",
    meaning:
      "Workflow executions failed, timed out or were aborted. Fleet: the run broke (input, item list, timeout, or more child executions broke than toleratedFailurePercentage allows; a host that failed is an outcome in the summary: under a maxErrors budget on a hostsKey list it also fails its child (HostNotSucceeded), and a broken budget ends the run SUCCEEDED with ended: maxErrorsExceeded, not here). Single host: each failed session fails one.",
    why: "Failed, timed-out and aborted executions all leave work undone.",
    checks: [
      "Run the query: failed executions and their error names",
      "Execution history: the failing state and its Cause (the result JSON: phase, timings)",
      "Hosts by error (hosts-by-error-and-phase query): one host or many",
    ],
    query: "WorkflowFailures",
    subjects: ["SingleHost", "Fleet"],
  },
  TaskConcurrency: {
    severity: "ticket",
    meaning:
      "The task function's concurrent executions reached 90 % of its reserved concurrency for three periods: fleet runs are about to be throttled (LambdaThrottles-Task follows, then retries and slower runs).",
    why: "Capacity trend before failure: a ticket to raise the reservation or lower fleet maxConcurrency.",
    checks: [
      "Run the query: which callers and fleet runs drove the volume",
      "Fleet runs' maxConcurrency against reservedConcurrency.fleet (docs/fleet.md)",
      "Account concurrency left unreserved; the task function's Duration (slower hosts hold slots longer)",
    ],
    query: "CallerVolume",
  },
  WorkflowThrottles: {
    severity: "ticket",
    meaning:
      "Step Functions throttled workflow executions (ExecutionThrottled): StartExecution or state transitions over the account's quota; runs start late or callers get ThrottlingException.",
    why: "Quota, not correctness: a ticket to raise the Step Functions quota or spread the callers.",
    checks: [
      "Run the query: failed executions and their error names",
      "Service Quotas: StartExecution and StateTransition rates of the account and region",
      "Which caller starts executions in bursts (CloudTrail StartExecution)",
    ],
    query: "WorkflowFailures",
    subjects: ["SingleHost", "Fleet"],
  },
  DynamoThrottles: {
    severity: "ticket",
    meaning:
      "A state table throttled reads or writes (ReadThrottleEvents + WriteThrottleEvents). Idempotency: duplicate detection slows or fails; Breaker: host quarantine bookkeeping lags (the handler bounds each call by its deadline, so sessions are not held up beyond it).",
    why: "On-demand tables throttle only on hot keys or sudden multiples of traffic: a ticket to find the hot key.",
    checks: [
      "Which table and operation (the table's CloudWatch metrics by Operation)",
      "Hot keys: one host or one idempotency key hammered (Contributor Insights on the table)",
      "A sudden traffic multiple: run the caller-volume query",
    ],
    query: "CallerVolume",
    subjects: ["Idempotency", "Breaker"],
  },
  ApiEdge: {
    severity: "page",
    subjectSeverity: { Latency: "ticket" },
    meaning:
      "Errors: API Gateway answered 5XX more often than the API function was invoked (5XXError - Invocations >= 5 in a period): the edge's own errors (integration permission, stage, deleted function): no function alarm sees them. Latency: integration p99 at 90 % of the integration timeout for three periods: callers near the gateway's own 504.",
    why: "Errors pages: callers are refused and nothing else fires. 5XX alone cannot page: by contract hosts' timeouts and protocol errors are 504/502 answers. Latency is a ticket: the handler's deadline sits below the integration timeout, so it warns before callers fail.",
    checks: [
      "API Gateway console: the stage's execution logs and 5XX by resource; the integration's permission to invoke the function",
      "Run the query: did the API function run at all (invocation lines in the same minutes)?",
      "Recent deploys of the API stage, authorizer or resource policy; for Latency, the API function's Duration and the sessionBudget vs integrationTimeout",
    ],
    query: "InvocationFailures",
    subjects: ["Errors", "Latency"],
  },
  NotificationFailures: {
    severity: "ticket",
    meaning:
      "SNS failed to deliver notifications from a route topic (NumberOfNotificationsFailed, page, ticket and fleet topics together): a subscriber (email, HTTPS pager, chat function) is not receiving alarms.",
    why: "A lost page is the worst failure of monitoring; it goes to the ticket route so a broken page subscription is still reported through another channel.",
    checks: [
      "SNS console: which topic and subscription (delivery status logs, the subscription's pending/confirmed state)",
      "HTTPS endpoint: status codes and TLS of the pager integration; Lambda subscriber: its errors and permission",
      "The subscription's filter policy: malformed attributes are dropped, not failed",
    ],
    query: "InvocationFailures",
  },
  EnrichmentErrors: {
    severity: "ticket",
    meaning:
      "An alarm enrichment function failed (Lambda Errors of the page, ticket or fleet enrichment): notifications still go out plain (the plain alarm is published first; a failed enrichment falls back to its route's topic), without the host list.",
    why: "Context is lost, not the notification: a ticket.",
    checks: [
      "The enrichment functions' log groups: error and stack",
      "Logs Insights permissions and quotas (StartQuery throttling), the KMS key of the topics",
      "Recent changes to the catalog or saved queries (an invalid query fails the run)",
    ],
    query: "InvocationFailures",
  },
  Heartbeat: {
    severity: "page",
    meaning:
      "Lambda ran invocations but fewer than half of them published BoundedSsh Invocations, for three periods: metrics stopped (permissions, namespace, EMF) or handlers crash before the metrics middleware. Every other alarm is blind meanwhile.",
    why: "Watches the watchers: while it fires every other alarm, the SLO pages included, is blind, so it pages; three periods so a publish delayed across a period boundary never fires it.",
    checks: [
      "Run the query: runtime error lines (init crashes) in the function logs",
      "The functions' BSSH_METRICS_MODE (default emf) and namespace; in api mode the cloudwatch:PutMetricData permission",
      "EMF lines in the logs: are they there but not extracted?",
    ],
    query: "InvocationFailures",
  },
} as const satisfies Record<string, CatalogEntry>;

export type AlarmKind = keyof typeof ALARM_CATALOG;
export const ALARM_KINDS = Object.keys(ALARM_CATALOG) as AlarmKind[];

/** The one alarm naming helper: `<stage>-BoundedSsh-<Kind>[-<Subject>]`. */
export function alarmName(stage: string, kind: AlarmKind, subject?: string): string {
  return `${stage}-BoundedSsh-${kind}${subject ? `-${subject}` : ""}`;
}

/** The kind (and subject) of an alarm name made by {@link alarmName}, or undefined. */
export function kindOfAlarmName(
  stage: string,
  name: string,
): { kind: AlarmKind; subject?: string } | undefined {
  const prefix = `${stage}-BoundedSsh-`;
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.endsWith(NOTIFY_SUFFIX) ? name.slice(0, -NOTIFY_SUFFIX.length) : name;
  const [kind, subject] = rest.slice(prefix.length).split("-") as [string, string | undefined];
  if (!(kind in ALARM_CATALOG)) return undefined;
  return subject ? { kind: kind as AlarmKind, subject } : { kind: kind as AlarmKind };
}

/** Every alarm name of a kind (its subjects, or the kind alone). */
export function alarmNamesOf(stage: string, kind: AlarmKind): string[] {
  const entry: CatalogEntry = ALARM_CATALOG[kind];
  return entry.subjects
    ? entry.subjects.map((s) => alarmName(stage, kind, s))
    : [alarmName(stage, kind)];
}

/** Runbook page of a kind, relative to the runbook base (repo: `docs/runbooks/<Kind>.md`). */
export function runbookFile(kind: AlarmKind): string {
  return `${kind}.md`;
}

/** What each route means, in the runbook headers and alarm descriptions. */
export const ROUTE_TEXT: Readonly<Record<Severity, string>> = {
  page: "this service's on-call, page topic; notifies on its own",
  ticket: "this service's team, ticket topic",
  fleet: "the fleet's owners, fleet topic; never the pager",
};

function severityText(kind: AlarmKind): string {
  const e: CatalogEntry = ALARM_CATALOG[kind];
  const one = (s: Severity) =>
    kind === "Page"
      ? "**summary** (no notification: each page-level alarm pages on its own)"
      : `**${s}** (${ROUTE_TEXT[s]})`;
  if (!e.subjects || !e.subjectSeverity) return one(e.severity);
  return e.subjects.map((s) => `${s} ${one(severityOf(kind, s))}`).join("; ");
}

/**
 * The generated header of a runbook page: tests require each `docs/runbooks/<Kind>.md` to start
 * with exactly this text, so the pages cannot drift from the alarms.
 */
export function runbookHeader(kind: AlarmKind): string {
  const e: CatalogEntry = ALARM_CATALOG[kind];
  const names = alarmNamesOf("<stage>", kind)
    .map((n) => `\`${n}\``)
    .join(", ");
  return [
    `# ${kind}`,
    "",
    `Alarm: ${names}. Severity: ${severityText(kind)}.`,
    "",
    "## What it means",
    "",
    e.meaning,
    "",
    "## First three checks",
    "",
    ...e.checks.map((c, i) => `${i + 1}. ${c}${/[.?!]$/.test(c) ? "" : "."}`),
    "",
    "## Query",
    "",
    `CloudWatch Logs Insights > Saved queries > \`bounded-ssh-<stage>/${QUERIES[e.query].id}\`.`,
    "",
  ].join("\n");
}
