/**
 * Wire-level fakes of the two AWS endpoints the enrichment function calls, so the real SDK
 * clients run (SigV4, retries, (de)serialization):
 *
 * - CloudWatch Logs, AWS JSON 1.1 (`X-Amz-Target: Logs_20140328.StartQuery` /
 *   `GetQueryResults` / `StopQuery`). Queries are answered from captured lines with
 *   the query TEXT itself: parsed by `logs-insights-grammar.ts` (an invalid one is refused the
 *   way the service refuses it, `MalformedQueryException` with the checker's message) and run
 *   by `logs-insights-run.ts`; nothing is looked up by its text.
 * - SNS `Publish`, awsQuery (form-encoded request, XML response) — what
 *   @aws-sdk/client-sns 3.1169 sends.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { LogEvent, ResultRow } from "./logs-insights.ts";
import { checkQuery } from "./logs-insights-grammar.ts";
import { runQuery } from "./logs-insights-run.ts";

/** Test clients: any static credentials, one region, no retries waiting on backoff. */
export const FAKE_CLIENT_CONFIG = {
  region: "eu-west-1",
  credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret" },
  maxAttempts: 1,
} as const;

class HttpFake {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  protected constructor(server: Server) {
    this.#server = server;
    server.on("connection", (socket) => {
      socket.unref();
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => this.handle(req, Buffer.concat(chunks).toString("utf8"), res));
    });
  }

  protected static async listen(): Promise<Server> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    server.unref();
    return server;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  protected handle(_req: IncomingMessage, _body: string, res: ServerResponse): void {
    res.writeHead(500);
    res.end();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** How the fake Logs endpoint answers. */
export type LogsBehaviour =
  /** Complete after `runningPolls` polls answered `Running`. */
  | "ok"
  /** Every GetQueryResults says `Running`: the client runs out of time. */
  | "never-completes"
  /** StartQuery fails with a service error. */
  | "fail";

interface RunningQuery {
  rows: ResultRow[];
  polls: number;
}

export class FakeLogs extends HttpFake {
  behaviour: LogsBehaviour = "ok";
  /** `Running` answers before `Complete`. */
  runningPolls = 1;
  /** Captured events, all log groups. */
  events: LogEvent[] = [];
  readonly started: {
    logGroupNames: string[];
    queryString: string;
    startTime: number;
    endTime: number;
  }[] = [];
  readonly stopped: string[] = [];
  /** Query texts refused with MalformedQueryException, and why. */
  readonly refused: string[] = [];
  readonly #queries = new Map<string, RunningQuery>();

  static async start(): Promise<FakeLogs> {
    return new FakeLogs(await HttpFake.listen());
  }

  protected override handle(req: IncomingMessage, body: string, res: ServerResponse): void {
    const json = { "content-type": "application/x-amz-json-1.1" };
    const reply = (status: number, value: unknown) => {
      res.writeHead(status, json);
      res.end(JSON.stringify(value));
    };
    const target = String(req.headers["x-amz-target"] ?? "");
    const input = JSON.parse(body || "{}") as Record<string, unknown>;
    switch (target) {
      case "Logs_20140328.StartQuery": {
        if (this.behaviour === "fail") {
          reply(400, { __type: "LimitExceededException", message: "too many concurrent queries" });
          return;
        }
        const queryString = input.queryString as string;
        // The grammar first, as the service parses before it runs: an invalid query is refused
        // whatever its text (logs-insights-grammar.ts).
        const invalid = checkQuery(queryString);
        if (invalid.length > 0) {
          this.refused.push(queryString);
          reply(400, { __type: "MalformedQueryException", message: invalid.join("; ") });
          return;
        }
        const groups = input.logGroupNames as string[];
        const startTime = input.startTime as number;
        const endTime = input.endTime as number;
        this.started.push({ logGroupNames: groups, queryString, startTime, endTime });
        const inWindow = this.events.filter(
          (e) =>
            groups.includes(e.logGroup) &&
            e.timestamp >= startTime * 1000 &&
            e.timestamp <= endTime * 1000,
        );
        const queryId = randomUUID();
        let rows: ResultRow[];
        try {
          // The text itself is run (logs-insights-run.ts): what it says is what it finds.
          rows = runQuery(queryString, inWindow, input.limit as number | undefined);
        } catch (err) {
          this.refused.push(queryString);
          reply(400, { __type: "MalformedQueryException", message: (err as Error).message });
          return;
        }
        this.#queries.set(queryId, { rows, polls: 0 });
        reply(200, { queryId });
        return;
      }
      case "Logs_20140328.GetQueryResults": {
        const q = this.#queries.get(input.queryId as string);
        if (!q) {
          reply(400, { __type: "ResourceNotFoundException", message: "no such query" });
          return;
        }
        q.polls++;
        if (this.behaviour === "never-completes" || q.polls <= this.runningPolls) {
          reply(200, { status: "Running", results: [] });
          return;
        }
        reply(200, {
          status: "Complete",
          results: q.rows,
          statistics: { recordsMatched: q.rows.length, recordsScanned: this.events.length },
        });
        return;
      }
      case "Logs_20140328.StopQuery":
        this.stopped.push(input.queryId as string);
        reply(200, { success: true });
        return;
      default:
        reply(400, { __type: "UnknownOperationException", message: target });
    }
  }
}

/** One `Publish` received. */
export interface Published {
  topicArn: string;
  subject: string | undefined;
  message: string;
  /** String message attributes, as SNS's query wire format carries them. */
  attributes: Record<string, string>;
}

export class FakeSns extends HttpFake {
  readonly published: Published[] = [];

  static async start(): Promise<FakeSns> {
    return new FakeSns(await HttpFake.listen());
  }

  protected override handle(_req: IncomingMessage, body: string, res: ServerResponse): void {
    const form = new URLSearchParams(body);
    if (form.get("Action") !== "Publish") {
      res.writeHead(400, { "content-type": "text/xml" });
      res.end(
        `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>${form.get("Action")}</Message></Error><RequestId>x</RequestId></ErrorResponse>`,
      );
      return;
    }
    this.published.push({
      topicArn: form.get("TopicArn") ?? "",
      subject: form.get("Subject") ?? undefined,
      message: form.get("Message") ?? "",
      attributes: Object.fromEntries(
        [...form.keys()]
          .filter((k) => /^MessageAttributes\.entry\.\d+\.Name$/.test(k))
          .map((k) => {
            const base = k.slice(0, -".Name".length);
            return [form.get(k) ?? "", form.get(`${base}.Value.StringValue`) ?? ""];
          }),
      ),
    });
    res.writeHead(200, { "content-type": "text/xml" });
    res.end(
      `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${randomUUID()}</MessageId></PublishResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`,
    );
  }
}

/** CloudWatch `DescribeAlarms` (AWS JSON 1.0, as @aws-sdk/client-cloudwatch 3.1164 sends it). */
export class FakeCloudWatchAlarms extends HttpFake {
  /** Alarm name → state and reason. */
  states = new Map<string, { state: string; reason: string }>();
  readonly asked: string[][] = [];

  static async start(): Promise<FakeCloudWatchAlarms> {
    return new FakeCloudWatchAlarms(await HttpFake.listen());
  }

  protected override handle(req: IncomingMessage, body: string, res: ServerResponse): void {
    const json = { "content-type": "application/x-amz-json-1.0" };
    if (req.headers["x-amz-target"] !== "GraniteServiceVersion20100801.DescribeAlarms") {
      res.writeHead(400, { ...json, "x-amzn-query-error": "InvalidAction;Sender" });
      res.end(
        JSON.stringify({ __type: "InvalidAction", message: String(req.headers["x-amz-target"]) }),
      );
      return;
    }
    const names = (JSON.parse(body || "{}") as { AlarmNames?: string[] }).AlarmNames ?? [];
    this.asked.push(names);
    const MetricAlarms = names
      .filter((n) => this.states.has(n))
      .map((n) => ({
        AlarmName: n,
        StateValue: this.states.get(n)?.state,
        StateReason: this.states.get(n)?.reason,
      }));
    res.writeHead(200, json);
    res.end(JSON.stringify({ MetricAlarms, CompositeAlarms: [] }));
  }
}
