/**
 * What every local command line shares: `--help`, and one clear line (no stack trace) for
 * anything the user can fix. `BSSH_DEBUG=1` prints the stack of unexpected errors. Imports
 * nothing heavy, so `--help` answers before the handlers load (entry points import them in
 * `main`).
 */

import { LOCAL_ENV } from "../operations/environment.ts";

/** A mistake the user can fix (bad argument, variable, port in use); exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Runs a command line: prints `help` for `--help`/`-h`, otherwise runs `main`; a
 * {@link UsageError} or a config error becomes one line on stderr and exit 2; anything else is
 * one line too (name and message; the stack with `BSSH_DEBUG=1`) and exit 1.
 */
export async function runCli(
  command: string,
  help: string,
  main: (args: string[]) => Promise<void>,
): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${help.trim()}\n`);
    return;
  }
  try {
    await main(args);
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
