import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import {
  ed25519LineOf,
  type LabServer,
  labServer,
  serveInetd,
  startInLabDir,
} from "./lab-server.ts";

const execFileAsync = promisify(execFile);

/** Debian's tinysshd package. */
export const TINYSSHD_PATH = "/usr/sbin/tinysshd";
export const TINYSSHD_MAKEKEY_PATH = "/usr/sbin/tinysshd-makekey";
export const TINYSSHD_PRINTKEY_PATH = "/usr/sbin/tinysshd-printkey";
export const TINYSSHD_MISSING_MESSAGE =
  "TinySSH not found at /usr/sbin/tinysshd: run `apt-get install -y tinysshd` or run `npm test` as root (its pretest installs it)";

/**
 * Serves a real TinySSH on 127.0.0.1. TinySSH is inetd-style (one process per connection,
 * the socket on stdin/stdout): a Node listener accepts and spawns `tinysshd KEYDIR` with the
 * accepted socket as its stdio. It speaks only ed25519 / curve25519 / chacha20-poly1305 and
 * reads the user's ~/.ssh/authorized_keys; only the ed25519 client keys log in. Root only.
 */
export async function startTinysshd(): Promise<LabServer> {
  for (const file of [TINYSSHD_PATH, TINYSSHD_MAKEKEY_PATH, TINYSSHD_PRINTKEY_PATH]) {
    if (!existsSync(file)) throw new Error(TINYSSHD_MISSING_MESSAGE);
  }
  return startInLabDir(
    {
      name: "TinySSH",
      dirPrefix: "bssh-tinysshd-",
      authorize: (keys) => [keys.ed25519, keys.encrypted],
    },
    async (dir, keys) => {
      const keyDir = path.join(dir, "keys");
      await execFileAsync(TINYSSHD_MAKEKEY_PATH, [keyDir]);
      const { stdout } = await execFileAsync(TINYSSHD_PRINTKEY_PATH, [keyDir]);
      const hostKeyLine = ed25519LineOf(stdout, "tinysshd-printkey");
      const inetd = await serveInetd((sock) =>
        // A clean environment: tinysshd hands its own PATH to the user's session.
        spawn(TINYSSHD_PATH, [keyDir], {
          stdio: [sock, sock, "ignore"],
          env: { PATH: "/usr/local/bin:/usr/bin:/bin" },
        }),
      );
      return labServer({
        kind: "tinyssh",
        port: inetd.port,
        keys,
        hostKeyLine,
        dir,
        kill: () => inetd.stop(),
      });
    },
  );
}
