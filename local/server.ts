/**
 * Local API (`npm start`): `POST /run` on 127.0.0.1. Each HTTP request becomes an API Gateway
 * event handled by the real handler (functions/api.ts) with a Lambda-like context whose
 * remaining time follows the configured function timeout. See docs/local-mode.md.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { finished } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import type { APIGatewayProxyResult, Context } from "aws-lambda";
import type { ApiEvent } from "../functions/http/api-http.ts";
import { ENV, LOCAL_ENV } from "../operations/environment.ts";
import { toApiEventV1, toApiEventV2 } from "./api-event.ts";
import { runCli, UsageError } from "./cli.ts";
import { lambdaContext } from "./lambda-context.ts";

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
  /** Requests being handled now. */
  readonly inFlight: number;
  /**
   * Stops accepting, cancels every in-flight session (the engine signals a running command
   * and tears down), answers each 503 with its result, then closes.
   */
  shutdown(): Promise<void>;
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
  const cancel = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const server: Server = createServer((req, res) => {
    // Done when the answer has reached the socket, so shutdown never cuts one short.
    const handled = handle(req, res)
      .then(() => finished(res))
      .catch(() => undefined)
      .finally(() => inFlight.delete(handled));
    inFlight.add(handled);
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
      const result = await options.handler(
        event,
        lambdaContext({ timeoutMs: functionTimeoutMs, signal: cancel.signal }),
      );
      // Cancelled by shutdown: the service is going away (503), the result says how far it got.
      const status = cancel.signal.aborted ? 503 : result.statusCode;
      send(status, result.body, (result.headers ?? {}) as Record<string, string>);
    } catch (err) {
      // What API Gateway answers when the integration fails: the handler threw.
      console.error("local api: handler failed:", err instanceof Error ? err.name : err);
      if (!res.headersSent) send(502, JSON.stringify({ message: "Internal server error" }));
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8787, options.host ?? "127.0.0.1", () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    port,
    token,
    get inFlight() {
      return inFlight.size;
    },
    shutdown: async () => {
      server.close();
      server.closeIdleConnections();
      cancel.abort();
      await Promise.allSettled([...inFlight]);
      await close();
    },
    close,
  };
}

const HELP = `
usage: npm start                                   embedded targets, no setup
       BSSH_CONFIG=.bssh/config.json npm start     your hosts (npm run init writes this file)

Local API: POST http://127.0.0.1:8787/run, each request handled by the real API handler
(functions/api.ts) with a Lambda-like context. Without BSSH_CONFIG it serves embedded
targets on loopback (an SSH server accepting user "demo", and one that hangs before its
banner), as npm run demo does. Every request needs the header x-bssh-token: <token printed
at start, also in .tmp/local-api-token>. Ctrl-C cancels in-flight sessions (503 with the
result), then exits.

environment:
  BSSH_CONFIG               local config file (docs/local-mode.md)
  BSSH_PORT                 port on 127.0.0.1 (default 8787; 0 picks a free one)
  BSSH_PAYLOAD_VERSION      1.0 (REST API, default) or 2.0 (HTTP API)
  BSSH_FUNCTION_TIMEOUT_MS  default: the deployed API function's timeout (cdk/config.ts)
  BSSH_RESERVE_MS           default: the deployed API function's reserve (cdk/config.ts)
  BSSH_TOKEN_FILE           default .tmp/local-api-token
`;

function portOf(raw: string | undefined): number {
  if (raw === undefined || raw === "") return 8787;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new UsageError(`BSSH_PORT=${JSON.stringify(raw)}: must be a port number 0-65535`);
  }
  return port;
}

function payloadVersionOf(raw: string | undefined): "1.0" | "2.0" {
  if (raw === undefined || raw === "" || raw === "1.0") return "1.0";
  if (raw === "2.0") return "2.0";
  throw new UsageError(`BSSH_PAYLOAD_VERSION=${JSON.stringify(raw)}: must be 1.0 or 2.0`);
}

