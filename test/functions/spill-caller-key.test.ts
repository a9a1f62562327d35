/**
 * Spill keys carry the caller (issue 23), deterministically and safely encoded, so an operator
 * can grant read access per caller with a key prefix (docs/fleet.md).
 */
import { describe, expect, it } from "vitest";
import { callerKeyPrefix } from "../../functions/spill/s3-spill.ts";

describe("callerKeyPrefix", () => {
  it.each([
    ["arn:aws:sts::123456789012:assumed-role/ops/alice", "123456789012/assumed-role/ops/alice"],
    [
      "arn:aws:sts::123456789012:assumed-role/ops/alice@example.com",
      "123456789012/assumed-role/ops/alice%40example.com",
    ],
    ["arn:aws:iam::123456789012:user/mallory", "123456789012/user/mallory"],
    ["arn:aws:iam::123456789012:role/team/ops/runner", "123456789012/role/team%2Fops%2Frunner"],
    [
      "arn:aws:states:eu-west-1:123456789012:stateMachine:prod-bounded-ssh-Fleet",
      "123456789012/stateMachine/prod-bounded-ssh-Fleet",
    ],
    ["arn:aws-us-gov:iam::123456789012:user/x", "123456789012/user/x"],
    ["arn:aws:sts::123456789012:assumed-role/../..", "123456789012/assumed-role/%2E%2E/%2E%2E"],
    [
      "arn:aws:sts::123456789012:assumed-role/a/b/c",
      "other/arn%3Aaws%3Asts%3A%3A123456789012%3Aassumed-role%2Fa%2Fb%2Fc",
    ],
    ["not an arn/../x", "other/not%20an%20arn%2F..%2Fx"],
    ["..", "other/%2E%2E"],
  ])("%s → %s", (caller, prefix) => {
    expect(callerKeyPrefix(caller)).toBe(prefix);
  });

  it("gives each caller a prefix no other caller's keys fall under", () => {
    const callers = [
      "arn:aws:sts::123456789012:assumed-role/ops/alice",
      "arn:aws:sts::123456789012:assumed-role/ops2/alice",
      "arn:aws:sts::123456789012:assumed-role/ops/alice2",
      "arn:aws:iam::123456789012:role/ops",
      "arn:aws:iam::123456789012:role/ops/2026/01/01/x",
      "arn:aws:iam::123456789012:user/ops",
      "arn:aws:states:eu-west-1:123456789012:stateMachine:ops",
      "arn:aws:sts::210987654321:assumed-role/ops/alice",
    ];
    const keys = callers.map((c) => `spill/${callerKeyPrefix(c)}/2026/01/01/req/stdout`);
    for (const [i, c] of callers.entries()) {
      const prefix = `spill/${callerKeyPrefix(c)}/`;
      expect(
        keys.filter((k) => k.startsWith(prefix)),
        c,
      ).toEqual([keys[i]]);
    }
    // A role's prefix covers all its sessions, and only them.
    const role = "spill/123456789012/assumed-role/ops/";
    expect(keys.filter((k) => k.startsWith(role))).toEqual([keys[0], keys[2]]);
  });
});
