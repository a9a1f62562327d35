/**
 * `npm run init -- user@host[:port]`: one command from nothing to a working local config:
 * `.bssh/config.json` (a policy for that host, user and a few harmless commands), a fresh
 * ed25519 key pair, the host's key in `.bssh/known_hosts` (same code as `npm run trust`), and
 * the public key line to install.
 */
import { generateKeyPairSync } from "node:crypto";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join, relative, resolve } from "node:path";
import ssh2 from "ssh2";
import { DEFAULT_DENY_CIDRS } from "../functions/policy/policy.ts";
import {
  certificateLine,
  ed25519PublicKeyLine,
  opensshPrivateKeyText,
  signHostCertificate,
} from "../lib/session/certificate.ts";
import { parseKey } from "../lib/session/ssh2.ts";
import { LOCAL_STATE_MACHINE } from "./api-event.ts";
import { type CliArgs, runCli, UsageError } from "./cli.ts";
import { demoKeyPair } from "./demo-key.ts";
import { LOCAL_DIR, parseHostPort, trustHost } from "./host-trust.ts";
import type { LocalConfig } from "./local-config.ts";

const HELP = `
usage: npm run init -- user@host[:port] [--yes] [--force] [--ca]
       npm run init -- --host-cert <ssh_host_ed25519_key.pub> [--principals <name,…>]

Writes ${LOCAL_DIR}/ (gitignored):
  config.json      local config: caller, the key as credential "default", a policy allowing
                   user@host:port to run uptime, hostname, id, uname, df -h, echo …
  id_ed25519       a new key pair (.pub beside it): install the printed public key for user
  known_hosts      the host's key, after you confirm its fingerprint (as npm run trust)
then prints the next commands.
  --yes    trust the host key without asking (scripts)
  --force  replace an existing ${LOCAL_DIR}/config.json and key
  --ca     instead of a key pair, a user certificate authority (user_ca, .pub beside it) as
           credential "default": each session logs in with a certificate it signs for the
           user and the command, valid until the session's deadline; prints the one
           sshd_config line the host needs (TrustedUserCAKeys) instead of an authorized key
  --host-cert <file.pub>
           sign that ed25519 host key with ${LOCAL_DIR}/host_ca (created when missing) into
           <file>-cert.pub (valid 52 weeks), add one "@cert-authority" line for the
           principals to ${LOCAL_DIR}/known_hosts, and print the HostCertificate line for
           the host's sshd_config: hosts with such certificates need no known_hosts line
  --principals <name,…>  the names the host certificate vouches for (default 127.0.0.1,localhost)

cost: one connection to the host (at most 10 s, as npm run trust); writes only ${LOCAL_DIR}/.
`;

/** Where `--ca` tells the operator to put the CA's public key on the host. */
const CA_PATH_ON_HOST = "/etc/ssh/bounded-ssh_user_ca.pub";

/** The caller local API requests run as (`npm start` with the written config). */
const CALLER = "arn:aws:iam::000000000000:user/local-dev";

