import { createHmac, randomBytes } from "node:crypto";
import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import {
  fingerprintSha256,
  hostKeyTrust,
  isValidPin,
  knownHostsPolicy,
  pinnedPolicy,
} from "../../lib/session/host-keys.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";

function keyLine(type: "ed25519" | "ecdsa" = "ed25519"): { line: string; blob: Buffer } {
  const pair =
    type === "ed25519"
      ? generateEd25519KeyPair()
      : ssh2.utils.generateKeyPairSync("ecdsa", { bits: 256 });
  const line = pair.public.trim();
  const blob = Buffer.from(line.split(" ")[1]!, "base64");
  return { line, blob };
}

function hashedName(name: string): string {
  const salt = randomBytes(20);
  const mac = createHmac("sha1", salt).update(name).digest("base64");
  return `|1|${salt.toString("base64")}|${mac}`;
}

describe("host key pins", () => {
  it("trusts the pinned fingerprint and calls anything else a mismatch", () => {
    const a = keyLine();
    const b = keyLine();
    const policy = pinnedPolicy(fingerprintSha256(a.blob));
    expect(policy.verify(a.blob)).toBe("trusted");
    expect(policy.verify(b.blob)).toBe("mismatch");
  });

  it("trusts a pinned key line and restricts the offered host key algorithm to its type", () => {
    const a = keyLine("ecdsa");
    const policy = pinnedPolicy(a.line);
    expect(policy.serverHostKeyAlgorithms).toEqual(["ecdsa-sha2-nistp256"]);
    expect(policy.verify(a.blob)).toBe("trusted");
    expect(policy.verify(keyLine("ecdsa").blob)).toBe("mismatch");
  });

  it("validates pin syntax", () => {
    expect(isValidPin(keyLine().line)).toBe(true);
    expect(isValidPin(fingerprintSha256(keyLine().blob))).toBe(true);
    expect(isValidPin("SHA256:short")).toBe(false);
    expect(isValidPin("ssh-ed25519 bm90IGEga2V5")).toBe(false);
  });
});

describe("known_hosts", () => {
  const a = keyLine();
  const other = keyLine();

  it("matches [host]:port entries off port 22 and plain entries on 22", () => {
    const text = `# comment\n[10.0.0.5]:2222 ${a.line}\nexample.org ${other.line}\n`;
    expect(knownHostsPolicy(text, "10.0.0.5", 2222).verify(a.blob)).toBe("trusted");
    expect(knownHostsPolicy(text, "10.0.0.5", 22).verify(a.blob)).toBe("unknown");
    expect(knownHostsPolicy(text, "example.org", 22).verify(other.blob)).toBe("trusted");
    expect(knownHostsPolicy(text, "example.org", 22).verify(a.blob)).toBe("mismatch");
  });

  it("matches hashed |1| entries, including [host]:port names", () => {
    const text = `${hashedName("[db1.internal]:2200")} ${a.line}\n${hashedName("web1")} ${other.line}\n`;
    expect(knownHostsPolicy(text, "db1.internal", 2200).verify(a.blob)).toBe("trusted");
    expect(knownHostsPolicy(text, "web1", 22).verify(other.blob)).toBe("trusted");
    expect(knownHostsPolicy(text, "web2", 22).verify(other.blob)).toBe("unknown");
  });

  it("honours wildcards, negation and @revoked", () => {
    const text = `*.prod.example,!bad.prod.example ${a.line}\n@revoked * ${other.line}\n`;
    expect(knownHostsPolicy(text, "x.prod.example", 22).verify(a.blob)).toBe("trusted");
    expect(knownHostsPolicy(text, "bad.prod.example", 22).verify(a.blob)).toBe("unknown");
    expect(knownHostsPolicy(text, "x.prod.example", 22).verify(other.blob)).toBe("mismatch");
  });

  it("restricts offered algorithms to the types known for the host", () => {
    const text = `h1 ${a.line}\n`;
    expect(knownHostsPolicy(text, "h1", 22).serverHostKeyAlgorithms).toEqual(["ssh-ed25519"]);
    expect(knownHostsPolicy(text, "h2", 22).serverHostKeyAlgorithms).toBeUndefined();
  });
});

describe("hostKeyTrust: known hosts are authoritative, a pin only narrows", () => {
  // ECDSA: ssh2's ed25519 generator drops a leading zero byte about once in 170 keys.
  const [a, b] = [keyLine("ecdsa"), keyLine("ecdsa")];
  const listed = `[h]:2222 ${a.line}\n`;
  const trust = (opts: Partial<Parameters<typeof hostKeyTrust>[0]>) =>
    hostKeyTrust({ host: "h", port: 2222, ...opts });

  it("requires a listed key AND the pin for a listed host", () => {
    expect(trust({ knownHosts: listed }).kind).toBe("known_hosts");
    const narrowed = trust({ knownHosts: listed, pin: fingerprintSha256(a.blob) });
    expect(narrowed.kind).toBe("pin+known_hosts");
    expect(narrowed.verify(a.blob)).toBe("trusted");
    // A pin of another key cannot replace the listed one, even with allowPinOnly.
    const replaced = trust({ knownHosts: listed, pin: b.line, allowPinOnly: true });
    expect(replaced.verify(b.blob)).toBe("mismatch");
    expect(replaced.verify(a.blob)).toBe("mismatch");
  });

  it("honours a pin alone for an unlisted host only with allowPinOnly", () => {
    expect(trust({ pin: b.line, allowPinOnly: true }).verify(b.blob)).toBe("trusted");
    const refused = trust({ pin: b.line, allowPinOnly: false });
    expect(refused.kind).toBe("none");
    expect(refused.verify(b.blob)).toBe("unknown");
  });

  it("applies @revoked whatever vouches for the key", () => {
    const revoked = `@revoked [h]:2222 ${b.line}\n`;
    expect(trust({ knownHosts: revoked, pin: b.line }).verify(b.blob)).toBe("mismatch");
    expect(trust({ knownHosts: revoked }).verify(b.blob)).toBe("mismatch");
  });
});

