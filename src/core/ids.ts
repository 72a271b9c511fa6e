// Identifiers as OpenStack clients expect them.
import { randomBytes, randomUUID } from 'node:crypto';

/** Keystone-style id: 32 lowercase hex characters (a UUID without dashes). */
export function hexId(): string {
  return randomUUID().replace(/-/g, '');
}

/** Nova/Glance/Neutron-style id: a dashed UUID. */
export function uuid(): string {
  return randomUUID();
}

export function requestId(): string {
  return `req-${randomUUID()}`;
}

/** A URL-safe random secret of `bytes` bytes of entropy. */
export function secret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

/** ISO-8601 timestamp, millisecond precision, UTC ('Z'). Sorts lexicographically. */
export function nowIso(): string {
  return new Date().toISOString();
}

/** OpenStack's usual timestamp form: no fractional seconds, 'Z' suffix. */
export function isoSeconds(d: Date | string): string {
  return new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
