import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalCredentialStore } from "../../functions/credentials/local-store.ts";
import { CredentialInvalid, type EngineError } from "../../lib/errors.ts";

// Local mode's store: a credential that is not configured or whose key file cannot be read
// is CredentialInvalid (fix the config, don't retry), naming the credential and the fix.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "bssh-local-store-"));
  writeFileSync(path.join(dir, "id_ok"), "KEY TEXT", { mode: 0o600 });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const signal = () => AbortSignal.timeout(2_000);

function store() {
  return new LocalCredentialStore(
    {
      ok: { privateKeyFile: "id_ok", passphrase: "p" },
      missing: { privateKeyFile: "id_missing" },
      directory: { privateKeyFile: "." },
      empty: {} as never,
    },
    dir,
  );
}

async function failure(name: string): Promise<EngineError> {
  return (await store()
    .get(name, { signal: signal() })
    .catch((e: unknown) => e)) as EngineError;
}

describe("LocalCredentialStore", () => {
  it("reads the key file relative to the config", async () => {
    expect(await store().get("ok", { signal: signal() })).toEqual({
      privateKey: "KEY TEXT",
      passphrase: "p",
    });
  });

  it.each([
    [
      "nope",
      'credential "nope" is not configured; add it under credentials in the local config file',
    ],
    ["empty", "has neither privateKeyFile nor password; set one of them in the local config file"],
    ["missing", "cannot be read (ENOENT); fix privateKeyFile or the file's permissions"],
    ["directory", "cannot be read (EISDIR); fix privateKeyFile or the file's permissions"],
  ])("%s → CredentialInvalid naming the fix", async (name, message) => {
    const err = await failure(name);
    expect(err).toBeInstanceOf(CredentialInvalid);
    expect(err).toMatchObject({ phase: "credentials", retryable: false });
    expect(err.message).toContain(`credential "${name}"`);
    expect(err.message).toContain(message);
  });

  it("a read cut off by the deadline is CredentialUnavailable (retryable)", async () => {
    const aborted = AbortSignal.abort();
    const err = (await store()
      .get("ok", { signal: aborted })
      .catch((e: unknown) => e)) as EngineError;
    expect(err.name).toBe("CredentialUnavailable");
    expect(err.retryable).toBe(true);
  });
});
