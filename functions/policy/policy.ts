import net from "node:net";
import {
  atHop,
  CommandNotAllowed,
  CredentialNotAllowed,
  DeadlineExceeded,
  TargetNotAllowed,
} from "../../lib/errors.ts";
import type { Hop } from "../../lib/names.ts";
import { REQUEST_LIMITS } from "../../lib/request-schema.ts";
import { destinationSpelling } from "../../lib/session/resolve.ts";
import type { JumpHostRequest, RunRequest } from "../../lib/types.ts";
import { AddressRanges, normalizeAddress } from "./address-ranges.ts";
import {
  compileGlob,
  compilePattern,
  type LinearPattern,
  PatternDeadline,
  PatternError,
} from "./patterns.ts";
import {
  type CommandTemplate,
  checkTemplate,
  expandTemplate,
  type LoadedTemplate,
  parseTemplateCall,
} from "./templates.ts";

/** One rule: who (callers) may run what (commands) where (targets). */
export interface PolicyRule {
  /** Shown in audit lines and error messages. */
  id?: string;
  /** Caller principal ARNs; `*` matches any run of characters. */
  callers: string[];
  targets: {
    /** Host name globs: `*` = within one DNS label, `**` = across labels. Case-insensitive. */
    hosts?: string[];
    /** Ranges the resolved address must fall in. At least one of `hosts`/`cidrs`. */
    cidrs?: string[];
    /** @default [22] */
    ports?: number[];
    /** Login names; `*` globs allowed. */
    usernames: string[];
  };
  commands: {
    /**
     * Regular expressions the whole command must match (`RegExp` syntax, run in linear time by
     * `patterns.ts`; a pattern it cannot run, such as one with a backreference or lookaround, is
     * refused when the policy loads). A command holding a control character
     * (tab, newline, CR…), a quote or shell syntax (`; & | $ \` < > ( ) { } \\ # ~ * ? [ ]`)
     * matches no pattern unless the rule sets {@link PolicyRule.allowShellSyntax}.
     */
    patterns?: string[];
    /** Names of `templates` this rule allows. */
    templates?: string[];
  };
  /** Names of the stored credentials this rule grants; `*` globs allowed. @default ["default"] */
  credentials?: string[];
  /**
   * Honour a request `hostKey` pin for a host the operator's known hosts do not list (never with
   * a password credential). A pin for a listed host only narrows and needs no permission.
   * @default false
   */
  allowRequestPins?: boolean;
  /** Let `patterns` match commands holding shell syntax, newlines or carriage returns. @default false */
  allowShellSyntax?: boolean;
  /**
   * Honour a request's `spill: true` (full output uploaded to the deployment's spill bucket)
   * where the deployment spills on request (`BSSH_SPILL_MODE=request`). @default false
   */
  allowSpill?: boolean;
  /**
   * Let a Step Functions task's own `idempotencyKey` be shared by every execution of its state
   * machine (a re-started execution replays what an earlier one recorded under that key).
   * Without it a task's key is scoped to its execution: anyone who can start executions of
   * the state machine could otherwise replay, or block with `IdempotencyKeyReused`, another
   * execution's run by reusing its key. Every rule that allows the request must set it.
   * API requests are unaffected (their key is scoped to the signed caller). @default false
   */
  shareIdempotencyKeys?: boolean;
  /**
   * Let requests use a host this rule allows as their jump host (`via`). A jump host is a
   * pivot: the target behind it is reached from that host's network, so serving as one is
   * opt-in per rule, never implied by being an allowed target. @default false
   */
  allowAsJumpHost?: boolean;
  /**
   * Let this rule's host names be reached behind a jump host (`via`). There the jump host
   * resolves the name, so no address check can see where it leads — `localhost4`, the
   * bastion's own hostname or a metadata alias land on the bastion itself. Only a rule that
   * says so lends a name behind a jump host, with `hosts` that name what they allow (each glob
   * holds a label without `*`; `*` and `**` alone are refused at load) and no `cidrs` (they
   * cannot be checked there). Addresses behind a jump host need no opt-in: they are checked
   * against `cidrs` and the deny list however they are spelled. @default false
   */
  allowNamesBehindJumpHost?: boolean;
}

