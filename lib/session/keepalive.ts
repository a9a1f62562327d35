import type { Deadline } from "../deadline.ts";

/** Keepalive settings (RunOptions.keepalive). */
export interface KeepaliveSettings {
  intervalMs: number;
  countMax: number;
}

/**
 * SSH keepalive owned by the engine instead of ssh2 (whose keepalive only uses GLOBAL
 * requests, which TinySSH never answers: a silent command longer than ~4 s there ended in a
 * false ConnectionLost). Every `intervalMs` one probe is sent; any answer to any probe resets
 * the count of unanswered ticks; the peer is declared dead on the tick that would exceed
 * `countMax`, i.e. after interval × (countMax + 1) of silence — the same arithmetic as ssh2's
 * `keepaliveInterval`/`keepaliveCountMax` and OpenSSH's `ServerAlive*`.
 *
 * `probe(onReply)` sends one probe of whatever kind fits the session now (global request
 * before a channel exists, channel request after) and returns false when it cannot send.
 * Every wait goes through the session's {@link Deadline}; {@link stop} is idempotent.
 */
export class Keepalive {
  readonly #settings: KeepaliveSettings;
  readonly #deadline: Deadline;
  readonly #probe: (onReply: () => void) => boolean;
  readonly #onDead: (missed: number) => void;
  #unanswered = 0;
  #running = false;
  #stopped!: () => void;
  readonly #stoppedPromise: Promise<void>;

  constructor(
    settings: KeepaliveSettings,
    deadline: Deadline,
    probe: (onReply: () => void) => boolean,
    onDead: (missed: number) => void,
  ) {
    this.#settings = settings;
    this.#deadline = deadline;
    this.#probe = probe;
    this.#onDead = onDead;
    this.#stoppedPromise = new Promise<void>((resolve) => {
      this.#stopped = resolve;
    });
  }

  /** Starts ticking; a second call does nothing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#loop();
  }

  /** Stops for good and releases the pending timer at once. */
  stop(): void {
    this.#running = false;
    this.#stopped();
  }

  async #loop(): Promise<void> {
    const { intervalMs, countMax } = this.#settings;
    while (this.#running) {
      // `wait` resolves true when stopped, false when the interval passed (or the caller
      // aborted, which the session handles on its own).
      const stopped = await this.#deadline.wait(intervalMs, this.#stoppedPromise);
      if (stopped || !this.#running || this.#deadline.aborted) return;
      this.#unanswered += 1;
      if (this.#unanswered > countMax) {
        this.#running = false;
        this.#onDead(this.#unanswered - 1);
        return;
      }
      const sent = this.#probe(() => {
        this.#unanswered = 0;
      });
      // Nothing to probe with (transport gone): the session's own close/error reports that.
      if (!sent) return;
    }
  }
}
