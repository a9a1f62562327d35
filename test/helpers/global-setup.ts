import { accessSync, constants } from "node:fs";
import { SSH_KEYGEN_PATH, SSHD_MISSING_MESSAGE, SSHD_PATH } from "./sshd.ts";

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * vitest globalSetup: the suite needs a real OpenSSH. A missing sshd is a broken test
 * machine, never a reason to skip tests, so this throws and the whole run fails loudly.
 */
export default function setup(): void {
  if (!executable(SSHD_PATH)) throw new Error(SSHD_MISSING_MESSAGE);
  if (!executable(SSH_KEYGEN_PATH)) {
    throw new Error(
      `ssh-keygen not found at ${SSH_KEYGEN_PATH}: run \`apt-get install -y openssh-client\` or \`bash .ci/run\``,
    );
  }
}
