/**
 * The audit line names the remote an error is attributed to (`error.host`, `error.port`,
 * `error.address`): the jump host when `error.hop` is `via`, else the target. The monitoring
 * (hang-hosts rule, host queries, enrichment) keys on these fields.
 */
import { describe, expect, it } from "vitest";
import { auditLineOf } from "../../functions/audit/audit-log.ts";
import { Invocation } from "../../functions/invocation/invocation.ts";
import { ConnectionLost, ValidationError } from "../../lib/errors.ts";
import { hungAuditLine } from "../helpers/audit-lines.ts";

const via = { host: "bastion.example", port: 2222, username: "jump" };

describe("audit line: the host an error is attributed to", () => {
  it("is the jump host when the error happened at hop via", () => {
    const line = hungAuditLine({ host: "10.0.0.7", port: 22, via, hop: "via" });
    expect(line.error).toMatchObject({
      name: "BannerTimeout",
      hop: "via",
      host: "bastion.example",
      port: 2222,
      address: null,
    });
    // The target and the jump host are still on the line, unchanged.
    expect(line.target).toEqual({ host: "10.0.0.7", port: 22, address: null, username: "ops" });
    expect(line.via).toMatchObject({ host: "bastion.example", port: 2222, address: null });
  });

  it("is the target when the error happened at hop target, behind a jump host", () => {
    const line = hungAuditLine({
      host: "10.0.0.7",
      port: 2201,
      via,
      hop: "target",
      error: new ConnectionLost("gone", { phase: "exec", commandStarted: true }),
    });
    expect(line.error).toMatchObject({ hop: "target", host: "10.0.0.7", port: 2201 });
  });

  it("is the target without a jump host (no hop), port defaulted", () => {
    const line = hungAuditLine({ host: "10.0.0.8" });
    expect(line.error).toMatchObject({ host: "10.0.0.8", port: 22, address: null });
    expect(line.error?.hop).toBeUndefined();
    expect(line.via).toBeUndefined();
  });

  it("is null when no target is known (a body that named none)", () => {
    const invocation = new Invocation({
      source: "api",
      requestId: "r",
      mustReturnWithinMs: 1_000,
      reserveMs: 0,
    });
    invocation.error = new ValidationError("body is not JSON", { phase: "request" });
    const line = auditLineOf(invocation, "plain");
    expect(line.target).toBeNull();
    expect(line.error).toMatchObject({ host: null, port: null, address: null });
  });

  it("keeps the error's contract fields and never writes commandStarted", () => {
    const line = hungAuditLine({
      host: "10.0.0.9",
      error: new ValidationError("bad", { phase: "request" }),
    });
    expect(Object.keys(line.error ?? {}).sort()).toEqual(
      ["address", "host", "message", "name", "phase", "port", "retryable"].sort(),
    );
  });
});