/** The policy document (one JSON object: local config `policy`, or env/SSM in AWS). */
export interface PolicyDocument {
  /**
   * Ranges no rule can allow, checked on every address: added to {@link DEFAULT_DENY_CIDRS}
   * (loopback, metadata… stay denied), or the whole list with `replaceDefaultDenyCidrs`.
   * @default DEFAULT_DENY_CIDRS only
   */
  denyCidrs?: string[];
  /**
   * `true`: `denyCidrs` (required, may be `[]`) is the whole deny list, the defaults dropped —
   * what a local setup targeting loopback needs, never a production policy. @default false
   */
  replaceDefaultDenyCidrs?: boolean;
  rules: PolicyRule[];
  templates?: Record<string, CommandTemplate>;
}

/**
 * Never a target, whatever a rule allows (a policy's `denyCidrs` add to these; only
 * `replaceDefaultDenyCidrs: true` drops them): loopback,
 * link-local (incl. the EC2/ECS metadata endpoints 169.254.169.254 / 169.254.170.2), the IPv6
 * metadata endpoint, "this network", unspecified, IPv4-compatible and NAT64 IPv6, multicast and
 * broadcast addresses.
 */
export const DEFAULT_DENY_CIDRS = [
  "0.0.0.0/8",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "224.0.0.0/4",
  "255.255.255.255/32",
  "::/128",
  "::1/128",
  // IPv4-compatible and NAT64 forms carry an IPv4 address inside IPv6: never a way around a rule.
  "::/96",
  "64:ff9b::/96",
  "fe80::/10",
  "fd00:ec2::/32",
  "ff00::/8",
];

/** What an allowed request may do. */
export interface Authorization {
  /** The command that runs: the request's, or a template expanded with quoted parameters. */
  command: string;
  /** Template name, when the request called one. */
  template?: string;
  /** Ids of the rules that allowed the request. */
  rules: string[];
  /** The credential name the request uses (its `credential`, or `default`). */
  credential: string;
  /** True when every one of {@link rules} sets `allowRequestPins`. */
  allowRequestPins: boolean;
  /** True when every one of {@link rules} sets `allowSpill`. */
  allowSpill: boolean;
  /** True when every one of {@link rules} sets `shareIdempotencyKeys`. */
  shareIdempotencyKeys: boolean;
  /**
   * Give to `runCommand` as `checkAddress`: refuses resolved addresses outside the rules — the
   * target's (`hop` "target", the default) or the jump host's (`hop` "via").
   */
  checkAddress: (address: string, family: 4 | 6, hop?: Hop) => void;
  /** With a request `via`: what the rules grant at the jump host. */
  via?: {
    /** The jump host's credential name (its `credential`, or `default`). */
    credential: string;
    /** Ids of the rules that allow the jump host. */
    rules: string[];
    /** True when every one of {@link rules} sets `allowRequestPins`. */
    allowRequestPins: boolean;
  };
}

interface CompiledRule {
  id: string;
  callers: LinearPattern[];
  hosts: LinearPattern[] | undefined;
  cidrs: AddressRanges | undefined;
  ports: ReadonlySet<number>;
  usernames: LinearPattern[];
  patterns: LinearPattern[];
  templates: ReadonlySet<string>;
  credentials: LinearPattern[];
  allowRequestPins: boolean;
  allowShellSyntax: boolean;
  allowSpill: boolean;
  shareIdempotencyKeys: boolean;
  allowAsJumpHost: boolean;
  allowNamesBehindJumpHost: boolean;
}

/**
 * Shell syntax a pattern-matched command may hold only where its rule sets `allowShellSyntax`:
 * operators, substitutions, quotes (they rejoin words), comments (they cut the rest off), glob
 * and tilde expansion, and every control character (a tab splits words; `.` in a pattern
 * matches it).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const SHELL_SYNTAX = /[;&|$`<>(){}\\'"#~*?[\]\u0000-\u001f\u007f-\u009f]/;

/** A name made only of decimal, octal or hex numbers: the resolver treats it as an address. */
const NUMERIC_NAME = /^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+))*$/i;

function flag(value: unknown, where: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw new TypeError(`${where} must be true or false`);
  return value;
}

/** Caller, username and credential globs: `*` matches any run of characters. */
function callerGlob(glob: string): LinearPattern {
  return compileGlob(glob, "any");
}

/**
 * Host globs: `**` spans labels, `*` stays inside one. The glob and the host are both
 * lower-cased ({@link normalizeHost}), which for the ASCII names the request schema admits is
 * exactly the case-insensitive match the globs promise.
 */
function hostGlob(glob: string): LinearPattern {
  return compileGlob(normalizeHost(glob), "label");
}

