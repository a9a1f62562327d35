/**
 * Everything the engine takes from ssh2, and the ONLY file that touches ssh2's internals
 * (`_protocol`, `_callbacks`, a channel's `outgoing`). ssh2 1.17 has no public API for a
 * signed first auth attempt, a keepalive on a channel, or a signal after EOF; each helper
 * below does one of those at the protocol level and returns `false` when the internals it
 * needs are missing, so an ssh2 upgrade degrades a feature instead of crashing a session.
 *
 * The two parts of ssh2 the engine uses are imported directly: ssh2's index also loads its
 * server and its HTTP(S) agents (`http`, `https`, `tls`), which cost cold-start time in a
 * Lambda bundle and are never used by a client (measured in docs/benchmarks.md).
 * ssh2 is CommonJS: under ESM its values come from the default export.
 */
import type { ClientChannel, Client as ClientType, ParsedKey } from "ssh2";
import ClientCtor from "ssh2/lib/client.js";
import sshConstants from "ssh2/lib/protocol/constants.js";
import keyParser from "ssh2/lib/protocol/keyParser.js";
import protocolUtils from "ssh2/lib/protocol/utils.js";

export const Client: typeof ClientType = ClientCtor;
export type Client = ClientType;

/**
 * Host certificate types this ssh2 can negotiate: those of the project's ssh2 patch
 * (`patches/ssh2+1.17.0.patch`), none with a stock ssh2 (a library caller who has not applied
 * the patch): known_hosts `@cert-authority` lines then vouch for nothing.
 */
export const HOST_CERT_ALGORITHMS: readonly string[] = Object.keys(
  sshConstants.CERT_SERVER_HOST_KEY ?? {},
);

/**
 * The ciphers the engine offers, in order of preference: the pure-JS path's drain throughput
 * against OpenSSH 9.2 sshd, measured per cipher by `npm run bench -- ciphers`
 * (docs/benchmarks.md, "Drain"). AES-GCM decrypts and authenticates in one OpenSSL call;
 * AES-CTR adds an HMAC-SHA2 over every byte; ChaCha20-Poly1305 runs Poly1305 in ssh2's
 * WebAssembly. All stay offered: TinySSH has only chacha20-poly1305, Dropbear and Go x/crypto
 * negotiate AES-GCM or AES-CTR. Filtered to what this Node's OpenSSL has (ssh2's own check).
 */
export const CIPHER_ORDER: readonly string[] = [
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-ctr",
  "aes192-ctr",
  "aes256-ctr",
  "chacha20-poly1305@openssh.com",
].filter((name) => (sshConstants.SUPPORTED_CIPHER as readonly string[]).includes(name));

/**
 * True when the socket's reads may reach ssh2 in a buffer reused by the next read (connection.ts
 * READ_BUFFER): ssh2 decrypts with its pure-JS deciphers (no native binding, as in the Lambda
 * bundle) and carries the project's patch, under which they keep no view of their input. A stock
 * ssh2's ChaCha20-Poly1305 decipher, and every decipher of its binding, keep one (a packet body
 * awaiting its MAC): then every read is a Buffer of its own, as Node allocates by default.
 */
export const READS_IN_PLACE: boolean = sshConstants.DECIPHER_KEEPS_NO_INPUT === true;

/** ssh2's key parser: OpenSSH, PEM and PuTTY private keys, optionally encrypted. */
export const parseKey: (data: string | Buffer, passphrase?: string | Buffer) => ParsedKey | Error =
  keyParser.parseKey;

/** ssh2's private `Protocol.authPK`. */
export type AuthPK = (
  username: string,
  pubKey: unknown,
  keyAlgo?: unknown,
  cbSign?: (data: Buffer, done: (signature: Buffer) => void) => void,
) => void;

/** A reply callback as ssh2 queues them: `failed` is true for *_FAILURE. */
type ReplyCallback = (failed: boolean) => void;

/** ssh2's private `Protocol.exec`: writes an `exec` CHANNEL_REQUEST for the server's channel id. */
type ProtocolExec = (channelId: number, command: string, wantReply: boolean) => void;

interface ProtocolInternals {
  authPK?: AuthPK;
  exec?: ProtocolExec;
  _kex?: { sessionID?: Buffer };
  _authsQueue?: string[];
  ping?: () => void;
  signal?: (channelId: number, signal: string) => void;
  _packetRW?: {
    write: { allocStart: number; alloc(size: number): Buffer; finalize(packet: Buffer): Buffer };
  };
}

interface ClientInternals {
  _protocol?: ProtocolInternals;
  /** Local channel id → the open channel (or the callback of one still opening). */
  _chanMgr?: { _channels?: Record<number, unknown> };
  /** Replies to global requests, answered in order (REQUEST_SUCCESS / REQUEST_FAILURE). */
  _callbacks?: ReplyCallback[];
}

