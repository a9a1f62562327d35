/**
 * No pivot to a bastion's own loopback (issue 23 item 3), against a real OpenSSH jump host
 * (test/helpers/jump-lab.ts): the jump sshd lives in a network namespace whose 127.0.0.1 holds
 * a real sshd — the bastion's loopback. The namespace gets a hosts file with the standard
 * aliases (Debian's and Red Hat's) and the bastion's own hostname, all naming that loopback,
 * and the operator's known hosts list its key under every one of those names, so the policy is
 * the only fence. On main a `*` host glob let `vm` (the bastion's hostname), `localhost4`,
 * `localhost.localdomain`… through and the command ran there. Each attack goes through the API
 * handler; pass = 403 `TargetNotAllowed` at phase `policy`, nothing dialled, no output. A name
 * a rule names and opts in (`allowNamesBehindJumpHost`) runs — the lab would run the others too.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import type { PolicyDocument } from "../../functions/policy/policy.ts";
import type { RunResult } from "../../lib/types.ts";
import {
  CALLER,
  type Captured,
  fakeContext,
  LOOPBACK_DENY,
  testRuntime,
  v1Event,
} from "../functions/support.ts";
import { type JumpLab, type JumpServer, startJumpLab } from "../helpers/jump-lab.ts";

/** The bastion's own names, as its resolver maps them to itself. */
const IPV4_SELF = [
  "localhost",
  "localhost.localdomain",
  "localhost4",
  "localhost4.localdomain4",
  "vm",
  os.hostname(),
];
const IPV6_SELF = ["localhost6", "localhost6.localdomain6", "ip6-localhost", "ip6-loopback"];
/** A name the operator names in a rule and opts in: the positive control. */
const NAMED = "target.lab";
const MARKER = "ran-on-the-bastion-loopback";

let lab: JumpLab;
let jump: JumpServer;
let hostsDir: string;
let handler: ReturnType<typeof createApiHandler>;
let captured: Captured;

function policy(): PolicyDocument {
  return {
    // The lab's jump host listens on loopback; everything else of the default list stays.
    denyCidrs: [...LOOPBACK_DENY, "127.0.0.2/31", "127.0.0.4/30", "127.0.1.0/24"],
    replaceDefaultDenyCidrs: true,
    rules: [
      {
        id: "any-name",
        callers: [CALLER],
        // What an operator writes for "any host of ours": it matches the bastion's names too.
        targets: { hosts: ["*", "**"], ports: [lab.target.port], usernames: ["*"] },
        commands: { patterns: ["echo [ -~]*"] },
      },
      {
        id: "named",
        callers: [CALLER],
        targets: { hosts: [NAMED], ports: [lab.target.port], usernames: ["*"] },
        allowNamesBehindJumpHost: true,
        commands: { patterns: ["echo [ -~]*"] },
      },
      {
        // The operator allows the bastion's 127.0.0.1 by address (the address control below);
        // the rest of the loopback stays denied.
        id: "loop-addr",
        callers: [CALLER],
        targets: { cidrs: ["127.0.0.0/8", "::/0"], ports: [lab.target.port], usernames: ["*"] },
        commands: { patterns: ["echo [ -~]*"] },
      },
      {
        id: "bastion",
        callers: [CALLER],
        targets: { cidrs: ["127.0.0.1/32"], ports: [jump.port], usernames: ["*"] },
        credentials: ["bastion"],
        allowAsJumpHost: true,
        commands: { patterns: ["true"] },
      },
    ],
  };
}

beforeAll(async () => {
  lab = await startJumpLab();
  // `ip netns exec` (how the lab starts each jump sshd) mounts /etc/netns/<ns>/hosts as its
  // /etc/hosts: the bastion's resolver. Unique to this run's namespace; removed in afterAll.
  hostsDir = `/etc/netns/${lab.ns}`;
  await mkdir(hostsDir, { recursive: true });
  await writeFile(
    `${hostsDir}/hosts`,
    `127.0.0.1 ${[...new Set(IPV4_SELF), NAMED].join(" ")}\n::1 ${IPV6_SELF.join(" ")}\n`,
  );
  jump = await lab.jump();
  const keyLine = lab.target.knownHostsLine.split(" ").slice(1).join(" ");
  // known_hosts names a target as spelled (as OpenSSH does), so the address control's
  // spelling is listed too.
  const names = [...IPV4_SELF, ...IPV6_SELF, NAMED, "0x7f.1"].map(
    (n) => `[${n}]:${lab.target.port}`,
  );
  const key = { privateKey: lab.target.keys.ed25519.privateKey };
  const made = testRuntime({
    policy: policy(),
    credentials: { default: key, bastion: key },
    knownHosts: `${names.join(",")} ${keyLine}\n${jump.knownHostsLine}\n`,
    settings: { remoteBound: false },
  });
  handler = createApiHandler(made.runtime);
  captured = made.captured;
});

afterAll(async () => {
  await lab?.stop();
  if (hostsDir) await rm(hostsDir, { recursive: true, force: true });
});

async function run(host: string) {
  const body = JSON.stringify({
    host,
    port: lab.target.port,
    username: lab.target.username,
    command: `echo ${MARKER}`,
    via: {
      host: "127.0.0.1",
      port: jump.port,
      username: lab.target.username,
      credential: "bastion",
    },
  });
  const response = await handler(v1Event(body), fakeContext());
  const parsed = JSON.parse(response.body) as {
    error?: { name: string; message: string };
    result?: RunResult;
  } & Partial<RunResult>;
  return { status: response.statusCode, body: parsed, text: response.body };
}

describe("behind a real OpenSSH jump host: no command on the bastion's own loopback", () => {
  it("runs a name a rule names and opts in (the control: the lab reaches the loopback)", async () => {
    const o = await run(NAMED);
    expect(o.status).toBe(200);
    expect(o.text).toContain(MARKER);
  });

  it("runs an allowed address however spelled, forwarded as the address checked (0x7f.1 → 127.0.0.1)", async () => {
    const o = await run("0x7f.1");
    expect(o.status).toBe(200);
    expect(o.text).toContain(MARKER);
    expect(captured.audits.at(-1)?.target?.address).toBe("127.0.0.1");
  });

  it.each([...new Set([...IPV4_SELF, ...IPV6_SELF])])(
    "refuses the bastion's own name %j under a `*` glob → 403 TargetNotAllowed, nothing dialled",
    async (host) => {
      const o = await run(host);
      expect([o.status, o.body.error?.name]).toEqual([403, "TargetNotAllowed"]);
      expect(o.text).not.toContain(MARKER);
      const audit = captured.audits.at(-1)!;
      expect(audit.error).toMatchObject({ name: "TargetNotAllowed", phase: "policy" });
      // Refused before the jump host was dialled: no address, no key seen there.
      expect(audit.via?.address ?? null).toBeNull();
      expect(audit.via?.hostKeySha256).toBeUndefined();
    },
  );

  it.each(["127.2", "0x7f.0.1.1", "2130706434", "0177.0.1.1", "[::1]", "::ffff:7f00:2", "0"])(
    "refuses the loopback address spelled %j (decoded, then the deny list) → 403, nothing dialled",
    async (host) => {
      const o = await run(host);
      // `[::1]` is refused by the request schema already (400); the rest by the deny list.
      expect(o.body.error?.name).toBe(host === "[::1]" ? "ValidationError" : "TargetNotAllowed");
      expect(o.text).not.toContain(MARKER);
      expect(captured.audits.at(-1)?.via?.hostKeySha256).toBeUndefined();
    },
  );
});
