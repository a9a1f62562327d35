import { hasControlCharacter } from "../../lib/control-chars.ts";
import { CommandNotAllowed, ValidationError } from "../../lib/errors.ts";
import { shellQuote } from "../../lib/session/remote-bound.ts";
import { compilePattern, type LinearPattern, PatternError } from "./patterns.ts";
import { placeholderSites } from "./shell-words.ts";

/** A typed template parameter. Values are validated, then shell-quoted into the command. */
export type TemplateParam =
  | {
      type: "string";
      /**
       * Full-match regular expression the value must satisfy (`RegExp` syntax, run in linear
       * time: see `patterns.ts`; backreferences and lookaround are refused at load).
       */
      pattern?: string;
      /** @default 256 */
      maxLength?: number;
      enum?: string[];
      default?: string;
      /** Values starting with `-` read as options to most commands. @default false */
      allowLeadingDash?: boolean;
    }
  | { type: "integer"; minimum: number; maximum: number; default?: number }
  | { type: "boolean"; default?: boolean };

/** A named command with `{{param}}` placeholders (placed unquoted: values arrive quoted). */
export interface CommandTemplate {
  command: string;
  params?: Record<string, TemplateParam>;
  description?: string;
}

/**
 * A template as the loaded policy keeps it: checked, with its parameters' patterns compiled
 * once per policy load (see {@link checkTemplate}).
 */
export interface LoadedTemplate {
  template: CommandTemplate;
  /** Parameter name → its compiled `pattern`. */
  patterns: ReadonlyMap<string, LinearPattern>;
}

/** A template invocation parsed from a request's `command`. */
export interface TemplateCall {
  name: string;
  params: Record<string, unknown>;
}

/** Prefix that marks a request's `command` as a template invocation. */
export const TEMPLATE_PREFIX = "template:";

const CALL = /^template:([A-Za-z0-9._-]{1,64})(?:\s+([\s\S]*))?$/;
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;
const DEFAULT_STRING_MAX = 256;

/**
 * Parses `template:<name>` or `template:<name> {"param": value, ...}`. The parameters travel
 * inside `command` so the request keeps exactly the SPEC §4 fields (a Step Functions state
 * builds it with `States.Format('template:x {}', States.JsonToString($.params))`).
 * Returns undefined when the command is not a template call.
 */
export function parseTemplateCall(command: string): TemplateCall | undefined {
  if (!command.startsWith(TEMPLATE_PREFIX)) return undefined;
  const match = CALL.exec(command);
  if (!match) {
    throw new ValidationError(
      'field "command": a template call is `template:<name>` optionally followed by a JSON object of parameters',
      { phase: "request" },
    );
  }
  const name = match[1]!;
  const text = match[2]?.trim();
  if (!text) return { name, params: {} };
  let params: unknown;
  try {
    params = JSON.parse(text);
  } catch {
    throw new ValidationError(
      `field "command": parameters of template "${name}" are not valid JSON`,
      {
        phase: "request",
      },
    );
  }
  if (params === null || typeof params !== "object" || Array.isArray(params)) {
    throw new ValidationError(
      `field "command": parameters of template "${name}" must be a JSON object`,
      {
        phase: "request",
      },
    );
  }
  return { name, params: params as Record<string, unknown> };
}

function refuse(template: string, message: string): CommandNotAllowed {
  return new CommandNotAllowed(`template "${template}": ${message}`, { phase: "policy" });
}

function renderValue(
  template: string,
  key: string,
  spec: TemplateParam,
  pattern: LinearPattern | undefined,
  value: unknown,
  until: number | undefined,
): string {
  const field = JSON.stringify(key);
  switch (spec.type) {
    case "string": {
      if (typeof value !== "string") throw refuse(template, `parameter ${field} must be a string`);
      if (value.length > (spec.maxLength ?? DEFAULT_STRING_MAX)) {
        throw refuse(template, `parameter ${field} is too long`);
      }
      if (hasControlCharacter(value)) {
        throw refuse(template, `parameter ${field} must not contain control characters`);
      }
      if (spec.enum && !spec.enum.includes(value)) {
        throw refuse(template, `parameter ${field} must be one of ${JSON.stringify(spec.enum)}`);
      }
      if (pattern !== undefined && !pattern.test(value, until)) {
        throw refuse(template, `parameter ${field} does not match ${JSON.stringify(spec.pattern)}`);
      }
      if (value.startsWith("-") && spec.allowLeadingDash !== true) {
        throw refuse(
          template,
          `parameter ${field} must not start with "-" (it would read as an option; the template can set allowLeadingDash)`,
        );
      }
      return shellQuote(value);
    }
    case "integer": {
      if (typeof value !== "number" || !Number.isSafeInteger(value)) {
        throw refuse(template, `parameter ${field} must be an integer`);
      }
      if (spec.minimum !== undefined && value < spec.minimum) {
        throw refuse(template, `parameter ${field} must be >= ${spec.minimum}`);
      }
      if (spec.maximum !== undefined && value > spec.maximum) {
        throw refuse(template, `parameter ${field} must be <= ${spec.maximum}`);
      }
      return String(value);
    }
    case "boolean": {
      if (typeof value !== "boolean")
        throw refuse(template, `parameter ${field} must be a boolean`);
      return String(value);
    }
  }
}

/**
 * Expands a template call into the command that runs. Every parameter is checked against its
 * declared type and constraints (unknown and missing parameters are refused) and substituted
 * shell-quoted, so a value can never become shell syntax. Refusals are `CommandNotAllowed`.
 * `until` is the deadline for the parameters' pattern matches (see `Policy.authorize`).
 */