interface ChannelInternals {
  outgoing?: { id: number; state: string };
  incoming?: { id: number; state: string };
  /** Replies to this channel's requests, in order (CHANNEL_SUCCESS / CHANNEL_FAILURE). */
  _callbacks?: ReplyCallback[];
}

const MSG_CHANNEL_REQUEST = 98;
const KEEPALIVE_REQUEST = Buffer.from("keepalive@openssh.com", "latin1");

function internals(client: Client): ClientInternals {
  return client as unknown as ClientInternals;
}

/** The channel's id on the server side, while we may still send requests on it. */
function openChannelId(channel: ClientChannel): number | undefined {
  const outgoing = (channel as unknown as ChannelInternals).outgoing;
  if (!outgoing || (outgoing.state !== "open" && outgoing.state !== "eof")) return undefined;
  return outgoing.id;
}

/**
 * Replaces ssh2's private `authPK` with `wrap(original)`. Must run right after
 * `client.connect()`, before any auth request can be sent. False when ssh2 has no such hook.
 */
export function wrapAuthPK(client: Client, wrap: (original: AuthPK) => AuthPK): boolean {
  const proto = internals(client)._protocol;
  const original = proto?.authPK;
  if (!proto || typeof original !== "function") return false;
  proto.authPK = wrap(original.bind(proto));
  return true;
}

const MSG_USERAUTH_REQUEST = 50;

function sshString(data: string | Buffer): Buffer {
  const b = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(b.length, 0);
  return Buffer.concat([len, b]);
}

/**
 * Sends a signed publickey USERAUTH_REQUEST (RFC 4252 §7) for an OpenSSH certificate:
 * algorithm `certAlgo` (e.g. `ssh-ed25519-cert-v01@openssh.com`), the certificate blob as the
 * public key, and a signature whose own algorithm is the underlying key's (`sigAlgo`, e.g.
 * `ssh-ed25519`: sshd rejects a signature blob named after the certificate type).
 *
 * ssh2 1.17 has no certificate support (mscdex/ssh2#551): its `authPK` names the signature
 * after the key type, so the engine writes this one request itself, in place of `authPK`
 * (sign-first.ts). False when ssh2 lacks the internals (no session id, no packet writer).
 */
export function sendCertificateAuth(
  client: Client,
  username: string,
  certAlgo: string,
  certificate: Buffer,
  sigAlgo: string,
  sign: (data: Buffer) => Buffer,
): boolean {
  const proto = internals(client)._protocol;
  const sessionId = proto?._kex?.sessionID;
  const rw = proto?._packetRW?.write;
  if (!proto || !rw || !Buffer.isBuffer(sessionId) || !Array.isArray(proto._authsQueue)) {
    return false;
  }
  const body = Buffer.concat([
    Buffer.from([MSG_USERAUTH_REQUEST]),
    sshString(username),
    sshString("ssh-connection"),
    sshString("publickey"),
    Buffer.from([1]),
    sshString(certAlgo),
    sshString(certificate),
  ]);
  const signature = sign(Buffer.concat([sshString(sessionId), body]));
  const payload = Buffer.concat([
    body,
    sshString(Buffer.concat([sshString(sigAlgo), sshString(signature)])),
  ]);
  const start = rw.allocStart;
  const packet = rw.alloc(payload.length);
  packet.set(payload, start);
  // ssh2 shifts one entry per USERAUTH reply: queue ours as its own authPK does.
  proto._authsQueue.push("publickey");
  protocolUtils.sendPacket(proto, rw.finalize(packet));
  return true;
}

/**
 * Sends a `keepalive@openssh.com` GLOBAL request (want-reply); `onReply` runs when the server
 * answers, success or failure alike. Only for before a channel exists: TinySSH never answers
 * global requests at all.
 */
export function sendGlobalKeepalive(client: Client, onReply: () => void): boolean {
  const c = internals(client);
  const proto = c._protocol;
  if (!proto || typeof proto.ping !== "function" || !Array.isArray(c._callbacks)) return false;
  // ssh2 shifts one callback per REQUEST_SUCCESS/FAILURE: queue ours in the same order.
  c._callbacks.push(() => onReply());
  proto.ping();
  return true;
}

/**
 * Sends `keepalive@openssh.com` as a CHANNEL request with want-reply, as OpenSSH's client does
 * once a session is open (`ServerAliveInterval`); every server answers it, mostly with
 * CHANNEL_FAILURE, which proves liveness as well as success. `onReply` runs on the answer.
 * RFC 4254 allows requests after our EOF. False when the channel is closed or ssh2 lacks
 * the internals.
 */
