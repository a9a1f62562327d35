/**
 * The `LeakedSockets` gauge (SPEC §7): TCP sockets still open when an invocation starts.
 *
 * A warm Lambda container freezes after the handler returns; a socket an invocation forgot is
 * still there, ref'd, when the next one thaws. `process.getActiveResourcesInfo()` lists every
 * handle that keeps the event loop alive, one `TCPSocketWrap` per ref'd TCP socket, so
 * counting those at invocation start finds exactly the incident's symptom.
 *
 * What is not a leak, and how it is excluded:
 * - AWS SDK keep-alive sockets. Node's `http.Agent` `unref()`s a socket when it goes back to
 *   the free pool, so idle SDK sockets never show up as `TCPSocketWrap`. Only a socket that is
 *   in use by a request would; the agents the project hands to its SDK clients are registered
 *   here ({@link LeakGauge.excludeAgent}) and their in-use sockets are subtracted. Between
 *   invocations there should be none (every SDK call is awaited or aborted), so this only
 *   matters for calls that overlap `measure()`.
 * - The runtime's own sockets (the Lambda runtime API client, a local emulator's accepted
 *   request socket). Nothing earlier in this container can have leaked at the first
 *   measurement, so whatever is open then is the baseline, lowered whenever a later count is
 *   smaller (a socket from module init that closed). Leaks are the count above the baseline.
 *   The price: a leak present at the very first measurement, or one that replaces a closed
 *   baseline socket in the same gap, goes uncounted.
 */
import type { Agent } from "node:http";

export interface LeakGaugeOptions {
  /** Source of handle types. @default process.getActiveResourcesInfo */
  activeResources?: () => string[];
}

const TCP_SOCKET = "TCPSocketWrap";

function inUseSockets(agent: Agent): number {
  let n = 0;
  for (const list of Object.values(agent.sockets)) n += list?.length ?? 0;
  return n;
}

/** Counts ref'd TCP sockets above the container's baseline. One per container is enough. */
export class LeakGauge {
  readonly #activeResources: () => string[];
  readonly #agents = new Set<Agent>();
  #baseline: number | undefined;

  constructor(options: LeakGaugeOptions = {}) {
    this.#activeResources = options.activeResources ?? (() => process.getActiveResourcesInfo());
  }

  /** Sockets of this agent (an AWS SDK client's) are the SDK's, not leaks. */
  excludeAgent(agent: Agent): void {
    this.#agents.add(agent);
  }

  /** TCP sockets open now that belong neither to a registered agent nor to the baseline. */
  measure(): number {
    let open = 0;
    for (const r of this.#activeResources()) if (r === TCP_SOCKET) open++;
    for (const agent of this.#agents) open -= inUseSockets(agent);
    open = Math.max(0, open);
    if (this.#baseline === undefined || open < this.#baseline) this.#baseline = open;
    return open - this.#baseline;
  }
}

/** The container's gauge; SDK adapters register their agents on it. */
export const defaultLeakGauge = new LeakGauge();
