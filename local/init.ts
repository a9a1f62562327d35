/**
 * `npm run init -- user@host[:port]`: one command from nothing to a working local config:
 * `.bssh/config.json` (a policy for that host, user and a few harmless commands), a fresh
 * ed25519 key pair, the host's key in `.bssh/known_hosts` (same code as `npm run trust`), and
 * the public key line to install.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join, relative, resolve } from "node:path";
import ssh2 from "ssh2";
import { DEFAULT_DENY_CIDRS } from "../functions/policy/policy.ts";
import { LOCAL_STATE_MACHINE } from "./api-event.ts";
import { type CliArgs, runCli, UsageError } from "./cli.ts";
import { demoKeyPair } from "./demo-key.ts";
import { LOCAL_DIR, parseHostPort, trustHost } from "./host-trust.ts";
import type { LocalConfig } from "./local-config.ts";

const HELP = `
usage: npm run init -- user@host[:port] [--yes] [--force]

Writes ${LOCAL_DIR}/ (gitignored):
  config.json      local config: caller, the key as credential "default", a policy allowing
                   user@host:port to run uptime, hostname, id, uname, df -h, echo …
  id_ed25519       a new key pair (.pub beside it): install the printed public key for user
  known_hosts      the host's key, after you confirm its fingerprint (as npm run trust)
then prints the next commands.
  --yes    trust the host key without asking (scripts)
  --force  replace an existing ${LOCAL_DIR}/config.json and key

cost: one connection to the host (at most 10 s, as npm run trust); writes only ${LOCAL_DIR}/.
`;

/** The caller local API requests run as (`npm start` with the written config). */
const CALLER = "arn:aws:iam::000000000000:user/local-dev";

const LOOPBACK = new Set(["127.0.0.0/8", "::1/128"]);

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/** The policy of a config for one host, user and port. */
function configFor(host: string, port: number, user: string): LocalConfig {
  const literal = isIP(host);
  const targets =
    literal === 0
      ? { hosts: [host], ports: [port], usernames: [user] }
      : { cidrs: [`${host}/${literal === 4 ? 32 : 128}`], ports: [port], usernames: [user] };
  return {
    callerArn: CALLER,
    stateMachineArn: LOCAL_STATE_MACHINE,
    credentials: { default: { privateKeyFile: "id_ed25519" } },
    knownHostsFile: "known_hosts",
    policy: {
      // The default deny list refuses loopback: a local sshd needs it lifted.
      ...(isLoopback(host)
        ? {
            denyCidrs: DEFAULT_DENY_CIDRS.filter((range) => !LOOPBACK.has(range)),
            replaceDefaultDenyCidrs: true,
          }
        : {}),
      rules: [
        {
          id: "init",
          callers: [CALLER, LOCAL_STATE_MACHINE],
          targets,
          credentials: ["default"],
          commands: {
            patterns: [
              "uptime",
              "hostname",
              "id",
              "uname( -[a-z]+)?",
              "df -h",
              "echo [A-Za-z0-9 ,.:_-]*",
              "sleep [0-9]+",
            ],
          },
        },
      ],
    },
  };
}

async function main({ values, positionals }: CliArgs): Promise<void> {
  const match = positionals.length === 1 ? /^([^@\s]+)@(.+)$/.exec(positionals[0]!) : null;
  if (!match) throw new UsageError("expected user@host[:port]; see --help");
  const user = match[1]!;
  const { host, port } = parseHostPort(match[2]!);
  const dir = resolve(LOCAL_DIR);
  const configFile = join(dir, "config.json");
  const keyFile = join(dir, "id_ed25519");
  const shown = (path: string) => relative(process.cwd(), path) || path;
  if (values.force !== true && (existsSync(configFile) || existsSync(keyFile))) {
    throw new UsageError(
      `${shown(configFile)} or ${shown(keyFile)} exists already: pass --force to replace them, or use npm run trust to add a host`,
    );
  }
  const say = (line = "") => process.stdout.write(`${line}\n`);
  // The host first: nothing is written for a host that cannot be reached or is declined.
  const created = !existsSync(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let trusted: Awaited<ReturnType<typeof trustHost>> | undefined;
  try {
    trusted = await trustHost({
      host,
      port,
      knownHostsPath: join(dir, "known_hosts"),
      yes: values.yes === true,
      say,
    });
  } finally {
    // Not even an empty directory is left for a host that failed or was declined.
    if (created && trusted !== "added" && trusted !== "present") rmSync(dir, { recursive: true });
  }
  if (trusted === "declined") {
    process.exitCode = 1;
    return;
  }
  const pair = demoKeyPair(`bounded-ssh@${hostname()}`);
  const parsed = ssh2.utils.parseKey(pair.public);
  if (parsed instanceof Error) throw parsed;
  const publicLine = `${parsed.type} ${parsed.getPublicSSH().toString("base64")} bounded-ssh@${hostname()}`;
  writeFileSync(keyFile, pair.private, { mode: 0o600 });
  writeFileSync(`${keyFile}.pub`, `${publicLine}\n`);
  writeFileSync(configFile, `${JSON.stringify(configFor(host, port, user), null, 2)}\n`);
  const configShown = shown(configFile);
  say(`wrote ${configShown}, ${shown(keyFile)} (+ .pub)`);
  say();
  say(`install this public key for ${user} on ${host} (a line in ~${user}/.ssh/authorized_keys):`);
  say();
  say(`  ${publicLine}`);
  say();
  say("then:");
  say(`  BSSH_CONFIG=${configShown} npm start`);
  say(
    `  curl -s http://127.0.0.1:8787/run -H 'content-type: application/json' -H "x-bssh-token: $(cat .tmp/local-api-token)" \\`,
  );
  say(
    `    -d '${JSON.stringify({ host, port, username: user, command: "uptime", timeoutMs: 5000 })}'`,
  );
}

await runCli("init", HELP, main, {
  options: { yes: { type: "boolean" }, force: { type: "boolean" } },
  maxPositionals: 1,
});
