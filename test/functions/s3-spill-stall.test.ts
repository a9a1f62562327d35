/**
 * A spill whose S3 parts stall: each S3 call of the upload has its own cap, a stalled part
 * fails the spill at once (the stream resumes, the command is not held), AbortMultipartUpload
 * is sent, and `output.spillError` says so. s3rver on loopback behind an HTTP proxy that
 * swallows UploadPart requests (accepts them, never answers), answers AbortMultipartUpload
 * itself (s3rver does not implement it) and logs every request.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callSignal, s3Client } from "../../functions/runtime/aws-clients.ts";
import { S3Spill, S3SpillStore } from "../../functions/spill/s3-spill.ts";
import { runCommand } from "../../lib/index.ts";
import { type LocalS3, startS3rver } from "../helpers/s3rver.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

/** The caller whose prefix the spill keys carry. */
const CALLER_ARN = "arn:aws:sts::123456789012:assumed-role/ops/alice";

interface Logged {
  method: string;
  url: string;
  status?: number;
}

/** An HTTP proxy to s3rver that never answers UploadPart while `stallParts` is set. */
async function stallingS3(upstreamPort: number) {
  const log: Logged[] = [];
  const held = new Map<http.ServerResponse, string>();
  const state = { stallParts: true, stallAborts: false };
  const server = http.createServer((req, res) => {
    const entry: Logged = { method: req.method ?? "", url: req.url ?? "" };
    log.push(entry);
    if (state.stallParts && req.method === "PUT" && /[?&]partNumber=/.test(entry.url)) {
      req.resume(); // read the body, answer nothing
      held.set(res, "UploadPart");
      res.once("close", () => held.delete(res));
      return;
    }
    if (state.stallAborts && req.method === "DELETE" && /[?&]uploadId=/.test(entry.url)) {
      req.resume();
      held.set(res, "AbortMultipartUpload");
      res.once("close", () => held.delete(res));
      return;
    }
    if (req.method === "DELETE" && /[?&]uploadId=/.test(entry.url)) {
      // AbortMultipartUpload: s3rver does not implement it (405); answer as S3 does.
      entry.status = 204;
      res.writeHead(204).end();
      return;
    }
    const upstream = http.request(
      {
        host: "127.0.0.1",
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (up) => {
        entry.status = up.statusCode;
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    state,
    /** Requests held unanswered whose client has not gone. */
    held: (operation: string) => [...held.values()].filter((o) => o === operation).length,
    close: async () => {
      for (const res of held.keys()) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

let s3: LocalS3;
let sshd: SshdServer;
let proxy: Awaited<ReturnType<typeof stallingS3>>;
beforeAll(async () => {
  [s3, sshd] = await Promise.all([startS3rver("stall"), startSshd()]);
  proxy = await stallingS3(Number(new URL(s3.endpoint).port));
});
afterAll(async () => {
  await Promise.all([proxy?.close(), s3?.close(), sshd?.stop()]);
});

async function client() {
  return s3Client({
    endpoint: proxy.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
}

const MiB = 1024 * 1024;

describe("a spill whose parts stall", () => {
  it("fails at the part's cap, aborts the multipart upload and says so", async () => {
    const key = "stall/direct";
    const spill = new S3Spill({
      client: await client(),
      bucket: "stall",
      key,
      partSize: 5 * MiB,
      partTimeoutMs: 500,
    });
    const chunk = Buffer.alloc(256 * 1024, 7);
    const t0 = performance.now();
    let failure: Error | undefined;
    // Write as the engine does: on `false`, wait for `drained`.
    for (let written = 0; written < 40 * MiB && !failure; written += chunk.length) {
      try {
        if (!spill.write(chunk)) await spill.drained();
      } catch (err) {
        failure = err as Error;
      }
    }
    expect(failure?.message).toMatch(/UploadPart did not complete within 500 ms/);
    // Loaded 2-core machine: far below a 40 s budget, and no test of speed.
    expect(performance.now() - t0).toBeLessThan(10_000);
    const ended = await spill.end().catch((err: unknown) => err as Error);
    expect((ended as Error).message).toMatch(
      /UploadPart did not complete within 500 ms; the multipart upload is aborted \(AbortMultipartUpload sent\)/,
    );
    const aborts = proxy.log.filter(
      (l) => l.method === "DELETE" && l.url.includes(encodeURIComponent(key).replace("%2F", "/")),
    );
    expect(aborts).toHaveLength(1);
    expect(aborts[0]!.url).toMatch(/[?&]uploadId=/);
    expect(aborts[0]!.status).toBe(204);
  });

  it("never holds the remote command past the part's cap: the result keeps head, tail and spillError", async () => {
    const store = new S3SpillStore({
      client: await client(),
      bucket: "stall",
      partTimeoutMs: 1_000,
    });
    const total = 40 * MiB;
    const budgetMs = 40_000;
    const t0 = performance.now();
    const result = await runCommand(
      {
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        command: `head -c ${total} /dev/zero`,
      },
      {
        secret: { privateKey: sshd.keys.ed25519.privateKey },
        knownHosts: sshd.knownHostsLine,
        budgetMs,
        requestId: "req-stall",
        spill: { open: (stream) => store.open("req-stall", stream, CALLER_ARN) },
      },
    );
    const elapsedMs = performance.now() - t0;
    console.log(
      `stalled S3 parts (1 s cap), 40 MiB: ${result.status} in ${Math.round(elapsedMs)} ms of ${budgetMs}`,
    );
    expect(result.status).toBe("succeeded");
    expect(result.output.stdoutBytes).toBe(total);
    expect(result.output.stdoutObject).toBeUndefined();
    expect(result.output.spillError).toMatch(
      /^stdout: .*UploadPart did not complete within 1000 ms/,
    );
    // Before: the stalled part held the stream for 39.8 s of 40. Now: one cap, then the
    // stream resumes. Margin for a loaded 2-core machine; not a speed test.
    expect(elapsedMs).toBeLessThan(budgetMs / 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(
      proxy.log.some(
        (l) => l.method === "DELETE" && l.url.includes("req-stall") && l.status === 204,
      ),
    ).toBe(true);
  }, 60_000);

  it("settle() cuts a clean-up that cannot finish: no S3 request outlives the invocation", async () => {
    proxy.state.stallAborts = true;
    try {
      const store = new S3SpillStore({
        client: await client(),
        bucket: "stall",
        partSize: 5 * MiB,
        partTimeoutMs: 500,
        abortTimeoutMs: 60_000,
      });
      const spill = store.open("req-settle", "stdout", CALLER_ARN);
      const chunk = Buffer.alloc(256 * 1024, 7);
      let failed = false;
      for (let written = 0; written < 40 * MiB && !failed; written += chunk.length) {
        try {
          if (!spill.write(chunk)) await spill.drained();
        } catch {
          failed = true;
        }
      }
      expect(failed).toBe(true);
      // The AbortMultipartUpload is out and held by the endpoint (its own cap is 60 s).
      await expect.poll(() => proxy.held("AbortMultipartUpload")).toBe(1);
      const t0 = performance.now();
      await store.settle("req-settle", callSignal(undefined, 300));
      expect(performance.now() - t0).toBeLessThan(5_000);
      // Cut: the request's socket is gone, the endpoint sees its client leave.
      await expect.poll(() => proxy.held("AbortMultipartUpload")).toBe(0);
      const ended = await spill.end().catch((err: unknown) => err as Error);
      expect((ended as Error).message).toMatch(/AbortMultipartUpload failed \(AbortError\)/);
    } finally {
      proxy.state.stallAborts = false;
    }
  });
});
