/**
 * The promise every command line of the project makes: `npm run <script> -- --help` (and
 * `-h`) prints usage, options and what the script costs, and does NOTHING else (no session,
 * no server, no file written); an unknown option is refused before any work, naming the
 * option and `--help`. Checked on every package.json script that runs a program of ours, so a
 * script added later is held to it too (or must be listed below as someone else's tool).
 *
 * The scripts run with npm, as a user types them, in a private copy of the checkout
 * (tracked and untracked files; `node_modules` linked), so "wrote no file" is checked on the
 * whole copy without racing other tests that use the real checkout.
 */
import { execFileSync, spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SCRIPTS = (
  JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

/**
 * Scripts that run only other projects' tools, each with its own `--help`: not ours to
 * promise for. Every other script must run a program of this repository.
 */
const OTHER_TOOLS: Record<string, string> = {
  build: "tsc",
  typecheck: "tsc",
  lint: "biome",
  test: "vitest",
  synth: "cdk",
  postinstall: "patch-package",
};

/**
 * npm's pack hooks: npm runs them around `npm pack` with fixed arguments (the README swap of
 * `scripts/package-readme.mjs`); nobody runs them by hand, so they are held to `npm pack`
 * working (test/package/pack.test.ts), not to `--help`.
 */
const PACK_HOOKS = new Set(["prepack", "postpack"]);

/** The repository file a script's command runs (`tsx x.ts`, `bash x.sh`), if any. */
function programOf(command: string): string | undefined {
  return command
    .split(/\s+/)
    .find((token) => /\.(ts|sh|js|mjs|cjs|py)$/.test(token) && existsSync(path.join(ROOT, token)));
}

const OURS = Object.keys(SCRIPTS)
  .filter((name) => !PACK_HOOKS.has(name) && programOf(SCRIPTS[name]!) !== undefined)
  .sort();

/** Longest one `--help` may take on a loaded 2-core machine (npm + tsx start-up only). */
const QUICK_MS = 30_000;

let copy: string;

/** Every file of the copy (node_modules excluded) with its size and modification time. */
function snapshot(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (dir === copy && entry.name === "node_modules") continue;
      if (entry.isDirectory()) walk(full);
      else {
        const s = statSync(full);
        files.set(path.relative(copy, full), `${s.size}:${s.mtimeMs}`);
      }
    }
  };
  walk(copy);
  return files;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `npm run -s <script> -- <args>` in the copy; killed (its whole group) after QUICK_MS. */
function npmRun(script: string, args: string[]): Promise<Ran> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("BSSH_")) delete env[key];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "-s", script, "--", ...args], {
      cwd: copy,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // Gone already.
      }
    }, QUICK_MS);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Runs `jobs` at most `limit` at a time (the machine is shared). */
async function pool<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

beforeAll(() => {
  copy = mkdtempSync(path.join(tmpdir(), "bssh-scripts-help-"));
  const files = execFileSync("git", ["ls-files", "-z", "-c", "-o", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\0")
    .filter((f) => f !== "" && existsSync(path.join(ROOT, f)));
  for (const file of files) {
    mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
    cpSync(path.join(ROOT, file), path.join(copy, file));
  }
  symlinkSync(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"), "dir");
});

afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

describe("every npm script of ours", () => {
  it("is either a program of ours or another project's tool, listed", () => {
    for (const name of Object.keys(SCRIPTS)) {
      if (OURS.includes(name) || PACK_HOOKS.has(name)) continue;
      expect(OTHER_TOOLS, `script "${name}" runs no program of ours: list it`).toHaveProperty(name);
    }
    // No stale entry: each listed tool script exists and runs no file of ours.
    for (const name of Object.keys(OTHER_TOOLS)) {
      expect(SCRIPTS[name], `OTHER_TOOLS lists "${name}", which package.json lacks`).toBeDefined();
      expect(OURS).not.toContain(name);
    }
    for (const name of PACK_HOOKS) expect(SCRIPTS[name], `pack hook "${name}"`).toBeDefined();
    // The walk found the programs it must (a classifier that finds nothing passes the rest).
    for (const name of ["bench", "soak", "drill", "generate", "runbooks", "init", "trust"]) {
      expect(OURS).toContain(name);
    }
  });

  it(
    "answers --help and -h with usage and cost, quickly, writing nothing; refuses an unknown option",
    async () => {
      // Prepare
      const before = snapshot();
      // Act
      const jobs = OURS.flatMap((name) =>
        (["--help", "-h", "--no-such-option"] as const).map((arg) => async () => ({
          name,
          arg,
          ran: await npmRun(name, [arg]),
        })),
      );
      const runs = await pool(jobs, 3);
      // Assess
      for (const { name, arg, ran } of runs) {
        const what = `npm run ${name} -- ${arg}: ${ran.stderr.trim()}`;
        expect(ran.ms, what).toBeLessThan(QUICK_MS);
        if (arg === "--no-such-option") {
          expect(ran.code, what).toBe(2);
          expect(ran.stderr, what).toContain("--no-such-option");
          expect(ran.stderr, what).toContain("--help");
          expect(ran.stdout, what).toBe("");
        } else {
          expect(ran.code, what).toBe(0);
          expect(ran.stdout, what).toMatch(/^usage: /);
          expect(ran.stdout, what).toMatch(/\ncost: /);
        }
      }
      expect(snapshot()).toEqual(before);
    },
    (OURS.length * 3 * QUICK_MS) / 3 + 30_000,
  );
});
