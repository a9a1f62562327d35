import { accessSync, constants } from "node:fs";
import { DROPBEAR_MISSING_MESSAGE, DROPBEAR_PATH, DROPBEARKEY_PATH } from "./dropbear.ts";
import { SSH_KEYGEN_PATH, SSHD_MISSING_MESSAGE, SSHD_PATH } from "./sshd.ts";
import {
  TINYSSHD_MAKEKEY_PATH,
  TINYSSHD_MISSING_MESSAGE,
  TINYSSHD_PATH,
  TINYSSHD_PRINTKEY_PATH,
} from "./tinysshd.ts";

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Every binary the suite runs, and the message that says how to install it. */
export const REQUIRED: readonly (readonly [string, string])[] = [
  [SSHD_PATH, SSHD_MISSING_MESSAGE],
  [
    SSH_KEYGEN_PATH,
    `ssh-keygen not found at ${SSH_KEYGEN_PATH}: run \`apt-get install -y openssh-client\` or \`npm test\` as root`,
  ],
  [DROPBEAR_PATH, DROPBEAR_MISSING_MESSAGE],
  [DROPBEARKEY_PATH, DROPBEAR_MISSING_MESSAGE],
  [TINYSSHD_PATH, TINYSSHD_MISSING_MESSAGE],
  [TINYSSHD_MAKEKEY_PATH, TINYSSHD_MISSING_MESSAGE],
  [TINYSSHD_PRINTKEY_PATH, TINYSSHD_MISSING_MESSAGE],
];

/**
 * vitest globalSetup: the suite needs real OpenSSH, Dropbear and TinySSH servers. A missing
 * one is a broken test machine, never a reason to skip tests, so this throws and the whole
 * run fails loudly (`npm test`'s pretest installs them as root on Debian).
 */
export default function setup(): void {
  requireBinaries(REQUIRED);
}

/** Throws one error carrying the install message of every missing binary. */
export function requireBinaries(required: readonly (readonly [string, string])[]): void {
  const missing = required.filter(([file]) => !executable(file)).map(([, message]) => message);
  if (missing.length > 0) throw new Error([...new Set(missing)].join("\n"));
}
