import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { ALARM_KINDS } from "../../cdk/constructs/monitoring.ts";
import { HTTP_STATUS } from "../../functions/http/api-http.ts";
import { DEFAULT_PHASE_CAPS } from "../../lib/deadline.ts";
import { ERROR_CLASSES } from "../../lib/errors.ts";
import { METRIC_UNIT } from "../../lib/metrics.ts";
import {
  DIMENSION,
  ERROR_NAMES,
  METRIC,
  PHASE_TIMEOUT_ERROR,
  PHASES,
  REMOTE_CLEANUP,
  RETRYABLE_ERRORS,
  STATUSES,
} from "../../lib/names.ts";
import { REQUEST_FIELDS } from "../../lib/request-schema.ts";
import { runbookFile } from "../../operations/alarm-catalog.ts";
import {
  generateRequestSchemaJson,
  REQUEST_SCHEMA_JSON,
} from "../../scripts/generate-validator.ts";

// docs/contract.md, schemas/*.json and the code must name the same things: when a name is
// added to lib/names.ts (or a field to lib/types.ts) this fails until the contract says so.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CONTRACT = readFileSync(path.join(ROOT, "docs/contract.md"), "utf8");
const EDGE_PHASES = ["request", "policy", "credentials"];

type Schema = {
  $ref?: string;
  enum?: string[];
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  definitions?: Record<string, Schema>;
};
const readSchema = (name: string) =>
  JSON.parse(readFileSync(path.join(ROOT, "schemas", name), "utf8")) as Schema;
const RESULT_SCHEMA = readSchema("result.schema.json");
const REQUEST_SCHEMA = readSchema("request.schema.json");

