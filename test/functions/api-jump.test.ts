import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import type { PolicyDocument } from "../../functions/policy/policy.ts";
import type { RunResult } from "../../lib/types.ts";
import { type JumpLab, type JumpServer, startJumpLab } from "../helpers/jump-lab.ts";
import { CALLER, fakeContext, LOOPBACK_DENY, testRuntime, v1Event } from "./support.ts";

// The API handler with a jump host (request `via`) against the jump lab: the policy decides
// on the jump host, its credential comes from the same store as the target's, and its key
// from the same known hosts.

let lab: JumpLab;
let jump: JumpServer;
/** A jump host the operator's known hosts do not list. */
let unlisted: JumpServer;

beforeAll(async () => {
  lab = await startJumpLab();
  jump = await lab.jump();
  unlisted = await lab.jump();
});
afterAll(async () => {
  await lab?.stop();
});

function policy(viaCredentials: string[]): PolicyDocument {
  return {
    denyCidrs: LOOPBACK_DENY,
    replaceDefaultDenyCidrs: true,
    rules: [
      {
        id: "target",
        callers: [CALLER],
        targets: { cidrs: ["127.0.0.1/32"], ports: [lab.target.port], usernames: ["*"] },
        commands: { patterns: ["echo [ -~]*"] },
      },
      {
        id: "bastion",
        callers: [CALLER],
        targets: {
          cidrs: ["127.0.0.1/32"],
          ports: [jump.port, unlisted.port],
          usernames: [lab.target.username],
        },
        credentials: viaCredentials,
        allowAsJumpHost: true,
        commands: { patterns: ["true"] },
      },
    ],
  };
}

function setup(viaCredentials = ["bastion"]) {
  const key = { privateKey: lab.target.keys.ed25519.privateKey };
  const { runtime, captured } = testRuntime({
    policy: policy(viaCredentials),
    // Two names, one store: the jump host's credential is read like the target's.
    credentials: { default: key, bastion: key },
    knownHosts: `${lab.target.knownHostsLine}\n${jump.knownHostsLine}\n`,
  });
  return { handler: createApiHandler(runtime), captured };
}

const body = (via: Record<string, unknown> = {}) =>
  JSON.stringify({
    host: "127.0.0.1",
    port: lab.target.port,
    username: lab.target.username,
    command: "echo through-the-jump",
    via: {
      host: "127.0.0.1",
      port: jump.port,
      username: lab.target.username,
      credential: "bastion",
      ...via,
    },
  });

describe("API handler with a jump host (via)", () => {
  it("runs the command through the jump host: 200, hop timings, audit line names the jump host", async () => {
    const { handler, captured } = setup();
    const response = await handler(v1Event(body()), fakeContext());
    const result = JSON.parse(response.body) as RunResult;
    expect(response.statusCode, response.body).toBe(200);
    expect(result.stdout).toBe("through-the-jump\n");
    expect(result.via?.timings.forwardMs).not.toBeNull();
    expect(result.via?.server?.hostKeySha256).toBe(jump.hostKeyFingerprint);
    const audit = captured.audits[0]!;
    expect(audit.via).toEqual({
      host: "127.0.0.1",
      port: jump.port,
      address: "127.0.0.1",
      username: lab.target.username,
      credential: "bastion",
      hostKeySource: "known_hosts",
      hostKeySha256: jump.hostKeyFingerprint,
    });
  });

  it("refuses a jump credential the rule does not grant: 403 CredentialNotAllowed naming via", async () => {
    const { handler } = setup(["other"]);
    const response = await handler(v1Event(body()), fakeContext());
    expect(response.statusCode).toBe(403);
    const answer = JSON.parse(response.body) as { error: { name: string; message: string } };
    expect(answer.error.name).toBe("CredentialNotAllowed");
    expect(answer.error.message).toContain('via.credential "bastion"');
  });

  it("refuses a jump host port no rule allows: 403 TargetNotAllowed naming via", async () => {
    const { handler } = setup();
    const response = await handler(v1Event(body({ port: jump.port + 1 })), fakeContext());
    expect(response.statusCode).toBe(403);
    const answer = JSON.parse(response.body) as {
      error: { name: string; message: string };
      result: RunResult;
    };
    expect(answer.error.name).toBe("TargetNotAllowed");
    expect(answer.error.message).toContain(`via.port ${jump.port + 1}`);
    expect(answer.result.error?.hop).toBe("via");
  });

  it("refuses an unlisted jump host with a pin when the rule does not allow pins: 403, no dial", async () => {
    const { handler, captured } = setup();
    const response = await handler(
      v1Event(body({ port: unlisted.port, hostKey: unlisted.hostKeyFingerprint })),
      fakeContext(),
    );
    expect(response.statusCode, response.body).toBe(403);
    const answer = JSON.parse(response.body) as { error: { name: string; message: string } };
    expect(answer.error.name).toBe("TargetNotAllowed");
    expect(answer.error.message).toContain("via.hostKey");
    expect(captured.audits[0]?.error?.hop).toBe("via");
    // Attributed to the jump host (its port), not the target behind it.
    expect(captured.audits[0]?.error).toMatchObject({ host: "127.0.0.1", port: unlisted.port });
    expect(captured.audits[0]?.target?.port).toBe(lab.target.port);
    // Refused before dialling: the jump host never saw a connection.
    expect(unlisted.log()).toBe("");
  });
});
