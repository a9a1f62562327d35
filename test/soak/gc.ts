import v8 from "node:v8";
import vm from "node:vm";

let gcFn: (() => void) | undefined;

/**
 * A full garbage collection, with or without `--expose-gc`: without the flag, it is turned
 * on at run time and `gc` is taken from a fresh context (V8 installs it on new contexts).
 */
export function forceGc(): void {
  if (!gcFn) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === "function") gcFn = exposed;
    else {
      v8.setFlagsFromString("--expose-gc");
      gcFn = vm.runInNewContext("gc") as () => void;
    }
  }
  gcFn();
  gcFn();
}

/** Heap in use after a full GC (bytes). */
export function heapAfterGc(): number {
  forceGc();
  return process.memoryUsage().heapUsed;
}
