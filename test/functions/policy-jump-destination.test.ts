/**
 * Behind a jump host the destination is decided by address, not by a list of names (issue 23
 * item 3): every spelling of an address is decoded the way the jump host's resolver reads it
 * and checked against the deny list and `cidrs`; a name passes only by a rule that names it and
 * sets `allowNamesBehindJumpHost`. The real-jump-host proof is test/security/jump-loopback.test.ts.
 */
import os from "node:os";
import { describe, expect, it } from "vitest";
import { Policy, type PolicyDocument, type PolicyRule } from "../../functions/policy/policy.ts";
import { addressBehindJump } from "../../lib/session/jump.ts";
import { destinationSpelling } from "../../lib/session/resolve.ts";
import type { RunRequest } from "../../lib/types.ts";

const OPS = "arn:aws:sts::123456789012:assumed-role/ops/alice";
const via = { host: "bastion.example.com", username: "jump", credential: "bastion-key" };
const bastion: PolicyRule = {
  id: "bastion",
  callers: [OPS],
  targets: { hosts: ["bastion.example.com"], usernames: ["jump"] },
  credentials: ["bastion-key"],
  allowAsJumpHost: true,
  commands: { patterns: ["true"] },
};
const req = (host: string, withVia = true): RunRequest => ({
  host,
  username: "deploy",
  command: "uptime",
  ...(withVia ? { via } : {}),
});
function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a refusal");
}
const policy = (rules: PolicyRule[], extra: Partial<PolicyDocument> = {}) =>
  new Policy({ rules: [bastion, ...rules], ...extra });

/** A rule any address may pass (the deny list still applies) and one any name may pass. */
const wide: PolicyRule[] = [
  {
    id: "any-address",
    callers: [OPS],
    targets: { cidrs: ["0.0.0.0/0", "::/0"], usernames: ["*"] },
    commands: { patterns: ["uptime"] },
  },
  {
    id: "any-name",
    callers: [OPS],
    targets: { hosts: ["*", "**"], usernames: ["*"] },
    commands: { patterns: ["uptime"] },
  },
];

