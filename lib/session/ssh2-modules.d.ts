// Types for the ssh2 files imported directly (see ssh2.ts); @types/ssh2 covers the index only.
declare module "ssh2/lib/client.js" {
  import type { Client } from "ssh2";

  const ClientCtor: typeof Client;
  export default ClientCtor;
}

declare module "ssh2/lib/protocol/keyParser.js" {
  import type { ParsedKey } from "ssh2";

  const keyParser: {
    parseKey(data: string | Buffer, passphrase?: string | Buffer): ParsedKey | Error;
  };
  export default keyParser;
}

declare module "ssh2/lib/protocol/utils.js" {
  const utils: {
    sendPacket(protocol: unknown, packet: Buffer, bypass?: boolean): void;
  };
  export default utils;
}
