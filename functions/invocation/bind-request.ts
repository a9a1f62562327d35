import type { MiddlewareObj } from "@middy/core";

// middy hands the handler only (event, context); the invocation record lives on
// `request.internal`. Lambda creates a fresh context object per invocation, so the context is
// the key back to its middy request.
const requests = new WeakMap<object, { internal: Record<string, unknown> }>();

/** Lets the handler reach its middy request via {@link requestOf}. Register it last. */
export function bindRequest(): MiddlewareObj {
  return {
    before: (request) => {
      if (request.context !== null && typeof request.context === "object") {
        requests.set(request.context, request as { internal: Record<string, unknown> });
      }
    },
  };
}

/** The middy request of the invocation that owns `context`. */
export function requestOf(context: object): { internal: Record<string, unknown> } {
  const request = requests.get(context);
  if (!request) throw new TypeError("bindRequest() middleware is missing");
  return request;
}
