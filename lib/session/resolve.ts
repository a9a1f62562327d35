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
