import { describe, expect, it } from "vitest";
import { placeholderSites } from "../../functions/policy/shell-words.ts";

const site = (command: string) => {
  const [first] = placeholderSites(command);
  return first ? { context: first.context, wholeWord: first.wholeWord } : undefined;
};

describe("placeholderSites (POSIX shell lexing of templates)", () => {
  it.each([
    ["tail -n 5 {{f}}", "plain", true],
    ["systemctl restart {{u}} && journalctl -u {{u}}", "plain", true],
    ["cmd {{x}}; other", "plain", true],
    ["(cd /tmp && ls {{x}})", "plain", true],
    ["echo '{{x}}'", "single-quotes", false],
    ['echo "{{x}}"', "double-quotes", false],
    ['echo "$(cat {{x}})"', "command-substitution", false],
    ["echo $(cat {{x}})", "command-substitution", false],
    ["echo `cat {{x}}`", "backticks", false],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax under test
    ["echo ${{{x}}}", "parameter-expansion", false],
    ["echo hi # {{x}}", "comment", false],
    ["cat <<EOF\nline {{x}}\nEOF", "here-document", false],
    ["cat <<-'E'\n\t{{x}}\n\tE", "here-document", false],
    ["ls --dir={{x}}", "plain", false],
    ["echo {{a}}{{b}}", "plain", false],
  ])("%j → %s, whole word %s", (command, context, wholeWord) => {
    expect(site(command)).toEqual({ context, wholeWord });
  });

  it("resumes plain context after a quote, substitution and here-document close", () => {
    const sites = placeholderSites("echo 'a' \"$(b)\" `c` && cat <<EOF\nx\nEOF\nls {{x}}");
    expect(sites).toEqual([
      expect.objectContaining({ name: "x", context: "plain", wholeWord: true }),
    ]);
  });

  it("does not see an escaped placeholder (the policy refuses the count mismatch)", () => {
    expect(placeholderSites("echo \\{{x}}")).toEqual([]);
  });

  it("treats an unterminated quote as covering the rest", () => {
    expect(site("echo 'oops {{x}}")).toEqual({ context: "single-quotes", wholeWord: false });
  });
});
