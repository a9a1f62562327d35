import { PassThrough } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { OutputSpill } from "../../lib/types.ts";
import { CALL_CAPS, callSignal, raceSignal, send, withSignal } from "../runtime/aws-clients.ts";

/** Multipart part size: S3's minimum is 5 MiB; 8 MiB keeps 10,000 parts above 78 GiB. */
export const SPILL_PART_BYTES = 8 * 1024 * 1024;
/** Parts uploaded at once: memory stays near (queue + 1) × part size whatever the stream. */
export const SPILL_QUEUE_SIZE = 2;
/** Bytes buffered ahead of the upload before the engine is told to pause the stream. */
const BODY_HIGH_WATER_MARK = 1024 * 1024;

/** Opens the sink of one stream of one invocation. */
export interface SpillStore {
  /** `caller`: the verified caller (IAM principal or state machine ARN): part of the key. */
  open(requestId: string, stream: "stdout" | "stderr", caller: string): OutputSpill;
  /** Settles once `open` can be called (a lazily loaded SDK). @default ready at once */
  ready?(): Promise<void>;
  /**
   * Waits, no longer than `signal`, for the clean-up of the invocation's failed spills
   * (AbortMultipartUpload), then cuts what is left: nothing of a spill outlives the
   * invocation. @default nothing to wait for
   */
  settle?(requestId: string, signal: AbortSignal): Promise<void>;
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
  /**
   * Cap of each S3 call of the upload (ms): one part, the create, the complete. A call that
   * outlives it is aborted and fails the spill. @default CALL_CAPS.spillPartMs
   */
  partTimeoutMs?: number;
  /** Cap of the AbortMultipartUpload sent when a spill fails (ms). @default CALL_CAPS.spillAbortMs */
  abortTimeoutMs?: number;
}

/**
 * The caller's part of a spill key (issue 23): `<account>/<kind>/<name>[/<session>]`, from the
 * caller ARN, so an operator can grant read access per caller with a key prefix
 * (docs/fleet.md). Each kind has a fixed number of segments, so one caller's prefix never
 * covers another's objects:
 *
 * - `arn:aws:sts::<acct>:assumed-role/<role>/<session>` → `<acct>/assumed-role/<role>/<session>`
 *   (prefix `spill/<acct>/assumed-role/<role>/` covers every session of the role)
 * - `arn:aws:iam::<acct>:user/<path/name>` → `<acct>/user/<path%2Fname>` (likewise `role`)
 * - `arn:aws:states:<region>:<acct>:stateMachine:<name>` → `<acct>/stateMachine/<name>`
 * - anything else → `other/<the whole caller, percent-encoded>`
 *
 * Every segment is percent-encoded (`encodeURIComponent`; `.` and `..` too), so a caller
 * cannot add segments or climb out of its prefix. Deterministic: the same caller, the same
 * prefix.
 */
export function callerKeyPrefix(caller: string): string {
  const seg = (text: string): string =>
    /^\.*$/.test(text) ? text.replaceAll(".", "%2E") || "%00" : encodeURIComponent(text);
  const arn = /^arn:aws[a-z-]*:(iam|sts|states):[a-z0-9-]*:(\d{12}):(.+)$/.exec(caller);
  if (arn) {
    const [, service, account, resource] = arn as unknown as [string, string, string, string];
    let parts: string[] | undefined;
    if (service === "sts") {
      const m = /^assumed-role\/([^/]+)\/([^/]+)$/.exec(resource);
      if (m) parts = ["assumed-role", m[1]!, m[2]!];
    } else if (service === "iam") {
      const m = /^(user|role)\/(.+)$/.exec(resource);
      if (m) parts = [m[1]!, m[2]!];
    } else {
      const m = /^stateMachine:([^:]+)$/.exec(resource);
      if (m) parts = ["stateMachine", m[1]!];
    }
    if (parts) return [account, ...parts].map(seg).join("/");
  }
  return `other/${seg(caller)}`;
}