export function sendChannelKeepalive(
  client: Client,
  channel: ClientChannel,
  onReply: () => void,
): boolean {
  const proto = internals(client)._protocol;
  const callbacks = (channel as unknown as ChannelInternals)._callbacks;
  const id = openChannelId(channel);
  const rw = proto?._packetRW?.write;
  if (!proto || !rw || !Array.isArray(callbacks) || id === undefined) return false;
  const start = rw.allocStart;
  const packet = rw.alloc(1 + 4 + 4 + KEEPALIVE_REQUEST.length + 1);
  let p = start;
  packet[p] = MSG_CHANNEL_REQUEST;
  packet.writeUInt32BE(id, p + 1);
  packet.writeUInt32BE(KEEPALIVE_REQUEST.length, p + 5);
  p += 9;
  packet.set(KEEPALIVE_REQUEST, p);
  packet[p + KEEPALIVE_REQUEST.length] = 1; // want reply
  // ssh2 shifts one channel callback per CHANNEL_SUCCESS/FAILURE: queue ours in order.
  callbacks.push(() => onReply());
  protocolUtils.sendPacket(proto, rw.finalize(packet));
  return true;
}

/**
 * Sends a `signal` channel request. ssh2's `channel.signal()` silently drops it once stdin
 * has been ended (EOF), which the engine always does; RFC 4254 allows requests after EOF.
 */
export function sendSignal(client: Client, channel: ClientChannel, signal: "TERM"): boolean {
  const proto = internals(client)._protocol;
  const id = openChannelId(channel);
  if (!proto || typeof proto.signal !== "function" || id === undefined) return false;
  proto.signal(id, signal);
  return true;
}

/** What {@link execWhenSent} tells its caller about the exec request itself. */
export interface ExecRequestHooks {
  /**
   * Asked when the server has confirmed the session channel, just before the exec request
   * would be written: `false` keeps it unsent (the session has already given up, e.g. its
   * channel phase timed out: a request sent now could run a command nobody waits for).
   */
  maySend(): boolean;
  /**
   * Runs synchronously just BEFORE the exec request is written: from this moment the command
   * may run on the server. `channel` is the session channel the request goes out on (already
   * open; ssh2 hands it to `callback` only once the server answers), or `undefined` when
   * ssh2's internals could not be followed.
   */
  onSending(channel: ClientChannel | undefined): void;
}

/**
 * `client.exec(command, callback)`, telling the caller the moment the exec request goes on
 * the wire. ssh2's `exec` opens a session channel, sends `exec` (want-reply) on its
 * confirmation and calls back only on the server's answer; between the two the command may
 * already run, and nothing public says so. The hook is ssh2's private `Protocol.exec`,
 * wrapped for this one call (an own property over the prototype's method, removed at its
 * first use). Returns `false`, having sent nothing, when ssh2 lacks those internals: the
 * caller then must assume the request is sent as soon as it calls `client.exec`.
 */
export function execWhenSent(
  client: Client,
  command: string,
  hooks: ExecRequestHooks,
  callback: (err: Error | undefined, channel: ClientChannel) => void,
): boolean {
  const c = internals(client);
  const proto = c._protocol;
  const original = proto?.exec;
  if (!proto || typeof original !== "function" || Object.hasOwn(proto, "exec")) return false;
  const wrapped: ProtocolExec = (channelId, cmd, wantReply) => {
    delete proto.exec; // back to the prototype's: this wrapper serves one request
    if (!hooks.maySend()) return; // never sent; the channel goes with the connection
    hooks.onSending(channelWithServerId(c, channelId));
    original.call(proto, channelId, cmd, wantReply);
  };
  const unwrap = () => {
    if (proto.exec === wrapped) delete proto.exec;
  };
  proto.exec = wrapped;
  try {
    // A refused channel open never reaches the request: unwrap on every answer.
    client.exec(command, ((err: Error | undefined, channel: ClientChannel) => {
      unwrap();
      callback(err, channel);
    }) as Parameters<Client["exec"]>[1]);
  } catch (err) {
    unwrap();
    throw err;
  }
  return true;
}

/** The open channel whose id on the server's side is `serverId` (ssh2's channel manager). */
function channelWithServerId(c: ClientInternals, serverId: number): ClientChannel | undefined {
  const channels = c._chanMgr?._channels;
  if (!channels || typeof channels !== "object") return undefined;
  for (const candidate of Object.values(channels)) {
    const outgoing = (candidate as ChannelInternals | null)?.outgoing;
    if (typeof candidate === "object" && outgoing?.id === serverId) {
      return candidate as ClientChannel;
    }
  }
  return undefined;
}

/**
 * True when the server closed `channel` (CHANNEL_CLOSE): ssh2 then fails a request still
 * waiting for its answer exactly as it fails a refused one (CHANNEL_FAILURE); this tells the
 * two apart. False when unknown.
 */
export function closedByPeer(channel: ClientChannel | undefined): boolean {
  return (channel as unknown as ChannelInternals | undefined)?.incoming?.state === "closed";
}
