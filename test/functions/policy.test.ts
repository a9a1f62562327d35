import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Policy, type PolicyDocument } from "../../functions/policy/policy.ts";
import type { RunRequest } from "../../lib/types.ts";

const OPS = "arn:aws:sts::123456789012:assumed-role/ops/alice";
const document: PolicyDocument = {
  rules: [
    {
      id: "web",
      callers: ["arn:aws:sts::123456789012:assumed-role/ops/*"],
      targets: {
        hosts: ["*.web.example.com"],
        cidrs: ["10.20.0.0/16"],
        ports: [22, 2222],
        usernames: ["deploy"],
      },
      commands: { patterns: ["uptime", "systemctl status [a-z-]+"], templates: ["restart"] },
    },
    {
      id: "lab",
      callers: ["*"],
      targets: { cidrs: ["192.168.50.0/24"], usernames: ["lab-*"] },
      commands: { patterns: ["echo .*"] },
    },
  ],
  templates: {
    restart: {
      command: "sudo systemctl restart {{unit}} && journalctl -u {{unit}} -n {{lines}}",
      params: {
        unit: { type: "string", pattern: "[a-z][a-z0-9@.-]*", maxLength: 64 },
        lines: { type: "integer", minimum: 1, maximum: 500, default: 20 },
      },
    },
  },
};
const policy = new Policy(document);
const req = (extra: Partial<RunRequest> = {}): RunRequest => ({
  host: "app1.web.example.com",
  username: "deploy",
  command: "uptime",
  ...extra,
});

function refusal(fn: () => unknown): { name: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a refusal");
}

