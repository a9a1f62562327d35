import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiHandler } from "../../functions/api.ts";
import { SecretsManagerStore } from "../../functions/credentials/secrets-manager-store.ts";
import type { PolicyDocument } from "../../functions/policy/policy.ts";
import { CredentialInvalid, CredentialUnavailable, type EngineError } from "../../lib/errors.ts";
import { closedPort } from "../helpers/adversaries.ts";
import {
  type FakeSecretsManager,
  startFakeSecretsManager,
} from "../helpers/fake-secrets-manager.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { fakeContext, KEY_MARKERS, loopbackPolicy, testRuntime, v1Event } from "./support.ts";

const clientKey = generateEd25519KeyPair();
let fake: FakeSecretsManager;
let sshServer: Ssh2Server;
let client: SecretsManagerClient;

beforeAll(async () => {
  fake = await startFakeSecretsManager();
  fake.secrets.set("bounded-ssh/default", JSON.stringify({ privateKey: clientKey.private }));
  fake.secrets.set("bounded-ssh/pw", JSON.stringify({ password: "hunter2" }));
  fake.secrets.set("bounded-ssh/garbage", "not json");
  fake.secrets.set("bounded-ssh/array", "[1, 2]");
  fake.secrets.set("bounded-ssh/empty-object", "{}");
  fake.secrets.set(
    "bounded-ssh/bad-passphrase-type",
    JSON.stringify({ privateKey: "k", passphrase: 7 }),
  );
  sshServer = await startSsh2Server();
  client = new SecretsManagerClient({
    endpoint: fake.url,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDFAKE", secretAccessKey: "fake-secret" },
    maxAttempts: 1,
  });
});
afterAll(async () => {
  client.destroy();
  await fake.close();
  await sshServer.close();
});

const signal = () => AbortSignal.timeout(2_000);

/** This file tests the store, not the scope: every credential name is granted. */
function grantAll(policy: PolicyDocument): PolicyDocument {
  for (const rule of policy.rules) rule.credentials = ["*"];
  return policy;
}

