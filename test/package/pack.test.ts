import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// The engine as a package (issue 12, item 5): what a service author gets from `npm pack`,
// installed into a scratch project, run from plain JavaScript on the system Node (not the
// Node 24 npm puts first on this suite's PATH, no tsx) and type-checked from a TS caller.

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TSC = path.join(ROOT, "node_modules/typescript/bin/tsc");

/** The first `node` on PATH outside any node_modules: the machine's own, as a user has it. */
function systemNode(): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir.includes("node_modules")) continue;
    const candidate = path.join(dir, "node");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("no node outside node_modules on PATH: install Node >= 20");
}

const CALLER_MJS = `
import { runCommand, ERROR_NAMES } from "bounded-ssh";
const { HOST, PORT, USERNAME, KEY, KNOWN_HOSTS } = process.env;
const controller = new AbortController();
const result = await runCommand(
  { host: HOST, port: Number(PORT), username: USERNAME, command: "echo packaged; echo err >&2" },
  { budgetMs: 10000, signal: controller.signal, secret: { privateKey: KEY }, knownHosts: KNOWN_HOSTS },
);
console.log(JSON.stringify({ node: process.version, names: ERROR_NAMES.length, result }));
`;

const CALLER_TS = `
import { type RunRequest, type RunResult, runCommand, BannerTimeout, RETRYABLE_ERRORS } from "bounded-ssh";

const request: RunRequest = { host: "10.0.3.7", username: "deploy", command: "uptime" };
export async function check(signal: AbortSignal): Promise<string> {
  const result: RunResult = await runCommand(request, { signal, secret: { password: "x" } });
  if (result.error?.name === new BannerTimeout("m", { phase: "banner" }).name) return "hang";
  return RETRYABLE_ERRORS.includes("ConnectTimeout") ? result.status : "never";
}
// @ts-expect-error: an unknown request field must not type-check
export const bad: RunRequest = { host: "h", username: "u", command: "c", hostname: "x" };
`;

let scratch: string;
let sshd: SshdServer;
let tarball: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "bssh-pack-"));
  [sshd] = await Promise.all([
    startSshd(),
    (async () => {
      // `npm pack` runs `prepack` (tsc -p tsconfig.build.json → dist/).
      const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", scratch], {
        cwd: ROOT,
      });
      const [packed] = JSON.parse(stdout.slice(stdout.indexOf("["))) as [{ filename: string }];
      tarball = path.join(scratch, packed.filename);
    })(),
  ]);
  await writeFile(
    path.join(scratch, "package.json"),
    JSON.stringify({ name: "scratch", private: true, type: "module" }),
  );
  await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], {
    cwd: scratch,
  });
}, 120_000);

afterAll(async () => {
  await sshd?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("the engine as a package", () => {
  it("ships only the built engine, with ssh2 as its one dependency", () => {
    const installed = path.join(scratch, "node_modules/bounded-ssh");
    const manifest = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.dependencies)).toEqual(["ssh2"]);
    expect(existsSync(path.join(installed, "dist/lib/index.js"))).toBe(true);
    expect(existsSync(path.join(installed, "dist/lib/index.d.ts"))).toBe(true);
    // The ssh2 patch ships for the consumer to apply (README): npm never applies it, so the
    // consumer's ssh2 is the registry's until they do.
    expect(existsSync(path.join(installed, "patches/ssh2+1.17.0.patch"))).toBe(true);
    const kex = readFileSync(path.join(scratch, "node_modules/ssh2/lib/protocol/kex.js"), "utf8");
    expect(kex).not.toContain("state.rekey");
    expect(existsSync(path.join(installed, "functions"))).toBe(false);
    expect(existsSync(path.join(installed, "lib"))).toBe(false);
    // Nothing AWS came with it.
    expect(existsSync(path.join(scratch, "node_modules/@aws-sdk"))).toBe(false);
    expect(existsSync(path.join(scratch, "node_modules/@middy"))).toBe(false);
  });

  it("runs a session against sshd from plain JavaScript on the system Node", async () => {
    await writeFile(path.join(scratch, "caller.mjs"), CALLER_MJS);
    const node = systemNode();
    const { stdout } = await run(node, ["caller.mjs"], {
      cwd: scratch,
      env: {
        PATH: "/usr/bin:/bin",
        HOST: sshd.host,
        PORT: String(sshd.port),
        USERNAME: sshd.username,
        KEY: sshd.keys.ed25519.privateKey,
        KNOWN_HOSTS: sshd.knownHostsLine,
      },
    });
    const out = JSON.parse(stdout) as {
      node: string;
      names: number;
      result: { status: string; stdout: string; stderr: string; exitCode: number };
    };
    expect(Number(out.node.slice(1).split(".")[0])).toBeGreaterThanOrEqual(20);
    expect(out.names).toBeGreaterThan(0);
    expect(out.result).toMatchObject({
      status: "succeeded",
      exitCode: 0,
      stdout: "packaged\n",
      stderr: "err\n",
    });
    // The real result conforms to the result schema the package ships.
    const schema = JSON.parse(
      readFileSync(
        path.join(scratch, "node_modules/bounded-ssh/schemas/result.schema.json"),
        "utf8",
      ),
    ) as object;
    const validate = new Ajv({ strict: true, allowUnionTypes: true }).compile(schema);
    expect(validate(out.result), JSON.stringify(validate.errors)).toBe(true);
  });

  it("type-checks a TypeScript caller against the shipped declarations", async () => {
    await writeFile(path.join(scratch, "caller.ts"), CALLER_TS);
    await writeFile(
      path.join(scratch, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [path.join(ROOT, "node_modules/@types")],
        },
        files: ["caller.ts"],
      }),
    );
    const checked = await run(process.execPath, [TSC, "-p", "tsconfig.json"], {
      cwd: scratch,
    }).then(
      () => "ok",
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked).toBe("ok");
  });
});
