/**
 * The embedded targets of `npm run demo` and of `npm start` without a config: an ssh2 target
 * on loopback (pinned host key, one generated client key) and a target that hangs before its
 * banner, with a local config for them in a temporary folder. No sshd, no setup.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { DEFAULT_DENY_CIDRS } from "../functions/policy/policy.ts";
import { LOCAL_STATE_MACHINE } from "./api-event.ts";
import { demoKeyPair } from "./demo-key.ts";
import {
  type DemoSshServer,
  type DemoTarget,
  startDemoSshServer,
  startHungTarget,
} from "./demo-targets.ts";
import type { LocalConfig } from "./local-config.ts";

/** The caller of local API requests against the embedded targets. */
export const EMBEDDED_CALLER = "arn:aws:iam::000000000000:user/demo";
/** The one username the embedded SSH target accepts. */
export const EMBEDDED_USER = "demo";

/** Running embedded targets and the config that reaches them. */
export interface EmbeddedTargets {
  /** A local config file (in a temporary folder removed by `close`). */
  configPath: string;
  config: LocalConfig;
  ssh: DemoSshServer;
  hung: DemoTarget;
  close(): Promise<void>;
}

/** Starts both targets and writes their config, key and known_hosts. */
export async function startEmbeddedTargets(): Promise<EmbeddedTargets> {
  const dir = mkdtempSync(join(tmpdir(), "bssh-embedded-"));
  const clientKey = demoKeyPair();
  const parsedClient = ssh2.utils.parseKey(clientKey.public);
  if (parsedClient instanceof Error) throw parsedClient;
  const ssh = await startDemoSshServer({ username: EMBEDDED_USER, authorizedKey: parsedClient });
  const hung = await startHungTarget();
  writeFileSync(join(dir, "id_ed25519"), clientKey.private, { mode: 0o600 });
  writeFileSync(join(dir, "known_hosts"), `[127.0.0.1]:${ssh.port} ${ssh.hostKeyLine}\n`);
  const config: LocalConfig = {
    callerArn: EMBEDDED_CALLER,
    stateMachineArn: LOCAL_STATE_MACHINE,
    credentials: { default: { privateKeyFile: "id_ed25519" } },
    knownHostsFile: "known_hosts",
    policy: {
      // The targets listen on loopback, which the default deny list refuses.
      denyCidrs: DEFAULT_DENY_CIDRS.filter((range) => range !== "127.0.0.0/8"),
      replaceDefaultDenyCidrs: true,
      rules: [
        {
          id: "embedded",
          callers: [EMBEDDED_CALLER, LOCAL_STATE_MACHINE],
          targets: {
            cidrs: ["127.0.0.1/32"],
            ports: [ssh.port, hung.port],
            usernames: [EMBEDDED_USER],
          },
          commands: {
            patterns: ["uptime", "echo [A-Za-z0-9 ,.:_-]*", "uname( -[a-z]+)?", "sleep [0-9]+"],
            templates: ["disk-usage"],
          },
        },
      ],
      templates: {
        "disk-usage": {
          command: "df -h {{path}} | tail -n 1",
          params: { path: { type: "string", pattern: "/[A-Za-z0-9/_.-]*" } },
        },
      },
    },
  };
  const configPath = join(dir, "config.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return {
    configPath,
    config,
    ssh,
    hung,
    close: async () => {
      await ssh.close();
      await hung.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
