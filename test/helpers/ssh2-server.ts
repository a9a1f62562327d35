/**
 * The scripted ssh2 server the tests use is the project's one in-process SSH server, shared
 * with the demo targets: it lives in local mode (`functions/local/ssh2-server.ts`).
 */
export * from "../../functions/local/ssh2-server.ts";