describe("destinationSpelling: what a jump host's resolver reads", () => {
  it.each([
    ["127.1", "127.0.0.1"],
    ["0x7f.1", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["0x7f000001", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["0", "0.0.0.0"],
    ["[::1]", "::1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["::ffff:7f00:1", "127.0.0.1"],
    ["[0:0:0:0:0:ffff:7f00:1]", "127.0.0.1"],
    ["0xa9.0xfe.0xa9.0xfe", "169.254.169.254"],
    ["2852039166", "169.254.169.254"],
    ["fe80::1%eth0", "fe80::1"],
    ["FD00:EC2::254", "fd00:ec2::254"],
    ["10.0.5.7", "10.0.5.7"],
  ])("%s is the address %s", (spelling, address) => {
    expect(destinationSpelling(spelling)).toMatchObject({ kind: "address", address });
  });

  it.each(["127.0.0.1.", "256.1.1.1", "1.2.3.4.5", "4294967296", "[vm]", "::g"])(
    "%s looks like an address but is none (ambiguous)",
    (spelling) => {
      expect(destinationSpelling(spelling).kind).toBe("ambiguous");
    },
  );

  it.each(["vm", "localhost4", "db1.prod.internal", "0x7f.example"])("%s is a name", (name) => {
    expect(destinationSpelling(name).kind).toBe("name");
  });
});

describe("policy behind a jump host: addresses however spelled", () => {
  it.each([
    "127.0.0.1",
    "127.1",
    "0x7f.1",
    "0177.0.0.1",
    "2130706433",
    "0x7f000001",
    "0",
    "0.0.0.0",
    "[::1]",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "[::ffff:7f00:1]",
    "::127.0.0.1",
    "169.254.169.254",
    "0xa9fea9fe",
    "2852039166",
    "169.254.170.2",
    "[::ffff:169.254.169.254]",
    "fd00:ec2::254",
    "fe80::1%eth0",
  ])("refuses %j under rules allowing any address and any name → deny list", (host) => {
    const err = refusal(() => policy(wide).authorize(OPS, req(host)));
    expect(err.name).toBe("TargetNotAllowed");
    expect(err.message).toMatch(/may not reach/);
  });

  it("the same spellings are refused without a jump host too: ::ffff:7f00:1 is 127.0.0.1", () => {
    const err = refusal(() => policy(wide).authorize(OPS, req("::ffff:7f00:1", false)));
    expect(err.message).toMatch(/may not reach/);
  });

  it.each(["127.0.0.1.", "256.1.1.1", "1.2.3.4.5", "[vm]"])(
    "refuses %j, an address-like spelling that is none",
    (host) => {
      const err = refusal(() => policy(wide).authorize(OPS, req(host)));
      expect(err.name).toBe("TargetNotAllowed");
    },
  );

  it("allows an address in range however spelled, and checks it in canonical form", () => {
    const p = policy([
      {
        id: "db-net",
        callers: [OPS],
        targets: { cidrs: ["10.30.0.0/16"], usernames: ["deploy"] },
        commands: { patterns: ["uptime"] },
      },
    ]);
    expect(p.authorize(OPS, req("0x0a.0x1e.0.5")).rules).toEqual(["db-net"]);
    expect(p.authorize(OPS, req("10.30.5")).rules).toEqual(["db-net"]);
    expect(refusal(() => p.authorize(OPS, req("10.31.5"))).message).toMatch(/may not reach/);
  });

  it("never lets a host glob allow an address spelled like a name ([::ffff:a00:5], [10.0.0.5])", () => {
    const names = policy([wide[1]!]);
    expect(refusal(() => names.authorize(OPS, req("[::ffff:a00:5]"))).message).toContain(
      "only a rule with cidrs",
    );
    expect(refusal(() => names.authorize(OPS, req("[10.0.0.5]"))).message).toContain(
      "looks like an IP address",
    );
  });

  it("addressBehindJump checks and forwards the canonical address", () => {
    const seen: string[] = [];
    const checkAddress = (address: string) => {
      seen.push(address);
    };
    expect(addressBehindJump("0x7f.1", { checkAddress })).toBe("127.0.0.1");
    expect(addressBehindJump("[::ffff:a00:5]", { checkAddress })).toBe("10.0.0.5");
    expect(addressBehindJump("db1.prod.internal", { checkAddress })).toBeNull();
    expect(seen).toEqual(["127.0.0.1", "10.0.0.5"]);
    expect(() => addressBehindJump("127.0.0.1.", { checkAddress })).toThrow(/standard form/);
  });
});

describe("policy behind a jump host: names only by a rule that names them and opts in", () => {
  const selfNames = [
    "localhost",
    "LOCALHOST.",
    "localhost4",
    "localhost6",
    "localhost.localdomain",
    "localhost4.localdomain4",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
    "db.localhost",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.google.internal",
  ];

  it.each([...selfNames, "vm", os.hostname(), "db1.prod.internal"])(
    "refuses %j under a `*`/`**` rule without the opt-in",
    (host) => {
      const err = refusal(() => policy(wide).authorize(OPS, req(host)));
      expect(err.name).toBe("TargetNotAllowed");
      // Without a jump host the name is resolved here and the address decides.
      expect(() => policy(wide).authorize(OPS, req(host, false))).not.toThrow();
    },
  );

  it("allows a name a rule names and opts in; not the bastion's own names it does not name", () => {
    const p = policy([
      {
        id: "prod",
        callers: [OPS],
        targets: { hosts: ["*.prod.internal"], usernames: ["deploy"] },
        allowNamesBehindJumpHost: true,
        commands: { patterns: ["uptime"] },
      },
    ]);
    expect(p.authorize(OPS, req("db1.prod.internal")).rules).toEqual(["prod"]);
    for (const host of ["vm", "localhost4", "prod.internal"]) {
      expect(refusal(() => p.authorize(OPS, req(host))).name).toBe("TargetNotAllowed");
    }
  });

  it.each(selfNames)("refuses %j even where an opt-in rule names it", (host) => {
    const p = policy([
      {
        id: "named-self",
        callers: [OPS],
        targets: { hosts: [host.replace(/\.$/, "").toLowerCase()], usernames: ["deploy"] },
        allowNamesBehindJumpHost: true,
        commands: { patterns: ["uptime"] },
      },
    ]);
    const err = refusal(() => p.authorize(OPS, req(host)));
    expect(err.message).toContain("the jump host itself");
  });

  it.each([["*"], ["**"], ["*.*"], ["db1.prod.internal", "*"]])(
    "refuses at load an opt-in rule whose glob names nothing (%j)",
    (...hosts) => {
      const rule: PolicyRule = {
        callers: [OPS],
        targets: { hosts, usernames: ["*"] },
        allowNamesBehindJumpHost: true,
        commands: { patterns: ["uptime"] },
      };
      expect(() => policy([rule])).toThrow(/names nothing/);
    },
  );

  it("refuses at load an opt-in rule with cidrs, or without hosts, or a non-boolean", () => {
    const base = { callers: [OPS], commands: { patterns: ["uptime"] } };
    expect(() =>
      policy([
        {
          ...base,
          targets: { hosts: ["*.prod.internal"], cidrs: ["10.0.0.0/8"], usernames: ["*"] },
          allowNamesBehindJumpHost: true,
        },
      ]),
    ).toThrow(/no targets.cidrs/);
    expect(() =>
      policy([
        {
          ...base,
          targets: { cidrs: ["10.0.0.0/8"], usernames: ["*"] },
          allowNamesBehindJumpHost: true,
        },
      ]),
    ).toThrow(/needs targets.hosts/);
    expect(() =>
      policy([
        {
          ...base,
          targets: { hosts: ["a.b"], usernames: ["*"] },
          allowNamesBehindJumpHost: "yes" as unknown as boolean,
        },
      ]),
    ).toThrow(/true or false/);
  });
});
