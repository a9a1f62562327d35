/**
 * The enrichment handler over its dependencies (clients, configuration): each record is a
 * CloudWatch alarm notification; see `enrich.ts`. Not a middy stack: there is no request to
 * validate, no audit line and no SSH session, only one bounded query and one publish per
 * record. The deployed entry point (`handler.ts`) builds the dependencies on first use.
 */
import type { Context, SNSEvent } from "aws-lambda";
import { Deadline } from "../../lib/deadline.ts";
import {
  type AlarmNotification,
  type Enriched,
  type EnrichmentDeps,
  enrichAndPublish,
} from "./enrich.ts";

/** Kept back from the publish for the handler to return. */
const PUBLISH_MARGIN_MS = 50;

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
      // The publish has what is left of the reserve when it starts, less a margin to return.
      const publishWithinMs = () => context.getRemainingTimeInMillis() - PUBLISH_MARGIN_MS;
      out.push(await enrichAndPublish(deps, notification, deadline, publishWithinMs));
    }
    return out;
  };
}