const LOOPBACK = new Set(["127.0.0.0/8", "::1/128"]);

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/** The policy of a config for one host, user and port. */
function configFor(host: string, port: number, user: string, ca = false): LocalConfig {
  const literal = isIP(host);
  const targets =
    literal === 0
      ? { hosts: [host], ports: [port], usernames: [user] }
      : { cidrs: [`${host}/${literal === 4 ? 32 : 128}`], ports: [port], usernames: [user] };
  return {
    callerArn: CALLER,
    stateMachineArn: LOCAL_STATE_MACHINE,
    credentials: {
      default: ca
        ? { certificateAuthority: { privateKeyFile: "user_ca" } }
        : { privateKeyFile: "id_ed25519" },
    },
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

/** `--host-cert`: a host certificate signed by the local host CA, and the CA trusted. */
function signHost(hostKeyFile: string, principalList: string | undefined): void {
  const say = (line = "") => process.stdout.write(`${line}\n`);
  const principals = (principalList ?? "127.0.0.1,localhost")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (principals.length === 0 || principals.some((p) => !/^[A-Za-z0-9.:_-]+$/.test(p))) {
    throw new UsageError("--principals: a comma-separated list of host names or addresses");
  }
  let hostKeyLine: string;
  try {
    hostKeyLine = readFileSync(hostKeyFile, "utf8").trim();
  } catch (err) {
    throw new UsageError(
      `--host-cert: cannot read ${hostKeyFile} (${(err as NodeJS.ErrnoException).code ?? err}); give the host's public key file, e.g. /etc/ssh/ssh_host_ed25519_key.pub`,
    );
  }
  const [type, b64] = hostKeyLine.split(/\s+/);
  if (type !== "ssh-ed25519" || !b64) {
    throw new UsageError(`--host-cert: ${hostKeyFile} is not an ssh-ed25519 public key line`);
  }
  const dir = resolve(LOCAL_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, "host_ca");
  if (!existsSync(caFile)) {
    const key = generateKeyPairSync("ed25519").privateKey;
    writeFileSync(caFile, opensshPrivateKeyText(key), { mode: 0o600 });
    writeFileSync(
      `${caFile}.pub`,
      `${ed25519PublicKeyLine(key, `bounded-ssh-host-ca@${hostname()}`)}\n`,
    );
  }
  const ca = parseKey(readFileSync(caFile, "utf8"));
  if (ca instanceof Error) throw new UsageError(`${caFile} is not a private key: ${ca.message}`);
  const now = Math.floor(Date.now() / 1000);
  const cert = signHostCertificate(ca, Buffer.from(b64, "base64"), {
    principals,
    keyId: `bounded-ssh-host:${principals[0]}`,
    serial: BigInt(now),
    validAfter: now - 300,
    validBefore: now + 52 * 7 * 86_400,
  });
  const certFile = `${hostKeyFile.replace(/\.pub$/, "")}-cert.pub`;
  writeFileSync(certFile, `${certificateLine(cert, principals[0])}\n`);
  const caLine = `@cert-authority ${principals.flatMap((p) => [p, `[${p}]:*`]).join(",")} ${readFileSync(`${caFile}.pub`, "utf8").trim()}`;
  const knownHosts = join(dir, "known_hosts");
  const listed = existsSync(knownHosts) ? readFileSync(knownHosts, "utf8") : "";
  if (!listed.split("\n").includes(caLine)) {
    appendFileSync(knownHosts, `${listed === "" || listed.endsWith("\n") ? "" : "\n"}${caLine}\n`);
  }
  say(`wrote ${certFile} (host certificate for ${principals.join(", ")}, valid 52 weeks)`);
  say(`trusted the host CA in ${relative(process.cwd(), knownHosts)}: ${caLine}`);
  say();
  say("add this one line to the host's sshd_config (then reload sshd):");
  say();
  say(`  HostCertificate ${certFile}`);
}

async function main({ values, positionals }: CliArgs): Promise<void> {
  if (typeof values["host-cert"] === "string") {
    if (positionals.length > 0) throw new UsageError("--host-cert takes no user@host; see --help");
    signHost(values["host-cert"], values.principals as string | undefined);
    return;
  }
  const match = positionals.length === 1 ? /^([^@\s]+)@(.+)$/.exec(positionals[0]!) : null;
  if (!match) throw new UsageError("expected user@host[:port]; see --help");
  const user = match[1]!;
  const { host, port } = parseHostPort(match[2]!);
  const dir = resolve(LOCAL_DIR);
  const configFile = join(dir, "config.json");
  const ca = values.ca === true;
  const keyFile = join(dir, ca ? "user_ca" : "id_ed25519");
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
  let publicLine: string;
  if (ca) {
    // node:crypto, not ssh2's generator (which returns an unparsable key ~1/170 calls).
    const caKey = generateKeyPairSync("ed25519").privateKey;
    publicLine = ed25519PublicKeyLine(caKey, `bounded-ssh-user-ca@${hostname()}`);
    writeFileSync(keyFile, opensshPrivateKeyText(caKey), { mode: 0o600 });
  } else {
    const pair = demoKeyPair(`bounded-ssh@${hostname()}`);
    const parsed = ssh2.utils.parseKey(pair.public);
    if (parsed instanceof Error) throw parsed;
    publicLine = `${parsed.type} ${parsed.getPublicSSH().toString("base64")} bounded-ssh@${hostname()}`;
    writeFileSync(keyFile, pair.private, { mode: 0o600 });
  }
  writeFileSync(`${keyFile}.pub`, `${publicLine}\n`);
  writeFileSync(configFile, `${JSON.stringify(configFor(host, port, user, ca), null, 2)}\n`);
  const configShown = shown(configFile);
  say(`wrote ${configShown}, ${shown(keyFile)} (+ .pub)`);
  say();
  if (ca) {
    say(`on ${host}, trust the CA for user certificates: put its public key in a file`);
    say();
    say(`  echo '${publicLine}' | sudo tee ${CA_PATH_ON_HOST}`);
    say();
    say("and add this one line to /etc/ssh/sshd_config (then reload sshd):");
    say();
    say(`  TrustedUserCAKeys ${CA_PATH_ON_HOST}`);
    say();
    say(
      `each certificate names ${user} as its principal, forces the command and expires with the session (docs/security.md)`,
    );
  } else {
    say(
      `install this public key for ${user} on ${host} (a line in ~${user}/.ssh/authorized_keys):`,
    );
    say();
    say(`  ${publicLine}`);
  }
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
  options: {
    yes: { type: "boolean" },
    force: { type: "boolean" },
    ca: { type: "boolean" },
    "host-cert": { type: "string" },
    principals: { type: "string" },
  },
  maxPositionals: 1,
});
