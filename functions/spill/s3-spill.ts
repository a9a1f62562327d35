import { PassThrough } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { OutputSpill } from "../../lib/types.ts";

/** Multipart part size: S3's minimum is 5 MiB; 8 MiB keeps 10,000 parts above 78 GiB. */
export const SPILL_PART_BYTES = 8 * 1024 * 1024;
/** Parts uploaded at once: memory stays near (queue + 1) × part size whatever the stream. */
export const SPILL_QUEUE_SIZE = 2;
/** Bytes buffered ahead of the upload before the engine is told to pause the stream. */
const BODY_HIGH_WATER_MARK = 1024 * 1024;

/** Opens the sink of one stream of one invocation. */
export interface SpillStore {
  open(requestId: string, stream: "stdout" | "stderr"): OutputSpill;
  /** Settles once `open` can be called (a lazily loaded SDK). @default ready at once */
  ready?(): Promise<void>;
}

/** Options of {@link S3SpillStore}. */
export interface S3SpillStoreOptions {
  client: S3Client;
  bucket: string;
  /** @default {@link SPILL_PART_BYTES} */
  partSize?: number;
  /** @default {@link SPILL_QUEUE_SIZE} */
  queueSize?: number;
  /** Clock for the key's date prefix (tests). @default () => new Date() */
  now?: () => Date;
}

/**
 * Spills to one S3 bucket: `spill/<yyyy>/<mm>/<dd>/<requestId>/<stream>` (UTC), so a
 * lifecycle rule can expire them and an operator can find an invocation's objects by its id.
 */
export class S3SpillStore implements SpillStore {
  readonly #opts: S3SpillStoreOptions;

  constructor(options: S3SpillStoreOptions) {
    this.#opts = options;
  }

  open(requestId: string, stream: "stdout" | "stderr"): OutputSpill {
    const now = (this.#opts.now ?? (() => new Date()))();
    const date = now.toISOString().slice(0, 10).replaceAll("-", "/");
    return new S3Spill({
      ...this.#opts,
      key: `spill/${date}/${encodeURIComponent(requestId)}/${stream}`,
    });
  }
}

/**
 * One stream uploaded while it drains: a multipart `Upload` reads a PassThrough, so a slow
 * upload fills the PassThrough and `write` returns false (the engine pauses the channel, SSH
 * flow control holds the remote). A failed upload rejects `drained` and `end`; `abort` stops
 * it and removes the parts already sent.
 */
export class S3Spill implements OutputSpill {
  readonly #body = new PassThrough({ highWaterMark: BODY_HIGH_WATER_MARK });
  readonly #upload: Upload;
  readonly #done: Promise<{ bucket: string; key: string }>;
  #failure: Error | undefined;

  constructor(options: S3SpillStoreOptions & { key: string }) {
    const { client, bucket, key } = options;
    this.#upload = new Upload({
      client,
      params: {
        Bucket: bucket,
        Key: key,
        Body: this.#body,
        ContentType: "application/octet-stream",
      },
      partSize: options.partSize ?? SPILL_PART_BYTES,
      queueSize: options.queueSize ?? SPILL_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    this.#done = this.#upload.done().then(
      () => ({ bucket, key }),
      (err: unknown) => {
        this.#failure ??= err instanceof Error ? err : new Error(String(err));
        this.#body.destroy();
        throw this.#failure;
      },
    );
    this.#done.catch(() => {});
  }

  write(chunk: Buffer): boolean {
    if (this.#failure) throw this.#failure;
    return this.#body.write(chunk);
  }

  drained(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!this.#body.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onDrain = () => resolve();
      this.#body.once("drain", onDrain);
      this.#done.then(
        () => this.#body.off("drain", onDrain),
        (err: unknown) => {
          this.#body.off("drain", onDrain);
          reject(err);
        },
      );
    });
  }

  end(): Promise<{ bucket: string; key: string }> {
    if (!this.#failure) this.#body.end();
    return this.#done;
  }

  abort(reason: Error): void {
    this.#failure ??= reason;
    // Upload.abort rejects done() and aborts the multipart upload (no parts left behind).
    void this.#upload.abort().catch(() => undefined);
    this.#body.destroy();
  }
}
