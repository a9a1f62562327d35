import type { AuthContext } from "ssh2";
import { type Ssh2Server, type Ssh2ServerScript, startSsh2Server } from "../helpers/ssh2-server.ts";

/** One authentication attempt as a rogue server sees it: everything a client gave away. */
export interface AuthAttempt {
  method: string;
  username: string;
  /** The password, when the client sent one. */
  password?: string;
  /** The public key (base64 blob), when the client offered one. */
  key?: string;
  /** True when the client signed with the key (a proof it holds the private key). */
  signed?: boolean;
}

/** An SSH server under an attacker's control: it records every authentication attempt. */
export interface RogueServer {
  server: Ssh2Server;
  attempts: AuthAttempt[];
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * A scripted ssh2 server that presents its own host key, records each authentication attempt
 * (method, username, password or key) and refuses it, so a client that trusts it hands over
 * whatever it holds. The suite's pass condition is that it records nothing. `hostKey`: its own
 * key (default: the in-process servers' shared one).
 */
export async function startRogueServer(
  hostKey?: Ssh2ServerScript["hostKey"],
): Promise<RogueServer> {
  const attempts: AuthAttempt[] = [];
  const server = await startSsh2Server({
    ...(hostKey ? { hostKey } : {}),
    auth: (ctx: AuthContext) => {
      const attempt: AuthAttempt = { method: ctx.method, username: ctx.username };
      if (ctx.method === "password") attempt.password = ctx.password;
      if (ctx.method === "publickey") {
        attempt.key = ctx.key.data.toString("base64");
        attempt.signed = ctx.signature !== undefined;
      }
      attempts.push(attempt);
      return "reject";
    },
  });
  return {
    server,
    attempts,
    connections: () => server.events.filter((e) => e.type === "connection").length,
    close: () => server.close(),
  };
}
