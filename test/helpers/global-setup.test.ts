import { describe, expect, it } from "vitest";
import { REQUIRED, requireBinaries } from "./global-setup.ts";

describe("globalSetup's binary check", () => {
  it("fails the run (never skips) naming the package to install when a server is missing", () => {
    expect(() =>
      requireBinaries([...REQUIRED, ["/nonexistent/sbin/dropbear", "install dropbear-bin"]]),
    ).toThrow("install dropbear-bin");
  });

  it("passes on this machine: OpenSSH, Dropbear and TinySSH are all installed", () => {
    expect(() => requireBinaries(REQUIRED)).not.toThrow();
    expect(REQUIRED.map(([file]) => file)).toEqual(
      expect.arrayContaining(["/usr/sbin/sshd", "/usr/sbin/dropbear", "/usr/sbin/tinysshd"]),
    );
  });
});
