import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REQUEST_LIMITS } from "../../lib/request-schema.ts";
import { validateRequest } from "../../lib/validate-request.ts";
import { GENERATED_VALIDATOR, generateValidatorSource } from "../../scripts/generate-validator.ts";

describe("ahead-of-time request validator", () => {
  it("is up to date with the schema (run npm run generate)", () => {
    expect(readFileSync(GENERATED_VALIDATOR, "utf8")).toBe(generateValidatorSource());
  });

  it("is self-contained: no import or require (the engine's one dependency is ssh2)", () => {
    const code = readFileSync(GENERATED_VALIDATOR, "utf8");
    expect(code).not.toMatch(/\brequire\s*\(/);
    expect(code).not.toMatch(/(^|[;\s])import[\s{*("']/m);
    expect(code).not.toMatch(/\bajv\b/i);
    // The check itself sees what it looks for.
    expect('const x = require("ajv/dist/runtime/ucs2length")').toMatch(/\brequire\s*\(/);
    expect('"use strict";import x from "ajv";').toMatch(/(^|[;\s])import[\s{*("']/m);
  });
});

describe("request schema: via (jump host)", () => {
  const base = { host: "app1.internal", username: "deploy", command: "uptime" };
  const via = { host: "bastion.example.com", username: "jump" };
  const fp = `SHA256:${"A".repeat(43)}`;

  it("accepts a jump host with the target's fields", () => {
    const full = { ...via, port: 2222, credential: "bastion/key", hostKey: fp };
    expect(validateRequest({ ...base, via: full }).via).toEqual(full);
    expect(validateRequest({ ...base, via }).via).toEqual(via);
  });

  it.each([
    [{ ...via, extra: 1 }, 'unknown field "via.extra"'],
    [{ host: "bastion" }, 'missing required field "via.username"'],
    [{ ...via, host: "a b" }, 'field "via.host" must be a DNS name'],
    [{ ...via, host: "h".repeat(REQUEST_LIMITS.hostChars + 1) }, 'field "via.host" is longer'],
    [{ ...via, port: 0 }, 'field "via.port" must be >= 1'],
    [{ ...via, port: 65_536 }, 'field "via.port" must be <= 65535'],
    [{ ...via, username: "a\u0007" }, 'field "via.username" must not contain control characters'],
    [{ ...via, credential: "../x" }, 'field "via.credential" must be a credential name'],
    [{ ...via, hostKey: "SHA256:short" }, 'field "via.hostKey" must be a "SHA256:<base64>"'],
    ["bastion", 'field "via" must be a object'],
  ])("refuses via %j naming the field", (v, message) => {
    let caught: { name?: string; message?: string; hop?: string } | undefined;
    try {
      validateRequest({ ...base, via: v });
    } catch (err) {
      caught = err as typeof caught;
    }
    expect(caught?.name).toBe("ValidationError");
    expect(caught?.message).toContain(message);
    expect(caught?.hop).toBe("via");
  });
});
