/**
 * A real S3-compatible server (s3rver, files in a temp directory) on 127.0.0.1 for the spill
 * tests and bench, with the real SDK v3 client pointed at it (path-style, fake credentials).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
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

/** s3rver in this process: simplest to stop mid-test. */
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
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    server.httpServer.closeAllConnections?.();
    await server.close();
  };
  return localS3(address.port, bucket, directory, stop);
}

/**
 * s3rver in a child process (benchmarks): its disk writes and hashing do not share the
 * engine's event loop and CPU thread, as S3 would not.
 */
export async function startS3rverProcess(bucket = "spill-bench"): Promise<LocalS3> {
  const directory = await mkdtemp(path.join(tmpdir(), "bssh-s3rver-"));
  const bin = createRequire(import.meta.url).resolve("s3rver/bin/s3rver.js");
  const child = spawn(
    process.execPath,
    [bin, "-d", directory, "-a", "127.0.0.1", "-p", "0", "-s", "--configure-bucket", bucket],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const found = /listening on [\d.]+:(\d+)/.exec(out);
      if (found) resolve(Number(found[1]));
    });
    child.once("exit", (code) => reject(new Error(`s3rver exited ${code}: ${out}`)));
  });
  child.stdout.resume();
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await exited;
  };
  return localS3(port, bucket, directory, stop);
}

function localS3(
  port: number,
  bucket: string,
  directory: string,
  stop: () => Promise<void>,
): LocalS3 {
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    maxAttempts: 1,
  });
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
