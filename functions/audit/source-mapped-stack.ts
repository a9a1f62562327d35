/**
 * Stack frames of the deployed (minified) bundle mapped back to the TypeScript sources, for the
 * one log line that carries a stack: the unexpected error (docs/runbooks/InternalErrors.md).
 *
 * Why not `NODE_OPTIONS=--enable-source-maps`: with it Node reads and parses the bundle's map
 * at every cold start (+5–12 ms, 1.5× → 1.7× of `node -e 0`, docs/benchmarks.md) to serve a
 * stack that is almost never printed. Here the map is read on the first unexpected error of a
 * container and kept. Where Node already maps stacks (the flag is set), this does nothing.
 */
import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { fileURLToPath } from "node:url";

/** At most this many distinct files' maps are looked up per container (frames beyond stay). */
const MAX_FILES = 16;
const maps = new Map<string, SourceMap | null>();

function mapOf(file: string): SourceMap | null {
  let map = maps.get(file);
  if (map !== undefined) return map;
  if (maps.size >= MAX_FILES) return null;
  try {
    map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, "utf8")));
  } catch {
    map = null; // no map next to this file (node internals, the lazy chunk, tests' sources)
  }
  maps.set(file, map);
  return map;
}

// `at fn (/var/task/index.js:1:2345)` or `at /var/task/index.js:1:2345` (also file:// URLs).
const FRAME = /((?:file:\/\/)?\/[^\s():]+\.[cm]?js):(\d+):(\d+)/g;

/** `stack` with every frame in a file that has a `.map` beside it rewritten to its source. */
export function sourceMappedStack(stack: string): string {
  if (process.sourceMapsEnabled) return stack;
  return stack.replace(FRAME, (frame, file: string, line: string, column: string) => {
    const path = file.startsWith("file://") ? fileURLToPath(file) : file;
    const entry = mapOf(path)?.findEntry(Number(line) - 1, Number(column) - 1);
    if (!entry || !("originalSource" in entry) || !entry.originalSource) return frame;
    return `${entry.originalSource}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}
