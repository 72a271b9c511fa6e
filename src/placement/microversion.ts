// `OpenStack-API-Version: placement 1.X` negotiation. Versions are kept as their minor number
// (major is always 1): absent header → 1.0, `latest` → the maximum, out of range → 406 with the
// range in the error body (osc-placement reads max_version from it to fall back).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../core/errors.js';
import { pBadRequest } from './codes.js';

export const MIN_MINOR = 0;
export const MAX_MINOR = 39;
export const MIN_VERSION = `1.${MIN_MINOR}`;
export const MAX_VERSION = `1.${MAX_MINOR}`;

declare module 'fastify' {
  interface FastifyRequest {
    /** Placement microversion of this request, as its minor number. */
    placementMinor?: number;
  }
}

export function parseVersionHeader(header: string | string[] | undefined): number {
  const values = (Array.isArray(header) ? header.join(',') : header ?? '').split(',')
    .map((v) => v.trim()).filter(Boolean);
  const mine = values.map((v) => v.split(/\s+/)).find(([svc]) => svc?.toLowerCase() === 'placement');
  if (!mine) return MIN_MINOR;
  const v = mine.slice(1).join(' ');
  if (v === 'latest') return MAX_MINOR;
  const m = /^(\d+)\.(\d+)$/.exec(v);
  if (!m) throw pBadRequest(`invalid version string: ${v}`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major !== 1 || minor < MIN_MINOR || minor > MAX_MINOR) {
    throw new ApiError(406, `Unacceptable version header: ${v}`, {
      type: 'placement.undefined_code', fields: { max_version: MAX_VERSION, min_version: MIN_VERSION },
    });
  }
  return minor;
}

/** onRequest hook: negotiates and echoes the version on every placement response. */
export async function negotiate(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('Vary', 'openstack-api-version');
  const minor = parseVersionHeader(req.headers['openstack-api-version']);
  req.placementMinor = minor;
  reply.header('OpenStack-API-Version', `placement 1.${minor}`);
}

export const mv = (req: FastifyRequest): number => req.placementMinor ?? MIN_MINOR;

/** Routes that appeared at a later version answer 404 below it, as Placement does. */
export function since(req: FastifyRequest, minor: number): void {
  if (mv(req) < minor) throw new ApiError(404, `The resource could not be found: ${req.method} ${req.url.split('?')[0]}`);
}

/**
 * From 1.15 successful GETs carry `Cache-Control: no-cache` and a `Last-Modified` (the response
 * time: these views are computed, and clients must not cache them).
 */
export async function cacheHeaders(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (req.method === 'GET' && reply.statusCode === 200 && (req.placementMinor ?? 0) >= 15) {
    reply.header('Cache-Control', 'no-cache');
    reply.header('Last-Modified', new Date().toUTCString());
  }
}
