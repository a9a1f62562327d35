import { HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3SpillStore } from "../../functions/spill/s3-spill.ts";
import { runCommand } from "../../lib/index.ts";
import type { RunResult } from "../../lib/types.ts";
import { type LocalS3, startS3rver } from "../helpers/s3rver.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

/** The caller whose prefix the spill keys carry. */
const CALLER_ARN = "arn:aws:sts::123456789012:assumed-role/ops/alice";

// The S3 sink through the engine: a real sshd and a real S3 API (s3rver) on loopback.

let sshd: SshdServer;
let s3: LocalS3;
beforeAll(async () => {
  [sshd, s3] = await Promise.all([startSshd(), startS3rver()]);
});
afterAll(async () => {
  await Promise.all([sshd?.stop(), s3?.close()]);
});

const MB100 = 104_857_600;

async function run(command: string, store: S3SpillStore, budgetMs: number, requestId: string) {
  const start = performance.now();
  const result: RunResult = await runCommand(
    { host: sshd.host, port: sshd.port, username: sshd.username, command },
    {
      secret: { privateKey: sshd.keys.ed25519.privateKey },
      knownHosts: sshd.knownHostsLine,
      budgetMs,
      requestId,
      spill: { open: (stream) => store.open(requestId, stream, CALLER_ARN) },
    },
  );
  return { result, elapsedMs: performance.now() - start };
}

describe("spilling to S3", () => {
  it("uploads 100 MB of stdout whole: the object's SHA-256 is the stream's", async () => {
    const store = new S3SpillStore({
      client: s3.client,
      bucket: s3.bucket,
      now: () => new Date("2026-03-04T05:06:07Z"),
    });
    // Loaded 2-core machine: 100 MB through SSH and a disk-backed S3 stand-in.
    const budgetMs = 120_000;
    const { result, elapsedMs } = await run(
      `head -c ${MB100} /dev/urandom`,
      store,
      budgetMs,
      "req-100mb",
    );
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(MB100);
    expect(result.output.spillError).toBeUndefined();
    const object = result.output.stdoutObject!;
    expect(object).toEqual({
      bucket: s3.bucket,
      key: "spill/123456789012/assumed-role/ops/alice/2026/03/04/req-100mb/stdout",
      bytes: MB100,
      sha256: result.output.stdoutSha256,
    });
    const stored = await s3.digest(object.key);
    expect(stored).toEqual({ bytes: MB100, sha256: result.output.stdoutSha256 });
    expect(elapsedMs).toBeLessThan(budgetMs);
    console.log(`100 MB spilled to s3rver in ${Math.round(elapsedMs)} ms`);
  }, 150_000);

  it("still returns head + tail with a spillError when the bucket does not exist", async () => {
    const store = new S3SpillStore({ client: s3.client, bucket: "no-such-bucket" });
    const { result } = await run("seq 1 3000000", store, 30_000, "req-missing");
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(22_888_896);
    expect(result.output.stdoutObject).toBeUndefined();
    expect(result.output.spillError).toMatch(/^stdout: .*(bucket|Bucket)/);
    expect(result.stdout).toMatch(/^1\n2\n[\s\S]*bytes omitted[\s\S]*\n3000000\n$/);
  });

  it("aborts the multipart upload when the stream exceeds the spill maximum", async () => {
    const store = new S3SpillStore({ client: s3.client, bucket: s3.bucket });
    const start = performance.now();
    const result = await runCommand(
      { host: sshd.host, port: sshd.port, username: sshd.username, command: "seq 1 3000000" },
      {
        secret: { privateKey: sshd.keys.ed25519.privateKey },
        knownHosts: sshd.knownHostsLine,
        budgetMs: 30_000,
        spill: { open: (s) => store.open("req-too-big", s, CALLER_ARN), maxBytes: 10_000_000 },
      },
    );
    expect(performance.now() - start).toBeLessThan(30_000);
    expect(result.output.stdoutBytes).toBe(22_888_896);
    expect(result.output.stdoutObject).toBeUndefined();
    expect(result.output.spillError).toMatch(/spill maximum of 10000000 bytes/);
    const listed = await s3.client.send(
      new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: "spill/" }),
    );
    expect((listed.Contents ?? []).map((o) => o.Key)).not.toContainEqual(
      expect.stringContaining("req-too-big"),
    );
  });

  it("still returns when the S3 endpoint goes away mid-upload", async () => {
    const other = await startS3rver("gone");
    const store = new S3SpillStore({ client: other.client, bucket: "gone" });
    await other.stop();
    const { result, elapsedMs } = await run("seq 1 3000000", store, 30_000, "req-gone");
    await other.close();
    expect(elapsedMs).toBeLessThan(30_000);
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(22_888_896);
    expect(result.output.spillError).toMatch(/^stdout: /);
    expect(result.stdout).toMatch(/\n3000000\n$/);
  });

  it("keeps an object small enough for one part (PutObject)", async () => {
    const store = new S3SpillStore({ client: s3.client, bucket: s3.bucket });
    const { result } = await run("seq 1 100000", store, 30_000, "req-small");
    const object = result.output.stdoutObject!;
    expect(object.bytes).toBe(588_895);
    const head = await s3.client.send(
      new HeadObjectCommand({ Bucket: s3.bucket, Key: object.key }),
    );
    expect(head.ContentLength).toBe(588_895);
    expect((await s3.digest(object.key)).sha256).toBe(result.output.stdoutSha256);
  });
});
