/**
 * The deployed handler assets, as `cdk synth` builds them (cdk/bundling.ts): ssh2 and
 * Powertools live in a chunk that init never loads, every import path of theirs the handler
 * requires has a stub, the chunk works on its own, and it holds no project module (one copy of
 * each error class).
 */
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { Stage } from "aws-cdk-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAZY_CHUNK, LAZY_MODULES, stubPath } from "../../cdk/bundling.ts";
import { ERROR_NAMES } from "../../lib/names.ts";
import { loopbackPolicy, taskEvent, WORKFLOW } from "../functions/support.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { synthOnce } from "./synth.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");

/** The TypeScript files under a top-level folder, as root-relative paths with `/`. */
function projectFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => `${dir}/${f.split(path.sep).join("/")}`);
}

interface Asset {
  handler: string;
  dir: string;
}

/** The asset directory of every function in the template, by handler logical id. */
function assets(): Asset[] {
  const { stack, template } = synthOnce();
  const outdir = Stage.of(stack)?.outdir ?? "";
  const out: Asset[] = [];
  for (const [id, fn] of Object.entries(template.findResources("AWS::Lambda::Function"))) {
    const key = (fn.Properties as { Code?: { S3Key?: unknown } }).Code?.S3Key;
    if (typeof key !== "string" || !key.endsWith(".zip")) continue;
    const dir = path.join(outdir, `asset.${key.slice(0, -4)}`);
    if (existsSync(path.join(dir, "index.js"))) out.push({ handler: id, dir });
  }
  return out;
}

const engineAssets = () => assets().filter((a) => /^(Api|Task)Handler/.test(a.handler));
const taskAsset = () => assets().find((a) => a.handler.startsWith("TaskHandler"));

/** `require(…)` calls of a lazily loaded package left in a bundle. */
function lazyRequires(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found = text.matchAll(/require\("((?:ssh2|@aws-lambda-powertools)(?:\/[^"]*)?)"\)/g);
  return [...new Set([...found].map((m) => m[1] as string))];
}

const LOADS_AT_INIT = `
const M = require("module");
const seen = [];
const load = M._load;
M._load = function (request, ...rest) { seen.push(request); return load.call(this, request, ...rest); };
require("./index.js");
process.stdout.write(JSON.stringify(seen));
`;

const SESSION = `
const Client = require("ssh2/lib/client.js");
const { parseKey } = require("ssh2/lib/protocol/keyParser.js");
const parsed = parseKey(process.env.KEY);
if (parsed instanceof Error || parsed.type !== "ssh-ed25519") throw new Error("parseKey: " + parsed);
const c = new Client();
c.on("ready", () => c.exec("exit 0", (err, stream) => {
  if (err) throw err;
  stream.resume();
  stream.on("exit", (code) => { process.stdout.write(String(code)); c.end(); });
})).on("error", (e) => { throw e; })
  .connect({ host: "127.0.0.1", port: Number(process.env.PORT), username: "ops", privateKey: process.env.KEY, hostVerifier: () => true });
`;

