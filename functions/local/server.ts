/**
 * Local API (`npm start`): `POST /run` on 127.0.0.1. Each HTTP request becomes an API Gateway
 * event handled by the real handler (functions/api.ts) with a Lambda-like context whose
 * remaining time follows the configured function timeout. See docs/local-mode.md.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyResult, Context } from "aws-lambda";
import type { ApiEvent } from "../shared/api-http.ts";
import { ENV } from "../shared/settings.ts";
import { toApiEventV1, toApiEventV2 } from "./api-event.ts";
import { lambdaContext, localFunctionTimeoutMs } from "./lambda-context.ts";
import { readLocalConfig } from "./local-config.ts";

/** API Gateway refuses payloads above 10 MB before invoking anything; so does the emulator. */
const MAX_HTTP_BODY_BYTES = 10 * 1024 * 1024;

/** Options of {@link startLocalServer}. */
export interface LocalServerOptions {
  handler: (event: ApiEvent, context: Context) => Promise<APIGatewayProxyResult>;
  callerArn: string;
  /** @default 8787 (0 picks a free port) */
  port?: number;
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 30000 */
  functionTimeoutMs?: number;
  /** API Gateway payload version. @default "1.0" */
  payloadVersion?: "1.0" | "2.0";
  /** Required in the {@link TOKEN_HEADER} header of every request. @default a random token */
  token?: string;
}

/** Header carrying the per-run token of the local API. */
export const TOKEN_HEADER = "x-bssh-token";

/** A running local API. */
export interface LocalServer {
  url: string;
  port: number;
  /** The token every request must carry in {@link TOKEN_HEADER}. */
  token: string;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_HTTP_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** Starts the local API. */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const functionTimeoutMs = options.functionTimeoutMs ?? 30_000;
  const token = options.token ?? randomBytes(24).toString("base64url");
  const tokenBytes = Buffer.from(token);
  let port = 0;
  const server: Server = createServer(async (req, res) => {
    const receivedAt = Date.now();
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(body);
    };
    // The local API holds real credentials: a web page must not reach it. DNS rebinding
    // arrives with a foreign Host, a cross-site request with an Origin, and neither knows the
    // token printed at start.
    const host = (req.headers.host ?? "").toLowerCase();
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
      return send(
        403,
        JSON.stringify({
          message: `Host ${JSON.stringify(host.slice(0, 100))} refused: use http://127.0.0.1:${port}`,
        }),
      );
    }
    if (req.headers.origin !== undefined) {
      return send(403, JSON.stringify({ message: "requests from web pages (Origin) are refused" }));
    }
    const given = Buffer.from(String(req.headers[TOKEN_HEADER] ?? ""));
    if (given.length !== tokenBytes.length || !timingSafeEqual(given, tokenBytes)) {
      return send(
        401,
        JSON.stringify({
          message: `missing or wrong ${TOKEN_HEADER} header: use the token printed at start`,
        }),
      );
    }
    try {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      if (path !== "/run") return send(404, JSON.stringify({ message: "Not Found" }));
      if (req.method !== "POST") {
        return send(405, JSON.stringify({ message: "Method Not Allowed" }), { allow: "POST" });
      }
      const body = await readBody(req);
      if (body === undefined) return send(413, JSON.stringify({ message: "Request Too Long" }));
      const local = {
        method: "POST",
        path,
        headers: req.headers,
        body,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        receivedAt,
        callerArn: options.callerArn,
      };
      const event = options.payloadVersion === "2.0" ? toApiEventV2(local) : toApiEventV1(local);
      const result = await options.handler(event, lambdaContext({ timeoutMs: functionTimeoutMs }));
      send(result.statusCode, result.body, (result.headers ?? {}) as Record<string, string>);
    } catch (err) {
      // What API Gateway answers when the integration fails: the handler threw.
      console.error("local api: handler failed:", err instanceof Error ? err.name : err);
      if (!res.headersSent) send(502, JSON.stringify({ message: "Internal server error" }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8787, options.host ?? "127.0.0.1", () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    port,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function main(): Promise<void> {
  const configPath = process.env[ENV.config];
  if (!configPath) {
    console.error(`set ${ENV.config} to a local config file (see docs/local-mode.md)`);
    process.exit(2);
  }
  const { config } = readLocalConfig(configPath);
  const { handler } = await import("../api.ts");
  const server = await startLocalServer({
    handler,
    callerArn: config.callerArn,
    port: Number(process.env.BSSH_PORT ?? 8787),
    functionTimeoutMs: localFunctionTimeoutMs(),
    payloadVersion: process.env.BSSH_PAYLOAD_VERSION === "2.0" ? "2.0" : "1.0",
  });
  const tokenFile = resolve(process.env.BSSH_TOKEN_FILE ?? ".tmp/local-api-token");
  mkdirSync(dirname(tokenFile), { recursive: true });
  // A file left by an earlier run keeps its mode on write: remove it, then create it 0600.
  rmSync(tokenFile, { force: true });
  writeFileSync(tokenFile, `${server.token}\n`, { mode: 0o600, flag: "wx" });
  console.error(`bounded-ssh local API: POST ${server.url}/run (caller ${config.callerArn})`);
  console.error(`token (header ${TOKEN_HEADER}, also in ${tokenFile}): ${server.token}`);
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
