// Tokens are not stored: a token is its own payload, sealed with AES-256-GCM under the primary
// key of the token key ring (sealing.ts), then base64url.
// Roles and catalog are not in the payload: they are recomputed at validation, which makes
// role and project changes effective immediately and keeps tokens ~250 characters long.
import { randomBytes } from 'node:crypto';
import type { KeyRing } from './keys.js';
import { seal, unseal } from './sealing.js';

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

export function newAuditId(): string {
  return randomBytes(16).toString('base64url');
}

export function sealToken(ring: KeyRing, p: TokenPayload): string {
  const compact = {
    u: p.userId, m: p.methods, i: p.issuedAt, e: p.expiresAt, a: p.auditIds,
    s: p.scope.kind === 'project' ? ['p', p.scope.id] : p.scope.kind === 'domain' ? ['d', p.scope.id]
      : p.scope.kind === 'system' ? ['s'] : undefined,
    c: p.appCredId,
  };
  return seal(ring, VERSION, Buffer.from(JSON.stringify(compact), 'utf8')).toString('base64url');
}

/** The payload, or undefined when the token is malformed, tampered with, or its key is gone. */
export function openToken(ring: KeyRing, token: string): TokenPayload | undefined {
  if (token.length < 60 || token.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  const plain = unseal(ring, VERSION, Buffer.from(token, 'base64url'));
  if (!plain) return undefined;
  try {
    const c = JSON.parse(plain.toString('utf8')) as { u: string; m: string[]; i: number; e: number; a: string[]; s?: string[]; c?: string };
    const scope: Scope = !c.s ? { kind: 'unscoped' }
      : c.s[0] === 'p' ? { kind: 'project', id: c.s[1]! }
        : c.s[0] === 'd' ? { kind: 'domain', id: c.s[1]! } : { kind: 'system' };
    return { userId: c.u, methods: c.m, issuedAt: c.i, expiresAt: c.e, auditIds: c.a, scope, appCredId: c.c };
  } catch {
    return undefined;
  }
}