async function main(): Promise<void> {
  // Loaded here, not at the top: --help answers without loading the handlers.
  const { localTimeouts } = await import("./local-timeouts.ts");
  const { checkLocalConfig, localRuntime } = await import("./local-config.ts");
  const { startEmbeddedTargets } = await import("./embedded.ts");
  const env = process.env;
  const timeouts = localTimeouts("api");
  const port = portOf(env[LOCAL_ENV.port]);
  const payloadVersion = payloadVersionOf(env[LOCAL_ENV.payloadVersion]);
  // Checked before anything listens: a bad config is one line, not an HTTP 500 later.
  if (env[ENV.config]) checkLocalConfig(env[ENV.config]!);
  const embedded = env[ENV.config] ? undefined : await startEmbeddedTargets();
  const configPath = env[ENV.config] ?? embedded!.configPath;
  try {
    const { config } = checkLocalConfig(configPath);
    const { createApiHandler } = await import("../functions/api.ts");
    const handler = createApiHandler(
      localRuntime(configPath, { settings: { reserveMs: timeouts.reserveMs } }),
    );
    let server: LocalServer;
    try {
      server = await startLocalServer({
        handler,
        callerArn: config.callerArn,
        port,
        functionTimeoutMs: timeouts.functionTimeoutMs,
        payloadVersion,
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EADDRINUSE") {
        throw new UsageError(
          `port ${port} on 127.0.0.1 is in use: stop the other server or set BSSH_PORT (0 picks a free port)`,
        );
      }
      if (code === "EACCES") throw new UsageError(`port ${port}: permission denied; set BSSH_PORT`);
      throw err;
    }
    const tokenFile = resolve(env[LOCAL_ENV.tokenFile] ?? ".tmp/local-api-token");
    mkdirSync(dirname(tokenFile), { recursive: true });
    // A file left by an earlier run keeps its mode on write: remove it, then create it 0600.
    rmSync(tokenFile, { force: true });
    writeFileSync(tokenFile, `${server.token}\n`, { mode: 0o600, flag: "wx" });
    const say = (line = "") => process.stderr.write(`${line}\n`);
    say(`bounded-ssh local API: POST ${server.url}/run (caller ${config.callerArn})`);
    say(`token (header ${TOKEN_HEADER}, also in ${tokenFile}): ${server.token}`);
    say(
      `function timeout ${timeouts.functionTimeoutMs} ms, reserve ${timeouts.reserveMs} ms (the deployed API function's unless set)`,
    );
    if (embedded) {
      const tokenArg =
        tokenFile === resolve(".tmp/local-api-token") ? ".tmp/local-api-token" : tokenFile;
      say();
      say(`no ${ENV.config}: serving the embedded targets (user "demo"):`);
      say(`  ssh  127.0.0.1:${embedded.ssh.port}   commands: uptime, echo …, uname, sleep N`);
      say(`  hung 127.0.0.1:${embedded.hung.port}   accepts TCP, never sends its banner`);
      say("try:");
      say(
        `  curl -s ${server.url}/run -H 'content-type: application/json' -H "${TOKEN_HEADER}: $(cat ${tokenArg})" \\`,
      );
      say(
        `    -d '{"host":"127.0.0.1","port":${embedded.ssh.port},"username":"demo","command":"echo hello"}'`,
      );
      say(
        "a real host: npm run init -- user@host[:port], then BSSH_CONFIG=.bssh/config.json npm start",
      );
    }
    say("ready; Ctrl-C stops (in-flight sessions are cancelled)");
    await new Promise<void>((done) => {
      const stop = () => {
        process.once("SIGINT", () => process.exit(130));
        say(
          server.inFlight > 0
            ? `stopping: cancelling ${server.inFlight} in-flight request(s) (503); Ctrl-C again to quit now`
            : "stopping",
        );
        void server.shutdown().then(done);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    rmSync(tokenFile, { force: true });
  } finally {
    await embedded?.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runCli("start", HELP, () => main());
  process.exit(process.exitCode ?? 0);
}
