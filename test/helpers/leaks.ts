import { type AddressInfo, createServer } from "node:net";
/** Counts of live resources by type, from `process.getActiveResourcesInfo()`. */
export type HandleCounts = Record<string, number>;

/**
 * The resource types a session can leak: its socket (`TCPSocketWrap`), a listener
 * (`TCPServerWrap`, `TCPWrap` on older Node), DNS lookups, and timers (`Timeout`).
 */
export const SESSION_RESOURCE_TYPES = [
  "TCPSocketWrap",
  "TCPWrap",
  "TCPServerWrap",
  "GetAddrInfoReqWrap",
  "TCPConnectWrap",
  "Timeout",
] as const;

/** Counts live resources of this process by type (sockets, servers, timers, requests…). */
export function activeHandles(): HandleCounts {
  const counts: HandleCounts = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** How many live resources of the given types this process holds (e.g. `["Timeout"]`). */
export function countActive(types: readonly string[]): number {
  return process.getActiveResourcesInfo().filter((t) => types.includes(t)).length;
}

/** Resource types whose count grew since `baseline` (only the session-relevant types). */
export function handleGrowth(
  baseline: HandleCounts,
  now: HandleCounts = activeHandles(),
  types: readonly string[] = SESSION_RESOURCE_TYPES,
): HandleCounts {
  const grown: HandleCounts = {};
  for (const type of types) {
    const delta = (now[type] ?? 0) - (baseline[type] ?? 0);
    if (delta > 0) grown[type] = delta;
  }
  return grown;
}

/**
 * Resolves after the pending close callbacks of the event loop have run: a destroyed socket's
 * handle is released in the close phase of the next loop turn, not synchronously.
 */
export async function settleHandles(turns = 2): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Options for {@link expectNoSessionLeaks}. */
export interface LeakCheckOptions {
  /** Resource types to compare. Default {@link SESSION_RESOURCE_TYPES}. */
  types?: readonly string[];
  /**
   * Retry up to this long for handles to close (e.g. a server-side socket in the same
   * process closing after the client's). Default 0: only `settleHandles()` — the engine's
   * guarantee is "nothing alive when it returns".
   */
  waitMs?: number;
}

/**
 * Throws if any session resource type grew since `baseline`. Take the baseline AFTER the
 * test's servers are listening (they own handles in this same process) and right before
 * the session; call this right after the session returned. It waits `settleHandles()` first
 * so handles destroyed just before returning have been released.
 */
export async function expectNoSessionLeaks(
  baseline: HandleCounts,
  opts: LeakCheckOptions = {},
): Promise<void> {
  const types = opts.types ?? SESSION_RESOURCE_TYPES;
  const until = Date.now() + (opts.waitMs ?? 0);
  for (;;) {
    await settleHandles();
    const grown = handleGrowth(baseline, activeHandles(), types);
    if (Object.keys(grown).length === 0) return;
    if (Date.now() >= until) {
      throw new Error(
        `session leaked resources: ${JSON.stringify(grown)} (baseline ${JSON.stringify(
          baseline,
        )}, now ${JSON.stringify(activeHandles())})`,
      );
    }
    await new Promise<void>((r) => setTimeout(r, 10));
  }
}

/** A loopback listener standing for a remote peer (see {@link startPeerListener}). */
export interface PeerListener {
  port: number;
  close(): Promise<void>;
}

/**
 * A loopback TCP listener whose accepted sockets are unref'd: a connection to it counts only on
 * the caller's side, as with a remote sshd, so a leak test sees exactly the sockets the code
 * under test left open. Owned by the test: close it in afterAll.
 */
export async function startPeerListener(): Promise<PeerListener> {
  const server = createServer((socket) => {
    socket.unref();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
