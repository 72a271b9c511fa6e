// SSH key material without external tools: parsing OpenSSH public keys (for import and
// fingerprints) and generating RSA or Ed25519 key pairs in OpenSSH's own formats.
import { createHash, generateKeyPair, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

const genKeyPair = promisify(generateKeyPair) as unknown as (type: string, opts?: object) => Promise<{ privateKey: KeyObject }>;
import { badRequest } from '../core/errors.js';

const SSH_TYPES = new Set([
  'ssh-rsa', 'ssh-dss', 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/** Validates an OpenSSH public key line and returns its MD5 fingerprint (what Nova shows). */
export function sshFingerprint(publicKey: string): string {
  const parts = publicKey.trim().split(/\s+/);
  const [type, b64] = parts;
  if (!type || !b64 || !SSH_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw badRequest('Keypair data is invalid: failed to generate fingerprint. The public key must be one OpenSSH line: "TYPE BASE64 [comment]".');
  }
  const blob = Buffer.from(b64, 'base64');
  // The blob starts with its own type as an SSH string; a mismatch means a corrupted key.
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || 4 + len > blob.length || blob.subarray(4, 4 + len).toString('latin1') !== type) {
    throw badRequest('Keypair data is invalid: failed to generate fingerprint. The key data does not match its type.');
  }
  return md5Colons(blob);
}

/** Validates a PEM certificate (Nova's x509 key pairs) and returns its SHA-1 fingerprint. */
export function x509Fingerprint(pem: string): string {
  try {
    const cert = new X509Certificate(pem);
    return createHash('sha1').update(cert.raw).digest('hex').match(/../g)!.join(':');
  } catch {
    throw badRequest('Keypair data is invalid: failed to generate fingerprint. The public key is not a PEM X.509 certificate.');
  }
}

function md5Colons(b: Buffer): string {
  return createHash('md5').update(b).digest('hex').match(/../g)!.join(':');
}

// ---- SSH wire encoding ----
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function str(v: Buffer | string): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
  return Buffer.concat([u32(b.length), b]);
}
/** An unsigned big-endian integer (from JWK base64url) as an SSH mpint. */
function mpint(b64url: string): Buffer {
  let b = Buffer.from(b64url, 'base64url');
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  if (b.length && (b[0]! & 0x80)) b = Buffer.concat([Buffer.from([0]), b]);
  return str(b);
}

export type KeyKind = 'rsa' | 'ed25519';

export interface GeneratedKey { publicKey: string; privateKey: string; fingerprint: string }

/** A new key pair: the public key as an OpenSSH line, the private key as an OpenSSH PEM block. */
export async function generateSshKey(kind: KeyKind, comment: string): Promise<GeneratedKey> {
  let pubBlob: Buffer;
  let privFields: Buffer;
  let type: string;
  if (kind === 'ed25519') {
    type = 'ssh-ed25519';
    const jwk = (await genKeyPair('ed25519', {})).privateKey.export({ format: 'jwk' });
    const pub = Buffer.from(jwk.x!, 'base64url');
    const seed = Buffer.from(jwk.d!, 'base64url');
    pubBlob = Buffer.concat([str(type), str(pub)]);
    privFields = Buffer.concat([str(type), str(pub), str(Buffer.concat([seed, pub]))]);
  } else {
    type = 'ssh-rsa';
    const jwk = (await genKeyPair('rsa', { modulusLength: 3072 })).privateKey.export({ format: 'jwk' });
    pubBlob = Buffer.concat([str(type), mpint(jwk.e!), mpint(jwk.n!)]);
    privFields = Buffer.concat([str(type), mpint(jwk.n!), mpint(jwk.e!), mpint(jwk.d!), mpint(jwk.qi!),
      mpint(jwk.p!), mpint(jwk.q!)]);
  }
  const check = randomBytes(4);
  let section = Buffer.concat([check, check, privFields, str(comment)]);
  const pad = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'), str('none'), str('none'), str(''), u32(1), str(pubBlob), str(section),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g)!.join('\n');
  return {
    publicKey: `${type} ${pubBlob.toString('base64')} ${comment}`,
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`,
    fingerprint: md5Colons(pubBlob),
  };
}
