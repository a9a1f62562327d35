import { createHash, type Hash } from "node:crypto";
import type { Deadline } from "../deadline.ts";
import { InternalError } from "../errors.ts";
import type { OnOutput, OutputSpill, SpillObject, SpillOptions } from "../types.ts";
import { noteShortLivedBytes } from "./young-gc.ts";

/** Default of `SpillOptions.maxBytes`. */
export const DEFAULT_SPILL_MAX_BYTES = 1024 ** 3;

/** Opening a stream's spill, and its size limit. */
export interface CaptureSpill {
  open(): OutputSpill;
  maxBytes: number;
}

/**
 * Keeps at most `maxBytes` of one stream — the first half and the last half — while counting
 * and hashing every byte, so output beyond the cap is never silently lost: the caller gets
 * the exact byte count and SHA-256 of the full stream. The stream is always drained (an
 * undrained channel never closes and blocks the remote command on flow control).
 *
 * With a spill, the first write that would drop a byte opens it: the kept prefix (the whole
 * stream so far) is written, then every later chunk, so the object holds the full stream and
 * its SHA-256 is the stream's. `write` returning false asks the reader to pause until
 * {@link OutputCapture.drained}; a failed or over-limit spill is aborted and the stream goes
 * on draining into head + tail.
 */
export class OutputCapture {
  readonly #headCap: number;
  readonly #tailCap: number;
  readonly #hash: Hash = createHash("sha256");
  #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  #total = 0;
  readonly #maxBytes: number;
  readonly #spillWith: CaptureSpill | undefined;
  #spill: OutputSpill | undefined;
  #spillState: "none" | "open" | "ending" | "done" | "failed" = "none";
  #spilled = 0;
  #object: { bucket: string; key: string } | undefined;
  #spillError: string | undefined;

  constructor(maxBytes: number, spill?: CaptureSpill) {
    this.#maxBytes = maxBytes;
    this.#headCap = Math.ceil(maxBytes / 2);
    this.#tailCap = maxBytes - this.#headCap;
    this.#spillWith = spill;
  }

  /** Keeps, counts and hashes a chunk; false: pause the stream until {@link drained}. */
  write(chunk: Buffer): boolean {
    noteShortLivedBytes(chunk.length);
    if (
      this.#spillWith &&
      this.#spillState === "none" &&
      this.#total + chunk.length > this.#maxBytes
    ) {
      this.#openSpill();
    }
    this.#keep(chunk);
    return this.#spillState === "open" ? this.#forward(chunk) : true;
  }

  #openSpill(): void {
    // Nothing has been dropped yet: head + tail are the whole stream so far.
    const prefix = Buffer.concat([...this.#head, ...this.#tail]);
    try {
      this.#spill = this.#spillWith!.open();
      this.#spillState = "open";
    } catch (err) {
      this.#spillState = "failed";
      this.#spillError = `the spill could not start: ${messageOf(err)}`;
      return;
    }
    if (prefix.length > 0) this.#forward(prefix);
  }

  #forward(chunk: Buffer): boolean {
    const limit = this.#spillWith!.maxBytes;
    if (this.#spilled + chunk.length > limit) {
      this.abortSpill(
        new Error(`the stream exceeded the spill maximum of ${limit} bytes; no object was kept`),
      );
      return true;
    }
    this.#spilled += chunk.length;
    try {
      return this.#spill!.write(chunk);
    } catch (err) {
      this.abortSpill(err instanceof Error ? err : new Error(String(err)));
      return true;
    }
  }

