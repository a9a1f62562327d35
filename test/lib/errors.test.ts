import { describe, expect, it } from "vitest";
import {
  atHop,
  ConnectionLost,
  classifyError,
  ERROR_CLASSES,
  errorFromJSON,
  HostKeyMismatch,
} from "../../lib/errors.ts";
import { ERROR_NAMES, ERRORS, PHASE_TIMEOUT_ERROR, RETRYABLE_ERRORS } from "../../lib/names.ts";

function withLevel(message: string, level?: string, code?: string): Error {
  return Object.assign(new Error(message), { level, code });
}

describe("classifyError: the one translation of ssh2, socket and DNS errors", () => {
  const cases: [string, Error, Parameters<typeof classifyError>[1], string][] = [
    [
      "DNS failure",
      withLevel("getaddrinfo ENOTFOUND", undefined, "ENOTFOUND"),
      { phase: "resolve", commandStarted: false },
      "DnsLookupFailed",
    ],
    [
      "refused connect",
      withLevel("connect ECONNREFUSED", undefined, "ECONNREFUSED"),
      { phase: "connect", commandStarted: false },
      "ConnectRefused",
    ],
    [
      "auth methods exhausted",
      withLevel("All configured authentication methods failed", "client-authentication"),
      { phase: "auth", commandStarted: false },
      "AuthFailed",
    ],
    [
      "no common algorithm",
      withLevel("Handshake failed: no matching key exchange algorithm", "handshake"),
      { phase: "handshake", commandStarted: false },
      "ProtocolError",
    ],
    [
      "keepalive",
      withLevel("Keepalive timeout", "client-timeout"),
      { phase: "exec", commandStarted: true },
      "ConnectionLost",
    ],
    [
      "reset",
      withLevel("read ECONNRESET", "client-socket", "ECONNRESET"),
      { phase: "exec", commandStarted: true },
      "ConnectionLost",
    ],
    [
      "bad packet before keys",
      withLevel("Bad packet length"),
      { phase: "handshake", commandStarted: false },
      "ProtocolError",
    ],
    [
      "lost before handshake",
      withLevel("Connection lost before handshake", "protocol"),
      { phase: "banner", commandStarted: false },
      "ConnectionLost",
    ],
    [
      "a bug (TypeError)",
      new TypeError("x is not a function"),
      { phase: "banner", commandStarted: false },
      "InternalError",
    ],
  ];
  for (const [what, err, ctx, name] of cases) {
    it(`classifies ${what} as ${name}`, () => {
      const out = classifyError(err, ctx);
      expect(out.name).toBe(name);
      expect(out.phase).toBe(ctx.phase);
      expect(out.cause).toBe(err);
    });
  }

  it("prefers the host verifier's refusal over whatever ssh2 emitted after it", () => {
    const refusal = new HostKeyMismatch("differs", { phase: "handshake" });
    const out = classifyError(withLevel("Host denied", "handshake"), {
      phase: "handshake",
      commandStarted: false,
      hostKeyRefusal: refusal,
    });
    expect(out).toBe(refusal);
  });

  it("marks ConnectionLost retryable only when the command had not started", () => {
    expect(new ConnectionLost("x", { phase: "banner" }).retryable).toBe(true);
    expect(new ConnectionLost("x", { phase: "exec", commandStarted: true }).retryable).toBe(false);
  });

  it("has a class whose name is exactly each SPEC §6 name, retryable as the table says", () => {
    for (const name of ERROR_NAMES) {
      const err = new ERROR_CLASSES[name]("m", { phase: "request" });
      expect(err.name).toBe(name);
      expect(err).toBeInstanceOf(Error);
      expect(err.retryable).toBe(
        (RETRYABLE_ERRORS as readonly string[]).includes(name) || name === "ConnectionLost",
      );
    }
  });

  it("derives retryable and the phase timeouts from the one error table", () => {
    expect(RETRYABLE_ERRORS).toEqual(
      ERROR_NAMES.filter((n) => (ERRORS[n] as { retryable?: boolean }).retryable === true),
    );
    expect(PHASE_TIMEOUT_ERROR).toEqual({
      resolve: "ResolveTimeout",
      connect: "ConnectTimeout",
      banner: "BannerTimeout",
      handshake: "HandshakeTimeout",
      auth: "AuthTimeout",
      channel: "ChannelTimeout",
      exec: "CommandTimeout",
    });
  });

  it("writes the contract's error JSON once (toJSON) and reads it back (errorFromJSON)", () => {
    // Prepare
    const lost = new ConnectionLost("gone", { phase: "exec", commandStarted: true, cause: "x" });
    // Act
    const json = JSON.parse(JSON.stringify(lost)) as ReturnType<typeof lost.toJSON>;
    const back = errorFromJSON(json);
    // Assess: the contract's five fields, never the cause.
    expect(json).toEqual({
      name: "ConnectionLost",
      phase: "exec",
      message: "gone",
      retryable: false,
      commandStarted: true,
    });
    expect(back).toBeInstanceOf(ConnectionLost);
    expect(back.toJSON()).toEqual(json);
  });

  it("carries the hop of a jump-host session through toJSON and errorFromJSON (atHop sets it once)", () => {
    const lost = atHop(new ConnectionLost("gone", { phase: "exec", commandStarted: true }), "via");
    // A second tag never moves an error to another hop.
    expect(atHop(lost, "target").hop).toBe("via");
    const json = JSON.parse(JSON.stringify(lost)) as ReturnType<typeof lost.toJSON>;
    expect(json.hop).toBe("via");
    expect(errorFromJSON(json).hop).toBe("via");
    // Without a hop the JSON has no such field (sessions without `via`).
    expect("hop" in new ConnectionLost("x", { phase: "exec" }).toJSON()).toBe(false);
  });
});