describe("policy", () => {
  it("allows a matching caller, host, port, user and command", () => {
    const auth = policy.authorize(OPS, req());
    expect(auth).toMatchObject({ command: "uptime", rules: ["web"] });
    expect(() => auth.checkAddress("10.20.3.4", 4)).not.toThrow();
  });

  it.each([
    [undefined, req(), "TargetNotAllowed", "no caller identity"],
    ["arn:aws:iam::1:user/x", req(), "TargetNotAllowed", "host app1.web.example.com"],
    [OPS, req({ host: "evil.example.com" }), "TargetNotAllowed", "host evil.example.com"],
    [OPS, req({ host: "a.b.web.example.com" }), "TargetNotAllowed", "is not allowed"],
    [OPS, req({ port: 23 }), "TargetNotAllowed", "port 23"],
    [OPS, req({ username: "root" }), "TargetNotAllowed", "username root"],
    [OPS, req({ command: "uptime; rm -rf /" }), "CommandNotAllowed", 'shell syntax (";")'],
    [OPS, req({ command: "uptime\nreboot" }), "CommandNotAllowed", 'shell syntax ("\\n")'],
    [OPS, req({ command: "reboot" }), "CommandNotAllowed", "matches no pattern"],
    [OPS, req({ host: "10.20.1.1" }), "TargetNotAllowed", "host 10.20.1.1"],
    [
      OPS,
      req({ host: "192.168.51.1", username: "lab-1", command: "echo x" }),
      "TargetNotAllowed",
      "host",
    ],
  ])("refuses %s %j with %s", (caller, request, name, message) => {
    const err = refusal(() => policy.authorize(caller, request));
    expect(err.name).toBe(name);
    expect(err.message).toContain(message);
  });

  it("refuses a resolved address outside the rule's ranges, and any denied range", () => {
    const auth = policy.authorize(OPS, req());
    expect(refusal(() => auth.checkAddress("10.21.0.1", 4)).message).toContain("may not reach");
    expect(refusal(() => auth.checkAddress("::ffff:10.99.0.1", 6)).name).toBe("TargetNotAllowed");
    const lab = policy.authorize(
      OPS,
      req({ host: "lab.local", username: "lab-7", command: "echo hi" }),
    );
    expect(() => lab.checkAddress("192.168.50.9", 4)).not.toThrow();
    // The metadata endpoint is denied even for a rule that would otherwise allow the name.
    const open = new Policy({
      rules: [
        {
          callers: ["*"],
          targets: { hosts: ["**"], usernames: ["*"] },
          commands: { patterns: [".*"] },
        },
      ],
    });
    const any = open.authorize(OPS, req({ host: "metadata.example" }));
    expect(refusal(() => any.checkAddress("169.254.169.254", 4)).message).toContain(
      "may not reach",
    );
    expect(refusal(() => any.checkAddress("fd00:ec2::254", 6)).message).toContain("may not reach");
    expect(refusal(() => open.authorize(OPS, req({ host: "169.254.169.254" }))).name).toBe(
      "TargetNotAllowed",
    );
  });

  it("expands a template with validated, shell-quoted parameters and defaults", () => {
    const auth = policy.authorize(OPS, req({ command: 'template:restart {"unit":"nginx"}' }));
    expect(auth.command).toBe("sudo systemctl restart 'nginx' && journalctl -u 'nginx' -n 20");
    expect(auth.template).toBe("restart");
  });

  it.each([
    ['template:restart {"unit":"nginx; reboot"}', "CommandNotAllowed", "does not match"],
    ['template:restart {"unit":"nginx","lines":501}', "CommandNotAllowed", "<= 500"],
    ['template:restart {"unit":"nginx","lines":"5"}', "CommandNotAllowed", "must be an integer"],
    ['template:restart {"unit":"nginx","user":"root"}', "CommandNotAllowed", "unknown parameter"],
    ["template:restart", "CommandNotAllowed", "missing parameter"],
    ["template:reboot", "CommandNotAllowed", "not allowed"],
    ["template:restart {unit:nginx}", "ValidationError", "not valid JSON"],
    ["template:restart [1]", "ValidationError", "JSON object"],
    ["template:", "ValidationError", "template call"],
  ])("refuses the template call %s", (command, name, message) => {
    const err = refusal(() => policy.authorize(OPS, req({ command })));
    expect(err.name).toBe(name);
    expect(err.message).toContain(message);
  });

  it.each([
    [{ rules: "x" }, "rules"],
    [
      {
        rules: [
          {
            callers: [],
            targets: { hosts: ["a"], usernames: ["u"] },
            commands: { patterns: ["x"] },
          },
        ],
      },
      "callers",
    ],
    [
      { rules: [{ callers: ["*"], targets: { usernames: ["u"] }, commands: { patterns: ["x"] } }] },
      "hosts or cidrs",
    ],
    [
      {
        rules: [
          {
            callers: ["*"],
            targets: { cidrs: ["10.0.0.0/33"], usernames: ["u"] },
            commands: { patterns: ["x"] },
          },
        ],
      },
      "CIDR",
    ],
    [
      { rules: [{ callers: ["*"], targets: { hosts: ["a"], usernames: ["u"] }, commands: {} }] },
      "patterns or templates",
    ],
    [
      {
        rules: [
          {
            callers: ["*"],
            targets: { hosts: ["a"], usernames: ["u"] },
            commands: { templates: ["t"] },
          },
        ],
      },
      "unknown template",
    ],
    [{ rules: [], templates: { t: { command: "x {{y}}" } } }, "placeholder"],
  ])("rejects a malformed policy document (%#)", (doc, message) => {
    expect(() => new Policy(doc as unknown as PolicyDocument)).toThrow(message);
  });
});