/**
 * Names resolvers map to the machine itself or its metadata service, refused behind a jump
 * host even where a rule opts names in (a second fence: the rule is the first): RFC 6761
 * `localhost.` and its subdomains, the Debian and Red Hat aliases, EC2's `instance-data` and
 * GCE's `metadata.google.internal`.
 */
const SELF_NAME =
  /^(?:localhost(?:4|6)?(?:\.localdomain(?:4|6)?)?|.+\.localhost|ip6-localhost|ip6-loopback|instance-data(?:\..+\.internal)?|metadata\.google\.internal)$/;

/**
 * `allowNamesBehindJumpHost` of a rule, validated: it needs `hosts` whose every glob names
 * something (a label without `*`), and no `cidrs` (a name the jump host resolves has no
 * address to check them against).
 */
function namesBehindJumpHost(
  rule: PolicyRule,
  hosts: string[] | undefined,
  cidrs: string[] | undefined,
  where: string,
): boolean {
  const on = flag(rule.allowNamesBehindJumpHost, `${where}.allowNamesBehindJumpHost`);
  if (!on) return false;
  if (!hosts || cidrs) {
    throw new TypeError(
      `${where}.allowNamesBehindJumpHost needs targets.hosts and no targets.cidrs: the jump host resolves the names, so no address of theirs can be checked here`,
    );
  }
  const unnamed = hosts.find(
    (h) => !h.split(".").some((label) => label !== "" && !label.includes("*")),
  );
  if (unnamed !== undefined) {
    throw new TypeError(
      `${where}.allowNamesBehindJumpHost: host glob ${JSON.stringify(unnamed)} names nothing (every glob needs a label without "*", e.g. "*.prod.internal"): behind a jump host it would also match the jump host's own names`,
    );
  }
  return true;
}

function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, "");
}

/**
 * The deny list of a document: the defaults plus its `denyCidrs`, or exactly its `denyCidrs`
 * when it sets `replaceDefaultDenyCidrs: true` (issue 23: setting `denyCidrs` used to replace
 * the defaults silently, loopback and metadata included).
 */
export function denyList(document: PolicyDocument): string[] {
  const replace = document.replaceDefaultDenyCidrs;
  if (replace !== undefined && typeof replace !== "boolean") {
    throw new TypeError("policy.replaceDefaultDenyCidrs must be true or false");
  }
  if (replace) {
    const list = document.denyCidrs;
    if (!Array.isArray(list) || !list.every((v) => typeof v === "string")) {
      throw new TypeError(
        "policy.replaceDefaultDenyCidrs: true needs policy.denyCidrs, the whole deny list (an array of CIDRs, [] for none); without the flag, denyCidrs adds to the default list",
      );
    }
    return [...list];
  }
  const extra = stringList(document.denyCidrs, "policy.denyCidrs", false) ?? [];
  return [...new Set([...DEFAULT_DENY_CIDRS, ...extra])];
}

function stringList(value: unknown, where: string, required: boolean): string[] | undefined {
  if (value === undefined && !required) return undefined;
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === "string")) {
    throw new TypeError(`${where} must be a non-empty array of strings`);
  }
  return value;
}

/**
 * A loaded, validated policy. Deny by default: a request is allowed only when one rule
 * matches its caller, host name, port, username and command, and (checked again after DNS,
 * through {@link Authorization.checkAddress}) its resolved address.
 */
export class Policy {
  readonly #rules: CompiledRule[];
  readonly #deny: AddressRanges;
  readonly #templates: ReadonlyMap<string, LoadedTemplate>;

