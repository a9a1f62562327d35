/**
 * Loads the engine under test. `BENCH_LIB=<dir>` points at a scratch copy of lib/ (a proposed
 * change measured before it is applied); default: this checkout's lib/. `BENCH_BASE_LIB=<dir>`
 * loads a second one beside it for the rows that compare two lib/s in the same run.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { RunOptions, RunRequest, RunResult } from "../lib/types.ts";

export type RunCommand = (request: RunRequest, options: RunOptions) => Promise<RunResult>;

export interface BannerGateLike {
  destroy(): void;
}
export type BannerGateCtor = new (
  sock: import("node:net").Socket,
  events: { onIdent: (ident: string) => void; onProtocolError: (message: string) => void },
) => import("node:stream").Duplex;

export interface Engine {
  dir: string;
  runCommand: RunCommand;
  BannerGate: BannerGateCtor;
}

export async function loadEngine(
  libDir = process.env.BENCH_LIB ?? path.join(import.meta.dirname, "..", "lib"),
): Promise<Engine> {
  const dir = path.resolve(libDir);
  const url = (file: string) => pathToFileURL(path.join(dir, file)).href;
  const rc = (await import(url("run-command.ts"))) as { runCommand: RunCommand };
  const bg = (await import(url("session/banner-gate.ts"))) as { BannerGate: BannerGateCtor };
  return { dir, runCommand: rc.runCommand, BannerGate: bg.BannerGate };
}

/** `BENCH_BASE_LIB`: an older lib/ measured beside the engine under test, or undefined. */
export async function loadBaseEngine(): Promise<Engine | undefined> {
  const dir = process.env.BENCH_BASE_LIB;
  return dir ? loadEngine(dir) : undefined;
}

/** The remote bound's wrapper as this engine's lib/ builds it (for the raw-ssh2 row). */
export async function loadWrapper(
  engine: Engine,
): Promise<(command: string, allowanceMs: number) => string> {
  const url = pathToFileURL(path.join(engine.dir, "session", "remote-bound.ts")).href;
  const m = (await import(url)) as {
    wrapWithRemoteBound: (command: string, allowanceMs: number) => string;
  };
  return m.wrapWithRemoteBound;
}
