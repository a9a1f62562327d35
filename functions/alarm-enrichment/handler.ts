/**
 * Lambda entry point subscribed to the alarm topic: each record is a CloudWatch alarm
 * notification; see `enrich.ts`. Not a middy stack: there is no request to validate, no audit
 * line and no SSH session, only one bounded query and one publish per record.
 */
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { SNSClient } from "@aws-sdk/client-sns";
import type { Context, SNSEvent } from "aws-lambda";
import { Deadline } from "../../lib/deadline.ts";
import { enrichmentConfigFromEnv } from "../config/config.ts";
import {
  type AlarmNotification,
  type Enriched,
  type EnrichmentDeps,
  enrichAndPublish,
} from "./enrich.ts";

/** Builds the handler over its clients and configuration (tests pass their own). */
export function createEnrichmentHandler(deps: EnrichmentDeps) {
  return async (event: SNSEvent, context: Context): Promise<Enriched[]> => {
    const reserve = deps.config.reserveMs ?? 3_000;
    const out: Enriched[] = [];
    for (const record of event.Records) {
      // Shared across the batch: every record's query ends before the publish reserve.
      const deadline = new Deadline({
        budgetMs: Math.max(0, context.getRemainingTimeInMillis() - reserve),
      });
      let notification: AlarmNotification;
      try {
        notification = JSON.parse(record.Sns.Message) as AlarmNotification;
      } catch {
        notification = {
          AlarmName: record.Sns.Subject ?? "unknown alarm",
          AlarmDescription: record.Sns.Message,
          NewStateValue: "UNKNOWN",
          StateChangeTime: record.Sns.Timestamp,
        };
      }
      out.push(await enrichAndPublish(deps, notification, deadline));
    }
    return out;
  };
}

let cached: ReturnType<typeof createEnrichmentHandler> | undefined;

/** The deployed handler: clients and configuration from the environment. */
export const handler = (event: SNSEvent, context: Context): Promise<Enriched[]> => {
  cached ??= createEnrichmentHandler({
    logs: new CloudWatchLogsClient({}),
    sns: new SNSClient({}),
    cloudwatch: new CloudWatchClient({}),
    config: enrichmentConfigFromEnv(),
  });
  return cached(event, context);
};
