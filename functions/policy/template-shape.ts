/**
 * Templates by construction (issue 23 item 4): where a placeholder may land. shell-words.ts
 * proves that each value is a whole word in plain shell context, where its quoting holds; this
 * proves that the word is never read as code again. A placeholder must be an ARGUMENT of a
 * simple command whose command word is
 * - written plainly (no quotes, escapes or expansions: `'eval'`, `\eval`, `e""val` and `$cmd`
 *   all run what they spell, and a checker that reads spellings would have to be bash), and
 * - not a builtin or keyword that evaluates text, runs its arguments as a command, or reads a
 *   variable name (bash evaluates `a[$(id)]` subscripts): {@link EVALUATING_COMMANDS}.
 * The command word is found after assignments (`LC_ALL=C`), redirections (`2>/dev/null`) and the
 * reserved words that precede a command (`!`, `time [-p]`, `if`, `then`, `do`, `{`, …). A
 * placeholder may not be the command word itself (the caller would choose the program).
 * Commands that run another program from their arguments (`sh -c`, `sudo`, `env`, `xargs`,
 * `find -exec`, `ssh`) are a documented limit (docs/security.md, "Known limits").
 */
import type { PlaceholderSite } from "./shell-words.ts";

/**
 * Builtins and keywords that evaluate an argument as code (`eval`, `trap`, `source`, `.`,
 * `let`, `fc`), run it as a command (`exec`, `command`, `builtin`, `coproc`, `enable -f`,
 * `hash -p`, `alias`), or read it as a variable name, whose subscript bash evaluates.
 */
export const EVALUATING_COMMANDS: ReadonlySet<string> = new Set([
  "eval",
  "trap",
  "source",
  ".",
  "exec",
  "command",
  "builtin",
  "coproc",
  "enable",
  "hash",
  "alias",
  "fc",
  "let",
  "declare",
  "typeset",
  "local",
  "export",
  "readonly",
  "read",
  "unset",
  "mapfile",
  "readarray",
  "getopts",
]);

/** Reserved words a command may follow (the command word is the next word). */
const PREFIX_WORDS: ReadonlySet<string> = new Set([
  "!",
  "time",
  "if",
  "then",
  "elif",
  "else",
  "while",
  "until",
  "do",
  "{",
]);

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=/;
/** A redirection operator alone (its target is the next word) or glued to its target. */
const REDIRECTION_ALONE = /^(?:\d+|&)?(?:<<?|>>?|<>|>\||<&|>&)-?$/;
const REDIRECTION_GLUED = /^(?:\d+|&)?(?:<<?|>>?|<>|>\||<&|>&)/;

/**
 * The raw words of top-level shell text (quotes, escapes and `$(…)` kept inside their word):
 * the words before a placeholder in its simple command.
 */
function rawWords(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let depth = 0;
  let quote: "'" | '"' | "`" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      word += c;
      if (c === "\\" && quote !== "'") word += text[++i] ?? "";
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === "\\") {
      word += c + (text[++i] ?? "");
      continue;
    }
    if (c === "'" || c === '"' || c === "`") quote = c;
    if (c === "(") depth++;
    if (c === ")") depth--;
    if (depth <= 0 && (c === " " || c === "\t")) {
      if (word !== "") words.push(word);
      word = "";
      continue;
    }
    word += c;
  }
  if (word !== "") words.push(word);
  return words;
}

/** What a template's command word is, before a placeholder: undefined when none precedes it. */
function commandWord(words: string[]): { word: string; index: number } | undefined {
  let i = 0;
  while (i < words.length) {
    const w = words[i]!;
    if (REDIRECTION_ALONE.test(w)) i += 2;
    else if (REDIRECTION_GLUED.test(w) || ASSIGNMENT.test(w)) i += 1;
    else if (PREFIX_WORDS.has(w)) i += w === "time" && words[i + 1] === "-p" ? 2 : 1;
    else return { word: w, index: i };
  }
  return undefined;
}

/**
 * Throws `TypeError` naming the template when a placeholder (already proven a whole word in
 * plain context) is the command word, or an argument of a command word written with quotes,
 * escapes or expansions, or of an {@link EVALUATING_COMMANDS} member.
 */
export function checkPlaceholderPosition(
  where: string,
  command: string,
  site: PlaceholderSite,
): void {
  const words = rawWords(command.slice(site.segmentStart, site.index));
  const found = commandWord(words);
  if (!found) {
    throw new TypeError(
      `${where}: placeholder {{${site.name}}} is the command word; a placeholder may only be an argument (the caller would choose the program)`,
    );
  }
  const { word } = found;
  if (/[\\'"`$]/.test(word)) {
    throw new TypeError(
      `${where}: placeholder {{${site.name}}} is an argument of the command word ${word}, written with quotes, escapes or expansions; write a template's command words plainly (${word} may spell eval or exec)`,
    );
  }
  if (EVALUATING_COMMANDS.has(word)) {
    throw new TypeError(
      `${where}: placeholder {{${site.name}}} is an argument of ${word}, which evaluates its arguments as code, runs them as a command, or reads them as a variable name`,
    );
  }
}