describe("policy: credentials, pins, shell syntax (SPEC §9)", () => {
  const doc = (rule: Partial<PolicyDocument["rules"][number]>): PolicyDocument => ({
    rules: [
      {
        id: "r",
        callers: [OPS],
        targets: { hosts: ["*.web.example.com"], usernames: ["deploy"] },
        commands: { patterns: ["uptime", "echo [ -~]*"] },
        ...rule,
      },
    ],
  });

  it("grants only the default credential unless the rule names others", () => {
    const p = new Policy(doc({}));
    expect(p.authorize(OPS, req()).credential).toBe("default");
    expect(refusal(() => p.authorize(OPS, req({ credential: "prod" }))).name).toBe(
      "CredentialNotAllowed",
    );
  });

  it("matches credential globs and reports allowRequestPins of the allowing rule", () => {
    const p = new Policy(doc({ credentials: ["deploy-*"], allowRequestPins: true }));
    const auth = p.authorize(OPS, req({ credential: "deploy-web" }));
    expect(auth).toMatchObject({ credential: "deploy-web", allowRequestPins: true });
    expect(refusal(() => p.authorize(OPS, req({ credential: "default" }))).name).toBe(
      "CredentialNotAllowed",
    );
  });

  it("lets shell syntax through only where the rule sets allowShellSyntax", () => {
    const strict = new Policy(doc({}));
    const loose = new Policy(doc({ allowShellSyntax: true }));
    expect(refusal(() => strict.authorize(OPS, req({ command: "echo a | wc" }))).message).toContain(
      "allowShellSyntax",
    );
    expect(loose.authorize(OPS, req({ command: "echo a | wc" })).command).toBe("echo a | wc");
  });

  it("grants spilling only when every rule allowing the request sets allowSpill", () => {
    const rule = doc({}).rules[0]!;
    expect(new Policy(doc({})).authorize(OPS, req()).allowSpill).toBe(false);
    expect(new Policy(doc({ allowSpill: true })).authorize(OPS, req()).allowSpill).toBe(true);
    // A second rule allows the same request without allowSpill: it must not borrow the first's.
    const mixed = new Policy({
      rules: [
        { ...rule, id: "spills", allowSpill: true },
        { ...rule, id: "plain" },
      ],
    });
    const auth = mixed.authorize(OPS, req());
    expect(auth.rules).toEqual(["spills", "plain"]);
    expect(auth.allowSpill).toBe(false);
  });

  it.each([
    [{ credentials: [] }, "credentials must be a non-empty array"],
    [{ allowRequestPins: "yes" }, "allowRequestPins must be true or false"],
    [{ allowSpill: 1 }, "allowSpill must be true or false"],
    [{ commands: { patterns: ["(unclosed"] } }, "not a valid regular expression"],
  ])("refuses a malformed rule %j", (rule, message) => {
    expect(() => new Policy(doc(rule as never))).toThrow(message);
  });

  it("loads the example local config's policy", () => {
    const example = JSON.parse(
      readFileSync(new URL("../../examples/local-config.json", import.meta.url), "utf8"),
    ) as { policy: PolicyDocument };
    expect(() => new Policy(example.policy)).not.toThrow();
  });
});

