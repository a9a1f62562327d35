/**
 * Templates by construction (functions/policy/template-shape.ts): a placeholder is only ever an
 * argument of a plainly written command word that does not evaluate text. The four gaps of
 * issue 23 and their relatives are refused when the policy loads, naming the template; the
 * ordinary shapes still load.
 */
import { describe, expect, it } from "vitest";
import { checkTemplate } from "../../functions/policy/templates.ts";

const params = {
  x: { type: "string" as const, pattern: "[a-z]+" },
  n: { type: "integer" as const, minimum: 0, maximum: 9 },
};
const load = (command: string) => () => checkTemplate("t", { command, params });

describe("template shape: refused at load", () => {
  it.each([
    // The four gaps of issue 23.
    ["echo $[ {{n}} ]", "arithmetic expansion"],
    ["trap {{x}} EXIT", "argument of trap"],
    ["'eval' {{x}}", "written with quotes"],
    ["\\eval {{x}}", "written with quotes, escapes"],
    // Other spellings of an evaluating command word.
    ['e""val {{x}}', "written with quotes"],
    ['"eval" {{x}}', "written with quotes"],
    ["e\\val {{x}}", "written with quotes"],
    ["e''val {{x}}", "written with quotes"],
    ["$cmd {{x}}", "written with quotes, escapes or expansions"],
    // Evaluating builtins and keywords, wherever the placeholder sits in their command.
    ["eval echo {{x}}", "argument of eval"],
    ["source {{x}}", "argument of source"],
    [". {{x}}", "argument of ."],
    ["exec {{x}}", "argument of exec"],
    ["exec cat {{x}}", "argument of exec"],
    ["command eval {{x}}", "argument of command"],
    ["builtin eval {{x}}", "argument of builtin"],
    ["coproc eval {{x}}", "argument of coproc"],
    ["enable -f {{x}} foo", "argument of enable"],
    ["hash -p {{x}} ls", "argument of hash"],
    ["alias ll={{x}}", "glued"],
    ["alias {{x}}", "argument of alias"],
    ["fc -e {{x}}", "argument of fc"],
    ["let {{n}}", "argument of let"],
    ["getopts ab {{x}}", "argument of getopts"],
    ["declare -n r {{x}}", "argument of declare"],
    ["trap -- {{x}} INT", "argument of trap"],
    ["(( {{n}} ))", "arithmetic evaluation"],
    ["echo $(( {{n}} ))", "arithmetic evaluation"],
    // The command word found past prefixes, assignments, redirections and operators.
    ["time eval {{x}}", "argument of eval"],
    ["time -p eval {{x}}", "argument of eval"],
    ["! eval {{x}}", "argument of eval"],
    ["if eval {{x}}; then true; fi", "argument of eval"],
    ["true && eval {{x}}", "argument of eval"],
    ["true || trap {{x}} EXIT", "argument of trap"],
    ["echo hi | eval {{x}}", "argument of eval"],
    ["( eval {{x}} )", "argument of eval"],
    ["{ eval {{x}}; }", "argument of eval"],
    ["true\neval {{x}}", "argument of eval"],
    ["LC_ALL=C eval {{x}}", "argument of eval"],
    ["2>/dev/null eval {{x}}", "argument of eval"],
    ["> /tmp/out eval {{x}}", "argument of eval"],
    ["while true; do eval {{x}}; done", "argument of eval"],
    // A placeholder as the command word: the caller would choose the program.
    ["{{x}} /etc/passwd", "is the command word"],
    ["true; {{x}}", "is the command word"],
    ["LC_ALL=C {{x}}", "is the command word"],
  ])("%j → refused (%s)", (command, why) => {
    expect(load(command)).toThrow(why);
    expect(load(command)).toThrow('template "t"');
  });
});

describe("template shape: ordinary templates still load", () => {
  it.each([
    "tail -n 5 {{x}}",
    "head -c {{n}} /dev/zero",
    "grep -c {{x}} /var/log/syslog",
    "echo {{x}}; ls {{x}}",
    "LC_ALL=C sort {{x}}",
    "2>&1 ls {{x}}",
    "time ls {{x}}",
    "if test {{n}} -gt 1; then echo {{x}}; fi",
    "case {{x}} in a) echo a;; esac",
    "for f in {{x}}; do cat $f; done",
    "sudo systemctl restart {{x}} && journalctl -u {{x}} -n {{n}}",
    "/usr/local/bin/report --since {{n}} {{x}}",
    "ls | grep {{x}}",
    "echo evaluation {{x}}",
  ])("%j", (command) => {
    expect(load(command)).not.toThrow();
  });
});
