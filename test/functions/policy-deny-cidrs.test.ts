/**
 * `denyCidrs` adds to the default deny list (issue 23: setting it replaced the whole list, so a
 * policy that only meant to deny one more network let loopback and metadata through); dropping
 * the defaults takes `replaceDefaultDenyCidrs: true`.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_DENY_CIDRS,
  denyList,
  Policy,
  type PolicyDocument,
} from "../../functions/policy/policy.ts";

const OPS = "arn:aws:sts::123456789012:assumed-role/ops/alice";
const anyAddress = (extra: Partial<PolicyDocument>): Policy =>
  new Policy({
    ...extra,
    rules: [
      {
        id: "any",
        callers: ["*"],
        targets: { cidrs: ["0.0.0.0/0", "::/0"], usernames: ["*"] },
        commands: { patterns: ["uptime"] },
      },
    ],
  });
const check = (policy: Policy, host: string) => () =>
  policy
    .authorize(OPS, { host, username: "deploy", command: "uptime" })
    .checkAddress(host, host.includes(":") ? 6 : 4);

describe("denyCidrs", () => {
  it("adds to the defaults: loopback and metadata stay denied when a policy denies one more network", () => {
    const policy = anyAddress({ denyCidrs: ["10.99.0.0/16"] });
    for (const host of [
      "127.0.0.1",
      "169.254.169.254",
      "169.254.170.2",
      "::1",
      "fd00:ec2::254",
      "0.0.0.0",
    ]) {
      expect(check(policy, host), host).toThrow(/may not reach|TargetNotAllowed|not allowed/);
    }
    expect(check(policy, "10.99.1.2")).toThrow();
    expect(check(policy, "10.98.1.2")).not.toThrow();
    expect(denyList({ rules: [], denyCidrs: ["10.99.0.0/16"] })).toEqual([
      ...DEFAULT_DENY_CIDRS,
      "10.99.0.0/16",
    ]);
  });

  it("replaces them only with replaceDefaultDenyCidrs: true", () => {
    const local = anyAddress({
      denyCidrs: DEFAULT_DENY_CIDRS.filter((r) => r !== "127.0.0.0/8"),
      replaceDefaultDenyCidrs: true,
    });
    expect(check(local, "127.0.0.1")).not.toThrow();
    expect(check(local, "169.254.169.254")).toThrow();
    expect(
      check(anyAddress({ denyCidrs: [], replaceDefaultDenyCidrs: true }), "169.254.169.254"),
    ).not.toThrow();
    expect(
      check(anyAddress({ replaceDefaultDenyCidrs: false, denyCidrs: ["10.0.0.0/8"] }), "127.0.0.1"),
    ).toThrow();
  });

  it("refuses a replacement without its list, a non-boolean flag, a bad range", () => {
    expect(() => anyAddress({ replaceDefaultDenyCidrs: true })).toThrow(
      /replaceDefaultDenyCidrs: true needs policy.denyCidrs/,
    );
    expect(() =>
      anyAddress({ replaceDefaultDenyCidrs: "yes" as unknown as boolean, denyCidrs: [] }),
    ).toThrow(/must be true or false/);
    expect(() => anyAddress({ denyCidrs: [] })).toThrow(/non-empty array/);
    expect(() => anyAddress({ denyCidrs: ["10.0.0.0/33"] })).toThrow(/invalid CIDR/);
  });
});
