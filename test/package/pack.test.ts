import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SshdServer, startSshd } from "../helpers/sshd.ts";

// The engine as a package (issue 12 item 5, issue 24 item 3): what a service author gets from
// `npm pack`, installed ONCE into a scratch project, then loaded every way a Node service
// loads it — `require`, `import`, and TypeScript callers compiled with `module: commonjs`,
// `nodenext` (a CommonJS and an ES module caller) and `bundler` — each type-checked, compiled
// and run against a real sshd on two runtimes: the machine's own Node 20 (not the Node 24
// npm puts first on this suite's PATH, no tsx) and Node 24 (the `node` devDependency).
// The matrix it prints is the one in the report: `npx vitest run test/package/pack.test.ts`.

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TSC = path.join(ROOT, "node_modules/typescript/bin/tsc");
const NODE_24 = path.join(ROOT, "node_modules/node/bin/node");

/** The first `node` on PATH outside any node_modules: the machine's own, as a user has it. */
function systemNode(): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir.includes("node_modules")) continue;
    const candidate = path.join(dir, "node");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("no node outside node_modules on PATH: install Node >= 20");
}

/** The session every caller runs; prints one JSON line. Plain JS, for both loaders. */
const SESSION_JS = (load: string, loadClient: string) => `
${load}
${loadClient}
const { HOST, PORT, USERNAME, KEY, KNOWN_HOSTS } = process.env;
const streamed = [];
const report = (result) =>
  console.log(JSON.stringify({
    node: process.version,
    names: bssh.ERROR_NAMES.length,
    sameClass: new bssh.DeadlineExceeded("x", { phase: "request" }) instanceof bssh.EngineError,
    clientLoads: typeof client.BoundedSshClient === "function",
    streamed: Buffer.concat(streamed).toString(),
    result,
  }));
bssh
  .runCommand(
    { host: HOST, port: Number(PORT), username: USERNAME, command: "echo packaged; echo err >&2" },
    {
      signal: AbortSignal.timeout(10000),
      secret: { privateKey: KEY },
      knownHosts: KNOWN_HOSTS,
      onOutput: (stream, chunk) => { if (stream === "stdout") streamed.push(chunk); },
    },
  )
  .then(report, (err) => { console.error(err); process.exitCode = 1; });
`;

/** One TypeScript caller, compiled under each module setting; no top-level await (CJS too). */
const CALLER_TS = `
import {
  BannerTimeout,
  DeadlineExceeded,
  EngineError,
  ERROR_NAMES,
  RETRYABLE_ERRORS,
  type RunRequest,
  type RunResult,
  runCommand,
} from "bounded-ssh";
import { BoundedSshClient, BoundedSshError, type RunCallOptions } from "bounded-ssh/client";

const env = process.env;
const request: RunRequest = {
  host: env.HOST ?? "",
  port: Number(env.PORT),
  username: env.USERNAME ?? "",
  command: "echo packaged; echo err >&2",
};
const streamed: Buffer[] = [];
export async function check(): Promise<RunResult> {
  return runCommand(request, {
    signal: AbortSignal.timeout(10_000),
    secret: { privateKey: env.KEY ?? "" },
    knownHosts: env.KNOWN_HOSTS ?? "",
    onOutput: (stream: "stdout" | "stderr", chunk: Buffer) => {
      if (stream === "stdout") streamed.push(chunk);
    },
  });
}
export const hang = new BannerTimeout("m", { phase: "banner" }).name === "BannerTimeout";
export const retries = RETRYABLE_ERRORS.includes("ConnectTimeout");
// The client subpath loads and type-checks under every module setting too.
const callOptions: RunCallOptions = { deadlineMs: 1_000 };
export const client = new BoundedSshClient({
  url: "https://abc123.execute-api.eu-west-1.amazonaws.com/v1",
  region: "eu-west-1",
  credentials: { accessKeyId: "a", secretAccessKey: "b" },
});
export const clientLoads = typeof client.run === "function" && BoundedSshError.name === "BoundedSshError" && callOptions.deadlineMs === 1_000;
// @ts-expect-error: an unknown request field must not type-check
export const bad: RunRequest = { host: "h", username: "u", command: "c", hostname: "x" };
check().then(
  (result) =>
    console.log(
      JSON.stringify({
        node: process.version,
        names: ERROR_NAMES.length,
        sameClass: new DeadlineExceeded("x", { phase: "request" }) instanceof EngineError,
        clientLoads,
        streamed: Buffer.concat(streamed).toString(),
        result,
      }),
    ),
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
`;

/** How a caller loads the package: a file to run, and how it got there. */
interface Loader {
  name: string;
  /** Scratch subfolder; its package.json sets the caller's module type. */
  dir: string;
  type: "module" | "commonjs";
  /** TypeScript compiler options, for the TS callers. */
  ts?: Record<string, unknown>;
  /** The file node runs, relative to `dir`. */
  entry: string;
}

