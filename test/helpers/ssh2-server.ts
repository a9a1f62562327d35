/**
 * The scripted ssh2 server the tests use is the project's one in-process SSH server, shared
 * with the demo targets: it lives in local mode (`local/ssh2-server.ts`).
 */
export * from "../../local/ssh2-server.ts";
