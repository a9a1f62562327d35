/**
 * A small POSIX shell lexer, used when a policy loads to prove that every template placeholder
 * is substituted as a whole word in plain shell context. A value is shell-quoted when it is
 * substituted; that quoting is only safe where the shell would read a bare word. Inside double
 * quotes, backticks, `$(…)`, `${…}`, a here-document or a comment the same quoted value can
 * become code (`"{{x}}"` with `$(…)` in the value), and glued to other text (`--opt={{x}}`,
 * `{{a}}{{b}}`) it changes meaning. Such templates are refused at load, naming the template.
 */

/** Where one `{{name}}` placeholder sits in a template command. */
export interface PlaceholderSite {
  name: string;
  /** Index of the first `{` in the command. */
  index: number;
  /** Innermost enclosing context, `plain` when none. */
  context:
    | "plain"
    | "single-quotes"
    | "double-quotes"
    | "backticks"
    | "command-substitution"
    | "parameter-expansion"
    | "here-document"
    | "comment";
  /** True when the placeholder is a whole word (blank or operator on both sides). */
  wholeWord: boolean;
  /**
   * Where the simple command holding the placeholder starts: the index after the last
   * top-level `;` `&` `|` `(` `)` or newline before it (template-shape.ts reads its command word).
   */
  segmentStart: number;
}

const PLACEHOLDER_AT = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/y;
const BEFORE_WORD = new Set([undefined, " ", "\t", "\n", ";", "&", "|", "("]);
const AFTER_WORD = new Set([undefined, " ", "\t", "\n", ";", "&", "|", ")"]);

type Context = PlaceholderSite["context"];

/**
 * Lists every placeholder of `command` with its shell context. Unterminated quotes or
 * substitutions leave their context open to the end (so a placeholder after them is not plain).
 */
export function placeholderSites(command: string): PlaceholderSite[] {
  const sites: PlaceholderSite[] = [];
  // Each frame: its context and, for `$(`, the parenthesis depth inside it.
  const stack: { context: Context; depth: number }[] = [{ context: "plain", depth: 0 }];
  const pendingHeredocs: { word: string; stripTabs: boolean }[] = [];
  const top = () => stack[stack.length - 1]!;
  let i = 0;
  let atWordStart = true;
  let segmentStart = 0;
  while (i < command.length) {
    const frame = top();
    const c = command[i]!;
    const context = frame.context;

    // Placeholders are found in every context; only their recorded context differs.
    PLACEHOLDER_AT.lastIndex = i;
    const match = PLACEHOLDER_AT.exec(command);
    if (match) {
      const end = i + match[0].length;
      const plain = stack.length === 1 && context === "plain";
      sites.push({
        name: match[1]!,
        index: i,
        context,
        wholeWord: plain && BEFORE_WORD.has(command[i - 1]) && AFTER_WORD.has(command[end]),
        segmentStart,
      });
      i = end;
      atWordStart = false;
      continue;
    }

    switch (context) {
      case "single-quotes":
        if (c === "'") stack.pop();
        i++;
        continue;
      case "comment":
        if (c === "\n") {
          stack.pop();
          i = startHeredocs(command, i, pendingHeredocs, sites);
          atWordStart = true;
          if (stack.length === 1) segmentStart = i;
          continue;
        }
        i++;
        continue;
      case "here-document":
        // Handled line by line in startHeredocs; never reached with a pending body.
        i++;
        continue;
      case "double-quotes":
        if (c === "\\") i += 2;
        else if (c === '"') {
          stack.pop();
          i++;
        } else if (c === "`") {
          stack.push({ context: "backticks", depth: 0 });
          i++;
        } else if (command.startsWith("$(", i)) {
          stack.push({ context: "command-substitution", depth: 0 });
          i += 2;
        } else if (command.startsWith("${", i)) {
          stack.push({ context: "parameter-expansion", depth: 0 });
          i += 2;
        } else i++;
        continue;
      case "parameter-expansion":
        if (c === "\\") i += 2;
        else if (c === "}") {
          stack.pop();
          i++;
        } else if (c === "'") {
          stack.push({ context: "single-quotes", depth: 0 });
          i++;
        } else if (c === '"') {
          stack.push({ context: "double-quotes", depth: 0 });
          i++;
        } else i++;
        continue;
      case "backticks":
        if (c === "\\") {
          i += 2;
          continue;
        }
        if (c === "`") {
          stack.pop();
          i++;
          continue;
        }
        break;
      case "command-substitution":
        if (c === ")" && frame.depth === 0) {
          stack.pop();
          i++;
          atWordStart = false;
          continue;
        }
        if (c === "(") frame.depth++;
        if (c === ")") frame.depth--;
        break;
      case "plain":
        break;
    }

    // plain, backticks and command substitution read shell syntax.
    if (c === "\\") {
      i += 2;
      atWordStart = false;
      continue;
    }
    if (c === "'") {
      stack.push({ context: "single-quotes", depth: 0 });
      i++;
      atWordStart = false;
      continue;
    }
    if (c === '"') {
      stack.push({ context: "double-quotes", depth: 0 });
      i++;
      atWordStart = false;
      continue;
    }
    if (c === "`") {
      stack.push({ context: "backticks", depth: 0 });
      i++;
      atWordStart = false;
      continue;
    }
    if (command.startsWith("$(", i)) {
      stack.push({ context: "command-substitution", depth: 0 });
      i += 2;
      atWordStart = true;
      continue;
    }
    if (command.startsWith("${", i)) {
      stack.push({ context: "parameter-expansion", depth: 0 });
      i += 2;
      atWordStart = false;
      continue;
    }
    if (c === "#" && atWordStart) {
      stack.push({ context: "comment", depth: 0 });
      i++;
      continue;
    }
    const heredoc = /^<<(-?)[ \t]*(?:'([^']*)'|"([^"]*)"|\\?([^\s;&|<>()]+))/.exec(
      command.slice(i),
    );
    if (heredoc) {
      const word = heredoc[2] ?? heredoc[3] ?? heredoc[4] ?? "";
      pendingHeredocs.push({ word, stripTabs: heredoc[1] === "-" });
      i += heredoc[0].length;
      atWordStart = false;
      continue;
    }
    if (c === "\n") {
      i = startHeredocs(command, i, pendingHeredocs, sites);
      atWordStart = true;
      if (stack.length === 1) segmentStart = i;
      continue;
    }
    atWordStart = c === " " || c === "\t" || c === ";" || c === "&" || c === "|" || c === "(";
    if (stack.length === 1 && ";&|()".includes(c)) segmentStart = i + 1;
    i++;
  }
  return sites;
}

/**
 * At a newline with here-documents pending, skips their bodies (recording placeholders in them
 * as `here-document`) and returns the index after the last terminator line.
 */
function startHeredocs(
  command: string,
  newline: number,
  pending: { word: string; stripTabs: boolean }[],
  sites: PlaceholderSite[],
): number {
  let i = newline + 1;
  while (pending.length > 0) {
    const { word, stripTabs } = pending.shift()!;
    for (;;) {
      if (i >= command.length) return command.length;
      const eol = command.indexOf("\n", i);
      const lineEnd = eol === -1 ? command.length : eol;
      const line = command.slice(i, lineEnd);
      if ((stripTabs ? line.replace(/^\t+/, "") : line) === word) {
        i = lineEnd + 1;
        break;
      }
      for (const m of line.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) {
        sites.push({
          name: m[1]!,
          index: i + m.index,
          context: "here-document",
          wholeWord: false,
          segmentStart: i,
        });
      }
      i = lineEnd + 1;
    }
  }
  return i;
}
