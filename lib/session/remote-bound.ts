/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Seconds the remote `timeout` waits after TERM before it sends KILL. */
export const REMOTE_KILL_AFTER_S = 2;
/**
 * Extra seconds the remote bound allows beyond the client's own exec allowance, so that
 * while the client is connected its own timer always fires first (it then signals the
 * command) and a remote exit 124 never masquerades as the command's own status.
 */
export const REMOTE_BOUND_SLACK_S = 1;

/**
 * Words a shell runs itself (bash builtins and keywords, plus the builtins of zsh, ksh and
 * dash that name a program too): a command starting with one of them always goes through the
 * login shell, so `cd /tmp`, `echo -e`, `which`, `time` keep the meaning the caller expects.
 */
const SHELL_WORDS = new Set(
  (
    ". : [ [[ ]] { } ! alias autoload bg bind break builtin bye caller case cd chdir command " +
    "compgen complete compopt continue coproc declare dirs disown do done echo elif else " +
    "emulate enable esac eval exec exit export false fc fg fi for function getopts hash help " +
    "history if in integer jobs kill let limit local logout mapfile noglob popd print printf " +
    "pushd pwd r read readarray readonly rehash return select set setopt shift shopt source " +
    "stop suspend test then time times trap true type typeset ulimit umask unalias unfunction " +
    "unhash unlimit unset unsetopt until wait whence where which while"
  ).split(" "),
);

/** One word a shell passes through unchanged: no quoting, expansion, glob or operator. */
const PLAIN_WORD = /^[A-Za-z0-9_./:@%+,=-]+$/;

/**
 * The words of `command` when the login shell would run it as they are (a simple command:
 * plain words separated by single spaces, the first a program, not a shell word nor a
 * variable assignment), else `undefined`. `timeout` can then run it itself, skipping a shell.
 */
export function simpleCommandWords(command: string): string[] | undefined {
  const words = command.split(" ");
  const first = words[0] ?? "";
  if (first === "" || first.startsWith("-") || first.includes("=") || SHELL_WORDS.has(first)) {
    return undefined;
  }
  for (const word of words) if (!PLAIN_WORD.test(word)) return undefined;
  return words;
}

/**
 * Wraps a command so it dies on the remote host by itself even if the client vanishes: `exec`
 * makes coreutils `timeout -k` the session's process, so the SSH signal request reaches it
 * (and it forwards the signal to the command's process group, then KILLs it after
 * {@link REMOTE_KILL_AFTER_S}).
 *
 * The login shell sshd starts (`$SHELL -c '<wrapper>'`) has already set up the environment
 * (PATH). A simple command ({@link simpleCommandWords}: `uptime`, `systemctl restart nginx`,
 * `/opt/app/bin/check --fast`) is run by `timeout` directly, as that shell would run it; any
 * other command (shell syntax, quoting, expansions, builtins) runs in a second login shell
 * (`"$SHELL" -c '<command>'`, so shell syntax means what the caller expects). The direct form
 * spares the target a fork and exec of a shell per session (docs/benchmarks.md, "target").
 */
export function wrapWithRemoteBound(command: string, allowanceMs: number): string {
  const seconds = Math.ceil(allowanceMs / 100) / 10 + REMOTE_BOUND_SLACK_S;
  const bound = `exec timeout -k ${REMOTE_KILL_AFTER_S} ${seconds.toFixed(1)}`;
  const words = simpleCommandWords(command);
  if (words) return `${bound} ${words.join(" ")}`;
  return `${bound} "\${SHELL:-/bin/sh}" -c ${shellQuote(command)}`;
}
