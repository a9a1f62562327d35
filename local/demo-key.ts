import ssh2 from "ssh2";

/**
 * An ed25519 key pair for the demo that always parses: ssh2 1.17's generator drops a leading
 * zero byte of the public key about once in 170 calls, so a pair is kept only when ssh2 can
 * read both halves back.
 */
export function demoKeyPair(comment?: string): { private: string; public: string } {
  for (let attempt = 0; attempt < 10; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519", comment ? { comment } : {});
    const priv = ssh2.utils.parseKey(pair.private);
    const pub = ssh2.utils.parseKey(pair.public);
    if (!(priv instanceof Error) && !(pub instanceof Error)) return pair;
  }
  throw new Error("could not generate a parsable ed25519 key in 10 attempts");
}