  /** Settles when the spill can take more, or has failed (then it is aborted). Never rejects. */
  async drained(): Promise<void> {
    if (this.#spillState !== "open") return;
    try {
      await this.#spill!.drained();
    } catch (err) {
      this.abortSpill(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** True while a spill is open (the stream's end must be awaited before {@link finish}). */
  get spilling(): boolean {
    return this.#spillState === "open";
  }

  /** The stream ended: completes the spill. Never rejects; a failure becomes `spillError`. */
  async finish(): Promise<void> {
    if (this.#spillState !== "open") return;
    this.#spillState = "ending";
    try {
      const location = await this.#spill!.end();
      if (this.#spillState !== "ending") return; // aborted meanwhile (deadline)
      if (this.#spilled !== this.#total) {
        throw new Error(`spilled ${this.#spilled} of ${this.#total} bytes`);
      }
      this.#object = location;
      this.#spillState = "done";
    } catch (err) {
      if (this.#spillState !== "ending") return;
      this.#spillState = "failed";
      this.#spillError = `the upload failed: ${messageOf(err)}`;
    }
  }

  /** Gives the spill up (idempotent; a completed object stays). */
  abortSpill(reason: Error): void {
    if (this.#spillState !== "open" && this.#spillState !== "ending") return;
    this.#spillState = "failed";
    this.#spillError = reason.message;
    try {
      this.#spill!.abort(reason);
    } catch {
      // The sink is being dropped; its own failure adds nothing.
    }
  }

  /** The stream uploaded whole, once {@link finish} completed it. */
  get object(): SpillObject | undefined {
    if (!this.#object) return undefined;
    return { ...this.#object, bytes: this.#spilled, sha256: this.#hash.copy().digest("hex") };
  }

  /** Why the stream's spill was not kept. */
  get spillError(): string | undefined {
    return this.#spillError;
  }

  #keep(chunk: Buffer): void {
    this.#total += chunk.length;
    this.#hash.update(chunk);
    let rest = chunk;
    if (this.#headBytes < this.#headCap) {
      const take = Math.min(this.#headCap - this.#headBytes, rest.length);
      this.#head.push(rest.subarray(0, take));
      this.#headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0 || this.#tailCap === 0) return;
    if (rest.length >= this.#tailCap) {
      // The next chunk usually replaces this tail again: keep a view, and copy only when the
      // view would pin a backing store much larger than itself (a huge chunk). ssh2's
      // chunks are single packets (≤ 32 KiB): copying each one cost 21 ms per 100 MB drained
      // (docs/benchmarks.md, "Drain").
      const view = rest.subarray(rest.length - this.#tailCap);
      this.#tail = [
        view.buffer.byteLength > 2 * this.#tailCap + 64 * 1024 ? Buffer.from(view) : view,
      ];
      this.#tailBytes = this.#tailCap;
      return;
    }
    this.#tail.push(rest);
    this.#tailBytes += rest.length;
    while (this.#tailBytes > this.#tailCap) {
      const first = this.#tail[0]!;
      const excess = this.#tailBytes - this.#tailCap;
      if (first.length <= excess) {
        this.#tail.shift();
        this.#tailBytes -= first.length;
      } else {
        this.#tail[0] = first.subarray(excess);
        this.#tailBytes -= excess;
      }
    }
  }

  /** Total bytes seen. */
  get bytes(): number {
    return this.#total;
  }

  /** True when bytes were dropped from the middle. */
  get truncated(): boolean {
    return this.#total > this.#headBytes + this.#tailBytes;
  }

  /**
   * The kept text: everything when it fit, else head + a marker naming the omitted byte count
   * + tail. UTF-8 when the kept bytes are valid UTF-8 text that JSON carries at no more than
   * base64's size; else base64 (binary output, control bytes, or text JSON escaping would
   * inflate, such as a run of quotes). So a stream never costs more than 4/3 of `maxBytes` in
   * the response, whatever the remote prints. Head and tail are encoded separately and the
   * marker, outside the base64 alphabet, splits them.
   */
  text(): { text: string; encoding: "utf8" | "base64"; sha256: string } {
    const head = Buffer.concat(this.#head);
    const tail = Buffer.concat(this.#tail);
    const sha256 = this.#hash.copy().digest("hex");
    const omitted = this.#total - head.length - tail.length;
    const kept = Buffer.concat([head, tail]);
    const isUtf8 = isValidUtf8(kept, omitted > 0) && fitsAsJsonText(kept);
    const enc = isUtf8 ? "utf8" : "base64";
    if (omitted === 0)
      return { text: Buffer.concat([head, tail]).toString(enc), encoding: enc, sha256 };
    const marker = `\n[bounded-ssh: ${omitted} bytes omitted]\n`;
    return {
      text: head.toString(enc) + marker + tail.toString(enc),
      encoding: enc,
      sha256,
    };
  }
}

/**
 * True when the bytes hold no control character but tab, newline and carriage return, and
 * their JSON string escaping is no longer than their base64 form (4/3 of the bytes).
 */
function fitsAsJsonText(buf: Buffer): boolean {
  let escaped = 0;
  for (let i = 0; i < buf.length; i++) {
    const byte = buf[i]!;
    if (byte === 0x22 || byte === 0x5c || byte === 0x09 || byte === 0x0a || byte === 0x0d) {
      escaped++;
    } else if (byte < 0x20 || byte === 0x7f) return false;
  }
  // C1 controls (U+0080–U+009F) arrive as 0xC2 0x80–0x9F in UTF-8.
  for (let i = buf.indexOf(0xc2); i !== -1 && i + 1 < buf.length; i = buf.indexOf(0xc2, i + 1)) {
    const next = buf[i + 1]!;
    if (next >= 0x80 && next <= 0x9f) return false;
  }
  return buf.length + escaped <= Math.ceil(buf.length / 3) * 4;
}

function isValidUtf8(buf: Buffer, cut: boolean): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf);
    return true;
  } catch {
    // A cut in the middle may split one multi-byte character; that alone is not binary.
    return cut && new TextDecoder("utf-8").decode(buf).split("\uFFFD").length <= 3;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

/**
 * The two captures of a session (stdout, stderr): drains the channel's streams into them,
 * knows whether both were read to their end (`complete`), completes or aborts their spills,
 * and hands them to the result.
 */
export class SessionOutput {
  readonly stdout: OutputCapture;
  readonly stderr: OutputCapture;
  /** Both readable sides have ended (every chunk was handed to its capture). */
  #ended: Promise<void> = Promise.resolve();
  /** No stream is being drained, or both ended while {@link drain}'s `trusted` said so. */
  #complete = true;
  #endSeen = true;
  /** `performance.now()` of the last chunk read (or of a spill letting a stream go on). */
  #lastDataAt = Number.NEGATIVE_INFINITY;
  /** Streams paused while their spill catches up: the wait is ours, not the server's. */
  #held = 0;
  #incompleteReason: string | undefined;
  readonly #onOutput: OnOutput | undefined;
  /** Set once the caller's `onOutput` threw: it is not called again. */
  #onOutputFailed = false;
  #callbackError: InternalError | undefined;
  #rejectCallbackFailure: (err: InternalError) => void = () => {};
  readonly #callbackFailure = new Promise<never>((_, reject) => {
    this.#rejectCallbackFailure = reject;
  });

  constructor(maxBytes: number, spill?: SpillOptions, onOutput?: OnOutput) {
    this.#onOutput = onOutput;
    // Nobody may be racing it (no command ran): never an unhandled rejection.
    this.#callbackFailure.catch(() => {});
    const spillOf = (stream: "stdout" | "stderr"): CaptureSpill | undefined =>
      spill && {
        open: () => spill.open(stream),
        maxBytes: spill.maxBytes ?? DEFAULT_SPILL_MAX_BYTES,
      };
    this.stdout = new OutputCapture(maxBytes, spillOf("stdout"));
    this.stderr = new OutputCapture(maxBytes, spillOf("stderr"));
  }

  /**
   * Always drains both streams: an unread stream never closes and stalls the command. A
   * spill that cannot keep up pauses its stream (SSH flow control then holds the remote);
   * `drained()` never rejects, so a failed spill resumes the stream at once.
   *
   * `trusted` is asked when a stream ends: true when the end is the server's (EOF or channel
   * close), false when the transport died (ssh2 ends the streams of a dead connection too).
   */
  drain(
    stdout: NodeJS.ReadableStream,
    stderr: NodeJS.ReadableStream,
    trusted: () => boolean = () => true,
  ): void {
    this.#complete = false;
    this.#endSeen = false;
    const read = (stream: NodeJS.ReadableStream, capture: OutputCapture) => {
      const name = capture === this.stdout ? "stdout" : "stderr";
      stream.on("data", (chunk: Buffer) => {
        this.#lastDataAt = performance.now();
        const more = capture.write(chunk);
        this.#deliver(name, chunk);
        if (more) return;
        this.#held += 1;
        stream.pause();
        void capture.drained().then(() => {
          this.#held -= 1;
          this.#lastDataAt = performance.now();
          stream.resume();
        });
      });
      return new Promise<boolean>((done) => stream.once("end", () => done(trusted())));
    };
    this.#ended = Promise.all([read(stdout, this.stdout), read(stderr, this.stderr)]).then(
      ([out, err]) => {
        this.#endSeen = true;
        this.#complete = out && err;
      },
    );
  }

  /**
   * Hands a chunk the capture has already counted, hashed and kept to the caller's
   * `onOutput`, as a copy the callback owns (it may keep or change it; the capture's bytes are
   * its own). A callback that throws, or returns a promise that rejects, is not called again
   * and {@link callbackFailed} rejects with `InternalError` (the session ends: see there).
   */
  #deliver(stream: "stdout" | "stderr", chunk: Buffer): void {
    if (!this.#onOutput || this.#onOutputFailed) return;
    try {
      const returned: unknown = this.#onOutput(stream, Buffer.from(chunk));
      if (returned !== null && typeof (returned as PromiseLike<unknown>)?.then === "function") {
        (returned as PromiseLike<unknown>).then(undefined, (err: unknown) =>
          this.#callbackThrew(err),
        );
      }
    } catch (err) {
      this.#callbackThrew(err);
    }
  }

  #callbackThrew(err: unknown): void {
    if (this.#onOutputFailed) return;
    this.#onOutputFailed = true;
    this.stoppedReading("options.onOutput threw; the session stopped reading the output");
    this.#callbackError = new InternalError(
      "options.onOutput threw (its error is this error's cause); the session was ended",
      { phase: "exec", commandStarted: true, cause: err },
    );
    this.#rejectCallbackFailure(this.#callbackError);
  }

  /**
   * Rejects with `InternalError` once the caller's `onOutput` has thrown (or its promise
   * rejected); never settles otherwise. The exec phase races it: a broken consumer of the
   * output ends the session like any other failure in `exec` (the command is signalled, the
   * result says so), rather than the output it asked to see going on unseen.
   */
  get callbackFailed(): Promise<never> {
    return this.#callbackFailure;
  }

  /** The error {@link callbackFailed} rejected with, once it has. */
  get callbackError(): InternalError | undefined {
    return this.#callbackError;
  }

  /** Settles when both streams have ended, the server's end or a dead transport's. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  /** Both streams ended (see {@link ended}), whether or not the end was the server's. */
  get endSeen(): boolean {
    return this.#endSeen;
  }

  /**
   * The byte counts and SHA-256 cover the whole streams: the server ended both (EOF or
   * channel close) on a live connection, or no stream was ever drained (no command ran).
   */
  get complete(): boolean {
    return this.#complete;
  }

  /** Milliseconds since the last chunk arrived (Infinity before the first one). */
  quietMs(now = performance.now()): number {
    return now - this.#lastDataAt;
  }

  /** A stream is paused until its spill takes more: the server is not the one being slow. */
  get waitingOnSpill(): boolean {
    return this.#held > 0;
  }

  /**
   * Records why reading stopped before the streams' end (the first reason wins; nothing once
   * {@link complete}). The result's `OutputIncomplete` message carries it.
   */
  stoppedReading(reason: string): void {
    if (this.#complete || this.#incompleteReason !== undefined) return;
    this.#incompleteReason = reason;
  }

  /** Why the output is not complete, when {@link stoppedReading} was told. */
  get incompleteReason(): string | undefined {
    return this.#complete ? undefined : this.#incompleteReason;
  }

  /**
   * Completes the spilled streams within `ms` (the exec allowance: the teardown reserve
   * stays). The streams' end is the exec phase's to wait for (SshConnection reads until the
   * channel's EOF or close): an output that did not end is never uploaded as whole, so its
   * spills are aborted here. An upload that does not finish in time is aborted: the result
   * keeps head + tail and says why in `output.spillError`.
   */
  async finishSpills(deadline: Deadline, ms: number): Promise<void> {
    const captures = [this.stdout, this.stderr].filter((c) => c.spilling);
    if (captures.length === 0) return;
    if (!this.#complete) {
      this.abortSpills("the output did not end before the session stopped reading it");
      return;
    }
    const done = deadline.wait(ms, Promise.all(captures.map((c) => c.finish())));
    if (!(await done))
      this.abortSpills("the upload did not complete within the session's deadline");
  }

  /** The output is incomplete: no object may claim to be the whole stream. Idempotent. */
  abortSpills(reason: string): void {
    for (const capture of [this.stdout, this.stderr]) capture.abortSpill(new Error(reason));
  }
}
