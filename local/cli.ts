/**
 * What every command line of the project shares (local mode, bench, soak, drill and the
 * generators): `--help`/`-h` prints usage and does nothing else, an unknown option or a
 * surplus argument is refused before any work, and anything the user can fix is one clear
 * line (no stack trace). `BSSH_DEBUG=1` prints the stack of unexpected errors.
 *
 * Imports nothing heavy, so `--help` answers before anything loads: entry points import their
 * work in `main` (a dynamic import), never at the top. `bench/`, `test/` and `scripts/` import
 * it too (the import-graph rules cover only lib, operations, functions, cdk and local).
 */

import { type ParseArgsConfig, parseArgs } from "node:util";
import { LOCAL_ENV } from "../operations/environment.ts";

/** A mistake the user can fix (bad argument, variable, port in use); exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Options a command accepts, in `node:util` `parseArgs` form (`--help`/`-h` are implied). */
export type CliOptions = NonNullable<ParseArgsConfig["options"]>;

/** What a command's `main` receives: option values by name, and the positional arguments. */
export interface CliArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** How a command line is read. */
export interface CliSpec {
  /** Options besides `--help`/`-h`. @default none */
  options?: CliOptions;
  /** Most positional arguments accepted. @default 0 */
  maxPositionals?: number;
}

/**
 * Reads `args` by `spec`: unknown options, a missing option value and surplus positional
 * arguments are {@link UsageError}s naming the argument and `--help`.
 */
export function parseCliArgs(args: string[], spec: CliSpec = {}): CliArgs {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: spec.options ?? {}, allowPositionals: true, strict: true });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = (err as Error).message;
    const named = /'(-[^' ]+)/.exec(message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`unknown option ${named ?? message}; see --help`);
    }
    throw new UsageError(`${message.split(/\.\s/)[0]}; see --help`);
  }
  const max = spec.maxPositionals ?? 0;
  if (parsed.positionals.length > max) {
    const extra = parsed.positionals[max];
    throw new UsageError(
      max === 0
        ? `unexpected argument ${JSON.stringify(extra)}: this command takes none; see --help`
        : `unexpected argument ${JSON.stringify(extra)}: at most ${max}; see --help`,
    );
  }
  return {
    values: parsed.values as CliArgs["values"],
    positionals: parsed.positionals,
  };
}

/**
 * Runs a command line: prints `help` for `--help`/`-h` (wherever it is, whatever else is
 * there) and returns; otherwise reads the arguments by `spec` and runs `main`. A
 * {@link UsageError} or a config error becomes one line on stderr and exit 2; anything else is
 * one line too (name and message; the stack with `BSSH_DEBUG=1`) and exit 1.
 */
export async function runCli(
  command: string,
  help: string,
  main: (args: CliArgs) => Promise<void>,
  spec: CliSpec = {},
): Promise<void> {
  const args = process.argv.slice(2);
  const end = args.indexOf("--");
  const flags = end === -1 ? args : args.slice(0, end);
  if (flags.includes("--help") || flags.includes("-h")) {
    process.stdout.write(`${help.trim()}\n`);
    return;
  }
  try {
    await main(parseCliArgs(args, spec));
  } catch (err) {
    const error = err as Error;
    // By name: LocalConfigError lives with the config reader, which --help must not load.
    const known = error.name === "UsageError" || error.name === "LocalConfigError";
    if (process.env[LOCAL_ENV.debug] === "1") console.error(error);
    console.error(
      `bounded-ssh ${command}: ${known ? error.message : `${error.name}: ${error.message}`}`,
    );
    process.exit(known ? 2 : 1);
  }
}
