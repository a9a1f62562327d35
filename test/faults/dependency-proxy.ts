/**
 * The TCP fault proxy of the dependency fault lab: one listener in front of one AWS
 * dependency's stand-in (dynalite, s3rver, the wire-level fakes), whose fault is switched at
 * run time — before an invocation, while its command runs, or after it (see
 * dependency-farm.ts). Runs in the fault farm, so every socket of the test process is a
 * client's (the SDK's).
 *
 * Faults, as the SDK sees them:
 * - `refused`: nothing listens (the listener closes; open connections get an RST).
 * - `blackholed`: SYN never answered (the port becomes a full accept queue, as the SSH lab's
 *   `full-accept-queue`); open connections go silent (a vanished peer).
 * - `silent`: connections are accepted, requests read, nothing ever answered.
 * - `slow-drip`: the real answer, one byte every {@link DRIP_INTERVAL_MS} (an idle-socket
 *   timeout never fires; only a call's own deadline ends it).
 * - `5xx`: every request answered with the service's own 500/503 error shape.
 * - `throttled`: every request answered with the service's throttling error (DynamoDB
 *   `ProvisionedThroughputExceededException`, S3 `SlowDown` 503, Secrets Manager / SSM
 *   `ThrottlingException`, CloudWatch `Throttling`).
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import net from "node:net";
import { type FullAcceptQueue, fullAcceptQueue } from "../helpers/adversaries.ts";

/** The AWS dependencies of the deployed functions (SDK service ids in the env var names). */
export const DEPENDENCIES = ["secretsmanager", "ssm", "dynamodb", "s3", "cloudwatch"] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

export const DEPENDENCY_FAULTS = [
  "refused",
  "blackholed",
  "silent",
  "slow-drip",
  "5xx",
  "throttled",
] as const;
export type DependencyFault = (typeof DEPENDENCY_FAULTS)[number];
/** `pass`: a healthy proxy. */
export type ProxyMode = "pass" | DependencyFault;

/** Request lines kept by a proxy (`seen`). */
const MAX_SEEN = 50;

