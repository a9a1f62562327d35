import type { MiddlewareObj } from "@middy/core";
import type { HandlerSettings } from "../config/settings.ts";
import { invocationOf } from "./invocation.ts";

/** Options of {@link invocationDeadline}. */
export interface InvocationDeadlineOptions {
  settings: Pick<HandlerSettings, "reserveMs" | "edgeTimeoutMs">;
  /** When the caller's edge started waiting (epoch ms), e.g. API Gateway's `requestTimeEpoch`. */
  edgeStart?: (event: unknown) => number | undefined;
  /** @default Date.now */
  now?: () => number;
}

// Time for the runtime to carry the response out after the handler resolved.
const RESPONSE_SAFETY_MS = 50;
// A timestamp further in the future than this is clock nonsense, not a plan: ignore it.
const MAX_CLOCK_SKEW_MS = 60_000;

/**
 * Where the invocation's deadline is computed (SPEC §3), once, at invocation start:
 *
 * - hard end = min(now + `getRemainingTimeInMillis()`, edge start + `edgeTimeoutMs`) − a small
 *   safety for the response; that is `mustReturnBy`;
 * - budget = hard end − `reserveMs` − now (the reserve pays for teardown, metrics and the
 *   response); `execute()` then takes the min with `request.timeoutMs`.
 *
 * API Gateway's integration timeout runs from its own `requestTimeEpoch`, not from our start:
 * a cold start or a queued retry has already spent part of it.
 */
export function invocationDeadline(options: InvocationDeadlineOptions): MiddlewareObj {
  const now = options.now ?? Date.now;
  return {
    before: (request) => {
      const start = now();
      const record = invocationOf(request, start);
      record.startedAt = start;
      const ctx = request.context as { getRemainingTimeInMillis?: () => number };
      const remaining = ctx.getRemainingTimeInMillis?.() ?? options.settings.edgeTimeoutMs;
      let hardEnd = start + remaining;
      const edgeStart = options.edgeStart?.(request.event);
      if (edgeStart !== undefined) {
        const from =
          Number.isFinite(edgeStart) && edgeStart <= start + MAX_CLOCK_SKEW_MS ? edgeStart : start;
        hardEnd = Math.min(hardEnd, Math.min(from, start) + options.settings.edgeTimeoutMs);
      }
      record.mustReturnBy = hardEnd - RESPONSE_SAFETY_MS;
      record.budgetMs = Math.max(0, record.mustReturnBy - options.settings.reserveMs - start);
    },
  };
}
