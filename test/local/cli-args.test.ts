/** The one argument reader of every command line (local/cli.ts). */
import { describe, expect, it } from "vitest";
import { parseCliArgs, UsageError } from "../../local/cli.ts";

const spec = { options: { yes: { type: "boolean" as const } }, maxPositionals: 1 };

describe("parseCliArgs", () => {
  it("reads declared options and positionals; '-' (stdin) and anything after '--' are positionals", () => {
    expect(parseCliArgs(["--yes", "host:22"], spec)).toEqual({
      values: { yes: true },
      positionals: ["host:22"],
    });
    expect(parseCliArgs(["-"], spec).positionals).toEqual(["-"]);
    expect(parseCliArgs(["--", "--yes"], spec)).toEqual({ values: {}, positionals: ["--yes"] });
  });

  it("refuses an unknown option, naming it and --help", () => {
    for (const arg of ["--bogus", "-x", "--bogus=1"]) {
      const read = () => parseCliArgs([arg], spec);
      expect(read).toThrow(UsageError);
      expect(read).toThrow(`unknown option ${arg.replace(/=.*/, "")}; see --help`);
    }
  });

  it("refuses a value for a flag and surplus arguments", () => {
    expect(() => parseCliArgs(["--yes=3"], spec)).toThrow(/--yes.*see --help/);
    expect(() => parseCliArgs(["a", "b"], spec)).toThrow(
      'unexpected argument "b": at most 1; see --help',
    );
    expect(() => parseCliArgs(["a"])).toThrow(
      'unexpected argument "a": this command takes none; see --help',
    );
  });
});