const LOADERS: Loader[] = [
  { name: "import (ESM .mjs)", dir: "js-esm", type: "module", entry: "caller.mjs" },
  { name: "require (CJS .cjs)", dir: "js-cjs", type: "commonjs", entry: "caller.cjs" },
  {
    name: "TS module: commonjs",
    dir: "ts-commonjs",
    type: "commonjs",
    ts: { module: "commonjs" },
    entry: "out/caller.js",
  },
  {
    name: "TS module: nodenext (CJS caller)",
    dir: "ts-nodenext-cjs",
    type: "commonjs",
    ts: { module: "nodenext", moduleResolution: "nodenext" },
    entry: "out/caller.js",
  },
  {
    name: "TS module: nodenext (ESM caller)",
    dir: "ts-nodenext-esm",
    type: "module",
    ts: { module: "nodenext", moduleResolution: "nodenext" },
    entry: "out/caller.js",
  },
  {
    name: "TS module: esnext + bundler",
    dir: "ts-bundler",
    type: "module",
    ts: { module: "esnext", moduleResolution: "bundler" },
    entry: "out/caller.js",
  },
];

let scratch: string;
let sshd: SshdServer;
let tarball: string;
/** Type-check output per TS loader ("ok" or tsc's diagnostics). */
const typeChecks = new Map<string, string>();

async function prepareLoader(loader: Loader): Promise<void> {
  const dir = path.join(scratch, loader.dir);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "package.json"), JSON.stringify({ type: loader.type }));
  if (loader.entry === "caller.mjs") {
    await writeFile(
      path.join(dir, loader.entry),
      SESSION_JS(
        `import * as bssh from "bounded-ssh";`,
        `import * as client from "bounded-ssh/client";`,
      ),
    );
    return;
  }
  if (loader.entry === "caller.cjs") {
    await writeFile(
      path.join(dir, loader.entry),
      SESSION_JS(
        `const bssh = require("bounded-ssh");`,
        `const client = require("bounded-ssh/client");`,
      ),
    );
    return;
  }
  await writeFile(path.join(dir, "caller.ts"), CALLER_TS);
  await writeFile(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        strict: true,
        outDir: "out",
        skipLibCheck: false,
        types: ["node"],
        typeRoots: [path.join(ROOT, "node_modules/@types")],
        ...loader.ts,
      },
      files: ["caller.ts"],
    }),
  );
  const checked = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: dir }).then(
    () => "ok",
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );
  typeChecks.set(loader.name, checked);
}

/** The repository's README before `npm pack` (whose prepack swaps the package README in). */
let repoReadme: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), "bssh-pack-"));
  repoReadme = readFileSync(path.join(ROOT, "README.md"), "utf8");
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
    JSON.stringify({ name: "scratch", private: true }),
  );
  await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], {
    cwd: scratch,
  });
  // Each caller lives in a subfolder: node and tsc find the one install by walking up.
  await Promise.all(LOADERS.map(prepareLoader));
}, 180_000);

