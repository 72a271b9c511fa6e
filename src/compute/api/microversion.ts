// Compute API microversions: negotiation from `OpenStack-API-Version: compute X.Y` or the legacy
// `X-OpenStack-Nova-API-Version: X.Y`, 'latest', and the response headers Nova sends.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, badRequest } from '../../core/errors.js';

export interface Version { major: number; minor: number }

export const MIN_VERSION: Version = { major: 2, minor: 1 };
/**
 * The newest microversion whose request and response shapes Stratus implements. openstacksdk
 * asks for at most 2.89 (volume attachments), python-novaclient 18 (openstackclient's server
 * commands) for at most 2.92; 2.90 (hostname on create/update/rebuild) is the last change
 * Stratus implements, so that is what it advertises.
 */
export const MAX_VERSION: Version = { major: 2, minor: 90 };

export const fmt = (v: Version): string => `${v.major}.${v.minor}`;
const cmp = (a: Version, b: Version): number => a.major - b.major || a.minor - b.minor;

declare module 'fastify' {
  interface FastifyRequest {
    /** The negotiated compute microversion (2.1 when the caller names none). */
    microversion?: Version;
  }
}

/** Parses the version a request asks for; throws 400 (malformed) or 406 (out of range). */
export function negotiate(req: FastifyRequest): Version {
  let asked: string | undefined;
  const modern = req.headers['openstack-api-version'];
  if (typeof modern === 'string') {
    // The header may list several services: "compute 2.60, volume 3.50".
    for (const part of modern.split(',')) {
      const m = /^\s*compute\s+(\S+)\s*$/i.exec(part);
      if (m) asked = m[1];
    }
  }
  const legacy = req.headers['x-openstack-nova-api-version'];
  if (asked === undefined && typeof legacy === 'string') asked = legacy.trim();
  if (asked === undefined || asked === '') return MIN_VERSION;
  if (asked.toLowerCase() === 'latest') return MAX_VERSION;
  const m = /^([1-9]\d*)\.(0|[1-9]\d*)$/.exec(asked);
  if (!m) throw badRequest(`API Version String ${asked} is of invalid format. Must be of format MajorNum.MinorNum.`);
  const v = { major: Number(m[1]), minor: Number(m[2]) };
  if (cmp(v, MIN_VERSION) < 0 || cmp(v, MAX_VERSION) > 0) {
    throw new ApiError(406, `Version ${asked} is not supported by the API. Minimum is ${fmt(MIN_VERSION)} and maximum is ${fmt(MAX_VERSION)}.`);
  }
  return v;
}

/** onRequest hook for versioned routes: negotiates and sets the headers Nova answers with. */
export async function microversionHook(req: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('Vary', 'OpenStack-API-Version, X-OpenStack-Nova-API-Version');
  const v = negotiate(req);
  req.microversion = v;
  reply.header('OpenStack-API-Version', `compute ${fmt(v)}`);
  reply.header('X-OpenStack-Nova-API-Version', fmt(v));
}

/** True when the request's negotiated version is at least `major.minor`. */
export function atLeast(req: FastifyRequest, minor: number, major = 2): boolean {
  const v = req.microversion ?? MIN_VERSION;
  return cmp(v, { major, minor }) >= 0;
}
