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

declare module "ssh2/lib/protocol/constants.js" {
  const constants: {
    /** Only with the project's ssh2 patch: host certificate type → certified key type. */
    CERT_SERVER_HOST_KEY?: Record<string, string>;
    /** Every cipher this ssh2 can negotiate on this Node (its OpenSSL has it). */
    SUPPORTED_CIPHER: string[];
    /** Only with the project's ssh2 patch: its deciphers keep no view of their input. */
    DECIPHER_KEEPS_NO_INPUT?: boolean;
  };
  export default constants;
}

declare module "ssh2/lib/protocol/utils.js" {
  const utils: {
    sendPacket(protocol: unknown, packet: Buffer, bypass?: boolean): void;
    /** An SSH signature as OpenSSL verifies it (ASN.1 for ECDSA/DSA); false if malformed. */
    sigSSHToASN1(signature: Buffer, type: string): Buffer | false;
  };
  export default utils;
}
