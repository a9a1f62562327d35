/**
 * The project's import graph, read from the TypeScript sources with the compiler's own
 * pre-processor (`ts.preProcessFile`: static imports, `import type`, re-exports and literal
 * dynamic `import()`s, without type-checking). Type-only edges count: a type cycle still ties
 * two modules together for every reader and refactoring.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

/** One module's imports: project files (root-relative, `/`) and bare package specifiers. */
export interface ModuleImports {
  readonly files: readonly string[];
  readonly packages: readonly string[];
}

/** The graph: root-relative file → its imports. */
export type ImportGraph = ReadonlyMap<string, ModuleImports>;

const toPosix = (p: string) => p.split(path.sep).join("/");

function sourceFiles(root: string, dir: string): string[] {
  const abs = path.join(root, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .map((f) => toPosix(path.join(dir, f)))
    .sort();
}

/** The file a relative specifier names (`./x.ts`, `./x.js`, `./x`, `./dir`), if any. */
function resolveRelative(root: string, from: string, specifier: string): string | undefined {
  const base = path.resolve(root, path.dirname(from), specifier);
  const candidates = [
    base,
    base.replace(/\.js$/, ".ts"),
    `${base}.ts`,
    path.join(base, "index.ts"),
  ];
  for (const candidate of candidates) {
    if (existsSync(candidate) && statSync(candidate).isFile()) {
      return toPosix(path.relative(root, candidate));
    }
  }
  return undefined;
}

/** The package a bare specifier loads (`@aws-sdk/client-s3/x` → `@aws-sdk/client-s3`). */
function packageOf(specifier: string): string {
  const parts = specifier.replace(/^node:/, "node:").split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
}

/**
 * Reads the graph of every `.ts` file under `dirs` of `root`. A relative import that names no
 * file throws (a walker that silently drops edges could not fail).
 */
export function importGraph(root: string, dirs: readonly string[]): ImportGraph {
  const graph = new Map<string, ModuleImports>();
  for (const file of dirs.flatMap((dir) => sourceFiles(root, dir))) {
    const text = readFileSync(path.join(root, file), "utf8");
    const { importedFiles } = ts.preProcessFile(text, true, true);
    const files: string[] = [];
    const packages: string[] = [];
    for (const { fileName } of importedFiles) {
      if (fileName.startsWith(".")) {
        const target = resolveRelative(root, file, fileName);
        if (target === undefined) throw new Error(`${file}: cannot resolve "${fileName}"`);
        files.push(target);
      } else {
        packages.push(packageOf(fileName));
      }
    }
    graph.set(file, { files: [...new Set(files)], packages: [...new Set(packages)] });
  }
  return graph;
}

/**
 * Every import cycle among the graph's own files, one per strongly connected component of
 * more than one file (or a file importing itself), each as a closed path `a → b → … → a`.
 */
export function importCycles(graph: ImportGraph): string[][] {
  // Tarjan's algorithm, iterative enough for a few hundred files.
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const edges = (file: string) => (graph.get(file)?.files ?? []).filter((f) => graph.has(f));

  const visit = (file: string): void => {
    indexOf.set(file, index);
    low.set(file, index);
    index++;
    stack.push(file);
    onStack.add(file);
    for (const next of edges(file)) {
      if (!indexOf.has(next)) {
        visit(next);
        low.set(file, Math.min(low.get(file)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file)!, indexOf.get(next)!));
      }
    }
    if (low.get(file) === indexOf.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1 || edges(file).includes(file)) components.push(component);
    }
  };
  for (const file of graph.keys()) if (!indexOf.has(file)) visit(file);

  return components.map((component) => cyclePath(component, edges));
}

/** A closed path through a strongly connected component, for a readable failure message. */
function cyclePath(component: readonly string[], edges: (file: string) => string[]): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0] as string;
  // Breadth-first from start back to start, inside the component.
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const next of edges(file)) {
      if (!members.has(next)) continue;
      if (next === start) {
        const cycle = [start];
        for (let at: string | undefined = file; at !== undefined && at !== start; ) {
          cycle.splice(1, 0, at);
          at = previous.get(at);
        }
        return [...cycle, start];
      }
      if (!previous.has(next)) {
        previous.set(next, file);
        queue.push(next);
      }
    }
  }
  return [...component, component[0] as string];
}
