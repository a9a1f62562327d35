import { describe, expect, it } from "vitest";
import { derivedKey } from "../../functions/invocation/steps/idempotency-gate.ts";
import type { RunRequest } from "../../lib/types.ts";

const EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:fleet:run-1";
const base: RunRequest = { host: "db1.internal", username: "deploy", command: "uptime" };

describe("the idempotency key derived for a Step Functions task", () => {
  it("is the same for a retry of the same task (same execution, same request, any key order)", () => {
    const reordered = { command: base.command, username: base.username, host: base.host };
    expect(derivedKey(EXECUTION, reordered)).toBe(derivedKey(EXECUTION, base));
    expect(derivedKey(EXECUTION, base)).toMatch(/^sfn:[A-Za-z0-9_-]{43}$/);
  });

  it.each<[string, Partial<RunRequest>]>([
    ["another execution", {}],
    ["another host", { host: "db2.internal" }],
    ["another port", { port: 2222 }],
    ["another user", { username: "root" }],
    ["another command", { command: "df -h" }],
    ["another credential", { credential: "deploy-key" }],
    ["a jump host", { via: { host: "bastion", username: "jump" } }],
    ["another stdin", { stdin: "y\n" }],
    ["a pin", { hostKey: "SHA256:abc" }],
    ["a timeout", { timeoutMs: 5_000 }],
    ["an output cap", { maxOutputBytes: 10 }],
  ])("differs for %s: a sibling task never replays another's result", (what, change) => {
    const scope = what === "another execution" ? `${EXECUTION}-2` : EXECUTION;
    expect(derivedKey(scope, { ...base, ...change })).not.toBe(derivedKey(EXECUTION, base));
  });

  it("differs between two jump hosts, users, credentials or pins for the same target", () => {
    const via = { host: "bastion-a", username: "jump", credential: "a" };
    const keys = new Set(
      [
        via,
        { ...via, host: "bastion-b" },
        { ...via, username: "j2" },
        { ...via, credential: "b" },
        { ...via, hostKey: "SHA256:abc" },
      ].map((v) => derivedKey(EXECUTION, { ...base, via: v })),
    );
    expect(keys.size).toBe(5);
  });
});