/** `METHOD path [target]` of a request whose head starts `data`, or undefined. */
function requestLine(data: Buffer): string | undefined {
  const head = data.subarray(0, 2048).toString("latin1");
  const line = /^(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r\n/.exec(head);
  if (!line) return undefined;
  const target = /\r\nx-amz-target: *([^\r]+)/i.exec(head)?.[1];
  return `${line[1]} ${line[2]}${target ? ` ${target}` : ""}`;
}

/** One byte of the answer per this many ms in `slow-drip`. */
export const DRIP_INTERVAL_MS = 100;

interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const json10 = { "content-type": "application/x-amz-json-1.0" };
const json11 = { "content-type": "application/x-amz-json-1.1" };
const xml = { "content-type": "application/xml" };

function s3Error(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>FAULTLAB</RequestId><HostId>FAULTLAB</HostId></Error>`;
}

/** The service's own error answers: what each SDK client parses into its named exception. */
export const ERROR_ANSWERS: Record<Dependency, Record<"5xx" | "throttled", ErrorAnswer>> = {
  dynamodb: {
    "5xx": {
      status: 500,
      headers: json10,
      body: JSON.stringify({
        __type: "com.amazonaws.dynamodb.v20120810#InternalServerError",
        message: "Internal server error",
      }),
    },
    throttled: {
      status: 400,
      headers: json10,
      body: JSON.stringify({
        __type: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        message:
          "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
      }),
    },
  },
  s3: {
    "5xx": {
      status: 500,
      headers: xml,
      body: s3Error("InternalError", "We encountered an internal error. Please try again."),
    },
    throttled: {
      status: 503,
      headers: xml,
      body: s3Error("SlowDown", "Please reduce your request rate."),
    },
  },
  secretsmanager: {
    "5xx": {
      status: 500,
      headers: json11,
      body: JSON.stringify({ __type: "InternalServiceError", message: "An error occurred." }),
    },
    throttled: {
      status: 400,
      headers: json11,
      body: JSON.stringify({ __type: "ThrottlingException", message: "Rate exceeded" }),
    },
  },
  ssm: {
    "5xx": {
      status: 500,
      headers: json11,
      body: JSON.stringify({ __type: "InternalServerError", message: "An error occurred." }),
    },
    throttled: {
      status: 400,
      headers: json11,
      body: JSON.stringify({ __type: "ThrottlingException", message: "Rate exceeded" }),
    },
  },
  cloudwatch: {
    "5xx": {
      status: 500,
      headers: { ...json10, "x-amzn-query-error": "InternalServiceError;Receiver" },
      body: JSON.stringify({ __type: "InternalServiceFault", message: "internal failure" }),
    },
    throttled: {
      status: 400,
      headers: { ...json10, "x-amzn-query-error": "Throttling;Sender" },
      body: JSON.stringify({ __type: "Throttling", message: "Rate exceeded" }),
    },
  },
};

interface Conn {
  client: net.Socket;
  upstream?: net.Socket;
  /** Server→client bytes pass only while this is the mode (`pass` or `slow-drip`). */
  mode: ProxyMode;
  drip?: { queue: Buffer[]; timer?: NodeJS.Timeout };
}

/** A switchable fault proxy in front of one dependency on 127.0.0.1:`targetPort`. */
export class FaultProxy {
  readonly dependency: Dependency;
  readonly port: number;
  #mode: ProxyMode = "pass";
  readonly #targetPort: number;
  readonly #listener: net.Server;
  readonly #conns = new Set<Conn>();
  readonly #errors = createHttpServer((req, res) => this.#answerError(req, res));
  #queue: FullAcceptQueue | undefined;
  /** Requests answered with an error, connections accepted (what the row's report shows). */
  readonly counts = { connections: 0, errorAnswers: 0 };
  /**
   * The request line of every request seen (`POST /?uploads …`, or the `X-Amz-Target`), with
   * the mode at the time, newest last, at most {@link MAX_SEEN}: what a leaked call was.
   */
  readonly seen: string[] = [];

  private constructor(
    dependency: Dependency,
    targetPort: number,
    listener: net.Server,
    port: number,
  ) {
    this.dependency = dependency;
    this.#targetPort = targetPort;
    this.#listener = listener;
    this.port = port;
    listener.on("connection", (client) => this.#accept(client));
    this.#errors.keepAliveTimeout = 0;
  }

  static async start(
    dependency: Dependency,
    targetPort: number,
    mode: ProxyMode = "pass",
  ): Promise<FaultProxy> {
    const listener = net.createServer();
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(0, "127.0.0.1", () => resolve());
    });
    const address = listener.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const proxy = new FaultProxy(dependency, targetPort, listener, port);
    await proxy.setMode(mode);
    return proxy;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** Switches the fault; open connections follow it (see the module comment). */
  async setMode(mode: ProxyMode): Promise<void> {
    if (mode === this.#mode) return;
    if (this.#mode === "refused" || this.#mode === "blackholed") {
      throw new Error(`fault proxy: ${this.#mode} is final for this proxy`);
    }
    this.#mode = mode;
    switch (mode) {
      case "pass":
      case "slow-drip":
        for (const c of this.#conns) if (c.mode !== "silent") c.mode = mode;
        return;
      case "silent":
        for (const c of this.#conns) c.mode = "silent";
        return;
      case "5xx":
      case "throttled":
        // Idle keep-alive connections are closed: the next call dials and gets the error.
        for (const c of this.#conns) {
          c.mode = "silent";
          c.client.end();
          c.upstream?.destroy();
        }
        return;
      case "refused":
        this.#listener.close();
        for (const c of this.#conns) this.#drop(c, true);
        return;
      case "blackholed": {
        this.#listener.close();
        for (const c of this.#conns) c.mode = "silent";
        this.#queue = await fullAcceptQueueOn(this.port);
        return;
      }
    }
  }

  async close(): Promise<void> {
    // Every connection, error-answering ones included, is in #conns.
    for (const c of this.#conns) this.#drop(c, false);
    if (this.#listener.listening) {
      await new Promise<void>((resolve) => this.#listener.close(() => resolve()));
    }
    await this.#queue?.close();
  }

  #see(data: Buffer, mode: ProxyMode): void {
    const line = requestLine(data);
    if (!line) return;
    this.seen.push(`${line} (${mode})`);
    if (this.seen.length > MAX_SEEN) this.seen.shift();
  }

  #accept(client: net.Socket): void {
    this.counts.connections++;
    client.setNoDelay(true);
    client.on("error", () => {});
    const conn: Conn = { client, mode: this.#mode };
    if (this.#mode === "5xx" || this.#mode === "throttled") {
      // Node's HTTP server parses the requests (keep-alive included) and answers each.
      this.#errors.emit("connection", client);
      this.#conns.add(conn);
      client.once("close", () => this.#conns.delete(conn));
      return;
    }
    this.#conns.add(conn);
    client.once("close", () => this.#drop(conn, false));
    client.on("data", (data: Buffer) => this.#see(data, conn.mode));
    if (this.#mode === "silent") {
      client.resume();
      return;
    }
    const upstream = net.connect({ host: "127.0.0.1", port: this.#targetPort, noDelay: true });
    conn.upstream = upstream;
    upstream.on("error", () => {});
    upstream.once("close", () => {
      // A peer that went silent or blackholed never says goodbye.
      if (conn.mode === "pass") client.destroy();
    });
    client.on("data", (data: Buffer) => {
      if (conn.mode === "pass" || conn.mode === "slow-drip") upstream.write(data);
    });
    upstream.on("data", (data: Buffer) => {
      if (conn.mode === "pass") client.write(data);
      else if (conn.mode === "slow-drip") this.#dripOut(conn, data);
    });
    client.on("end", () => {
      if (conn.mode === "pass") upstream.end();
    });
  }

  #dripOut(conn: Conn, data: Buffer): void {
    conn.drip ??= { queue: [] };
    const drip = conn.drip;
    for (let i = 0; i < data.length; i++) drip.queue.push(data.subarray(i, i + 1));
    if (drip.timer) return;
    drip.timer = setInterval(() => {
      const next = drip.queue.shift();
      if (!next || conn.client.destroyed) {
        clearInterval(drip.timer);
        drip.timer = undefined;
        return;
      }
      conn.client.write(next);
    }, DRIP_INTERVAL_MS);
  }

  #drop(conn: Conn, reset: boolean): void {
    this.#conns.delete(conn);
    if (conn.drip?.timer) clearInterval(conn.drip.timer);
    if (reset && !conn.client.destroyed) conn.client.resetAndDestroy();
    else conn.client.destroy();
    conn.upstream?.destroy();
  }

  #answerError(req: IncomingMessage, res: ServerResponse): void {
    const fault = this.#mode === "throttled" ? "throttled" : "5xx";
    const answer = ERROR_ANSWERS[this.dependency][fault];
    const target = req.headers["x-amz-target"];
    this.seen.push(`${req.method} ${req.url}${target ? ` ${target}` : ""} (${fault})`);
    if (this.seen.length > MAX_SEEN) this.seen.shift();
    req.resume();
    req.on("end", () => {
      this.counts.errorAnswers++;
      res.writeHead(answer.status, {
        ...answer.headers,
        "x-amzn-requestid": "FAULTLAB",
        "content-length": Buffer.byteLength(answer.body),
      });
      res.end(answer.body);
    });
  }
}

/**
 * The same port as a full accept queue (SYNs dropped). The listener closed a moment ago; its
 * handle is released on a later turn of the loop, so binding is retried briefly.
 */
async function fullAcceptQueueOn(port: number): Promise<FullAcceptQueue> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fullAcceptQueue(port);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt >= 50) throw err;
      await new Promise<void>((r) => setTimeout(r, 10));
    }
  }
}