describe("policy: jump host (via)", () => {
  const jumpPolicy = new Policy({
    rules: [
      {
        id: "web",
        callers: [OPS],
        targets: { hosts: ["*.web.example.com"], usernames: ["deploy"] },
        allowNamesBehindJumpHost: true,
        commands: { patterns: ["uptime"] },
      },
      {
        id: "bastion",
        callers: [OPS],
        targets: { hosts: ["bastion.example.com"], cidrs: ["10.9.0.0/24"], usernames: ["jump"] },
        credentials: ["bastion-key"],
        // A jump host rule still needs commands (every rule does); nothing runs there.
        commands: { patterns: ["true"] },
        allowRequestPins: true,
        allowAsJumpHost: true,
      },
      {
        id: "ranged",
        callers: [OPS],
        targets: { hosts: ["*.db.example.com"], cidrs: ["10.30.0.0/16"], usernames: ["deploy"] },
        commands: { patterns: ["uptime"] },
      },
      {
        id: "addr",
        callers: [OPS],
        targets: { cidrs: ["10.30.0.0/16"], usernames: ["deploy"] },
        commands: { patterns: ["uptime"] },
      },
    ],
  });
  const via = { host: "bastion.example.com", username: "jump", credential: "bastion-key" };

  it.each(["localhost", "LOCALHOST.", "db.localhost", "ip6-localhost", "ip6-loopback"])(
    "refuses the loopback name %j behind a jump host, which a * glob would match",
    (host) => {
      const wide = new Policy({
        rules: [
          {
            callers: [OPS],
            targets: { hosts: ["*", "*.localhost", "bastion.example.com"], usernames: ["*"] },
            credentials: ["*"],
            allowAsJumpHost: true,
            commands: { patterns: ["uptime"] },
          },
        ],
      });
      const err = refusal(() => wide.authorize(OPS, req({ host, via })));
      expect(err.name).toBe("TargetNotAllowed");
      expect(err.message).toContain("the jump host itself");
      // Without a jump host the name is resolved here and the deny list decides.
      expect(() => wide.authorize(OPS, req({ host }))).not.toThrow();
    },
  );

  it("refuses a host its rules allow as a target but none as a jump host (allowAsJumpHost)", () => {
    const err = refusal(() =>
      jumpPolicy.authorize(OPS, req({ via: { host: "app.web.example.com", username: "deploy" } })),
    );
    expect(err.name).toBe("TargetNotAllowed");
    expect(err.message).toContain("allowAsJumpHost");
    expect((err as { hop?: string }).hop).toBe("via");
  });

  it("allows a jump host that a rule of the caller allows as a jump host", () => {
    const auth = jumpPolicy.authorize(OPS, req({ via }));
    expect(auth.rules).toEqual(["web"]);
    expect(auth.credential).toBe("default");
    expect(auth.via).toEqual({
      credential: "bastion-key",
      rules: ["bastion"],
      allowRequestPins: true,
    });
    // The jump host's resolved address is checked against its own rule's ranges and the deny list.
    expect(() => auth.checkAddress("10.9.0.5", 4, "via")).not.toThrow();
    const outside = refusal(() => auth.checkAddress("10.9.1.5", 4, "via"));
    expect(outside.name).toBe("TargetNotAllowed");
    expect(outside.message).toContain("via.host bastion.example.com");
    expect((outside as { hop?: string }).hop).toBe("via");
    expect(refusal(() => auth.checkAddress("127.0.0.1", 4, "via")).message).toContain(
      "may not reach",
    );
    // The target's own check is unchanged.
    expect(() => auth.checkAddress("10.30.0.1", 4)).not.toThrow();
  });

  it.each([
    [{ ...via, host: "other.example.com" }, "TargetNotAllowed", "jump host other.example.com"],
    [{ ...via, port: 2222 }, "TargetNotAllowed", "via.port 2222"],
    [{ ...via, username: "root" }, "TargetNotAllowed", "via.username root"],
    [{ ...via, credential: "default" }, "CredentialNotAllowed", 'via.credential "default"'],
    [{ host: "bastion.example.com", username: "jump" }, "CredentialNotAllowed", "via.credential"],
    [{ ...via, host: "10.9.0.7" }, "TargetNotAllowed", "via.host 10.9.0.7"],
  ])("refuses via %j with %s naming the via field", (v, name, message) => {
    const err = refusal(() => jumpPolicy.authorize(OPS, req({ via: v })));
    expect(err.name).toBe(name);
    expect(err.message).toContain(message);
    expect((err as { hop?: string }).hop).toBe("via");
  });

  it("checks an IP-literal jump host against the ranges and the deny list at once", () => {
    const byAddress = new Policy({
      rules: [
        {
          callers: [OPS],
          targets: { cidrs: ["10.9.0.0/24", "127.0.0.0/8"], usernames: ["*"] },
          credentials: ["*"],
          allowAsJumpHost: true,
          commands: { patterns: ["uptime"] },
        },
      ],
    });
    const ok = byAddress.authorize(
      OPS,
      req({ host: "10.9.0.9", via: { ...via, host: "10.9.0.1" } }),
    );
    expect(ok.via?.rules).toEqual(["rule-0"]);
    const denied = refusal(() =>
      byAddress.authorize(OPS, req({ host: "10.9.0.9", via: { ...via, host: "127.0.0.1" } })),
    );
    expect(denied.message).toContain("via.host 127.0.0.1 resolved to an address");
  });

  it("a named target behind a jump host needs a rule without cidrs (its address is never seen)", () => {
    const err = refusal(() =>
      jumpPolicy.authorize(OPS, req({ host: "primary.db.example.com", via })),
    );
    expect(err.name).toBe("TargetNotAllowed");
    expect(err.message).toContain("which resolves its name");
    // Given as an address, the same rule's ranges (and the deny list) apply.
    const auth = jumpPolicy.authorize(OPS, req({ host: "10.30.0.4", via }));
    expect(auth.rules).toEqual(["addr"]);
    expect(refusal(() => auth.checkAddress("10.31.0.4", 4)).name).toBe("TargetNotAllowed");
  });
});
