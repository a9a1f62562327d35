import { lookup as dnsLookup } from "node:dns/promises";
import net from "node:net";
import { classifyError } from "../errors.ts";
import type { Hop } from "../names.ts";
import type { RunOptions } from "../types.ts";

/**
 * The `resolve` phase of a hop (the target's, or a jump host's): the host's address, then the
 * caller's check of it (`checkAddress`, told which hop). `step` bounds the lookup; an IP
 * literal skips the phase (its timing stays null). A refusal never reveals what the name
 * resolved to (the caller could map a private network through it); `checkAddress` saw the
 * address and can record it.
 */
export async function resolveAddress(
  host: string,
  options: Pick<RunOptions, "lookup" | "checkAddress">,
  step: (work: () => Promise<{ address: string; family: 4 | 6 }>) => Promise<{
    address: string;
    family: 4 | 6;
  }>,
  hop: Hop = "target",
): Promise<string> {
  const literal = net.isIP(host);
  const { address, family } =
    literal !== 0
      ? { address: host, family: literal === 6 ? (6 as const) : (4 as const) }
      : await step(() => (options.lookup ?? defaultLookup)(host));
  try {
    options.checkAddress?.(address, family, hop);
  } catch (err) {
    throw classifyError(err, { phase: "resolve", commandStarted: false });
  }
  return address;
}

async function defaultLookup(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const found = await dnsLookup(host, { order: "ipv4first" });
  return { address: found.address, family: found.family === 6 ? 6 : 4 };
}

/**
 * What a destination's spelling means to a resolver that takes addresses in every notation
 * (glibc's `getaddrinfo`, which a jump host's sshd uses for `direct-tcpip`): `address` in
 * canonical form when the spelling is an IP address however written — IPv4 in inet_aton's
 * forms (`127.1`, `0x7f.1`, `0177.0.0.1`, `2130706433`, `0`), IPv6 with or without brackets or a
 * zone (`[::1]`, `fe80::1%eth0`), IPv4-mapped IPv6 in any notation (`::ffff:7f00:1` is
 * `127.0.0.1`); `ambiguous` when it looks like an address but is none (`127.0.0.1.`,
 * `256.1.1.1`, `[vm]`: a resolver may still read it as one, or look it up): never a name to
 * trust; `name` otherwise.
 */
export type DestinationSpelling =
  | { kind: "address"; address: string; family: 4 | 6 }
  | { kind: "ambiguous" }
  | { kind: "name" };

export function destinationSpelling(host: string): DestinationSpelling {
  let text = host.trim().toLowerCase();
  const bracketed = /^\[(.*)\]$/.exec(text);
  if (bracketed) text = bracketed[1]!;
  if (text.includes(":")) {
    const v6 = parseIPv6(text.replace(/%[^%]*$/, ""));
    if (!v6) return { kind: "ambiguous" };
    return canonicalV6(v6);
  }
  if (bracketed) return { kind: "ambiguous" };
  const v4 = inetAton(text);
  if (v4 !== undefined) return { kind: "address", address: dotted(v4), family: 4 };
  // Digits, hex and dots only (trailing dot too): an address to someone, a name to no one.
  if (/^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+))*\.?$/.test(text)) return { kind: "ambiguous" };
  return { kind: "name" };
}

/** glibc inet_aton: 1–4 parts, each decimal, octal (leading 0) or hex (0x); the last fills. */
function inetAton(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length > 4) return undefined;
  const values: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0x[0-9a-f]*$/.test(part)) value = part.length === 2 ? 0 : Number.parseInt(part, 16);
    else if (/^0[0-7]*$/.test(part)) value = Number.parseInt(part, 8);
    else if (/^[1-9]\d*$/.test(part)) value = Number(part);
    else return undefined;
    if (!Number.isSafeInteger(value)) return undefined;
    values.push(value);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255) || last >= 2 ** (8 * (4 - values.length))) return undefined;
  return values.reduce((acc, v, i) => acc + v * 2 ** (8 * (3 - i)), 0) + last;
}

const dotted = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

/** Eight 16-bit groups of an IPv6 address (`::` and a dotted IPv4 tail allowed), or undefined. */
function parseIPv6(text: string): number[] | undefined {
  if (net.isIPv6(text) === false) return undefined;
  let body = text;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(body);
  if (tail) {
    const n = inetAton(tail[1]!);
    if (n === undefined) return undefined;
    body = `${body.slice(0, -tail[1]!.length)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const [head, rest] = body.split("::") as [string, string | undefined];
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16)));
  const first = groups(head);
  const second = rest === undefined ? [] : groups(rest);
  const fill = 8 - first.length - second.length;
  if (rest === undefined ? fill !== 0 : fill < 0) return undefined;
  return [...first, ...new Array<number>(fill).fill(0), ...second];
}

/** IPv4-mapped (`::ffff:0:0/96`) as the IPv4 address; anything else as compressed IPv6. */
function canonicalV6(groups: number[]): DestinationSpelling {
  const v4 = (groups[6]! * 65536 + groups[7]!) >>> 0;
  const zeros5 = groups.slice(0, 5).every((g) => g === 0);
  if (zeros5 && groups[5] === 0xffff) return { kind: "address", address: dotted(v4), family: 4 };
  const address = new URL(`http://[${groups.map((g) => g.toString(16)).join(":")}]/`).hostname;
  return { kind: "address", address: address.slice(1, -1), family: 6 };
}
