import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { ROUTES, type Severity } from "../../operations/alarm-catalog.ts";

/** Display names of the topics people subscribe to, one per route. */
const ROUTE_DISPLAY: Readonly<Record<Severity, string>> = {
  page: "bounded-ssh pages (act now)",
  ticket: "bounded-ssh tickets (today)",
  fleet: "bounded-ssh host trouble (fleet owners)",
};

/**
 * Two topics per route (`page`, `ticket`, `fleet`: docs/alarms.md, "Routes"): the alarm topic
 * (what CloudWatch notifies; its one subscriber is that route's enrichment function) and the
 * route's topic people subscribe to (the plain alarm, then the hosts, each message carrying
 * `severity`, `stage`, `alarm`, `kind` and `state` attributes for filter policies). Separate
 * topics, not one topic with filters: pages and tickets never reach the same people by
 * accident, each topic's policy names its own publishers, and one route's subscribers can be
 * changed without touching another's.
 *
 * @example
 * const topics = new AlarmTopics(this, "Topics");
 * topics.routes.page.addSubscription(new subscriptions.EmailSubscription("oncall@example.com"));
 * topics.routes.fleet.addSubscription(new subscriptions.UrlSubscription("https://fleet.example.com/sns"));
 */
export class AlarmTopics extends Construct {
  /** What CloudWatch notifies, per route. */
  readonly alarms: Readonly<Record<Severity, sns.Topic>>;
  /** What people subscribe to, per route. */
  readonly routes: Readonly<Record<Severity, sns.Topic>>;
  readonly key: kms.Key;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   */
  constructor(scope: Construct, id: string) {
    super(scope, id);
    // CloudWatch cannot publish to a topic under the AWS-managed SNS key: a customer key with
    // a grant to the CloudWatch service principal is what makes encrypted alarm topics work.
    this.key = new kms.Key(this, "AlarmTopicKey", {
      enableKeyRotation: true,
      description: "bounded-ssh alarm topics",
    });
    this.key.grant(
      new iam.ServicePrincipal("cloudwatch.amazonaws.com"),
      "kms:Decrypt",
      "kms:GenerateDataKey*",
    );
    const topic = (logicalId: string, displayName: string) =>
      new sns.Topic(this, logicalId, { displayName, masterKey: this.key, enforceSSL: true });
    const cap = (r: Severity) => `${r[0]?.toUpperCase()}${r.slice(1)}`;
    this.alarms = Object.fromEntries(
      ROUTES.map((r) => [r, topic(`${cap(r)}AlarmTopic`, `bounded-ssh ${r} alarms (input)`)]),
    ) as Record<Severity, sns.Topic>;
    this.routes = Object.fromEntries(
      ROUTES.map((r) => [r, topic(`${cap(r)}Topic`, ROUTE_DISPLAY[r])]),
    ) as Record<Severity, sns.Topic>;
  }
}