afterAll(async () => {
  await sshd?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

interface CallerOutput {
  node: string;
  names: number;
  sameClass: boolean;
  /** The client subpath (`bounded-ssh/client`) loaded. */
  clientLoads: boolean;
  /** What `onOutput` saw of stdout. */
  streamed: string;
  result: { status: string; stdout: string; stderr: string; exitCode: number };
}

async function runCaller(node: string, loader: Loader): Promise<CallerOutput> {
  const { stdout, stderr } = await run(node, [loader.entry], {
    cwd: path.join(scratch, loader.dir),
    env: {
      PATH: "/usr/bin:/bin",
      HOST: sshd.host,
      PORT: String(sshd.port),
      USERNAME: sshd.username,
      KEY: sshd.keys.ed25519.privateKey,
      KNOWN_HOSTS: sshd.knownHostsLine,
    },
  });
  // No warning either (an ExperimentalWarning for require(esm) would land here).
  expect(stderr).toBe("");
  return JSON.parse(stdout) as CallerOutput;
}

describe("the engine as a package", () => {
  it("ships only the built engine and client, with ssh2 and aws4fetch (the client's signer) as dependencies", () => {
    const installed = path.join(scratch, "node_modules/bounded-ssh");
    const manifest = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.dependencies)).toEqual(["aws4fetch", "ssh2"]);
    expect(existsSync(path.join(installed, "dist/lib/client/index.js"))).toBe(true);
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

  it("ships the package README, whose every relative link resolves inside the tarball", async () => {
    const { stdout: listing } = await run("tar", ["-tzf", tarball]);
    const entries = new Set(listing.split("\n").filter(Boolean));
    const { stdout: readme } = await run("tar", ["-xzOf", tarball, "package/README.md"]);
    // The library user's README, not the repository's (Lambda, CDK, local mode) …
    expect(readme).toBe(readFileSync(path.join(ROOT, "PACKAGE-README.md"), "utf8"));
    // … and the repository's README is back as it was.
    expect(readFileSync(path.join(ROOT, "README.md"), "utf8")).toBe(repoReadme);
    expect(existsSync(path.join(ROOT, ".README.repo.md"))).toBe(false);
    // One README (npm packs any root file named readme*, so the source's name is not one).
    expect([...entries].filter((e) => /^package\/readme/i.test(e))).toEqual(["package/README.md"]);
    const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
    const relative = links.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l) && !l.startsWith("#"));
    expect(relative.length).toBeGreaterThan(3);
    const broken = relative.filter(
      (link) => !entries.has(path.posix.join("package", link.split("#")[0]!)),
    );
    expect(broken).toEqual([]);
  });

  it("ships its licence: LICENSE (Apache-2.0) and the license field", async () => {
    const installed = path.join(scratch, "node_modules/bounded-ssh");
    const manifest = JSON.parse(readFileSync(path.join(installed, "package.json"), "utf8")) as {
      license?: string;
    };
    expect(manifest.license).toBe("Apache-2.0");
    const licence = readFileSync(path.join(installed, "LICENSE"), "utf8");
    expect(licence).toContain("Apache License");
    expect(licence).toContain("Version 2.0, January 2004");
    expect(licence).toBe(readFileSync(path.join(ROOT, "LICENSE"), "utf8"));
  });

  const runtimes: { name: string; node: () => string; major?: number }[] = [
    { name: "Node 20 (system)", node: () => systemNode(), major: 20 },
    { name: "Node 24 (devDependency)", node: () => NODE_24, major: 24 },
    // More runtimes for the matrix, e.g. Node 22 from `npx -p node@22 node -p process.execPath`.
    ...(process.env.BSSH_PACKAGE_NODES ?? "")
      .split(path.delimiter)
      .filter(Boolean)
      .map((node) => ({ name: node, node: () => node })),
  ];
  const matrix: string[] = [];
  afterAll(() => {
    if (matrix.length > 0) console.log(`package matrix\n${matrix.sort().join("\n")}`);
  });

  it("module: node16 refuses a CommonJS caller with TS1479 (as the package README says)", async () => {
    // Node 16 had no require(esm); TypeScript's node16 mode models that. nodenext (or node20)
    // is the setting for today's Node: the README tells users so, and this keeps it true.
    const dir = path.join(scratch, "ts-node16-cjs");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "package.json"), JSON.stringify({ type: "commonjs" }));
    await writeFile(path.join(dir, "caller.ts"), CALLER_TS);
    const checked = await run(
      process.execPath,
      [
        TSC,
        "--module",
        "node16",
        "--moduleResolution",
        "node16",
        "--target",
        "ES2022",
        "--strict",
        "--noEmit",
        "--types",
        "node",
        "--typeRoots",
        path.join(ROOT, "node_modules/@types"),
        "caller.ts",
      ],
      { cwd: dir },
    ).then(
      () => "ok",
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked).toContain("error TS1479");
  });

  for (const loader of LOADERS.filter((l) => l.ts)) {
    it(`type-checks the caller with ${loader.name}`, () => {
      expect(typeChecks.get(loader.name)).toBe("ok");
    });
  }

  for (const runtime of runtimes) {
    for (const loader of LOADERS) {
      it(`${runtime.name} × ${loader.name}: runs a session against sshd`, async () => {
        const out = await runCaller(runtime.node(), loader);
        if (runtime.major !== undefined) {
          expect(Number(out.node.slice(1).split(".")[0])).toBe(runtime.major);
        }
        expect(out.names).toBeGreaterThan(0);
        expect(out.sameClass).toBe(true);
        expect(out.clientLoads).toBe(true);
        expect(out.streamed).toBe("packaged\n");
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
        matrix.push(`${out.node} | ${loader.name} | works`);
      });
    }
  }

  it("is one module instance whether required or imported (no dual-package hazard)", async () => {
    const dir = path.join(scratch, "js-esm");
    await writeFile(
      path.join(dir, "mixed.mjs"),
      `import { EngineError } from "bounded-ssh";
import { createRequire } from "node:module";
const cjs = createRequire(import.meta.url)("bounded-ssh");
const err = new cjs.DeadlineExceeded("x", { phase: "request" });
console.log(JSON.stringify({ same: cjs.EngineError === EngineError, instance: err instanceof EngineError }));`,
    );
    for (const node of [systemNode(), NODE_24]) {
      const { stdout } = await run(node, ["mixed.mjs"], { cwd: dir });
      expect(JSON.parse(stdout)).toEqual({ same: true, instance: true });
    }
  });
});
