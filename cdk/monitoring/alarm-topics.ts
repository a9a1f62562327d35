import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";

/** Properties of {@link AlarmTopics}. */
export interface AlarmTopicsProps {
  /** @default a new KMS-encrypted topic */
  readonly alarmTopic?: sns.ITopic;
}

/**
 * The alarm topic (what CloudWatch notifies) and the enriched topic (what the enrichment
 * function publishes: the alarm plus the hosts involved). People subscribe to the enriched one;
 * the plain one is its input and its fallback.
 *
 * @example
 * const topics = new AlarmTopics(this, "Topics");
 * topics.enriched.addSubscription(new subscriptions.EmailSubscription("oncall@example.com"));
 */
export class AlarmTopics extends Construct {
  readonly alarms: sns.ITopic;
  readonly enriched: sns.Topic;
  readonly key: kms.Key;

  /**
   * @param scope the parent construct (the stack).
   * @param id the construct id; logical ids derive from it.
   * @param props an existing alarm topic, if any.
   */
  constructor(scope: Construct, id: string, props: AlarmTopicsProps = {}) {
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
    this.alarms =
      props.alarmTopic ??
      new sns.Topic(this, "AlarmTopic", {
        displayName: "bounded-ssh alarms",
        masterKey: this.key,
        enforceSSL: true,
      });
    this.enriched = new sns.Topic(this, "EnrichedTopic", {
      displayName: "bounded-ssh alarms with hosts",
      masterKey: this.key,
      enforceSSL: true,
    });
  }
}
