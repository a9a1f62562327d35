/**
 * The unexpected-error log's redactor (functions/audit/loggable-error.ts) against real private
 * keys of every type and format, made on the fly by ssh-keygen and node:crypto, and against
 * stack frames whose path holds a long hex segment (a checkout named by its commit, as CI's
 * fresh clones are): the keys never survive, the paths always do.
 */
import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { loggableError, redactSecrets } from "../../functions/audit/loggable-error.ts";

const work = mkdtempSync(join(tmpdir(), "bssh-redact-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let serial = 0;
function sshKeygen(args: string[]): string {
  const file = join(work, `key${serial++}`);
  execFileSync("ssh-keygen", ["-q", "-N", "", "-C", "", "-f", file, ...args]);
  return readFileSync(file, "utf8");
}

/** Every private key shape a credential store may hold, each made fresh. */
function realKeys(): Array<[string, string]> {
  const pem = (type: "rsa" | "ec" | "ed25519", format: "pkcs1" | "sec1" | "pkcs8") => {
    const options =
      type === "rsa" ? { modulusLength: 2048 } : type === "ec" ? { namedCurve: "P-256" } : {};
    const { privateKey } = generateKeyPairSync(type as "rsa", options as { modulusLength: 2048 });
    return privateKey.export({ type: format, format: "pem" }) as string;
  };
  const encrypted = generateKeyPairSync("ed25519").privateKey.export({
    type: "pkcs8",
    format: "pem",
    cipher: "aes-256-cbc",
    passphrase: "p",
  }) as string;
  return [
    ["ssh-keygen ed25519 (OpenSSH)", sshKeygen(["-t", "ed25519"])],
    ["ssh-keygen rsa 3072 (OpenSSH)", sshKeygen(["-t", "rsa"])],
    ["ssh-keygen ecdsa 256 (OpenSSH)", sshKeygen(["-t", "ecdsa", "-b", "256"])],
    ["ssh-keygen ecdsa 384 (OpenSSH)", sshKeygen(["-t", "ecdsa", "-b", "384"])],
    ["ssh-keygen ecdsa 521 (OpenSSH)", sshKeygen(["-t", "ecdsa", "-b", "521"])],
    ["ssh-keygen rsa (PEM, PKCS#1)", sshKeygen(["-t", "rsa", "-m", "PEM"])],
    ["ssh-keygen ecdsa (PEM, SEC1)", sshKeygen(["-t", "ecdsa", "-m", "PEM"])],
    ["ssh-keygen rsa (PKCS#8)", sshKeygen(["-t", "rsa", "-m", "PKCS8"])],
    ["ssh-keygen ecdsa (PKCS#8)", sshKeygen(["-t", "ecdsa", "-m", "PKCS8"])],
    ["node:crypto ed25519 (PKCS#8)", pem("ed25519", "pkcs8")],
    ["node:crypto rsa (PKCS#1)", pem("rsa", "pkcs1")],
    ["node:crypto ec P-256 (SEC1)", pem("ec", "sec1")],
    ["node:crypto ec P-256 (PKCS#8)", pem("ec", "pkcs8")],
    ["node:crypto ed25519 (encrypted PKCS#8)", encrypted],
  ];
}

/** The base64 body of a key file: its lines without the BEGIN/END armour. */
const bodyLines = (key: string) =>
  key.split("\n").filter((line) => line !== "" && !line.startsWith("-----"));

/** No 16-character piece of the key body is left in `logged`. */
function expectNoKeyBytes(logged: string, key: string) {
  const body = bodyLines(key).join("");
  for (let at = 0; at + 16 <= body.length; at += 8) {
    expect(logged).not.toContain(body.slice(at, at + 16));
  }
}

describe("redactSecrets: real key material of every type", () => {
  const keys = realKeys();

  it.each(keys)("%s: the whole key quoted in a message is cut out", (_name, key) => {
    const logged = redactSecrets(`cannot parse privateKey: ${key} (from the store)`);
    expect(logged).toContain("[redacted private key]");
    expect(logged).toContain("cannot parse privateKey:");
    expectNoKeyBytes(logged, key);
  });

  it.each(keys)("%s: the body without its armour, as lines or one line", (_name, key) => {
    const lines = bodyLines(key);
    expectNoKeyBytes(redactSecrets(`bad key:\n${lines.join("\n")}\n`), key);
    expectNoKeyBytes(redactSecrets(`bad key: ${lines.join("")}`), key);
    // Each full-length body line quoted alone (a parser echoing the line it choked on).
    for (const line of lines.filter((l) => l.length >= 60)) {
      expect(redactSecrets(`unexpected "${line}" at line 2`)).toBe(
        'unexpected "[redacted]" at line 2',
      );
    }
  });

  it.each(keys)("%s: the key stored base64-encoded (a secret string) is cut out", (_n, key) => {
    const encoded = Buffer.from(key).toString("base64");
    const logged = redactSecrets(`secret value ${encoded} is not JSON`);
    expect(logged).toBe("secret value [redacted] is not JSON");
  });

  it("keeps the text around the key and a key inside a stack's message line", () => {
    const [, key] = keys[0] as [string, string];
    const err = new TypeError(`cannot parse ${key.trim()}`, {
      cause: new Error(`line ${bodyLines(key)[1]}`),
    });
    const logged = loggableError(err);
    expect(logged.message).toBe("cannot parse [redacted private key]");
    expectNoKeyBytes(JSON.stringify({ s: logged.stack, c: String(logged.cause) }), key);
    expect(logged.stack).toContain("redact-secrets.test.ts");
  });
});

describe("redactSecrets: paths with long hex segments stay", () => {
  const commit = createHash("sha1").update(randomBytes(8)).digest("hex");
  const sha256 = createHash("sha256").update(randomBytes(8)).digest("hex");

  it.each([
    [`    at Object.<anonymous> (/tmp/${commit}/p/test/functions/audit-logger.test.ts:12:34)`],
    [`    at run (file:///tmp/${commit}/p/node_modules/vitest/dist/index.js:1:2)`],
    [`    at /builds/${commit.toUpperCase()}/checkout/functions/audit/audit-log.ts:230:11`],
    [`    at load (/var/cache/${sha256}/${commit}/functions/policy/policy.ts:1:1)`],
    [`    at x (/home/runner/work/boundedssh/boundedssh/${commit}/lib/session/jump.ts:9:9)`],
    [`    at y (/Users/JaneDoe/Projects/work-2/${commit}/src/lib/session/connection.ts:1:1)`],
    [`ENOENT: no such file or directory, open '/tmp/${commit}/p/fixtures/known_hosts'`],
    [`EACCES: permission denied, scandir '/tmp/${commit}/p/test/functions'`],
    [`    at f (/tmp/bssh-aB3xZ9/${commit}/p/test/functions/audit-logger.test.ts:1:2)`],
    [`    at g (./${commit}/functions/audit/loggable-error.ts:3:4)`],
  ])("%s", (text) => {
    expect(redactSecrets(text)).toBe(text);
  });

  it("a real stack thrown from a module under /tmp/<40 hex>/p keeps every frame", async () => {
    const dir = join(work, commit, "p", "test", "functions");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "thrower.mjs");
    writeFileSync(file, "export function explode() { throw new TypeError('boom'); }\n");
    const { explode } = (await import(pathToFileURL(file).href)) as { explode: () => void };
    let caught: unknown;
    try {
      explode();
    } catch (err) {
      caught = err;
    }
    const stack = loggableError(caught).stack ?? "";
    expect(stack).toContain(`${commit}/p/test/functions/thrower.mjs`);
    expect(stack).toContain("redact-secrets.test.ts");
    expect(stack).not.toContain("[redacted]");
  });
});
