import { createHash, type Hash } from "node:crypto";

/**
 * Keeps at most `maxBytes` of one stream — the first half and the last half — while counting
 * and hashing every byte, so output beyond the cap is never silently lost: the caller gets
 * the exact byte count and SHA-256 of the full stream. The stream is always drained (an
 * undrained channel never closes and blocks the remote command on flow control).
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

  constructor(maxBytes: number) {
    this.#headCap = Math.ceil(maxBytes / 2);
    this.#tailCap = maxBytes - this.#headCap;
  }

  write(chunk: Buffer): void {
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
      // Copy so a huge chunk's backing memory is not retained by a small view.
      this.#tail = [Buffer.from(rest.subarray(rest.length - this.#tailCap))];
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
   * + tail. UTF-8 when the kept bytes are valid UTF-8, else base64 (binary output; head and
   * tail are encoded separately and the marker, outside the base64 alphabet, splits them).
   */
  text(): { text: string; encoding: "utf8" | "base64"; sha256: string } {
    const head = Buffer.concat(this.#head);
    const tail = Buffer.concat(this.#tail);
    const sha256 = this.#hash.copy().digest("hex");
    const omitted = this.#total - head.length - tail.length;
    const isUtf8 = isValidUtf8(Buffer.concat([head, tail]), omitted > 0);
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

function isValidUtf8(buf: Buffer, cut: boolean): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf);
    return true;
  } catch {
    // A cut in the middle may split one multi-byte character; that alone is not binary.
    return cut && new TextDecoder("utf-8").decode(buf).split("\uFFFD").length <= 3;
  }
}
