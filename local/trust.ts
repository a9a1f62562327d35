/**
 * `npm run trust -- host[:port] [--yes]`: fetches the host's key with the engine, prints its
 * SHA256 fingerprint and, once confirmed, adds it to the local known_hosts.
 */
import { runCli, UsageError } from "./cli.ts";
import { LOCAL_DIR, localKnownHostsPath, parseHostPort, trustHost } from "./host-trust.ts";

const HELP = `
usage: npm run trust -- host[:port] [--yes]

Connects to host:port (default 22), reads the host key it presents (no authentication,
nothing sent), prints its SHA256 fingerprint and, after you confirm, adds
"host keytype key" ("[host]:port …" off port 22) to the local known_hosts: the config's
knownHostsFile when BSSH_CONFIG is set, otherwise ${LOCAL_DIR}/known_hosts.
  --yes   add without asking (scripts; check the fingerprint another way)
`;

async function main(args: string[]): Promise<void> {
  const yes = args.includes("--yes");
  const rest = args.filter((a) => a !== "--yes");
  const unknown = rest.find((a) => a.startsWith("-"));
  if (unknown) throw new UsageError(`unknown option ${unknown}; see --help`);
  if (rest.length !== 1) throw new UsageError("expected one host[:port]; see --help");
  const { host, port } = parseHostPort(rest[0]!);
  const outcome = await trustHost({
    host,
    port,
    knownHostsPath: localKnownHostsPath(),
    yes,
    say: (line) => process.stdout.write(`${line}\n`),
  });
  if (outcome === "declined") process.exitCode = 1;
}

await runCli("trust", HELP, main);
