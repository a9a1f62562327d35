/**
 * A real S3-compatible server (s3rver, files in a temp directory) on 127.0.0.1 for the spill
 * tests and bench, with the real SDK v3 client pointed at it (path-style, fake credentials).
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";

export interface LocalS3 {
  client: S3Client;
  endpoint: string;
  bucket: string;
  /** Streams an object and returns its size and SHA-256 (hex). */
  digest(key: string, bucket?: string): Promise<{ bytes: number; sha256: string }>;
  /** Stops the server (the client stays: later requests fail to connect). */
  stop(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

export async function startS3rver(bucket = "spill-test"): Promise<LocalS3> {
  const directory = await mkdtemp(path.join(tmpdir(), "bssh-s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const address: AddressInfo = await server.run();
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    maxAttempts: 1,
  });
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    server.httpServer.closeAllConnections?.();
    await server.close();
  };
  return {
    client,
    endpoint,
    bucket,
    digest: async (key, inBucket = bucket) => {
      const out = await client.send(new GetObjectCommand({ Bucket: inBucket, Key: key }));
      const hash = createHash("sha256");
      let bytes = 0;
      for await (const chunk of out.Body as Readable) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      return { bytes, sha256: hash.digest("hex") };
    },
    stop,
    close: async () => {
      await stop();
      client.destroy();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