export function expandTemplate(
  name: string,
  loaded: LoadedTemplate,
  params: Record<string, unknown>,
  until?: number,
): string {
  const { template, patterns } = loaded;
  const specs = template.params ?? {};
  for (const key of Object.keys(params)) {
    if (!Object.hasOwn(specs, key)) throw refuse(name, `unknown parameter ${JSON.stringify(key)}`);
  }
  const rendered = new Map<string, string>();
  for (const [key, spec] of Object.entries(specs)) {
    const given = Object.hasOwn(params, key) ? params[key] : spec.default;
    if (given === undefined) throw refuse(name, `missing parameter ${JSON.stringify(key)}`);
    rendered.set(key, renderValue(name, key, spec, patterns.get(key), given, until));
  }
  return template.command.replace(PLACEHOLDER, (_, key: string) => rendered.get(key) ?? "");
}

/** Constructs a template may not contain at all (the lexer does not prove them safe). */
const UNSUPPORTED_SYNTAX: readonly (readonly [string, string])[] = [
  ["$'", "ANSI-C quoting"],
  ["`", "backtick substitution"],
  ["<<", "a here-document or here-string"],
  ["[[", "bash's [[ test (it evaluates array subscripts in quoted words)"],
  ["((", "arithmetic evaluation"],
  ["${", "parameter expansion with braces"],
];

/** Commands that evaluate an argument as code, or as a variable name (bash subscripts). */
const EVALUATING_COMMANDS: ReadonlySet<string> = new Set([
  "eval",
  "let",
  "declare",
  "typeset",
  "local",
  "export",
  "readonly",
  "read",
  "unset",
  "source",
  ".",
  "mapfile",
  "readarray",
]);

/**
 * Checks a template definition when the policy is loaded; throws `TypeError` naming the template
 * and the problem. Each placeholder must be a whole word in plain shell context (see
 * `shell-words.ts`); string parameters need `pattern` or `enum`; integers need both bounds.
 * Returns the template with its parameters' patterns compiled for the linear engine: a pattern
 * it cannot run is refused here, never when a request arrives.
 */
export function checkTemplate(name: string, template: CommandTemplate): LoadedTemplate {
  const where = `template ${JSON.stringify(name)}`;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new TypeError(`${where}: invalid name`);
  if (typeof template?.command !== "string" || template.command === "") {
    throw new TypeError(`${where}: "command" must be a non-empty string`);
  }
  const specs = template.params ?? {};
  if (specs === null || typeof specs !== "object" || Array.isArray(specs)) {
    throw new TypeError(`${where}: "params" must be an object`);
  }
  const patterns = new Map<string, LinearPattern>();
  for (const [key, spec] of Object.entries(specs)) {
    const param = `${where}: parameter ${JSON.stringify(key)}`;
    if (!["string", "integer", "boolean"].includes(spec?.type)) {
      throw new TypeError(`${param} needs type string|integer|boolean`);
    }
    if (spec.type === "string") {
      if (spec.pattern === undefined && spec.enum === undefined) {
        throw new TypeError(
          `${param} needs "pattern" or "enum": a free-form string parameter accepts anything`,
        );
      }
      if (spec.pattern !== undefined) {
        if (typeof spec.pattern !== "string") {
          throw new TypeError(`${param}: "pattern" must be a string`);
        }
        try {
          patterns.set(key, compilePattern(spec.pattern));
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          throw new TypeError(
            `${param}: "pattern" ${JSON.stringify(spec.pattern)} ${err.message} (supported syntax: docs/security.md, "Policy patterns")`,
          );
        }
      }
      if (spec.enum !== undefined && (!Array.isArray(spec.enum) || spec.enum.length === 0)) {
        throw new TypeError(`${param}: "enum" must be a non-empty array of strings`);
      }
    }
    if (spec.type === "integer") {
      if (!Number.isSafeInteger(spec.minimum) || !Number.isSafeInteger(spec.maximum)) {
        throw new TypeError(`${param} needs integer "minimum" and "maximum"`);
      }
    }
  }
  for (const [text, what] of UNSUPPORTED_SYNTAX) {
    if (template.command.includes(text)) {
      throw new TypeError(
        `${where}: ${what} (${text}) is not supported in templates; its quoting rules differ between shells, so a placeholder's quoting could not be proven`,
      );
    }
  }
  const sites = placeholderSites(template.command);
  const written = [...template.command.matchAll(PLACEHOLDER)].length;
  if (sites.length !== written) {
    throw new TypeError(
      `${where}: a placeholder follows a backslash; a placeholder must be a whole word outside quotes and escapes`,
    );
  }
  for (const site of sites) {
    if (!Object.hasOwn(specs, site.name)) {
      throw new TypeError(`${where}: placeholder {{${site.name}}} has no parameter`);
    }
    if (site.context !== "plain") {
      throw new TypeError(
        `${where}: placeholder {{${site.name}}} is inside ${site.context.replace("-", " ")}; a placeholder must be a whole word outside quotes, backticks, $(…), \${…} and here-documents (its value is quoted for you)`,
      );
    }
    const before = template.command
      .slice(0, site.index)
      .trim()
      .split(/[\s;&|(]+/);
    const [previous, beforePrevious] = [before.at(-1) ?? "", before.at(-2) ?? ""];
    if (
      EVALUATING_COMMANDS.has(previous) ||
      (previous === "-v" && ["printf", "test", "["].includes(beforePrevious))
    ) {
      throw new TypeError(
        `${where}: placeholder {{${site.name}}} is an argument of ${previous === "-v" ? `${beforePrevious} -v` : previous}, which evaluates its argument as code or a variable name`,
      );
    }
    if (!site.wholeWord) {
      throw new TypeError(
        `${where}: placeholder {{${site.name}}} is glued to other text; a placeholder must be a whole word, separated by blanks or ; & | ( )`,
      );
    }
  }
  return { template, patterns };
}