/**
 * Spills to one S3 bucket: `spill/<caller>/<yyyy>/<mm>/<dd>/<requestId>/<stream>` (UTC;
 * `<caller>` is {@link callerKeyPrefix}), so a lifecycle rule can expire them, an operator can
 * find an invocation's objects by its id, and read access can be granted per caller by prefix.
 */
export class S3SpillStore implements SpillStore {
  readonly #opts: S3SpillStoreOptions;
  /** The spills of each invocation still open or cleaning up, until {@link settle}. */
  readonly #spills = new Map<string, Set<S3Spill>>();

  constructor(options: S3SpillStoreOptions) {
    this.#opts = options;
  }

  open(requestId: string, stream: "stdout" | "stderr", caller: string): OutputSpill {
    const now = (this.#opts.now ?? (() => new Date()))();
    const date = now.toISOString().slice(0, 10).replaceAll("-", "/");
    const spill = new S3Spill({
      ...this.#opts,
      key: `spill/${callerKeyPrefix(caller)}/${date}/${encodeURIComponent(requestId)}/${stream}`,
    });
    const open = this.#spills.get(requestId) ?? new Set<S3Spill>();
    this.#spills.set(requestId, open);
    open.add(spill);
    return spill;
  }

  async settle(requestId: string, signal: AbortSignal): Promise<void> {
    const open = this.#spills.get(requestId);
    this.#spills.delete(requestId);
    if (open) await Promise.all([...open].map((spill) => spill.settle(signal)));
  }
}

/**
 * One stream uploaded while it drains: a multipart `Upload` reads a PassThrough, so a slow
 * upload fills the PassThrough and `write` returns false (the engine pauses the channel, SSH
 * flow control holds the remote).
 *
 * Bounded: every S3 call of the upload goes through the one rule (aws-clients.ts) with its own
 * cap (`partTimeoutMs`) and the spill's abort signal. A call that fails or stalls past its cap
 * fails the spill at once: `drained` rejects (the engine drops the spill and resumes the
 * stream), the other calls in flight are aborted, and AbortMultipartUpload is sent (capped by
 * `abortTimeoutMs`) before `end` rejects, with a message that says whether it was. lib-storage's
 * own clean-up is not relied on: it sends AbortMultipartUpload only once every part in flight
 * has settled, and `Upload.abort()` rejects `done()` before it has.
 */
export class S3Spill implements OutputSpill {
  readonly #body = new PassThrough({ highWaterMark: BODY_HIGH_WATER_MARK });
  readonly #upload: Upload;
  readonly #done: Promise<{ bucket: string; key: string }>;
  readonly #controller = new AbortController();
  /** Rejecters of the `drained()` calls waiting for a drain. */
  readonly #waiting = new Set<(err: Error) => void>();
  #failure: Error | undefined;
  #cleanup: Promise<void> | undefined;
  /** Cuts the clean-up (and a create still in flight) when the invocation can wait no more. */
  readonly #cutoff = new AbortController();
  #created: Promise<CreateMultipartUploadCommandOutput> | undefined;
  readonly #opts: S3SpillStoreOptions & { key: string };

