import net from "node:net";
import { destinationSpelling } from "../../lib/session/resolve.ts";

/** A parsed CIDR range, e.g. `10.0.0.0/8` or `2001:db8::/32`. */
export interface CidrRange {
  readonly text: string;
  readonly family: 4 | 6;
}

/**
 * An address in canonical form; IPv4-mapped IPv6 (`::ffff:10.0.0.1`, `::ffff:a00:1`) is the
 * IPv4 address: a range check must not miss it. Only notations Node takes as an IP (a resolved
 * address, a literal target); `destinationSpelling` reads the looser ones a resolver takes.
 */
export function normalizeAddress(address: string): { address: string; family: 4 | 6 } | undefined {
  if (net.isIP(address) === 0) return undefined;
  const spelled = destinationSpelling(address);
  return spelled.kind === "address"
    ? { address: spelled.address, family: spelled.family }
    : undefined;
}

/**
 * A set of CIDR ranges backed by `net.BlockList` (exact prefix arithmetic for both families).
 * Throws `TypeError` for a malformed range: policies are validated when they are loaded.
 */
export class AddressRanges {
  readonly ranges: readonly CidrRange[];
  readonly #list = new net.BlockList();

  constructor(cidrs: readonly string[]) {
    const ranges: CidrRange[] = [];
    for (const text of cidrs) {
      const [addr, prefixText, extra] = text.split("/");
      const normal = addr === undefined ? undefined : normalizeAddress(addr);
      const max = normal?.family === 6 ? 128 : 32;
      const prefix = prefixText === undefined ? max : Number(prefixText);
      if (
        !normal ||
        extra !== undefined ||
        !Number.isInteger(prefix) ||
        prefix < 0 ||
        prefix > max ||
        (prefixText !== undefined && !/^\d+$/.test(prefixText))
      ) {
        throw new TypeError(`invalid CIDR range ${JSON.stringify(text)}`);
      }
      this.#list.addSubnet(normal.address, prefix, normal.family === 6 ? "ipv6" : "ipv4");
      ranges.push({ text, family: normal.family });
    }
    this.ranges = ranges;
  }

  /** True when the address (any notation Node accepts) lies in one of the ranges. */
  contains(address: string): boolean {
    const normal = normalizeAddress(address);
    if (!normal) return false;
    return this.#list.check(normal.address, normal.family === 6 ? "ipv6" : "ipv4");
  }

  get size(): number {
    return this.ranges.length;
  }
}
