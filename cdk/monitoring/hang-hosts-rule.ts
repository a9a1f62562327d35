import { type Duration, Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { HANG_ERRORS, HANG_EXCLUDED_PHASES } from "../../operations/alarm-catalog.ts";
import { AUDIT_TYPE, AUDIT_FIELDS as F } from "../../operations/audit-fields.ts";

/** Properties of {@link HangHostsRule}. */
export interface HangHostsRuleProps {
  readonly stage: string;
  /** Log groups holding the audit lines. */
  readonly logGroups: readonly logs.ILogGroup[];
}

/**
 * Contributor Insights over the audit lines, keyed on the host and port the error is attributed
 * to (`error.host`, `error.port`: the jump host when `error.hop` is `via`, else the target), for
 * the hang errors ({@link HANG_ERRORS}) outside the command's phase ({@link HANG_EXCLUDED_PHASES}:
 * a `ConnectionLost` once the command runs, e.g. `sudo reboot`, is not a hang): the hang alarm
 * counts hosts (`UniqueContributors`), not sessions or retries, and a dead jump host counts
 * once, as itself, not as every target behind it. The dashboard shows the top hosts.
 *
 * @example
 * const rule = new HangHostsRule(this, "HangHosts", { stage: "prod", logGroups: [apiLogs, taskLogs] });
 * f.create({ kind: "HandshakeHangs", metric: rule.uniqueHosts(Duration.minutes(5)), threshold: 2 });
 */
export class HangHostsRule extends Construct {
  readonly ruleName: string;
  readonly rule: cloudwatch.CfnInsightRule;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the stage (the rule's name) and the log groups holding the audit lines.
   */
  constructor(scope: Construct, id: string, props: HangHostsRuleProps) {
    super(scope, id);
    this.ruleName = `${props.stage}-BoundedSsh-HangHosts`;
    const body = {
      Schema: { Name: "CloudWatchLogRule", Version: 1 },
      LogGroupNames: props.logGroups.map((g) => g.logGroupName),
      LogFormat: "JSON",
      Contribution: {
        Keys: [`$.${F.errorHost}`, `$.${F.errorPort}`],
        Filters: [
          { Match: `$.${F.type}`, In: [AUDIT_TYPE] },
          { Match: `$.${F.errorName}`, In: [...HANG_ERRORS] },
          { Match: `$.${F.phase}`, NotIn: [...HANG_EXCLUDED_PHASES] },
        ],
      },
      AggregateOn: "Count",
    };
    this.rule = new cloudwatch.CfnInsightRule(this, "Rule", {
      ruleName: this.ruleName,
      ruleState: "ENABLED",
      ruleBody: Stack.of(this).toJsonString(body),
    });
  }

  /** Distinct hosts with a hang error per period. */
  uniqueHosts(period: Duration): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: `INSIGHT_RULE_METRIC('${this.ruleName}', 'UniqueContributors')`,
      usingMetrics: {},
      period,
      label: "hosts with hang errors",
    });
  }
}

/** Properties of {@link ContactedHostsRule}. */
export interface ContactedHostsRuleProps {
  readonly stage: string;
  /** Log groups holding the audit lines. */
  readonly logGroups: readonly logs.ILogGroup[];
}

/**
 * Contributor Insights over every audit line, keyed on the target (`target.host`,
 * `target.port`): the hosts this service contacted per period, whatever the outcome. The
 * denominator of the hang ratio (hang hosts / hosts contacted): no metric of ours counts
 * distinct hosts (docs/metrics.md), and `Invocations` counts sessions, retries included.
 *
 * @example
 * const contacted = new ContactedHostsRule(this, "ContactedHosts", { stage: "prod", logGroups });
 * contacted.uniqueHosts(Duration.minutes(15));
 */
export class ContactedHostsRule extends Construct {
  readonly ruleName: string;
  readonly rule: cloudwatch.CfnInsightRule;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props the stage (the rule's name) and the log groups holding the audit lines.
   */
  constructor(scope: Construct, id: string, props: ContactedHostsRuleProps) {
    super(scope, id);
    this.ruleName = `${props.stage}-BoundedSsh-ContactedHosts`;
    const body = {
      Schema: { Name: "CloudWatchLogRule", Version: 1 },
      LogGroupNames: props.logGroups.map((g) => g.logGroupName),
      LogFormat: "JSON",
      Contribution: {
        Keys: [`$.${F.host}`, `$.${F.port}`],
        Filters: [{ Match: `$.${F.type}`, In: [AUDIT_TYPE] }],
      },
      AggregateOn: "Count",
    };
    this.rule = new cloudwatch.CfnInsightRule(this, "Rule", {
      ruleName: this.ruleName,
      ruleState: "ENABLED",
      ruleBody: Stack.of(this).toJsonString(body),
    });
  }

  /** Distinct hosts contacted per period. */
  uniqueHosts(period: Duration): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: `INSIGHT_RULE_METRIC('${this.ruleName}', 'UniqueContributors')`,
      usingMetrics: {},
      period,
      label: "hosts contacted",
    });
  }
}
