/**
 * A CloudWatch endpoint on 127.0.0.1 that speaks `PutMetricData` the way the installed
 * @aws-sdk/client-cloudwatch sends it: AWS JSON 1.0 (`X-Amz-Target:
 * GraniteServiceVersion20100801.PutMetricData`, `Content-Type: application/x-amz-json-1.0`,
 * awsQuery-compatible errors via `x-amzn-query-error`), gzip bodies when the SDK compresses.
 * It decodes what arrives into model datums so tests can count them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";
import type { MetricDatum } from "../../lib/metrics.ts";

export type EndpointBehaviour = "ok" | "hang" | "500" | "throttle";

export interface ReceivedCall {
  headers: IncomingMessage["headers"];
  namespace: string;
  datums: MetricDatum[];
}

interface WireDatum {
  MetricName: string;
  Unit: MetricDatum["unit"];
  Dimensions?: { Name: string; Value: string }[];
  Value?: number;
  Values?: number[];
  Counts?: number[];
  Timestamp?: number;
}

/** Expands a wire datum (Value, or Values × Counts) into one model datum per value. */
function decodeDatum(w: WireDatum): MetricDatum[] {
  const dimensions: Record<string, string> = {};
  for (const d of w.Dimensions ?? []) dimensions[d.Name] = d.Value;
  const base = { name: w.MetricName as MetricDatum["name"], unit: w.Unit, dimensions };
  if (w.Value !== undefined) return [{ ...base, value: w.Value }];
  const out: MetricDatum[] = [];
  (w.Values ?? []).forEach((value, i) => {
    for (let n = 0; n < (w.Counts?.[i] ?? 1); n++) out.push({ ...base, value });
  });
  return out;
}

export class FakeCloudWatch {
  behaviour: EndpointBehaviour = "ok";
  /** Every PutMetricData request that arrived complete, whatever was answered. */
  readonly calls: ReceivedCall[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #hanging = new Set<ServerResponse>();

  private constructor(server: Server) {
    this.#server = server;
    server.on("connection", (socket) => {
      // The test process is also the "container": the server's half of a connection must not
      // be counted by the leak gauge as a socket of the function.
      socket.unref();
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("request", (req, res) => this.#handle(req, res));
  }

  static async start(): Promise<FakeCloudWatch> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    server.unref();
    return new FakeCloudWatch(server);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Every datum that reached the endpoint, acknowledged or not. */
  get datums(): MetricDatum[] {
    return this.calls.flatMap((c) => c.datums);
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const target = req.headers["x-amz-target"];
      if (target !== "GraniteServiceVersion20100801.PutMetricData") {
        res.writeHead(400, { "content-type": "application/x-amz-json-1.0" });
        res.end(JSON.stringify({ __type: "UnknownOperationException", message: String(target) }));
        return;
      }
      const input = JSON.parse(body.toString("utf8")) as {
        Namespace: string;
        MetricData: WireDatum[];
      };
      this.calls.push({
        headers: req.headers,
        namespace: input.Namespace,
        datums: input.MetricData.flatMap(decodeDatum),
      });
      this.#answer(res);
    });
  }

  #answer(res: ServerResponse): void {
    const json = { "content-type": "application/x-amz-json-1.0" };
    switch (this.behaviour) {
      case "ok":
        res.writeHead(200, json);
        res.end("{}");
        return;
      case "hang":
        this.#hanging.add(res);
        res.on("close", () => this.#hanging.delete(res));
        return;
      case "500":
        res.writeHead(500, { ...json, "x-amzn-query-error": "InternalServiceError;Receiver" });
        res.end(JSON.stringify({ __type: "InternalServiceFault", message: "internal failure" }));
        return;
      case "throttle":
        res.writeHead(400, { ...json, "x-amzn-query-error": "Throttling;Sender" });
        res.end(JSON.stringify({ __type: "Throttling", message: "Rate exceeded" }));
        return;
    }
  }
}
