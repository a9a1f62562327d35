/**
 * The audit line and error log through Powertools Logger: the audit fields unchanged at the top
 * level beside Powertools' keys, the request id as correlation id, one audit line per
 * invocation, and an unexpected error's stack and cause logged (the caller sees only
 * "internal error").
 */
import { describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { createTaskHandler } from "../../functions/task.ts";
import {
  CALLER,
  fakeContext,
  KEY_MARKERS,
  loopbackPolicy,
  taskEvent,
  testRuntime,
  v1Event,
} from "./support.ts";

interface LoggedError {
  name: string;
  message: string;
  stack?: string;
  cause?: LoggedError;
}
interface Logged extends Record<string, unknown> {
  level?: string;
  correlation_id?: string;
  error?: LoggedError | null;
}
const parse = (lines: string[]) => lines.map((line) => JSON.parse(line) as Logged);
const audits = (lines: string[]) => parse(lines).filter((l) => l.type === "bounded-ssh.audit");

function brokenPolicyRuntime() {
  const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
  runtime.policy = {
    get: async () => {
      const bug = new TypeError("policy reader bug", { cause: new RangeError("root cause") });
      throw bug;
    },
  };
  return { runtime, captured };
}

describe("audit logger (Powertools Logger)", () => {
  it("writes the audit fields unchanged beside Powertools' keys, request id as correlation id", async () => {
    // Prepare
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    const handler = createApiHandler(runtime);
    const context = fakeContext();
    // Act
    const response = await handler(v1Event("{"), context);
    // Assess
    expect(response.statusCode).toBe(400);
    expect(captured.lines.filter((l) => !l.includes('"_aws"'))).toHaveLength(1);
    const [line] = audits(captured.lines);
    expect(line).toMatchObject({
      level: "INFO",
      message: "bounded-ssh.audit",
      service: "bounded-ssh",
      correlation_id: context.awsRequestId,
      type: "bounded-ssh.audit",
      requestId: context.awsRequestId,
      caller: CALLER,
      outcome: "error",
      error: { name: "ValidationError", phase: "request" },
      statusCode: 400,
    });
    expect(typeof line?.timestamp).toBe("string");
    // null fields stay in the line (Powertools would drop them): queries rely on them.
    expect(line).toHaveProperty("exitCode", null);
    expect(line).toHaveProperty("timings", null);
    expect(line).toHaveProperty("target", null);
    // Everything the observer saw is in the line, with the same nesting.
    expect(line).toMatchObject(JSON.parse(JSON.stringify(captured.audits[0])));
  });

  it("logs an unexpected error with its stack and cause; the caller and the audit line see InternalError", async () => {
    // Prepare
    const { runtime, captured } = brokenPolicyRuntime();
    const handler = createApiHandler(runtime);
    const body = JSON.stringify({ host: "127.0.0.1", username: "ops", command: "echo hi" });
    // Act
    const response = await handler(v1Event(body), fakeContext());
    // Assess
    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain("policy reader bug");
    const lines = parse(captured.lines.filter((l) => !l.includes('"_aws"')));
    expect(lines).toHaveLength(2);
    const [errorLine, audit] = lines as [Logged, Logged];
    expect(errorLine.level).toBe("ERROR");
    expect(errorLine.error?.name).toBe("InternalError");
    expect(errorLine.error?.cause?.name).toBe("TypeError");
    expect(errorLine.error?.cause?.message).toBe("policy reader bug");
    expect(errorLine.error?.cause?.stack).toContain("audit-logger.test.ts");
    expect(errorLine.error?.cause?.cause?.message).toBe("root cause");
    expect(errorLine.correlation_id).toBe(audit.correlation_id);
    expect(audit.type).toBe("bounded-ssh.audit");
    expect(audit.error).toMatchObject({ name: "InternalError", phase: "policy" });
    expect(JSON.stringify(audit)).not.toContain("policy reader bug");
  });

  it("does the same for a Step Functions task", async () => {
    // Prepare
    const { runtime, captured } = brokenPolicyRuntime();
    const handler = createTaskHandler(runtime);
    // Act
    const thrown = await handler(
      taskEvent({ host: "127.0.0.1", username: "ops", command: "echo hi" }),
      fakeContext(),
    ).catch((err: unknown) => err as Error);
    // Assess
    expect((thrown as Error).name).toBe("InternalError");
    const lines = parse(captured.lines.filter((l) => !l.includes('"_aws"')));
    expect(lines.map((l) => l.level)).toEqual(["ERROR", "INFO"]);
    expect(audits(captured.lines)).toHaveLength(1);
  });
});

describe("unexpected-error log", () => {
  const PEM = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    "QyNTUxOQAAACBjNGVlYjQ3ZTc5NjE0ZDYxYjM3YmQ5ZGE4Y2Q1ZjNmZgAAAJg=",
    "-----END OPENSSH PRIVATE KEY-----",
  ].join("\n");

  it("keeps the stack and the cause chain but never key material or a non-Error cause's fields", async () => {
    // Prepare: a credential store whose bug quotes the key, caused by a thrown plain object.
    const { runtime, captured } = testRuntime({ policy: loopbackPolicy([22]) });
    runtime.credentials = {
      get: async () => {
        throw new TypeError(`cannot parse ${PEM}`, {
          cause: { privateKey: PEM, note: "a thrown object" },
        });
      },
    };
    const handler = createApiHandler(runtime);
    const body = JSON.stringify({ host: "127.0.0.1", username: "ops", command: "echo hi" });
    // Act
    const response = await handler(v1Event(body), fakeContext());
    // Assess
    expect(response.statusCode).toBe(500);
    const [errorLine] = parse(captured.lines).filter((l) => l.level === "ERROR");
    expect(errorLine?.error?.name).toBe("InternalError");
    expect(errorLine?.error?.stack).toContain("InternalError");
    expect(errorLine?.error?.cause?.name).toBe("TypeError");
    expect(errorLine?.error?.cause?.message).toContain("[redacted private key]");
    expect(errorLine?.error?.cause?.stack).toContain("audit-logger.test.ts");
    expect(errorLine?.error?.cause?.cause?.message).toBe("non-error thrown (object)");
    for (const line of captured.lines) {
      for (const marker of KEY_MARKERS) expect(line).not.toMatch(marker);
      expect(line).not.toContain("a thrown object");
    }
  });
});
