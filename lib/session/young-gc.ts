/**
 * A hint to V8 while output drains (issue 26 item 1; docs/benchmarks.md, "Drain: the garbage
 * collector").
 *
 * Every decrypted packet is a new ArrayBuffer (Node's decipher has no update-into), so a
 * 100 MB drain allocates 100 MB of external memory that dies young. V8 frees a young
 * ArrayBuffer at its next scavenge, but scavenges come from JavaScript allocation, which a
 * drain does little of; meanwhile the external bytes reach V8's limit and it starts full
 * mark-compacts, each marking the whole heap: 4–7 per 100 MB, more CPU than the AES-GCM
 * decryption itself, and the more the process holds (the AWS SDK, a service's own state)
 * the more each costs. A minor GC every {@link YOUNG_GC_EVERY_BYTES} of output frees those
 * buffers before the limit is reached. With in-place reads (which halve those bytes), in
 * the bench process: client CPU per 100 MB drain 599 → 343 ms, mark-compacts 4 → 1; the hint
 * alone, in a small process: 432 → 333 ms (docs/benchmarks.md).
 *
 * The hint needs V8's `gc` function, which Node exposes only with `--expose-gc` (the Lambda
 * functions set it in NODE_OPTIONS; a long-running service that drains large outputs should
 * too). Without the flag, this does nothing. The counter is per process: sessions draining at
 * once share it, so the rate of minor GCs follows the bytes the process receives, whatever
 * the number of sessions. Only command output is counted: a jump host's channel traffic,
 * decrypted once more on the jump connection, is not.
 */

/** Output bytes between two minor GCs. 8 MiB: below the external growth (≈ 15 MB) at which
 * V8 was measured to start marking, at ≈ 0.5 ms of scavenge each (≈ 6 ms per 100 MB). */
export const YOUNG_GC_EVERY_BYTES = 8 * 1024 * 1024;

type V8Gc = (options: { type: "minor"; execution: "async" }) => unknown;

let sinceLast = 0;

/** Counts output bytes received; every {@link YOUNG_GC_EVERY_BYTES}, asks V8 for a minor GC. */
export function noteShortLivedBytes(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < YOUNG_GC_EVERY_BYTES) return;
  sinceLast = 0;
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== "function") return;
  try {
    // Async: V8 runs it as a task of its own, never inside this data callback.
    // It answers with a promise, from the context `gc` came from (not always this realm's
    // Promise): any thenable gets a rejection handler.
    const pending = (gc as V8Gc)({ type: "minor", execution: "async" });
    if (typeof (pending as PromiseLike<unknown> | undefined)?.then === "function") {
      (pending as PromiseLike<unknown>).then(undefined, () => {});
    }
  } catch {
    // A `gc` that is not V8's, or refuses the options: the hint is only a hint.
  }
}
