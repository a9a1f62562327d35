import type { MiddlewareObj, Request } from "@middy/core";
import type { HandlerSettings } from "../config/config.ts";
import {
  attachInvocation,
  CANCEL_SIGNAL,
  type CancellableContext,
  hasInvocation,
  Invocation,
  invocationOf,
} from "./invocation.ts";
import { withDefaults } from "./with-defaults.ts";

/** Options of {@link createInvocation}. */
export interface CreateInvocationOptions {
  source: Invocation["source"];
  settings: Pick<HandlerSettings, "reserveMs" | "edgeTimeoutMs">;
  /** When the caller's edge started waiting (epoch ms), e.g. API Gateway's `requestTimeEpoch`. */
  edgeStart?: (event: unknown) => number | undefined;
  /** Wall clock (epoch ms), read once to age the edge's timestamp. @default Date.now */
  wallClock?: () => number;
  /** Monotonic clock of the invocation's deadline. @default performance.now */
  now?: () => number;
}

const defaults: Omit<CreateInvocationOptions, "source" | "settings"> = {
  edgeStart: undefined,
  wallClock: Date.now,
  now: undefined,
};

// Time for the runtime to carry the response out after the handler resolved.
export const RESPONSE_SAFETY_MS = 50;
// A timestamp further in the future than this is clock nonsense, not a plan: ignore it.
const MAX_CLOCK_SKEW_MS = 60_000;

/**
 * Creates the invocation's {@link Invocation}, once, at invocation start (SPEC §3), and ends
 * it when everything else has run. Register it FIRST: its `before` runs first and its
 * `after`/`onError` last (after metrics were published within its deadline).
 *
 * The handler must return by min(Lambda's `getRemainingTimeInMillis()`, the edge's timeout
 * counted from the edge's own timestamp) − a small safety for the response. API Gateway's
 * integration timeout runs from `requestTimeEpoch`, not from our start: a cold start or a
 * queued retry has already spent part of it. The wall clock is read once, here, to age that
 * timestamp; from then on every budget is the deadline's, on one monotonic clock.
 *
 * @param opts {@link CreateInvocationOptions}.
 * @throws TypeError for an unknown option.
 * @example
 * middy(handler).use(createInvocation({ source: "api", settings, edgeStart: apiEdgeStart }));
 */
export function createInvocation(opts: CreateInvocationOptions): MiddlewareObj {
  const options = withDefaults("createInvocation", defaults, opts, ["source", "settings"]);
  const { wallClock = Date.now } = options;
  const { reserveMs, edgeTimeoutMs } = options.settings;
  const createInvocationBefore = (request: Request): void => {
    const context = request.context as {
      awsRequestId?: string;
      invokedFunctionArn?: string;
      getRemainingTimeInMillis?: () => number;
    } & CancellableContext;
    let leftMs = context.getRemainingTimeInMillis?.() ?? edgeTimeoutMs;
    const edgeStart = options.edgeStart?.(request.event);
    if (edgeStart !== undefined) {
      const now = wallClock();
      const ageMs =
        Number.isFinite(edgeStart) && edgeStart <= now + MAX_CLOCK_SKEW_MS
          ? Math.max(0, now - edgeStart)
          : 0;
      leftMs = Math.min(leftMs, edgeTimeoutMs - ageMs);
    }
    const cancel = context[CANCEL_SIGNAL];
    const invocation = new Invocation({
      source: options.source,
      requestId: context.awsRequestId ?? crypto.randomUUID(),
      functionArn: context.invokedFunctionArn,
      mustReturnWithinMs: leftMs - RESPONSE_SAFETY_MS,
      reserveMs,
      ...(cancel ? { signals: [cancel] } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    attachInvocation(request.context, invocation);
  };
  const createInvocationEnd = (request: Request): void => {
    // Absent only when `before` itself failed: then there is nothing to end.
    if (hasInvocation(request.context)) invocationOf(request.context).end();
  };
  return {
    before: createInvocationBefore,
    after: createInvocationEnd,
    onError: createInvocationEnd,
  };
}
