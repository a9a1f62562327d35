/**
 * Lambda entry point subscribed to the alarm topic (`enrichment-handler.ts` does the work).
 * Everything, the three SDK clients above all, is loaded on the first invocation rather than
 * at init: init is what a cold start pays before the runtime even hands over the event
 * (docs/benchmarks.md, "Cold start"), and an alarm notification has a minute to spare.
 */
import type { Context, SNSEvent } from "aws-lambda";
import type { Enriched } from "./enrich.ts";
import type { createEnrichmentHandler } from "./enrichment-handler.ts";

// Not `once` from functions/runtime/lazy.ts: that module's engine loader would pull the engine
// and ssh2 into this bundle. A failed load is retried by the next invocation.
let pending: Promise<ReturnType<typeof createEnrichmentHandler>> | undefined;

const deployed = () => {
  pending ??= build();
  pending.catch(() => {
    pending = undefined;
  });
  return pending;
};

async function build(): Promise<ReturnType<typeof createEnrichmentHandler>> {
  const [{ createEnrichmentHandler }, { enrichmentConfigFromEnv }, clients] = await Promise.all([
    import("./enrichment-handler.ts"),
    import("../config/config.ts"),
    import("../runtime/aws-clients.ts"),
  ]);
  // The one client configuration (bounded transport and retries, throwOnRequestTimeout).
  const [logs, sns, cloudwatch] = await Promise.all([
    clients.cloudWatchLogsClient(),
    clients.snsClient(),
    clients.cloudWatchClient(),
  ]);
  return createEnrichmentHandler({ logs, sns, cloudwatch, config: enrichmentConfigFromEnv() });
}

/** The deployed handler: clients and configuration from the environment, built once. */
export const handler = async (event: SNSEvent, context: Context): Promise<Enriched[]> =>
  (await deployed())(event, context);
