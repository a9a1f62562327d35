import net from "node:net";
import { describe, expect, it } from "vitest";
import { runCommand } from "../../lib/index.ts";
import type { RunRequest } from "../../lib/types.ts";
import { validateRequest } from "../../lib/validate-request.ts";

const secret = { password: "unused" };
const base: RunRequest = { host: "127.0.0.1", port: 22, username: "u", command: "true" };

describe("runCommand request checks (library callers)", () => {
  // The API's schema and messages (lib/validate-request.ts): the field is named, quoted.
  const bad: [string, Record<string, unknown>][] = [
    ["port", { port: 70000 }],
    ["port", { port: 22.5 }],
    ["host", { host: "" }],
    ["host", { host: "evil\nhost" }],
    ["username", { username: 7 }],
    ["command", { command: "" }],
    ["command", { command: "a\u0000b" }],
    ["command", { command: "x".repeat(16 * 1024 + 1) }],
    ["command", { command: "é".repeat(8 * 1024 + 1) }],
    ["hostKey", { hostKey: "SHA256:nope" }],
    ["timeoutMs", { timeoutMs: -5 }],
    ["maxOutputBytes", { maxOutputBytes: -1 }],
    ["hostname", { hostname: "typo of host" }],
    // A jump host (`via`) has the target's field rules; its fields are named `via.…`.
    ["via.username", { via: { host: "bastion" } }],
    ["via.extra", { via: { host: "bastion", username: "u", extra: 1 } }],
    ["via.hostKey", { via: { host: "bastion", username: "u", hostKey: "SHA256:nope" } }],
  ];
  for (const [field, patch] of bad) {
    it(`answers ValidationError naming ${field} for ${JSON.stringify(patch).slice(0, 40)}, without connecting`, async () => {
      const connect = net.Socket.prototype.connect;
      let dialled = 0;
      net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
        dialled += 1;
        return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
      } as typeof connect;
      try {
        const result = await runCommand({ ...base, ...patch } as RunRequest, {
          budgetMs: 1000,
          secret,
          via: { secret },
        });
        expect(result.status).toBe("error");
        expect(result.error).toMatchObject({
          name: "ValidationError",
          phase: "request",
          retryable: false,
        });
        expect(result.error?.message).toContain(`"${field}"`);
        expect(result.phase).toBe("request");
        expect(dialled).toBe(0);
      } finally {
        net.Socket.prototype.connect = connect;
      }
    });
  }

  it.each([
    ["a string", "bastion"],
    ["an array", ["bastion"]],
    ["null", null],
  ])(
    "answers a malformed via (%s) with a ValidationError result, even without options.via",
    async (_what, via) => {
      const result = await runCommand({ ...base, via } as unknown as RunRequest, {
        budgetMs: 1000,
        secret,
      });
      expect(result.error).toMatchObject({ name: "ValidationError", phase: "request" });
      expect(result.error?.message).toContain('"via"');
    },
  );

  it("refuses an unknown field with the very message the API gives", async () => {
    const request = { ...base, hostname: "x" };
    const result = await runCommand(request as RunRequest, { budgetMs: 1000, secret });
    let apiMessage = "";
    try {
      validateRequest(request);
    } catch (err) {
      apiMessage = (err as Error).message;
    }
    expect(apiMessage).toBe('unknown field "hostname"');
    expect(result.error?.message).toBe(apiMessage);
  });

  it("keeps only the API's transport limits off library callers: stdin, maxOutputBytes, timeoutMs", () => {
    const big = {
      ...base,
      stdin: "x".repeat(64 * 1024 + 1),
      maxOutputBytes: 2 * 1024 * 1024,
      timeoutMs: 3_600_000,
    };
    expect(validateRequest(big, "engine")).toBe(big);
    for (const [field, value] of Object.entries(big).slice(-3)) {
      expect(() => validateRequest({ ...base, [field]: value })).toThrow(`"${field}"`);
    }
  });

  it("answers a request that is not an object with a result, not a throw", async () => {
    const result = await runCommand(null as unknown as RunRequest, { budgetMs: 1000, secret });
    expect(result.error).toMatchObject({ name: "ValidationError", phase: "request" });
    expect(result.error?.message).toBe("request must be a JSON object, got null");
  });

  it("treats request.timeoutMs as a cap on the budget", async () => {
    // A listener that never answers: the session must end at the request's 300 ms, not 5 s.
    const server = net.createServer((s) => s.resume());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const start = performance.now();
      const result = await runCommand(
        { ...base, port, timeoutMs: 300 },
        { budgetMs: 5000, secret },
      );
      expect(result.error?.name).toBe("BannerTimeout");
      expect(result.deadline.budgetMs).toBe(300);
      expect(performance.now() - start).toBeLessThan(300 + 50);
    } finally {
      server.close();
    }
  });

  it("rejects only programming errors: no bound at all", async () => {
    await expect(runCommand(base, { secret })).rejects.toThrow(TypeError);
  });
});
