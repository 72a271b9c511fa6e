// AES-256-GCM under a key ring (keys.ts), shared by tokens and stored credential blobs. Layout:
// version(1) | key id(4, big endian) | iv(12) | tag(16) | ciphertext. The header is authenticated
// data, so a sealed value cannot be moved to another key or format version.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyRing } from './keys.js';

export const SEAL_HEADER = 5;
/** Header, iv and tag: what sealing adds to the plaintext. */
export const SEAL_OVERHEAD = SEAL_HEADER + 12 + 16;

export function seal(ring: KeyRing, version: number, plain: Buffer): Buffer {
  const { id, key } = ring.primary();
  const header = Buffer.alloc(SEAL_HEADER);
  header.writeUInt8(version, 0);
  header.writeUInt32BE(id, 1);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([header, iv, cipher.getAuthTag(), ct]);
}

/** The plaintext, or undefined when `raw` is not of this version, was tampered with, or its key is gone. */
export function unseal(ring: KeyRing, version: number, raw: Buffer): Buffer | undefined {
  if (raw.length < SEAL_OVERHEAD || raw.readUInt8(0) !== version) return undefined;
  const key = ring.get(raw.readUInt32BE(1));
  if (!key) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(SEAL_HEADER, SEAL_HEADER + 12));
    decipher.setAAD(raw.subarray(0, SEAL_HEADER));
    decipher.setAuthTag(raw.subarray(SEAL_HEADER + 12, SEAL_OVERHEAD));
    return Buffer.concat([decipher.update(raw.subarray(SEAL_OVERHEAD)), decipher.final()]);
  } catch {
    return undefined;
  }
}
