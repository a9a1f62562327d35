import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The public entry points of lib/index.ts document themselves the way the anchors do:
// @param, @throws where they can fail, and @example blocks that are real code — each block is
// compiled here, strict, against lib/index.ts as the package "bounded-ssh", and the ones that
// need no network are run.

const ROOT = path.resolve(import.meta.dirname, "../..");
const execFileAsync = promisify(execFile);

interface EntryPoint {
  file: string;
  /** `function runCommand` or `class Deadline` as it stands after `export`. */
  declaration: string;
  /** Whether it can fail (then it documents how with @throws). */
  throws: boolean;
}

const ENTRY_POINTS: EntryPoint[] = [
  { file: "lib/run-command.ts", declaration: "async function runCommand", throws: true },
  { file: "lib/deadline.ts", declaration: "class Deadline", throws: true },
  { file: "lib/probe-host-key.ts", declaration: "async function probeHostKey", throws: true },
  { file: "lib/validate-request.ts", declaration: "function validateRequest", throws: true },
  { file: "lib/metrics.ts", declaration: "function toMetricDatums", throws: false },
];

/** The doc comment right before `export <declaration>`, and (for a class) all of its body's. */
function docsOf(source: string, entry: EntryPoint): string {
  const at = source.indexOf(`export ${entry.declaration}`);
  if (at === -1) throw new Error(`${entry.file}: no "export ${entry.declaration}"`);
  const open = source.lastIndexOf("/**", at);
  const close = source.indexOf("*/", open);
  const head = source.slice(open, close + 2);
  if (source.slice(close + 2, at).trim() !== "") {
    throw new Error(`${entry.file}: ${entry.declaration} has no doc comment`);
  }
  if (!entry.declaration.startsWith("class ")) return head;
  // A class: its members' comments count too (the constructor's @param, a method's @throws).
  const end = source.indexOf("\n}\n", at);
  const body = source.slice(at, end);
  return [head, ...(body.match(/\/\*\*[\s\S]*?\*\//g) ?? [])].join("\n");
}

/** The ```ts blocks of every @example in a doc comment, as plain source. */
function examplesOf(doc: string): string[] {
  const text = doc
    .split("\n")
    .map((line) => line.replace(/^\s*\/?\*\*?\/? ?/, ""))
    .join("\n");
  const out: string[] = [];
  for (const part of text.split("@example").slice(1)) {
    const block = /```ts\n([\s\S]*?)```/.exec(part);
    if (block?.[1]) out.push(block[1]);
  }
  return out;
}

interface Example {
  name: string;
  file: string;
  code: string;
}

let dir: string;
const examples: Example[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "bssh-tsdoc-"));
  // ESM (top-level await), as a service importing the package would be.
  await writeFile(path.join(dir, "package.json"), '{ "type": "module" }\n');
  const index = path.join(ROOT, "lib/index.ts");
  for (const entry of ENTRY_POINTS) {
    const doc = docsOf(await readFile(path.join(ROOT, entry.file), "utf8"), entry);
    examplesOf(doc).forEach((code, i) => {
      const name = `${path.basename(entry.file, ".ts")}-${i + 1}`;
      const file = path.join(dir, `${name}.ts`);
      examples.push({ name, file, code: code.replaceAll('"bounded-ssh"', JSON.stringify(index)) });
    });
  }
  for (const e of examples) await writeFile(e.file, e.code);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("TSDoc of the public entry points", () => {
  it.each(ENTRY_POINTS)(
    "$file: $declaration has @param, @example and (if it can fail) @throws",
    async (entry) => {
      const doc = docsOf(await readFile(path.join(ROOT, entry.file), "utf8"), entry);
      expect(doc).toMatch(/@param \w+ - \S/);
      expect(examplesOf(doc).length, "a ```ts block after @example").toBeGreaterThan(0);
      if (entry.throws) expect(doc).toMatch(/@throws \S/);
    },
  );

  it("every example compiles, strict, against lib/index.ts as the package", () => {
    expect(examples.length).toBeGreaterThanOrEqual(ENTRY_POINTS.length);
    const config = ts.readConfigFile(path.join(ROOT, "tsconfig.json"), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
    const program = ts.createProgram(
      examples.map((e) => e.file),
      { ...options, typeRoots: [path.join(ROOT, "node_modules/@types")], noEmit: true },
    );
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file === undefined || d.file.fileName.startsWith(dir))
      .map(
        (d) =>
          `${d.file ? path.basename(d.file.fileName) : ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
      );
    expect(problems).toEqual([]);
  });

  it("the Deadline example runs and does what it says", async () => {
    const example = examples.find((e) => e.name === "deadline-1")!;
    const { stdout } = await execFileAsync(path.join(ROOT, "node_modules/.bin/tsx"), [
      example.file,
    ]);
    // "ready", settled in time, and most of the 2 s budget left.
    const [state, settled, remaining] = stdout.trim().split(" ");
    expect(state).toBe("ready");
    expect(settled).toBe("true");
    expect(Number(remaining)).toBeGreaterThan(1_000);
    expect(Number(remaining)).toBeLessThanOrEqual(2_000);
  });

  it("the validateRequest example runs and names the field", async () => {
    const example = examples.find((e) => e.name === "validate-request-1")!;
    const { stdout } = await execFileAsync(path.join(ROOT, "node_modules/.bin/tsx"), [
      example.file,
    ]);
    expect(stdout).toContain("status: 400");
    expect(stdout).toContain("ValidationError");
    expect(stdout).toMatch(/port/);
  });
});