  /** Validates the document; throws `TypeError` naming the first problem. */
  constructor(document: PolicyDocument) {
    if (document === null || typeof document !== "object" || !Array.isArray(document.rules)) {
      throw new TypeError("policy must be an object with a `rules` array");
    }
    this.#deny = new AddressRanges(denyList(document));
    // Every pattern is compiled here, once per policy load, and refused here if the linear
    // engine cannot run it: a request never compiles a pattern (the loaded policy is cached
    // per container, `policy-source.ts`).
    this.#templates = new Map(
      Object.entries(document.templates ?? {}).map(([name, template]) => [
        name,
        checkTemplate(name, template),
      ]),
    );
    this.#rules = document.rules.map((rule, i) => this.#compile(rule, i));
  }

  #compile(rule: PolicyRule, index: number): CompiledRule {
    const where = `policy.rules[${index}]`;
    if (rule === null || typeof rule !== "object")
      throw new TypeError(`${where} must be an object`);
    const targets = rule.targets ?? ({} as PolicyRule["targets"]);
    const commands = rule.commands ?? {};
    const hosts = stringList(targets.hosts, `${where}.targets.hosts`, false);
    const cidrs = stringList(targets.cidrs, `${where}.targets.cidrs`, false);
    if (!hosts && !cidrs) throw new TypeError(`${where}.targets needs hosts or cidrs`);
    for (const host of hosts ?? []) {
      if (/^[0-9.*]+$/.test(host) && /[0-9]/.test(host)) {
        throw new TypeError(
          `${where}.targets.hosts: ${JSON.stringify(host)} looks like an address, but host globs match names; put address ranges in targets.cidrs (e.g. "10.0.3.0/24")`,
        );
      }
    }
    const ports = targets.ports ?? [22];
    if (!Array.isArray(ports) || !ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) {
      throw new TypeError(`${where}.targets.ports must be an array of ports`);
    }
    const patterns = stringList(commands.patterns, `${where}.commands.patterns`, false) ?? [];
    const templates = stringList(commands.templates, `${where}.commands.templates`, false) ?? [];
    if (patterns.length + templates.length === 0) {
      throw new TypeError(`${where}.commands needs patterns or templates`);
    }
    for (const t of templates) {
      if (!this.#templates.has(t)) throw new TypeError(`${where}: unknown template "${t}"`);
    }
    return {
      id: typeof rule.id === "string" ? rule.id : `rule-${index}`,
      callers: stringList(rule.callers, `${where}.callers`, true)!.map(callerGlob),
      hosts: hosts?.map(hostGlob),
      cidrs: cidrs ? new AddressRanges(cidrs) : undefined,
      ports: new Set(ports),
      usernames: stringList(targets.usernames, `${where}.targets.usernames`, true)!.map(callerGlob),
      patterns: patterns.map((p, i) => {
        try {
          return compilePattern(p);
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          const id = typeof rule.id === "string" ? ` (rule "${rule.id}")` : "";
          throw new TypeError(
            `${where}.commands.patterns[${i}]${id}: ${JSON.stringify(p)} ${err.message} (supported syntax: docs/security.md, "Policy patterns")`,
          );
        }
      }),
      templates: new Set(templates),
      credentials: (stringList(rule.credentials, `${where}.credentials`, false) ?? ["default"]).map(
        callerGlob,
      ),
      allowRequestPins: flag(rule.allowRequestPins, `${where}.allowRequestPins`),
      allowShellSyntax: flag(rule.allowShellSyntax, `${where}.allowShellSyntax`),
      allowSpill: flag(rule.allowSpill, `${where}.allowSpill`),
      shareIdempotencyKeys: flag(rule.shareIdempotencyKeys, `${where}.shareIdempotencyKeys`),
      allowAsJumpHost: flag(rule.allowAsJumpHost, `${where}.allowAsJumpHost`),
      allowNamesBehindJumpHost: namesBehindJumpHost(rule, hosts, cidrs, where),
    };
  }

  /**
   * Decides on a request before anything is read or touches the network. Throws
   * `TargetNotAllowed`, `CredentialNotAllowed` or `CommandNotAllowed` (phase `policy`), or
   * `ValidationError` for a malformed template call. One rule must allow everything at once:
   * caller, host, port, username, credential and command.
   *
   * Every pattern and glob runs in linear time (`patterns.ts`); with `deadlineAt` (a
   * `performance.now()` time, the invocation's deadline) a check still running then is
   * stopped and the request refused with `DeadlineExceeded` (phase `policy`).
   */
  authorize(
    caller: string | undefined,
    request: RunRequest,
    options: { deadlineAt?: number } = {},
  ): Authorization {
    try {
      return this.#authorize(caller, request, options.deadlineAt);
    } catch (err) {
      if (!(err instanceof PatternDeadline)) throw err;
      throw new DeadlineExceeded(
        `the policy check ran out of time (a pattern match ${err.message})`,
        {
          phase: "policy",
        },
      );
    }
  }

  #authorize(
    caller: string | undefined,
    request: RunRequest,
    until: number | undefined,
  ): Authorization {
    const deny = (message: string) => new TargetNotAllowed(message, { phase: "policy" });
    if (!caller) throw deny("the request carries no caller identity; nothing is allowed");
    const byCaller = this.#rules.filter((r) => r.callers.some((c) => c.test(caller, until)));
    if (byCaller.length === 0) throw deny(`no policy rule allows caller ${caller}`);

    const literal = net.isIP(request.host) !== 0;
    const byCredential = matchTarget(byCaller, request, caller, "", until);

    // The jump host is a target in its own right: one of the caller's rules must allow its
    // host (or address), port and username and grant its credential. No command runs there.
    const via = request.via;
    const byVia = via === undefined ? undefined : matchTarget(byCaller, via, caller, "via.", until);

    const call = parseTemplateCall(request.command);
    let command = request.command;
    let allowed: CompiledRule[];
    if (call) {
      allowed = byCredential.filter((r) => r.templates.has(call.name));
      if (allowed.length === 0) {
        throw new CommandNotAllowed(
          `template "${call.name}" is not allowed for this caller and target`,
          { phase: "policy" },
        );
      }
      command = expandTemplate(call.name, this.#templates.get(call.name)!, call.params, until);
      if (Buffer.byteLength(command) > REQUEST_LIMITS.commandBytes) {
        throw new CommandNotAllowed(`template "${call.name}" expands beyond 16 KiB`, {
          phase: "policy",
        });
      }
    } else {
      const syntax = SHELL_SYNTAX.exec(command)?.[0];
      allowed = byCredential.filter(
        (r) =>
          (syntax === undefined || r.allowShellSyntax) &&
          r.patterns.some((p) => p.test(command, until)),
      );
      if (allowed.length === 0) {
        throw new CommandNotAllowed(
          syntax === undefined
            ? "command matches no pattern allowed for this caller and target"
            : `command holds shell syntax (${JSON.stringify(syntax)}), which no rule for this caller and target allows (patterns refuse control characters, quotes and ; & | $ \` < > ( ) { } \\ # ~ * ? [ ] unless the rule sets allowShellSyntax)`,
          { phase: "policy" },
        );
      }
    }

    // Behind a jump host the jump host resolves the target: decided by address, not by name.
    const behind = via === undefined ? undefined : destinationSpelling(request.host);
    if (behind?.kind === "ambiguous") {
      throw deny(
        `host ${request.host} behind jump host ${via!.host} looks like an IP address but is none; give the address in standard form`,
      );
    }
    if (behind?.kind === "address") {
      // However spelled (`127.1`, `0x7f.1`, `2130706433`, `[::1]`, `::ffff:7f00:1`): an
      // address, checked in canonical form against the deny list and the cidrs of a rule that
      // allows addresses (never a host glob's).
      allowed = allowed.filter((r) => r.hosts === undefined);
      if (allowed.length === 0) {
        throw deny(
          `host ${request.host} is an IP address: only a rule with cidrs (and no hosts) allows it`,
        );
      }
    } else if (behind?.kind === "name") {
      // The jump host resolves the name: its address is never seen here, so the deny list
      // cannot check it, and a name there may be the jump host itself (`localhost4`, its own
      // hostname) or its metadata service. Only a rule that names it and opts in allows it.
      if (SELF_NAME.test(normalizeHost(request.host))) {
        throw deny(
          `host ${request.host} behind jump host ${via!.host} names the jump host itself or its metadata service, which the deny list refuses (give the jump host itself as the target)`,
        );
      }
      allowed = allowed.filter((r) => r.allowNamesBehindJumpHost);
      if (allowed.length === 0) {
        throw deny(
          `host ${request.host} is reached through jump host ${via!.host}, which resolves its name where no address check can see it: give the target's IP address, or allow it by a rule whose hosts name it and that sets allowNamesBehindJumpHost`,
        );
      }
    }

    const checkViaAddress = (address: string) => {
      const normal = normalizeAddress(address);
      const refused = () =>
        atHop(
          deny(`via.host ${via!.host} resolved to an address this caller may not reach`),
          "via",
        );
      if (!normal) {
        throw atHop(deny(`via.host ${via!.host} did not resolve to an IP address`), "via");
      }
      if (this.#deny.contains(normal.address)) throw refused();
      if (!byVia!.some((r) => !r.cidrs || r.cidrs.contains(normal.address))) throw refused();
    };
    const checkTargetAddress = (address: string) => {
      const normal = normalizeAddress(address);
      // Never the address in the message: a refusal must not turn the service into a resolver
      // of names inside the VPC. The audit line keeps it.
      if (!normal) throw deny(`host ${request.host} did not resolve to an IP address`);
      if (this.#deny.contains(normal.address)) {
        throw deny(`host ${request.host} resolved to an address this caller may not reach`);
      }
      if (!allowed.some((r) => !r.cidrs || r.cidrs.contains(normal.address))) {
        throw deny(`host ${request.host} resolved to an address this caller may not reach`);
      }
    };
    const checkAddress = (address: string, _family?: 4 | 6, hop: Hop = "target") =>
      hop === "via" ? checkViaAddress(address) : checkTargetAddress(address);
    // An IP literal needs no DNS: refuse it now, before a credential is fetched.
    if (literal) checkAddress(request.host);
    else if (behind?.kind === "address") checkAddress(behind.address);
    if (via !== undefined && net.isIP(via.host) !== 0) checkAddress(via.host, undefined, "via");
    const authorization: Authorization = {
      command,
      rules: allowed.map((r) => r.id),
      credential: request.credential ?? "default",
      // Every rule that could allow this request must allow pins: the address decides the rule
      // only after DNS, so a pin-friendly rule must not lend its permission to another's range.
      allowRequestPins: allowed.every((r) => r.allowRequestPins),
      // Same reason: a spilling rule must not lend its permission to another's range.
      allowSpill: allowed.every((r) => r.allowSpill),
      shareIdempotencyKeys: allowed.every((r) => r.shareIdempotencyKeys),
      checkAddress,
    };
    if (call) authorization.template = call.name;
    if (via !== undefined) {
      authorization.via = {
        credential: via.credential ?? "default",
        rules: byVia!.map((r) => r.id),
        // As for the target: every rule that could allow the jump host must allow pins.
        allowRequestPins: byVia!.every((r) => r.allowRequestPins),
      };
    }
    return authorization;
  }
}

/**
 * The caller's rules that allow a target — the request's, or its jump host (`prefix` "via.",
 * named in every refusal) — by host name or address, port, username and credential.
 */
function matchTarget(
  rules: CompiledRule[],
  target: Pick<RunRequest | JumpHostRequest, "host" | "port" | "username" | "credential">,
  caller: string,
  prefix: "" | "via.",
  until: number | undefined,
): CompiledRule[] {
  const deny = (message: string) => {
    const err = new TargetNotAllowed(message, { phase: "policy" });
    if (prefix) err.hop = "via";
    return err;
  };
  const what = prefix ? `jump host ${target.host}` : `host ${target.host}`;
  const host = normalizeHost(target.host);
  const port = target.port ?? 22;
  const literal = net.isIP(target.host) !== 0;
  // An address (literal, or a numeric name the resolver reads as one: `167772935`,
  // `0xa000307`) is allowed by a cidrs-only rule, never by a host glob.
  const numeric = literal || NUMERIC_NAME.test(host);
  const nameOk = (r: CompiledRule) =>
    numeric
      ? r.hosts === undefined && (!literal || r.cidrs!.contains(target.host))
      : r.hosts
        ? r.hosts.some((h) => h.test(host, until))
        : true;
  const byName = rules.filter(nameOk);
  if (byName.length === 0) {
    throw deny(`${prefix}host ${target.host} is not allowed for caller ${caller}`);
  }
  const byPort = byName.filter((r) => r.ports.has(port));
  if (byPort.length === 0) throw deny(`${prefix}port ${port} is not allowed on ${what}`);
  const byTarget = byPort.filter((r) => r.usernames.some((u) => u.test(target.username, until)));
  if (byTarget.length === 0) {
    throw deny(`${prefix}username ${target.username} is not allowed on ${what}`);
  }
  // A jump host is a pivot into its own network: only a rule that says so lends it.
  const byRole = prefix ? byTarget.filter((r) => r.allowAsJumpHost) : byTarget;
  if (byRole.length === 0) {
    throw deny(
      `${what} is allowed as a target but not as a jump host: no rule allowing it for caller ${caller} sets allowAsJumpHost`,
    );
  }
  const credential = target.credential ?? "default";
  const byCredential = byRole.filter((r) => r.credentials.some((c) => c.test(credential, until)));
  if (byCredential.length === 0) {
    const err = new CredentialNotAllowed(
      `${prefix}credential ${JSON.stringify(credential)} is not granted to caller ${caller} for ${prefix ? `jump host ${target.host}` : "this target"}`,
      { phase: "policy" },
    );
    if (prefix) err.hop = "via";
    throw err;
  }
  return byCredential;
}