describe("handler assets (cdk/bundling.ts)", () => {
  let server: Ssh2Server;

  beforeAll(async () => {
    server = await startSsh2Server({ exec: (ctx) => ctx.exit(0) });
  }, 120_000);

  afterAll(async () => {
    await server.close();
  });

  it("ships ssh2 and Powertools beside the api and task handlers as one chunk, a stub per import path", () => {
    // Prepare
    const found = engineAssets();

    // Act
    const requires = found.map((a) => lazyRequires(path.join(a.dir, "index.js")));

    // Assess
    expect(found).toHaveLength(2);
    for (const [i, a] of found.entries()) {
      expect(requires[i]?.sort()).toEqual(Object.values(LAZY_MODULES).sort());
      for (const m of requires[i] ?? []) {
        expect(existsSync(path.join(a.dir, "node_modules", stubPath(m)))).toBe(true);
      }
      expect(existsSync(path.join(a.dir, LAZY_CHUNK))).toBe(true);
      // ssh2's and Powertools' own source is in the chunk, not in the handler.
      const handler = readFileSync(path.join(a.dir, "index.js"), "utf8");
      const chunk = readFileSync(path.join(a.dir, LAZY_CHUNK), "utf8");
      for (const marker of ["ssh2js", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"]) {
        expect(handler).not.toContain(marker);
        expect(chunk).toContain(marker);
      }
    }
  });

  it("bundles the patched ssh2 (patches/ssh2+1.17.0.patch: re-key under strict KEX)", () => {
    for (const a of engineAssets()) {
      const chunk = readFileSync(path.join(a.dir, LAZY_CHUNK), "utf8");
      // Minified: `{ firstPacket: false, rekey: true }` and `!this._strictMode || state.rekey`.
      expect(chunk).toMatch(/firstPacket:!1,rekey:!0/);
      expect(chunk).toMatch(/!this\._strictMode\|\|[\w$]+\.rekey/);
      // The drain patch (issue 26 item 1): one AES-GCM key object per key.
      expect(chunk).toMatch(/_decipherKey=[\w$]+\([\w$]+\.decipherKey\)/);
    }
  });

  it("ships the handler's source map, which the unexpected-error log reads on demand", () => {
    for (const a of engineAssets()) {
      const map = JSON.parse(readFileSync(path.join(a.dir, "index.js.map"), "utf8")) as {
        sources: string[];
      };
      // Frames of the minified handler map back to the TypeScript sources on-call reads.
      expect(map.sources.some((s) => s.endsWith("functions/invocation/execute.ts"))).toBe(true);
    }
  });

  it("ships no local-mode or CDK module in any deployed asset", () => {
    // Our bundles ship a source map (CDK's own custom-resource assets do not).
    const ours = assets().filter((a) => existsSync(path.join(a.dir, "index.js.map")));
    // The enrichment and both engine handlers, at least.
    expect(ours.length).toBeGreaterThanOrEqual(3);
    const forbidden = ["local", "cdk"].flatMap((dir) => projectFiles(dir));
    expect(forbidden).toContain("local/server.ts");
    for (const a of ours) {
      const map = JSON.parse(readFileSync(path.join(a.dir, "index.js.map"), "utf8")) as {
        sources: string[];
      };
      const sources = map.sources.map((s) => s.split("\\").join("/"));
      expect(sources.some((s) => /(^|\/)functions\/[^/]+/.test(s))).toBe(true);
      const shipped = sources.filter(
        (s) =>
          s.includes("node_modules/aws-cdk-lib/") ||
          forbidden.some((file) => s === file || s.endsWith(`/${file}`)),
      );
      expect(shipped).toEqual([]);
    }
  });

  it("loads neither ssh2, Powertools nor the AWS SDK when a handler is required (init)", async () => {
    // Prepare: one asset per bundle (the three route enrichment functions share one).
    const all = [...new Map(assets().map((a) => [a.dir, a])).values()];

    // Act
    const loaded = await Promise.all(
      all.map(async (a) => {
        const { stdout } = await run(process.execPath, ["-e", LOADS_AT_INIT], {
          cwd: a.dir,
          env: { PATH: process.env.PATH, AWS_REGION: "us-east-1" },
        });
        return (JSON.parse(stdout) as string[]).filter((r) =>
          /^(ssh2|@aws-sdk\/|@aws-lambda-powertools\/)/.test(r),
        );
      }),
    );

    // Assess: api, task and the alarm enrichment.
    expect(all).toHaveLength(3);
    expect(loaded).toEqual([[], [], []]);
  });

  it("runs a session with ssh2 taken from the asset's chunk alone", async () => {
    // Prepare
    const task = taskAsset();
    const key = generateEd25519KeyPair("asset");

    // Act: NODE_PATH unset, so nothing outside the asset directory can be resolved.
    const { stdout } = await run(process.execPath, ["-e", SESSION], {
      cwd: task?.dir,
      env: { PATH: process.env.PATH, KEY: key.private, PORT: String(server.port) },
      timeout: 20_000,
    });

    // Assess
    expect(stdout).toBe("0");
  });

  it("evaluates only the package a stub stands for (ssh2 without Powertools or the SDK)", async () => {
    // Prepare
    const task = taskAsset();
    const script = `
      const M = require("module");
      const seen = [];
      const load = M._load;
      M._load = function (r, ...rest) { seen.push(r); return load.call(this, r, ...rest); };
      require("ssh2/lib/client.js");
      process.stdout.write(JSON.stringify(seen));
    `;

    // Act
    const { stdout } = await run(process.execPath, ["-e", script], {
      cwd: task?.dir,
      env: { PATH: process.env.PATH },
    });

    // Assess
    const loaded = JSON.parse(stdout) as string[];
    expect(loaded.filter((r) => /^(@aws-sdk|@aws-lambda-powertools)\//.test(r))).toEqual([]);
    expect(loaded).toContain("crypto");
  });

  it("classifies an engine error from the bundled task by its class (one copy of each)", async () => {
    // Prepare: a port nobody listens on, a Secrets Manager that hands out the key.
    const task = taskAsset();
    const key = generateEd25519KeyPair("asset");
    const port = await new Promise<number>((resolve) => {
      const probe = createTcpServer().listen(0, "127.0.0.1", () => {
        const { port: p } = probe.address() as { port: number };
        probe.close(() => resolve(p));
      });
    });
    const sm: HttpServer = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const { SecretId } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          SecretId: string;
        };
        const value = SecretId.endsWith("known-hosts")
          ? ""
          : JSON.stringify({ privateKey: key.private });
        res.setHeader("content-type", "application/x-amz-json-1.1");
        res.end(JSON.stringify({ Name: SecretId, SecretString: value, VersionId: "v1" }));
      });
    });
    await new Promise<void>((resolve) => sm.listen(0, "127.0.0.1", resolve));
    const request = { host: "127.0.0.1", port, username: "ops", command: "exit 0" };
    const script = `
      const deadline = Date.now() + 20000;
      const context = { awsRequestId: "asset", functionName: "t", functionVersion: "1",
        invokedFunctionArn: "arn:aws:lambda:local:000000000000:function:t", memoryLimitInMB: "512",
        getRemainingTimeInMillis: () => deadline - Date.now() };
      require("./index.js").handler(JSON.parse(process.env.EVENT), context).then(
        (r) => process.stderr.write("\\n" + JSON.stringify({ result: r })),
        (e) => process.stderr.write("\\n" + JSON.stringify({ name: e.name, phase: e.phase })),
      );
    `;

    // The handler imports the SDK with import(), which (unlike Lambda's runtime, which ships
    // the SDK) ignores NODE_PATH: a copy of the asset inside this project resolves it.
    const tmp = path.resolve(import.meta.dirname, "../../.tmp");
    mkdirSync(tmp, { recursive: true });
    const dir = mkdtempSync(path.join(tmp, "asset-"));
    cpSync(task?.dir ?? "", dir, { recursive: true });
    // As on Lambda (no package.json in the asset): `.js` is CommonJS, whatever this repo says.
    writeFileSync(path.join(dir, "package.json"), '{ "type": "commonjs" }\n');

    // Act
    let stderr: string;
    try {
      ({ stderr } = await run(process.execPath, ["-e", script], {
        cwd: dir,
        timeout: 20_000,
        env: {
          PATH: process.env.PATH,
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: "AKIDTEST",
          AWS_SECRET_ACCESS_KEY: "test",
          AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${(sm.address() as { port: number }).port}`,
          BSSH_POLICY: JSON.stringify(loopbackPolicy([port])),
          BSSH_STATE_MACHINE_ARNS: WORKFLOW,
          BSSH_KNOWN_HOSTS_SECRET: "bounded-ssh/known-hosts",
          BSSH_REMOTE_BOUND: "false",
          BSSH_METRICS_MODE: "emf",
          EVENT: JSON.stringify(taskEvent(request)),
        },
      }));
    } finally {
      sm.close();
      rmSync(dir, { recursive: true, force: true });
    }

    // Assess: an InternalError here would mean the mapper did not recognise the class.
    // The handler logs to stderr too; the script's verdict is the last line.
    const verdict = stderr.trim().split("\n").at(-1) ?? "";
    expect(JSON.parse(verdict)).toEqual({ name: "ConnectRefused", phase: "connect" });
  });

  it("keeps project modules out of the chunk, so error classes exist once", () => {
    // Prepare
    const task = taskAsset();

    // Act
    const chunk = readFileSync(path.join(task?.dir ?? "", LAZY_CHUNK), "utf8");

    // Assess: the engine's error names are string literals of lib/errors.ts.
    const leaked = ERROR_NAMES.filter((n) => chunk.includes(`"${n}"`));
    expect(leaked).toEqual([]);
    expect(readFileSync(path.join(task?.dir ?? "", "index.js"), "utf8")).toContain(
      '"HostKeyMismatch"',
    );
  });
});