  constructor(options: S3SpillStoreOptions & { key: string }) {
    this.#opts = options;
    const { client, bucket, key } = options;
    const partMs = options.partTimeoutMs ?? CALL_CAPS.spillPartMs;
    const bounded = withSignal(client, (command) =>
      // The create is not cut by the spill's abort (its upload id is what the clean-up
      // aborts), only by its cap and the invocation's cutoff.
      command instanceof CreateMultipartUploadCommand
        ? callSignal(this.#cutoff.signal, partMs)
        : callSignal(this.#controller.signal, partMs),
    );
    // Every call of the upload: the create's id is kept, and the first failure fails the spill.
    const watched = new Proxy(bounded, {
      get: (target, property) => {
        if (property !== "send") return Reflect.get(target, property, target);
        return (command: object) => {
          const sent = (target.send as (c: object) => Promise<unknown>)(command);
          if (command instanceof CreateMultipartUploadCommand) {
            this.#created = sent as Promise<CreateMultipartUploadCommandOutput>;
          }
          sent.catch((err: unknown) => {
            if (this.#controller.signal.aborted) return; // our own abort, after a failure
            const name = command.constructor.name.replace(/Command$/, "");
            const e = asError(err);
            this.#fail(
              e.name === "TimeoutError" || e.name === "AbortError"
                ? new Error(`S3 ${name} did not complete within ${partMs} ms`, { cause: e })
                : new Error(`S3 ${name} failed: ${e.name}: ${e.message}`, { cause: e }),
            );
          });
          return sent;
        };
      },
    });
    this.#upload = new Upload({
      client: watched,
      params: {
        Bucket: bucket,
        Key: key,
        Body: this.#body,
        ContentType: "application/octet-stream",
      },
      partSize: options.partSize ?? SPILL_PART_BYTES,
      queueSize: options.queueSize ?? SPILL_QUEUE_SIZE,
      // This class aborts the multipart upload itself (see above).
      leavePartsOnError: true,
      abortController: this.#controller,
    });
    this.#done = this.#upload.done().then(
      () => ({ bucket, key }),
      async (err: unknown) => {
        this.#fail(asError(err));
        await this.#cleanup;
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
      // At the first failure, not when the clean-up is over: the stream resumes at once.
      const onFail = (err: Error) => {
        this.#body.off("drain", onDrain);
        reject(err);
      };
      const onDrain = () => {
        this.#waiting.delete(onFail);
        resolve();
      };
      this.#body.once("drain", onDrain);
      this.#waiting.add(onFail);
    });
  }

  end(): Promise<{ bucket: string; key: string }> {
    if (!this.#failure) this.#body.end();
    return this.#done;
  }

  abort(reason: Error): void {
    this.#fail(reason);
  }

  /**
   * Waits for the clean-up of a failed spill (AbortMultipartUpload) no longer than `signal`,
   * then cuts it: its socket is destroyed, nothing outlives the invocation. A spill that
   * completed or never failed has nothing to wait for.
   */
  async settle(signal: AbortSignal): Promise<void> {
    try {
      if (this.#cleanup) await raceSignal(this.#cleanup, signal);
    } catch {
      // The invocation can wait no more: the parts are left to the bucket's lifecycle rule.
    } finally {
      this.#cutoff.abort(new DOMException("the invocation ended", "AbortError"));
    }
  }

  /** The first failure wins: stop every call, drop the body, abort the multipart upload. */
  #fail(err: Error): void {
    if (this.#failure) return;
    // Its own object: the message is completed by the clean-up (the cause keeps the original).
    const failure = new Error(`${err.message}; the multipart upload is aborted`, { cause: err });
    this.#failure = failure;
    for (const reject of this.#waiting) reject(failure);
    this.#waiting.clear();
    this.#controller.abort(err);
    this.#body.destroy();
    this.#cleanup = this.#abortMultipart();
  }

  /** Sends AbortMultipartUpload when a multipart upload was created; says so in the failure. */
  async #abortMultipart(): Promise<void> {
    const failure = this.#failure!;
    let uploadId: string | undefined;
    try {
      uploadId = (await this.#created)?.UploadId;
    } catch {
      // The create failed: there is nothing to abort.
    }
    if (!uploadId) return;
    const { client, bucket, key } = this.#opts;
    try {
      await send(
        client,
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }),
        callSignal(this.#cutoff.signal, this.#opts.abortTimeoutMs ?? CALL_CAPS.spillAbortMs),
      );
      failure.message = `${failure.message} (AbortMultipartUpload sent)`;
    } catch (abortErr) {
      failure.message = `${failure.message.replace(/; the multipart upload is aborted$/, "")}; AbortMultipartUpload failed (${asError(abortErr).name}): the bucket's lifecycle rule removes the parts`;
    }
  }
}

function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(String(err));
}
