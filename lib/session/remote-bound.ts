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
 * Wraps a command so it dies on the remote host by itself even if the client vanishes:
 * coreutils `timeout -k` runs the command in the user's login shell (`$SHELL`, so shell
 * syntax means what the caller expects) and `exec` makes `timeout` the session's process,
 * so the SSH signal request reaches it (and it forwards the signal to the command's process
 * group, then KILLs it after {@link REMOTE_KILL_AFTER_S}).
 */
export function wrapWithRemoteBound(command: string, allowanceMs: number): string {
  const seconds = Math.ceil(allowanceMs / 100) / 10 + REMOTE_BOUND_SLACK_S;
  return `exec timeout -k ${REMOTE_KILL_AFTER_S} ${seconds.toFixed(1)} "\${SHELL:-/bin/sh}" -c ${shellQuote(command)}`;
}
