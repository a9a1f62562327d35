import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTaskHandler } from "../../functions/task.ts";
import type { RunResult } from "../../lib/types.ts";
import { type Adversary, tarpit } from "../helpers/adversaries.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type ExecContext, type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { fakeContext, loopbackPolicy, taskEvent, testRuntime, WORKFLOW } from "./support.ts";

const clientKey = generateEd25519KeyPair();

function scripted(ctx: ExecContext): void {
  const exit = /^exit (\d+)$/.exec(ctx.command);
  if (ctx.command === "exit 9") {
    ctx.stdout("o".repeat(60_000));
    ctx.stderr("e".repeat(60_000));
    ctx.exit(1);
    ctx.close();
    return;
  }
  ctx.stdout("out\n");
  ctx.exit(exit ? Number(exit[1]) : 0);
  ctx.close();
}

let server: Ssh2Server;
let hung: Adversary;
beforeAll(async () => {
  server = await startSsh2Server({ exec: scripted });
  hung = await tarpit();
});
afterAll(async () => {
  await server.close();
  await hung.close();
});

function setup(settings: { taskErrorOutput?: boolean } = {}) {
  const { runtime, captured } = testRuntime({
    policy: loopbackPolicy([server.port, hung.port]),
    credentials: { default: { privateKey: clientKey.private } },
    knownHosts: server.knownHostsLine,
    settings: { remoteBound: false, ...settings },
  });
  return { handler: createTaskHandler(runtime), captured };
}

const input = (extra: Record<string, unknown> = {}) =>
  taskEvent({
    host: "127.0.0.1",
    port: server.port,
    username: "ops",
    command: "echo hi",
    ...extra,
  });

async function thrown(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the handler to throw");
}

describe("Step Functions task handler", () => {
  it("returns the result of a succeeded command, with the workflow as caller", async () => {
    const { handler, captured } = setup();
    const result = await handler(input(), fakeContext());
    expect(result.status).toBe("succeeded");
    expect(captured.audits[0]).toMatchObject({
      source: "task",
      caller: WORKFLOW,
      outcome: "succeeded",
    });
  });

  it("returns a failed command's result by default", async () => {
    const { handler } = setup();
    const result = await handler(input({ command: "exit 2" }), fakeContext());
    expect(result).toMatchObject({ status: "failed", exitCode: 2 });
  });

  it("throws CommandFailed with the JSON result when failOnNonZeroExit is set", async () => {
    const { handler, captured } = setup();
    const err = await thrown(
      handler(input({ command: "exit 2", failOnNonZeroExit: true }), fakeContext()),
    );
    expect(err.name).toBe("CommandFailed");
    const result = JSON.parse(err.message) as RunResult;
    // Error causes land in execution history: counts and hashes, not the output itself.
    expect(result).toMatchObject({ status: "failed", exitCode: 2, stdout: "", stderr: "" });
    expect(result.output).toMatchObject({ stdoutBytes: 4, truncated: false });
    expect(result.output.stdoutSha256).toBe(createHash("sha256").update("out\n").digest("hex"));
    expect(captured.metrics[0]).toContainEqual(
      expect.objectContaining({ name: "Errors", dimensions: { ErrorName: "CommandFailed" } }),
    );
  });

  it("carries stdout in the error only when the deployment opts in (BSSH_TASK_ERROR_OUTPUT)", async () => {
    const { handler } = setup({ taskErrorOutput: true });
    const err = await thrown(
      handler(input({ command: "exit 2", failOnNonZeroExit: true }), fakeContext()),
    );
    expect(JSON.parse(err.message)).toMatchObject({ status: "failed", stdout: "out\n" });
  });

  it("keeps a thrown error's message within the Step Functions cause limit, counts intact", async () => {
    const { handler } = setup({ taskErrorOutput: true });
    const err = await thrown(
      handler(input({ command: "exit 9", failOnNonZeroExit: true }), fakeContext()),
    );
    expect(err.name).toBe("CommandFailed");
    // Lambda repeats the message in its trace: twice the message must fit in 32,768 chars.
    expect(err.message.length * 2).toBeLessThan(32_768);
    const result = JSON.parse(err.message) as RunResult;
    expect(result.output).toMatchObject({
      stdoutBytes: 60_000,
      stderrBytes: 60_000,
      truncated: true,
    });
    expect(result.stdout).toMatch(
      /^o+\n\[bounded-ssh: cut to fit the Step Functions error cause\]\no+$/,
    );
  });

  it("throws BannerTimeout whose message is the JSON result (phase and timings kept)", async () => {
    const { handler } = setup();
    const err = await thrown(handler(input({ port: hung.port, timeoutMs: 500 }), fakeContext()));
    expect(err.name).toBe("BannerTimeout");
    const result = JSON.parse(err.message) as RunResult;
    expect(result).toMatchObject({ status: "timed_out", phase: "banner" });
    expect(result.error).toMatchObject({ name: "BannerTimeout", retryable: true });
    expect(result.timings.bannerMs).toBeGreaterThan(0);
  });

  it.each([
    [null, "request must be a JSON object"],
    ["echo hi", "request must be a JSON object"],
    [{ host: "h", username: "u", command: "x", extra: 1 }, 'unknown field "extra"'],
    [{ host: "h", username: "u" }, 'missing required field "command"'],
  ])("throws ValidationError with a JSON {error} message for %j", async (event, message) => {
    const { handler } = setup();
    const err = await thrown(handler(taskEvent(event), fakeContext()));
    expect(err.name).toBe("ValidationError");
    const payload = JSON.parse(err.message) as { error: { name: string; message: string } };
    expect(payload.error.name).toBe("ValidationError");
    expect(payload.error.message).toContain(message);
  });

  it("throws TargetNotAllowed with a synthetic result for a denied target", async () => {
    const { handler } = setup();
    const err = await thrown(handler(input({ host: "10.1.2.3" }), fakeContext()));
    expect(err.name).toBe("TargetNotAllowed");
    const result = JSON.parse(err.message) as RunResult;
    expect(result).toMatchObject({
      status: "error",
      phase: "policy",
      target: { host: "10.1.2.3" },
    });
  });
});