describe("hostKeyTrust: a key is trusted for a name only by an entry for that name (OpenSSH)", () => {
  // issue 23: prod listed as `prod.corp,<ip>`; a caller's DNS points evil.dev.corp at <ip>.
  const prod = keyLine();
  const other = keyLine();
  const ecdsa = keyLine("ecdsa");
  const knownHosts = `prod.corp,10.0.0.5 ${prod.line}\n`;

  it("an address entry never vouches for another name resolving to it", () => {
    const trust = hostKeyTrust({
      knownHosts,
      host: "evil.dev.corp",
      port: 22,
      address: "10.0.0.5",
    });
    expect(trust.kind).toBe("none");
    expect(trust.verify(prod.blob)).toBe("unknown");
    expect(trust.source).not.toContain("10.0.0.5"); // a refusal never reveals the address
    // Hashed entries and IPv4-mapped spellings of the address change nothing.
    const hashed = `${hashedName("prod.corp")} ${prod.line}\n${hashedName("10.0.0.5")} ${prod.line}\n`;
    for (const [kh, address] of [
      [hashed, "10.0.0.5"],
      [knownHosts, "::ffff:10.0.0.5"],
    ] as const) {
      const t = hostKeyTrust({ knownHosts: kh, host: "evil.dev.corp", port: 22, address });
      expect(t.kind).toBe("none");
      expect(t.verify(prod.blob)).toBe("unknown");
    }
  });

  it("the listed name is trusted; its address's entry adds a check (CheckHostIP)", () => {
    const trust = hostKeyTrust({ knownHosts, host: "prod.corp", port: 22, address: "10.0.0.5" });
    expect(trust.kind).toBe("known_hosts");
    expect(trust.verify(prod.blob)).toBe("trusted");
    // The name lists a second key the address's entry does not: OpenSSH refuses with strict
    // checking ("differs from the key for the IP address").
    const moved = `prod.corp ${prod.line}\nprod.corp ${other.line}\n10.0.0.5 ${prod.line}\n`;
    const t = hostKeyTrust({ knownHosts: moved, host: "prod.corp", port: 22, address: "10.0.0.5" });
    expect(t.verify(prod.blob)).toBe("trusted");
    expect(t.verify(other.blob)).toBe("mismatch");
    expect(t.source).toBe("known_hosts entry for prod.corp and the entry for its address");
    // A key type the address's entry does not list is not checked there (OpenSSH: new, not changed).
    const typed = `prod.corp ${prod.line}\nprod.corp ${ecdsa.line}\n10.0.0.5 ${prod.line}\n`;
    const u = hostKeyTrust({ knownHosts: typed, host: "prod.corp", port: 22, address: "10.0.0.5" });
    expect(u.verify(ecdsa.blob)).toBe("trusted");
    // No entry for the address: the name alone decides.
    const byName = hostKeyTrust({
      knownHosts: `prod.corp ${prod.line}\n`,
      host: "prod.corp",
      port: 22,
      address: "10.0.0.9",
    });
    expect(byName.verify(prod.blob)).toBe("trusted");
  });

  it("a target given as the IP literal is listed by the address entry (the address is its name)", () => {
    const trust = hostKeyTrust({ knownHosts, host: "10.0.0.5", port: 22, address: "10.0.0.5" });
    expect(trust.kind).toBe("known_hosts");
    expect(trust.verify(prod.blob)).toBe("trusted");
  });

  it("a pin alone cannot rename a key known_hosts lists for another host", () => {
    const pinned = hostKeyTrust({
      knownHosts,
      host: "evil.dev.corp",
      port: 22,
      address: "10.0.0.5",
      pin: prod.line,
      allowPinOnly: true,
    });
    expect(pinned.kind).toBe("pin");
    expect(pinned.verify(prod.blob)).toBe("mismatch");
    // Nor through another address: the key itself is listed.
    const elsewhere = hostKeyTrust({
      knownHosts,
      host: "evil.dev.corp",
      port: 22,
      address: "10.9.9.9",
      pin: fingerprintSha256(prod.blob),
    });
    expect(elsewhere.verify(prod.blob)).toBe("mismatch");
    // A key nobody lists is still the pin's to vouch for.
    const fresh = hostKeyTrust({ knownHosts, host: "eph.dev.corp", port: 22, pin: other.line });
    expect(fresh.verify(other.blob)).toBe("trusted");
  });
});
