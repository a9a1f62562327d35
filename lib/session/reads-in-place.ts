/**
 * In-place reads' process-wide state (docs/engine.md, "Large outputs"). The dialled socket
 * reads into one shared buffer (connection.ts, READ_BUFFER); this module holds whether the
 * process still may, and the one rule that withdraws it. No ssh2 import: it is public API
 * (`readsInPlaceWithdrawn`), and the package's types must not need ssh2's.
 */

/**
 * Set for the rest of the process by the first decipher failure of a connection that handed
 * ssh2 a read in place: every later connection reads into buffers of its own (as with
 * `readsInPlace: false`). No path that keeps a chunk past its read is known
 * (docs/benchmarks.md, "Drain"); if one exists, the packet's MAC or tag catches it (the
 * session ends `ProtocolError`, never with wrong bytes) and the process stops taking the risk.
 */
let withdrawn = false;

/** ssh2's messages for a packet that failed to decrypt or authenticate (crypto.js). */
const DECIPHER_FAILURES = new Set([
  "Invalid MAC",
  "Bad packet length",
  "Unsupported state or unable to authenticate data",
]);

/**
 * A decipher failure on a connection that handed ssh2 reads in place withdraws in-place reads.
 * Either cause is possible: a packet damaged before it arrived (the usual one), or a read
 * clobbered in this process; the message names both, with the inbound cipher and the bytes
 * read, so the next such failure is attributed to its cipher. Other errors pass unchanged.
 */
export function withdrawOnDecipherFailure(err: Error, cipher: string, bytesRead: number): Error {
  if (!DECIPHER_FAILURES.has(err.message)) return err;
  withdrawn = true;
  err.message = `${err.message} (inbound cipher ${cipher}, after ${bytesRead} bytes read; a packet damaged in transit, or a read clobbered by this process's in-place socket reads: later connections of this process read without them)`;
  return err;
}

/** True once a decipher failure withdrew in-place reads for this process (operators, tests). */
export function readsInPlaceWithdrawn(): boolean {
  return withdrawn;
}