describe("Secrets Manager credential store (fake endpoint at the wire)", () => {
  it("reads {privateKey} and {password} secrets under the prefix", async () => {
    const store = new SecretsManagerStore({ client });
    expect(await store.get("default", { signal: signal() })).toEqual({
      privateKey: clientKey.private,
    });
    expect(await store.get("pw", { signal: signal() })).toEqual({ password: "hunter2" });
    expect(fake.calls).toContain("secretsmanager.GetSecretValue bounded-ssh/default");
  });

  it("caches per container until the TTL expires", async () => {
    const store = new SecretsManagerStore({ client, prefix: "bounded-ssh/", ttlMs: 60_000 });
    const before = fake.calls.length;
    await store.get("pw", { signal: signal() });
    await store.get("pw", { signal: signal() });
    expect(fake.calls.length - before).toBe(1);
  });

  it.each([
    ["missing", "does not exist in Secrets Manager; create the secret"],
    [
      "denied",
      "cannot be read (AccessDeniedException); grant the function secretsmanager:GetSecretValue on it",
    ],
    [
      "undecryptable",
      "cannot be decrypted (DecryptionFailure); grant the function kms:Decrypt on the secret's KMS key",
    ],
    [
      "deleted",
      "cannot be read (InvalidRequestException: deleted or scheduled for deletion); restore or recreate the secret",
    ],
    [
      "garbage",
      'is not JSON; store {"privateKey": "…", "passphrase": "…"}, {"password": "…"} or {"certificateAuthority": {"privateKey": "…"}}',
    ],
    [
      "array",
      'holds neither privateKey nor password; store {"privateKey": "…", "passphrase": "…"}, {"password": "…"} or {"certificateAuthority": {"privateKey": "…"}}',
    ],
    [
      "empty-object",
      'holds neither privateKey nor password; store {"privateKey": "…", "passphrase": "…"}, {"password": "…"} or {"certificateAuthority": {"privateKey": "…"}}',
    ],
    [
      "bad-passphrase-type",
      'has a non-string passphrase; store {"privateKey": "…", "passphrase": "…"}, {"password": "…"} or {"certificateAuthority": {"privateKey": "…"}}',
    ],
  ])(
    "answers CredentialInvalid (permanent) for %s, naming the credential and the fix",
    async (name, message) => {
      const store = new SecretsManagerStore({ client });
      const err = (await store
        .get(name, { signal: signal() })
        .catch((e: unknown) => e)) as EngineError;
      expect(err).toBeInstanceOf(CredentialInvalid);
      expect(err.message).toBe(`credential "${name}" ${message}`);
      expect(err).toMatchObject({ phase: "credentials", retryable: false });
    },
  );

  it.each([
    ["throttled", "could not be read (ThrottlingException)"],
    ["internal", "could not be read (InternalServiceError)"],
  ])("answers CredentialUnavailable (transient, retryable) when %s", async (name, message) => {
    const store = new SecretsManagerStore({ client });
    const err = (await store
      .get(name, { signal: signal() })
      .catch((e: unknown) => e)) as EngineError;
    expect(err).toBeInstanceOf(CredentialUnavailable);
    expect(err.message).toBe(`credential "${name}" ${message}`);
    expect(err).toMatchObject({ phase: "credentials", retryable: true });
  });

  it("answers CredentialUnavailable when the endpoint is unreachable (closed port)", async () => {
    const { port, close } = await closedPort();
    const unreachable = new SecretsManagerClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: "us-east-1",
      credentials: { accessKeyId: "AKIDFAKE", secretAccessKey: "fake-secret" },
      maxAttempts: 1,
    });
    try {
      const store = new SecretsManagerStore({ client: unreachable });
      const err = (await store
        .get("default", { signal: signal() })
        .catch((e: unknown) => e)) as EngineError;
      expect(err).toBeInstanceOf(CredentialUnavailable);
      expect(err.retryable).toBe(true);
    } finally {
      unreachable.destroy();
      await close();
    }
  });

  it("gives up on a hanging endpoint when the signal fires", async () => {
    const store = new SecretsManagerStore({ client });
    const started = Date.now();
    const err = (await store
      .get("slow", { signal: AbortSignal.timeout(300) })
      .catch((e: unknown) => e)) as Error;
    expect(err.name).toBe("CredentialUnavailable");
    expect((err as EngineError).retryable).toBe(true);
    expect(err.message).toContain("before the deadline");
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("serves an API request end to end with the credential from Secrets Manager", async () => {
    const { runtime, captured } = testRuntime({
      policy: grantAll(loopbackPolicy([sshServer.port])),
      knownHosts: sshServer.knownHostsLine,
      settings: { remoteBound: false, credentialsTimeoutMs: 500 },
    });
    runtime.credentials = new SecretsManagerStore({ client });
    const handler = createApiHandler(runtime);
    const body = (credential: string) =>
      JSON.stringify({
        host: "127.0.0.1",
        port: sshServer.port,
        username: "ops",
        command: "echo hi",
        credential,
      });
    const ok = await handler(v1Event(body("default")), fakeContext());
    expect(ok.statusCode).toBe(200);
    const slow = Date.now();
    const hanging = await handler(v1Event(body("slow")), fakeContext());
    expect(hanging.statusCode).toBe(500);
    expect(JSON.parse(hanging.body).error.name).toBe("CredentialUnavailable");
    expect(Date.now() - slow).toBeLessThan(1_000);
    const missing = await handler(v1Event(body("missing")), fakeContext());
    expect(missing.statusCode).toBe(500);
    expect(JSON.parse(missing.body).error).toMatchObject({
      name: "CredentialInvalid",
      phase: "credentials",
      retryable: false,
    });
    for (const line of captured.lines) for (const m of KEY_MARKERS) expect(line).not.toMatch(m);
  });
});