/** Body rows of the first table after the `## <section>.` heading, as trimmed cells. */
function table(section: number, index = 0): string[][] {
  const start = CONTRACT.search(new RegExp(`^## ${section}\\. `, "m"));
  if (start < 0) throw new Error(`docs/contract.md has no section ${section}`);
  const next = CONTRACT.slice(start + 1).search(/^## /m);
  const body = CONTRACT.slice(start, next < 0 ? undefined : start + 1 + next);
  const tables: string[][] = [];
  let previous = false;
  for (const line of body.split("\n")) {
    const inTable = line.startsWith("|");
    if (inTable && !previous) tables.push([]);
    if (inTable) tables.at(-1)!.push(line);
    previous = inTable;
  }
  const chosen = tables[index];
  if (!chosen) throw new Error(`docs/contract.md §${section} has no table #${index}`);
  return chosen.slice(2).map((line) =>
    line
      .replace(/^\|/, "")
      .replace(/\|$/, "")
      .split(" | ")
      .map((c) => c.trim()),
  );
}
const unquote = (cell: string) => cell.replace(/^`|`$/g, "");
const column = (rows: string[][], i = 0) => rows.map((r) => unquote(r[i]!));

describe("docs/contract.md against lib/", () => {
  it("§3 lists the phases in order with their caps and timeout errors", () => {
    const rows = table(3);
    expect(column(rows)).toEqual([...PHASES]);
    for (const [phase, , cap, timeout] of rows) {
      const p = unquote(phase!) as (typeof PHASES)[number];
      const expectedCap = DEFAULT_PHASE_CAPS[p];
      expect(cap, `cap of ${p}`).toBe(
        Number.isFinite(expectedCap) ? String(expectedCap) : "rest of the budget",
      );
      const error = (PHASE_TIMEOUT_ERROR as Record<string, string>)[p];
      expect(unquote(timeout!), `timeout error of ${p}`).toBe(error ?? "—");
    }
  });

  it("§4 lists exactly the request fields of the schema", () => {
    expect(column(table(4))).toEqual([...REQUEST_FIELDS]);
    expect(Object.keys(REQUEST_SCHEMA.properties!)).toEqual([...REQUEST_FIELDS]);
    const required = table(4)
      .filter((r) => r[2] === "required")
      .map((r) => unquote(r[0]!));
    expect(required.sort()).toEqual([...REQUEST_SCHEMA.required!].sort());
  });

  it("§5 lists the result fields, statuses and remoteCleanup values", () => {
    expect(column(table(5, 0))).toEqual(Object.keys(RESULT_SCHEMA.properties!));
    expect(column(table(5, 1))).toEqual([...STATUSES]);
    expect(column(table(5, 2))).toEqual([...REMOTE_CLEANUP]);
  });

  it("§6 lists every error name with its HTTP status and retryability", () => {
    const rows = table(6);
    expect(column(rows), "error names (lib/names.ts ERROR_NAMES)").toEqual([...ERROR_NAMES]);
    expect(Object.keys(ERROR_CLASSES)).toEqual([...ERROR_NAMES]);
    const phases = new Set<string>([...PHASES, ...EDGE_PHASES]);
    for (const [cell, phase, http, retryable] of rows) {
      const name = unquote(cell!) as (typeof ERROR_NAMES)[number];
      expect(http, `HTTP of ${name}`).toBe(String(HTTP_STATUS[name]));
      const expected =
        name === "ConnectionLost"
          ? "if the command did not start"
          : (RETRYABLE_ERRORS as readonly string[]).includes(name)
            ? "yes"
            : "no";
      expect(retryable, `retryable of ${name}`).toBe(expected);
      if (phase === "any" || phase === "any after connect") continue;
      for (const p of phase!.split("/")) expect(phases, `phase of ${name}`).toContain(p);
    }
    for (const [phase, name] of Object.entries(PHASE_TIMEOUT_ERROR)) {
      expect(rows.find((r) => unquote(r[0]!) === name)?.[1]).toBe(phase);
    }
  });

  it("§7 lists every metric with its unit and only known dimensions", () => {
    const rows = table(7);
    expect(column(rows)).toEqual(Object.values(METRIC));
    const dimensions = new Set<string>(Object.values(DIMENSION));
    const seen = new Set<string>();
    for (const [cell, unit, dims] of rows) {
      const name = unquote(cell!) as keyof typeof METRIC_UNIT;
      expect(unit, `unit of ${name}`).toBe(METRIC_UNIT[name]);
      for (const d of dims!.match(/`[^`]+`/g) ?? []) {
        expect(dimensions, `dimension of ${name}`).toContain(unquote(d));
        seen.add(unquote(d));
      }
    }
    expect([...seen].sort()).toEqual([...dimensions].sort());
  });

  it("§8 lists every alarm kind with its runbook", () => {
    const rows = table(8);
    expect(column(rows)).toEqual([...ALARM_KINDS]);
    for (const [kind, runbook] of rows) {
      const file = `docs/runbooks/${runbookFile(unquote(kind!) as (typeof ALARM_KINDS)[number])}`;
      expect(runbook).toContain(`(${path.relative("docs", file)})`);
      expect(existsSync(path.join(ROOT, file))).toBe(true);
    }
  });
});

// --- schemas against the TypeScript types ------------------------------------------------

const program = ts.createProgram([path.join(ROOT, "lib/types.ts")], {
  strict: true,
  allowImportingTsExtensions: true,
  noEmit: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2023,
  types: ["node"],
});
const checker = program.getTypeChecker();
const typesFile = program.getSourceFile(path.join(ROOT, "lib/types.ts"))!;

function exportedType(name: string): ts.Type {
  const symbol = checker
    .getExportsOfModule(checker.getSymbolAtLocation(typesFile)!)
    .find((s) => s.name === name);
  if (!symbol) throw new Error(`lib/types.ts exports no ${name}`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}

function resolve(schema: Schema, root: Schema): Schema {
  if (!schema.$ref) return schema;
  const key = schema.$ref.replace("#/definitions/", "");
  return root.definitions![key]!;
}

/** JSON types a TS type can take (integer counts as number), `undefined` dropped. */
function jsonTypes(type: ts.Type): string[] {
  const parts = type.isUnion() ? type.types : [type];
  const out = new Set<string>();
  for (const t of parts) {
    if (t.flags & ts.TypeFlags.Undefined) continue;
    if (t.flags & ts.TypeFlags.Null) out.add("null");
    else if (t.flags & ts.TypeFlags.StringLike) out.add("string");
    else if (t.flags & ts.TypeFlags.NumberLike) out.add("number");
    else if (t.flags & ts.TypeFlags.BooleanLike) out.add("boolean");
    else out.add("object");
  }
  return [...out].sort();
}

/** Every difference between a TS type and a schema node, as readable paths. */
function drift(type: ts.Type, node: Schema, root: Schema, where: string): string[] {
  const schema = resolve(node, root);
  const problems: string[] = [];
  if (schema.enum) {
    const parts = (type.isUnion() ? type.types : [type]).filter(
      (t) => !(t.flags & ts.TypeFlags.Undefined),
    );
    const literals = parts.map((t) =>
      t.isStringLiteral() ? t.value : `<${checker.typeToString(t)}>`,
    );
    if (JSON.stringify([...literals].sort()) !== JSON.stringify([...schema.enum].sort())) {
      problems.push(`${where}: type ${literals.join("|")} vs schema enum ${schema.enum.join("|")}`);
    }
    return problems;
  }
  if (schema.properties) {
    const objectType = type.getNonNullableType();
    const props = checker.getPropertiesOfType(objectType);
    const tsNames = props.map((p) => p.name).sort();
    const schemaNames = Object.keys(schema.properties).sort();
    if (JSON.stringify(tsNames) !== JSON.stringify(schemaNames)) {
      problems.push(`${where}: type fields ${tsNames} vs schema fields ${schemaNames}`);
    }
    const tsRequired = props
      .filter((p) => !(p.flags & ts.SymbolFlags.Optional))
      .map((p) => p.name)
      .sort();
    if (JSON.stringify(tsRequired) !== JSON.stringify([...(schema.required ?? [])].sort())) {
      problems.push(`${where}: required ${tsRequired} vs schema required ${schema.required}`);
    }
    for (const p of props) {
      const child = schema.properties[p.name];
      if (!child) continue;
      problems.push(...drift(checker.getTypeOfSymbol(p), child, root, `${where}.${p.name}`));
    }
    return problems;
  }
  if (schema.type) {
    const declared = [schema.type]
      .flat()
      .map((t) => (t === "integer" ? "number" : t))
      .sort();
    const actual = jsonTypes(type);
    if (JSON.stringify(declared) !== JSON.stringify(actual)) {
      problems.push(`${where}: type ${actual} vs schema type ${declared}`);
    }
  }
  return problems;
}

describe("schemas against lib/types.ts and lib/names.ts", () => {
  it("result.schema.json has exactly RunResult's fields, optionality, types and enums", () => {
    expect(drift(exportedType("RunResult"), RESULT_SCHEMA, RESULT_SCHEMA, "result")).toEqual([]);
  });

  it("result.schema.json enums are the lib/names.ts lists", () => {
    const defs = RESULT_SCHEMA.definitions!;
    expect(defs.errorName!.enum).toEqual([...ERROR_NAMES]);
    expect(defs.phase!.enum).toEqual([...PHASES]);
    expect(defs.errorPhase!.enum).toEqual([...PHASES, ...EDGE_PHASES]);
    expect(RESULT_SCHEMA.properties!.status!.enum).toEqual([...STATUSES]);
    expect(RESULT_SCHEMA.properties!.remoteCleanup!.enum).toEqual([...REMOTE_CLEANUP]);
  });

  it("request.schema.json has exactly RunRequest's fields, optionality and types", () => {
    expect(drift(exportedType("RunRequest"), REQUEST_SCHEMA, REQUEST_SCHEMA, "request")).toEqual(
      [],
    );
  });

  it("request.schema.json is generated from the handlers' schema (run generate-validator)", () => {
    expect(readFileSync(REQUEST_SCHEMA_JSON, "utf8")).toBe(generateRequestSchemaJson());
  });

  it("the drift check itself sees a missing field", () => {
    const { exitCode: _, ...properties } = RESULT_SCHEMA.properties!;
    const trimmed = { ...RESULT_SCHEMA, properties };
    expect(drift(exportedType("RunResult"), trimmed, trimmed, "result").join()).toMatch(/exitCode/);
  });
});

describe("references stay inside the repository", () => {
  const tracked = execFileSync("git", ["ls-files", "-co", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter((f) => /\.(ts|js|md|json)$/.test(f) && existsSync(path.join(ROOT, f)));
  const sections = new Set([...CONTRACT.matchAll(/^## (\d+)\. /gm)].map((m) => Number(m[1])));

  it("every 'SPEC §N' names a section of docs/contract.md", () => {
    const dangling: string[] = [];
    for (const file of tracked) {
      const text = readFileSync(path.join(ROOT, file), "utf8");
      for (const m of text.matchAll(/SPEC §(\d+)/g)) {
        if (!sections.has(Number(m[1]))) dangling.push(`${file}: ${m[0]}`);
      }
      if (/shared\/SPEC|SPEC\.md/.test(text) && file !== "test/contract/contract.test.ts") {
        dangling.push(`${file}: points at the SPEC outside the repo`);
      }
    }
    expect(dangling).toEqual([]);
  });

  it("every markdown link resolves to a file in the repository", () => {
    const broken: string[] = [];
    for (const file of tracked.filter((f) => f.endsWith(".md"))) {
      const text = readFileSync(path.join(ROOT, file), "utf8");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.replace(/#.*$/, "");
        if (target === "") continue;
        const resolved = path.resolve(ROOT, path.dirname(file), target);
        if (/^[a-z]+:/i.test(target) || !resolved.startsWith(`${ROOT}${path.sep}`)) {
          broken.push(`${file}: ${m[1]} leaves the repository`);
        } else if (!existsSync(resolved)) {
          broken.push(`${file}: ${m[1]} does not exist`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
