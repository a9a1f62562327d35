import {
  atHop,
  CredentialNotAllowed,
  type EngineError,
  TargetNotAllowed,
} from "../../../lib/errors.ts";
import type { Hop } from "../../../lib/names.ts";
import { type HostKeyTrust, hostKeyTrust } from "../../../lib/session/host-keys.ts";
import type { RunResult, Secret } from "../../../lib/types.ts";
import type { Next, RunContext } from "./run-context.ts";

/** One hop of a session, as host trust sees it. */
export interface HopTrustInput {
  hop: Hop;
  host: string;
  port: number;
  /** The request's pin for this hop (`hostKey`, `via.hostKey`). */
  pin: string | undefined;
  /** Every rule that allowed this hop sets `allowRequestPins`. */
  rulesAllowPins: boolean;
  /** The credential this hop receives. */
  secret: Secret;
  /** The operator's known hosts. */
  knownHosts: string | undefined;
}

/** What {@link hopTrust} decided. */
export interface HopTrust {
  trust: HostKeyTrust;
  /** A pin may vouch alone: the rules allow it and the hop receives no password. */
  allowRequestPins: boolean;
}

// How each hop is named in a refusal.
const WORDS: Record<Hop, (where: string) => { listed: string; add: string; key: string }> = {
  target: (where) => ({ listed: `host ${where}`, add: where, key: "a key credential" }),
  via: (where) => ({
    listed: `jump host ${where} (via.hostKey)`,
    add: `jump host ${where}`,
    key: "a key credential for via.credential",
  }),
};

/**
 * The host-key trust of one hop (known hosts authoritative, a pin narrows), and the refusal
 * before dialling when a request pin would be the only thing vouching for it and may not be:
 * the rules do not allow request pins (`TargetNotAllowed`), or the hop receives a password
 * (`CredentialNotAllowed`). Errors at the jump host carry `hop: "via"`.
 *
 * @param input the hop, its pin, its credential and the known hosts.
 * @returns the trust and whether a pin may vouch alone at this hop.
 * @throws TargetNotAllowed | CredentialNotAllowed (phase `policy`).
 * @example
 * hopTrust({ hop: "target", host, port: 22, pin, rulesAllowPins, secret, knownHosts });
 */
export function hopTrust(input: HopTrustInput): HopTrust {
  const allowRequestPins = input.rulesAllowPins && typeof input.secret.password !== "string";
  const trust = hostKeyTrust({
    knownHosts: input.knownHosts,
    pin: input.pin,
    host: input.host,
    port: input.port,
    allowPinOnly: allowRequestPins,
  });
  if (trust.kind === "none" && input.pin !== undefined) {
    const words = WORDS[input.hop](`${input.host}:${input.port}`);
    const refusal: EngineError = input.rulesAllowPins
      ? new CredentialNotAllowed(
          `a request pin alone never vouches for a host that receives a password: add ${words.add} to the operator's known hosts, or use ${words.key}`,
          { phase: "policy" },
        )
      : new TargetNotAllowed(
          `${words.listed} is not in the operator's known hosts and the caller's rule does not allow request pins (allowRequestPins); add ${input.hop === "via" ? "its" : "the host's"} key to known_hosts`,
          { phase: "policy" },
        );
    throw input.hop === "via" ? atHop(refusal, "via") : refusal;
  }
  return { trust, allowRequestPins };
}

/**
 * Step: host trust, once per hop ({@link hopTrust}): the target, then the jump host (request
 * `via`). The audit line says what vouched for the target.
 */
export async function hostTrust(ctx: RunContext, next: Next): Promise<RunResult> {
  const { request, authorization, secrets } = ctx;
  const target = hopTrust({
    hop: "target",
    host: request.host,
    port: ctx.port,
    pin: request.hostKey,
    rulesAllowPins: authorization.allowRequestPins,
    secret: secrets.secret,
    knownHosts: secrets.knownHosts,
  });
  if (target.trust.kind !== "none") ctx.invocation.audit.hostKeySource = target.trust.kind;
  const { via } = request;
  if (via && authorization.via && secrets.viaSecret) {
    const jump = hopTrust({
      hop: "via",
      host: via.host,
      port: via.port ?? 22,
      pin: via.hostKey,
      rulesAllowPins: authorization.via.allowRequestPins,
      secret: secrets.viaSecret,
      knownHosts: secrets.knownHosts,
    });
    ctx.pins = {
      allowRequestPins: target.allowRequestPins,
      via: { allowRequestPins: jump.allowRequestPins },
    };
  } else ctx.pins = { allowRequestPins: target.allowRequestPins };
  return next();
}
