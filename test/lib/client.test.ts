import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AwsV4Signer } from "aws4fetch";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  ApiGatewayError,
  BoundedSshClient,
  BoundedSshError,
  ClientDeadlineError,
} from "../../lib/client/index.ts";
import type { RunRequest } from "../../lib/types.ts";
import { type RealApi, startRealApi } from "../functions/real-api.ts";
import { CALLER, fakeContext, v1Event } from "../functions/support.ts";

const REGION = "eu-west-1";
const KEYS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

/**
 * A stand-in for API Gateway on loopback: verifies each request's SigV4 signature (recomputed
 * from what arrived on the wire: method, path, the signed headers, the body, X-Amz-Date) for
 * service execute-api, answers 403 `{ message }` like API Gateway when it does not match, and
 * otherwise serves the real API handler's answer, unless `gateway` answers first (429, 504).
 */
interface Gateway {
  url: string;
  /** Requests received, with whether their signature verified. */
  seen: { verified: boolean; at: number }[];
  /** Answers API Gateway gives before the handler, in order (undefined: pass through). */
  gateway: ({ status: number; message: string } | "hang" | undefined)[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function verified(req: IncomingMessage, body: string, port: number): Promise<boolean> {
  const auth = req.headers.authorization ?? "";
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!match) return false;
  const [, keyId, , region, service, signedHeaders] = match;
  if (keyId !== KEYS.accessKeyId || region !== REGION || service !== "execute-api") return false;
  const headers: Record<string, string> = {};
  for (const name of signedHeaders!.split(";")) {
    const value = req.headers[name];
    if (typeof value !== "string") return false;
    headers[name] = value;
  }
  // Recompute with the server's copy of the secret, from what arrived.
  const expected = await new AwsV4Signer({
    method: req.method!,
    url: `http://127.0.0.1:${port}${req.url}`,
    headers,
    body,
    ...KEYS,
    service: "execute-api",
    region: REGION,
    datetime: req.headers["x-amz-date"] as string,
  }).authHeader();
  return expected === auth;
}

async function startGateway(api: RealApi): Promise<Gateway> {
  const seen: Gateway["seen"] = [];
  const gateway: Gateway["gateway"] = [];
  const handler = api.handler();
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const ok = await verified(req, body, (server.address() as AddressInfo).port);
      seen.push({ verified: ok, at: Date.now() });
      const send = (status: number, payload: string) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(payload);
      };
      if (!ok) {
        return send(
          403,
          JSON.stringify({
            message:
              "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
          }),
        );
      }
      const injected = gateway.shift();
      if (injected === "hang") return; // never answers: only the client's deadline ends it
      if (injected) return send(injected.status, JSON.stringify({ message: injected.message }));
      const answer = await handler(
        v1Event(body, { contentType: req.headers["content-type"] ?? null, caller: CALLER }),
        fakeContext(),
      );
      send(answer.statusCode, answer.body);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    seen,
    gateway,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let api: RealApi;
let gw: Gateway;
beforeAll(async () => {
  api = await startRealApi();
  gw = await startGateway(api);
});
afterAll(async () => {
  await gw.close();
  await api.close();
});
beforeEach(() => {
  gw.seen.length = 0;
  gw.gateway.length = 0;
});

const client = (extra: Partial<ConstructorParameters<typeof BoundedSshClient>[0]> = {}) =>
  new BoundedSshClient({
    url: gw.url,
    region: REGION,
    credentials: KEYS,
    baseDelayMs: 20,
    ...extra,
  });
const request = (extra: Partial<RunRequest> = {}) => api.request(extra) as unknown as RunRequest;

describe("bounded-ssh/client against a SigV4-verifying gateway serving the real handler", () => {
  it("signs POST /run for execute-api and returns the typed result", async () => {
    const result = await client().run(request());
    expect(result.status).toBe("succeeded");
    expect(result.stdout).toBe("echo hi\n");
    expect(gw.seen).toEqual([{ verified: true, at: expect.any(Number) }]);
  });

  it("returns a failed exit as a result (the command ran), without retrying", async () => {
    const result = await client({ credentials: async () => KEYS }).run(
      request({ command: "exit 3" }),
    );
    expect(result).toMatchObject({ status: "failed", exitCode: 3 });
    expect(gw.seen).toHaveLength(1);
  });

  it("throws ApiGatewayError 403 for a wrong secret, once (the gateway's check can fail)", async () => {
    const err = await client({ credentials: { ...KEYS, secretAccessKey: "wrong" } })
      .run(request())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiGatewayError);
    expect(err).toMatchObject({ status: 403, attempts: 1 });
    expect((err as ApiGatewayError).gatewayMessage).toContain("signature");
    expect(gw.seen).toEqual([{ verified: false, at: expect.any(Number) }]);
  });

  it("throws a non-retryable envelope at once: 403 CommandNotAllowed with its result", async () => {
    const err = await client()
      .run(request({ command: "rm -rf /" }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BoundedSshError);
    expect(err).toMatchObject({
      status: 403,
      errorName: "CommandNotAllowed",
      retryable: false,
      commandStarted: false,
      attempts: 1,
    });
    expect((err as BoundedSshError).result?.status).toBe("error");
    expect(gw.seen).toHaveLength(1);
  });

  it("retries a retryable envelope (504 BannerTimeout) up to maxAttempts, then throws it", async () => {
    const err = await client({ maxAttempts: 3 })
      .run(request({ port: api.hung.port, timeoutMs: 300 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BoundedSshError);
    expect(err).toMatchObject({
      status: 504,
      errorName: "BannerTimeout",
      retryable: true,
      attempts: 3,
    });
    expect(gw.seen).toHaveLength(3);
    expect(gw.seen.every((s) => s.verified)).toBe(true);
  });

  it("retries API Gateway's 429 with full-jitter backoff, then returns the result", async () => {
    gw.gateway.push(
      { status: 429, message: "Too Many Requests" },
      { status: 429, message: "Too Many Requests" },
    );
    const draws: number[] = [];
    const result = await client({
      maxAttempts: 3,
      baseDelayMs: 200,
      // The top of the jitter range: waits of 199 and 399 ms (caps 200, 400).
      random: () => {
        draws.push(0.999);
        return 0.999;
      },
    }).run(request());
    expect(result.status).toBe("succeeded");
    expect(gw.seen).toHaveLength(3);
    expect(draws).toHaveLength(2);
    // The waits happened (never shorter than asked; no upper bound asserted on a loaded host).
    expect(gw.seen[1]!.at - gw.seen[0]!.at).toBeGreaterThanOrEqual(190);
    expect(gw.seen[2]!.at - gw.seen[1]!.at).toBeGreaterThanOrEqual(390);
  });

  it("never retries a gateway 504 (integration timeout: the command may be running)", async () => {
    gw.gateway.push({ status: 504, message: "Endpoint request timed out" });
    const err = await client()
      .run(request())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiGatewayError);
    expect(err).toMatchObject({ status: 504, gatewayMessage: "Endpoint request timed out" });
    expect(gw.seen).toHaveLength(1);
  });

  it("ends a call at its total deadline: a gateway that never answers", async () => {
    gw.gateway.push("hang");
    const started = Date.now();
    const err = await client()
      .run(request(), { deadlineMs: 400 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientDeadlineError);
    expect((err as Error).message).toContain("deadline of 400 ms");
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(Date.now() - started).toBeLessThan(400 + 2_000);
    expect(gw.seen).toHaveLength(1);
  });

  it("does not start a backoff the deadline would cut: answers the last 429 instead", async () => {
    gw.gateway.push(
      { status: 429, message: "Too Many Requests" },
      { status: 429, message: "Too Many Requests" },
    );
    const err = await client({ baseDelayMs: 10_000, random: () => 0.5, maxAttempts: 5 })
      .run(request(), { deadlineMs: 1_000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiGatewayError);
    expect(err).toMatchObject({ status: 429, attempts: 1 });
    expect(gw.seen).toHaveLength(1);
  });

  it("stops when the caller aborts, naming the abort", async () => {
    gw.gateway.push("hang");
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("shutting down")), 100);
    const err = await client()
      .run(request(), { signal: controller.signal })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientDeadlineError);
    expect((err as Error).message).toContain("aborted");
    expect((err as ClientDeadlineError).cause).toEqual(new Error("shutting down"));
  });

  it("refuses a bad url or maxAttempts at construction", () => {
    expect(
      () => new BoundedSshClient({ url: "ftp://x/v1", region: REGION, credentials: KEYS }),
    ).toThrow("url must be http(s)");
    expect(() => client({ maxAttempts: 0 })).toThrow("maxAttempts must be an integer >= 1");
  });
});
