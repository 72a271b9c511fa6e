// Tokens are not stored: a token is its own payload, sealed with AES-256-GCM under the primary
// key of the key ring. Layout (then base64url): version(1) | key id(4, big endian) | iv(12) |
// tag(16) | ciphertext. The header is authenticated data, so a token cannot be moved to another key.
// Roles and catalog are not in the payload: they are recomputed at validation, which makes
// role and project changes effective immediately and keeps tokens ~250 characters long.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KeyRing } from './keys.js';

export type Scope =
  | { kind: 'project'; id: string }
  | { kind: 'domain'; id: string }
  | { kind: 'system' }
  | { kind: 'unscoped' };

export interface TokenPayload {
  userId: string;
  methods: string[];
  scope: Scope;
  /** Milliseconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
  /** [own audit id, audit id of the token it was rescoped from (chain id)]. */
  auditIds: string[];
  appCredId?: string;
}

const VERSION = 1;
const HEADER = 5;

export function newAuditId(): string {
  return randomBytes(16).toString('base64url');
}

export function sealToken(ring: KeyRing, p: TokenPayload): string {
  const { id, key } = ring.primary();
  const header = Buffer.alloc(HEADER);
  header.writeUInt8(VERSION, 0);
  header.writeUInt32BE(id, 1);
  const compact = {
    u: p.userId, m: p.methods, i: p.issuedAt, e: p.expiresAt, a: p.auditIds,
    s: p.scope.kind === 'project' ? ['p', p.scope.id] : p.scope.kind === 'domain' ? ['d', p.scope.id]
      : p.scope.kind === 'system' ? ['s'] : undefined,
    c: p.appCredId,
  };
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const ct = Buffer.concat([cipher.update(JSON.stringify(compact), 'utf8'), cipher.final()]);
  return Buffer.concat([header, iv, cipher.getAuthTag(), ct]).toString('base64url');
}

/** The payload, or undefined when the token is malformed, tampered with, or its key is gone. */
export function openToken(ring: KeyRing, token: string): TokenPayload | undefined {
  if (token.length < 60 || token.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  const raw = Buffer.from(token, 'base64url');
  if (raw.length < HEADER + 12 + 16 + 2 || raw.readUInt8(0) !== VERSION) return undefined;
  const key = ring.get(raw.readUInt32BE(1));
  if (!key) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(HEADER, HEADER + 12));
    decipher.setAAD(raw.subarray(0, HEADER));
    decipher.setAuthTag(raw.subarray(HEADER + 12, HEADER + 28));
    const text = Buffer.concat([decipher.update(raw.subarray(HEADER + 28)), decipher.final()]).toString('utf8');
    const c = JSON.parse(text) as { u: string; m: string[]; i: number; e: number; a: string[]; s?: string[]; c?: string };
    const scope: Scope = !c.s ? { kind: 'unscoped' }
      : c.s[0] === 'p' ? { kind: 'project', id: c.s[1]! }
        : c.s[0] === 'd' ? { kind: 'domain', id: c.s[1]! } : { kind: 'system' };
    return { userId: c.u, methods: c.m, issuedAt: c.i, expiresAt: c.e, auditIds: c.a, scope, appCredId: c.c };
  } catch {
    return undefined;
  }
}
