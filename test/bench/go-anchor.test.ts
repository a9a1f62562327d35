/**
 * The bench's Go anchor (bench/go/, a golang.org/x/crypto/ssh client) builds offline from
 * Debian's packages and runs sessions against a real sshd: CI does not run `npm run bench`, so
 * a broken build or a client that cannot log in is caught here instead. No timing is asserted
 * (speed lives in the bench).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildGoClient,
  GO_INSTALL_COMMAND,
  type GoClient,
  GoClientUnavailable,
  startGoClient,
} from "../../bench/go-client.ts";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

describe("the bench's Go x/crypto/ssh anchor", () => {
  const buildDir = mkdtempSync(path.join(tmpdir(), "bssh-go-anchor-"));
  let srv: SshdServer;
  let binary: string;
  const clients: GoClient[] = [];

  beforeAll(async () => {
    srv = await startSshd({ passwordAuthentication: false });
    // Builds with a cold cache of its own: the whole offline build is exercised.
    binary = await buildGoClient(buildDir);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await srv?.stop();
    rmSync(buildDir, { recursive: true, force: true });
  });

  const start = (server: SshdServer = srv): GoClient => {
    const c = startGoClient(binary, server);
    clients.push(c);
    return c;
  };

  it("builds into the given directory, never into the source tree", () => {
    expect(existsSync(binary)).toBe(true);
    expect(path.dirname(binary)).toBe(buildDir);
    expect(existsSync(path.join(import.meta.dirname, "../../bench/go/sshclient"))).toBe(false);
  });

  it("runs one session, then drains stdout and counts every byte", async () => {
    const go = start();
    const ms = await go.session();
    expect(ms).toBeGreaterThan(0);
    // 1 MiB through the channel: window adjustments and several packets, counted exactly.
    const drained = await go.run(1, "head -c 1048576 /dev/zero");
    expect(drained.failures).toEqual([]);
    expect(drained.bytes).toEqual([1_048_576]);
    await expect(go.session("head -c 10 /dev/zero", 11)).rejects.toThrow(
      /drained 10 bytes, expected 11/,
    );
  });

  it("runs n sessions at once and reports each, with its process's CPU", async () => {
    const go = start();
    const r = await go.run(4, "true");
    expect(r.failures).toEqual([]);
    expect(r.ms).toHaveLength(4);
    expect(r.cpuMs).toBeGreaterThan(0);
    expect(r.wallMs).toBeGreaterThanOrEqual(Math.max(...r.ms));
  });

  it("reports a failed command and a wrong host key as failures, not as sessions", async () => {
    const go = start();
    const failed = await go.run(1, "exit 3");
    expect(failed.ms).toEqual([]);
    expect(failed.failures).toEqual([expect.stringMatching(/exited with status 3/)]);
    // The host key is pinned: a server with another key is refused before auth.
    const other = await startSshd({ passwordAuthentication: false });
    try {
      const impostor = start({ ...other, hostKeyLine: srv.hostKeyLine });
      const refused = await impostor.run(1, "true");
      expect(refused.ms).toEqual([]);
      expect(refused.failures).toEqual([expect.stringMatching(/handshake: .*host key mismatch/)]);
    } finally {
      await other.stop();
    }
  });

  it("says loudly what is missing and the one command that installs it", async () => {
    const err = await buildGoClient(buildDir, { gopath: path.join(buildDir, "no-gopath") }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GoClientUnavailable);
    expect((err as Error).message).toContain("golang-golang-x-crypto-dev");
    expect((err as Error).message).toContain(GO_INSTALL_COMMAND);
  });
});
