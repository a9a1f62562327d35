/**
 * Loads the engine under test. `BENCH_LIB=<dir>` points at a scratch copy of lib/ (a proposed
 * change measured before it is applied); default: this checkout's lib/.
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

export async function loadEngine(): Promise<Engine> {
  const dir = path.resolve(process.env.BENCH_LIB ?? path.join(import.meta.dirname, "..", "lib"));
  const url = (file: string) => pathToFileURL(path.join(dir, file)).href;
  const rc = (await import(url("run-command.ts"))) as { runCommand: RunCommand };
  const bg = (await import(url("session/banner-gate.ts"))) as { BannerGate: BannerGateCtor };
  return { dir, runCommand: rc.runCommand, BannerGate: bg.BannerGate };
}
