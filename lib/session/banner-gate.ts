import { Duplex } from "node:stream";

/** RFC 4253 §4.2 allowances and the limits that keep a hostile peer from growing memory. */
export const BANNER_LIMITS = {
  /** Lines a server may send before its identification line. */
  maxPreambleLines: 1024,
  /** Longest line accepted before the identification line (bytes, CRLF included). */
  maxLineBytes: 8192,
  /** Longest identification line (RFC 4253: 255 bytes including CR LF). */
  maxIdentBytes: 255,
} as const;

export interface BannerGateEvents {
  /** The server's identification line arrived (without CR LF). */
  onIdent: (ident: string) => void;
  /** The peer sent something that can never become a valid identification. */
  onProtocolError: (message: string) => void;
}

/**
 * A Duplex between the transport (a TCP socket, or a jump host's channel) and ssh2 that holds back everything the server sends until
 * its identification line is complete, then hands ssh2 the line and what follows in one chunk.
 *
 * Why: ssh2 1.17's header parser keeps only the first partial chunk, so a banner split into
 * three or more TCP segments is never parsed and the session hangs. Writes pass straight
 * through, so ssh2 sends the client's identification at once (servers that wait for the
 * client's banner first still work), and the gate tells the engine exactly when the `banner`
 * phase ends. Preamble lines (RFC 4253 §4.2) are checked against {@link BANNER_LIMITS} and
 * dropped, so memory stays bounded whatever the peer sends.
 */
export class BannerGate extends Duplex {
  readonly #sock: Duplex;
  readonly #events: BannerGateEvents;
  #pending: Buffer = Buffer.alloc(0);
  #preambleLines = 0;
  #open = false;
  #failed = false;

  constructor(sock: Duplex, events: BannerGateEvents) {
    super({ allowHalfOpen: false });
    this.#sock = sock;
    this.#events = events;
    sock.on("data", this.#onData);
    sock.on("end", this.#onEnd);
    sock.on("close", this.#onClose);
    sock.on("error", this.#onError);
  }

  /** Stops forwarding and detaches from the transport (its owner destroys it). */
  detach(): void {
    this.#sock.off("data", this.#onData);
    this.#sock.off("end", this.#onEnd);
    this.#sock.off("close", this.#onClose);
    this.#sock.off("error", this.#onError);
  }

  /**
   * Hands ssh2 a chunk that is valid only during this call (a read into a reused buffer),
   * when it can take it synchronously: past the identification line, flowing, nothing queued
   * (what `push` itself does then: emit `data` at once). False, having done nothing, when it
   * would be queued instead; the caller then passes a copy as usual.
   */
  receiveInPlace(chunk: Buffer): boolean {
    if (
      !this.#open ||
      this.destroyed ||
      this.readableFlowing !== true ||
      this.readableLength !== 0 ||
      this.listenerCount("data") === 0
    ) {
      return false;
    }
    this.emit("data", chunk);
    return true;
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#open) {
      if (!this.push(chunk)) this.#sock.pause();
      return;
    }
    if (this.#failed) return;
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#scan();
  };

  #scan(): void {
    for (;;) {
      const nl = this.#pending.indexOf(0x0a);
      if (nl === -1) {
        // No complete line yet. An identification line may be at most maxIdentBytes; any
        // other line maxLineBytes. Beyond that the peer can never produce a valid banner.
        const limit = startsWithSsh(this.#pending)
          ? BANNER_LIMITS.maxIdentBytes
          : BANNER_LIMITS.maxLineBytes;
        if (this.#pending.length > limit) {
          this.#fail(`line longer than ${limit} bytes before the SSH identification`);
        }
        return;
      }
      const lineLength = nl + 1;
      if (startsWithSsh(this.#pending)) {
        if (lineLength > BANNER_LIMITS.maxIdentBytes) {
          this.#fail(`identification line longer than ${BANNER_LIMITS.maxIdentBytes} bytes`);
          return;
        }
        const ident = this.#pending.subarray(0, nl).toString("latin1").replace(/\r$/, "");
        if (!/^SSH-(2\.0|1\.99)-/.test(ident)) {
          this.#fail(`unsupported SSH protocol version in ${JSON.stringify(ident.slice(0, 64))}`);
          return;
        }
        const rest = this.#pending;
        this.#pending = Buffer.alloc(0);
        this.#open = true;
        this.#events.onIdent(ident);
        this.push(rest);
        return;
      }
      if (lineLength > BANNER_LIMITS.maxLineBytes) {
        this.#fail(
          `line longer than ${BANNER_LIMITS.maxLineBytes} bytes before the identification`,
        );
        return;
      }
      this.#preambleLines += 1;
      if (this.#preambleLines > BANNER_LIMITS.maxPreambleLines) {
        this.#fail(`more than ${BANNER_LIMITS.maxPreambleLines} lines before the identification`);
        return;
      }
      this.#pending = this.#pending.subarray(lineLength);
    }
  }

  #fail(message: string): void {
    this.#failed = true;
    this.#pending = Buffer.alloc(0);
    this.#events.onProtocolError(message);
  }

  readonly #onEnd = (): void => {
    this.push(null);
  };

  readonly #onClose = (): void => {
    if (!this.destroyed) this.destroy();
  };

  readonly #onError = (err: Error): void => {
    if (!this.destroyed) this.destroy(err);
  };

  override _read(): void {
    if (this.#open) this.#sock.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error) => void): void {
    if (this.#sock.destroyed) {
      callback();
      return;
    }
    // Complete at once unless the socket is full: a packet must never wait in this stream's
    // buffer behind an earlier write's callback (teardown may destroy the socket right after
    // ssh2 queued a signal request and DISCONNECT).
    if (this.#sock.write(chunk)) callback();
    else this.#sock.once("drain", () => callback());
  }

  override _final(callback: (err?: Error) => void): void {
    if (!this.#sock.destroyed) this.#sock.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    this.detach();
    callback(err);
  }
}

function startsWithSsh(buf: Buffer): boolean {
  // Compare only what has arrived: "SS" is a possible start of "SSH-".
  const probe = "SSH-";
  const n = Math.min(buf.length, probe.length);
  return buf.subarray(0, n).toString("latin1") === probe.slice(0, n) && n > 0;
}
