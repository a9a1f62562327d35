/**
 * The two parts of ssh2 the engine uses, imported directly: ssh2's index also loads its
 * server and its HTTP(S) agents (`http`, `https`, `tls`), which cost cold-start time in a
 * Lambda bundle and are never used by a client (measured in docs/benchmarks.md).
 * ssh2 is CommonJS: under ESM its values come from the default export.
 */
import type { Client as ClientType, ParsedKey } from "ssh2";
import ClientCtor from "ssh2/lib/client.js";
import keyParser from "ssh2/lib/protocol/keyParser.js";

export const Client: typeof ClientType = ClientCtor;
export type Client = ClientType;

/** ssh2's key parser: OpenSSH, PEM and PuTTY private keys, optionally encrypted. */
export const parseKey: (data: string | Buffer, passphrase?: string | Buffer) => ParsedKey | Error =
  keyParser.parseKey;
