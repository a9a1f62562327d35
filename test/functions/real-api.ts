/**
 * The real API handler (functions/api.ts) against a real ssh2 server and a tarpit on loopback,
 * for tests that need its genuine HTTP answers (the OpenAPI document, the typed client).
 */
import { createApiHandler } from "../../functions/api.ts";
import { type Adversary, tarpit } from "../helpers/adversaries.ts";
import { generateEd25519KeyPair } from "../helpers/keys.ts";
import { type ExecContext, type Ssh2Server, startSsh2Server } from "../helpers/ssh2-server.ts";
import { loopbackPolicy, testRuntime } from "./support.ts";

/** exec behaviour by command: `exit N` exits N, `sleep N` never ends, anything else echoes. */
function scripted(ctx: ExecContext): void {
  const exit = /^exit (\d+)$/.exec(ctx.command);
  if (exit) {
    ctx.stderr("bye\n");
    ctx.exit(Number(exit[1]));
    ctx.close();
    return;
  }
  if (ctx.command.startsWith("sleep")) return;
  ctx.stdout(`${ctx.command}\n`);
  ctx.exit(0);
  ctx.close();
}

export interface RealApi {
  server: Ssh2Server;
  hung: Adversary;
  /** A request body for the ssh2 server, with `extra` fields. */
  request(extra?: Record<string, unknown>): Record<string, unknown>;
  /** A handler; `options` overrides the test runtime's (policy, known hosts, credentials). */
  handler(
    options?: Partial<Parameters<typeof testRuntime>[0]>,
  ): ReturnType<typeof createApiHandler>;
  close(): Promise<void>;
}

export async function startRealApi(): Promise<RealApi> {
  const clientKey = generateEd25519KeyPair();
  const server = await startSsh2Server({ exec: scripted });
  const hung = await tarpit();
  return {
    server,
    hung,
    request: (extra = {}) => ({
      host: "127.0.0.1",
      port: server.port,
      username: "ops",
      command: "echo hi",
      ...extra,
    }),
    handler: (options = {}) =>
      createApiHandler(
        testRuntime({
          policy: loopbackPolicy([server.port, hung.port]),
          credentials: { default: { privateKey: clientKey.private } },
          knownHosts: `${server.knownHostsLine}\n`,
          settings: { remoteBound: false },
          ...options,
        }).runtime,
      ),
    close: async () => {
      await server.close();
      await hung.close();
    },
  };
}
