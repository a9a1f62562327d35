/**
 * Modules the deployed handlers load on first use instead of at init: the engine (ssh2 probes
 * OpenSSL when it loads) and the AWS SDK clients, which are most of a cold start
 * (docs/benchmarks.md, "Cold start"). {@link preload} starts them when an invocation begins,
 * on a later turn of the event loop, so they load while the first network call is in flight
 * rather than before it.
 */

/** A loader that runs `load` once; a rejected load is retried by the next caller. */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    if (!pending) {
      const started = load();
      pending = started;
      started.catch(() => {
        if (pending === started) pending = undefined;
      });
    }
    return pending;
  };
}

/** The engine: `runCommand` and the ssh2 client behind it. */
export const loadEngine = once(() => import("../../lib/run-command.ts"));

/**
 * Starts loading modules an invocation will need, once the current work yields to the event
 * loop (normally: the first network call). Load failures surface where the module is used.
 */
export function preload(loaders: readonly (() => Promise<unknown>)[]): void {
  setImmediate(() => {
    for (const load of loaders) load().catch(() => {});
  });
}

/** middy middleware: {@link preload} the runtime's modules when the first invocation begins. */
export function preloadModules(loaders: readonly (() => Promise<unknown>)[] = []): {
  before: () => void;
} {
  let started = false;
  const preloadModulesBefore = (): void => {
    if (started || loaders.length === 0) return;
    started = true;
    preload(loaders);
  };
  return { before: preloadModulesBefore };
}
