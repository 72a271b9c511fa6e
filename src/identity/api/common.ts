// Helpers every identity route uses: links, list envelopes, policy, query filters.
import type { FastifyRequest } from 'fastify';
import { authOf } from '../../core/auth.js';
import { badRequest } from '../../core/errors.js';
import type { ServiceContext } from '../../core/service.js';
import type { Target as PolicyTarget } from '../../core/policy.js';
import type { IdentityCore } from '../service.js';

export interface Deps {
  ctx: ServiceContext;
  core: IdentityCore;
}

export const v3Url = (d: Deps, path = '') => `${d.ctx.baseUrl()}/identity/v3${path}`;

export function withLinks<T extends object>(d: Deps, collection: string, id: string, body: T): T & { links: { self: string } } {
  return { ...body, links: { self: v3Url(d, `/${collection}/${id}`) } };
}

export function listBody(d: Deps, req: FastifyRequest, key: string, items: unknown[]): Record<string, unknown> {
  return { [key]: items, links: { self: `${d.ctx.baseUrl()}${req.url}`, previous: null, next: null } };
}

/** Enforces `rule` for the caller against `target`; returns the caller. */
export function allow(d: Deps, req: FastifyRequest, rule: string, target: PolicyTarget = {}) {
  const auth = authOf(req);
  // Keystone's rules name attributes as target.<x>; plain <x> works too.
  d.ctx.policy.enforce(rule, auth, { ...target, target });
  return auth;
}

/** A boolean query filter (?enabled=true|false|0|1), undefined when absent. */
export function boolQuery(v: unknown, name: string): boolean | undefined {
  if (v === undefined) return undefined;
  const s = String(v).toLowerCase();
  if (['true', '1', 'yes', ''].includes(s)) return true;
  if (['false', '0', 'no'].includes(s)) return false;
  throw badRequest(`Invalid value for query parameter '${name}': expecting a boolean.`);
}

export type Query = Record<string, string | undefined>;
export const q = (req: FastifyRequest): Query => (req.query ?? {}) as Query;

/** The attributes of a request entity that are not first-class columns (Keystone keeps them). */
export function extraOf(entity: Record<string, unknown>, known: string[], previous = '{}'): string {
  const extra: Record<string, unknown> = JSON.parse(previous || '{}');
  for (const [k, v] of Object.entries(entity)) {
    if (known.includes(k) || k === 'links' || k === 'id') continue;
    if (JSON.stringify(v).length > 4096) throw badRequest(`Attribute '${k}' is too large.`);
    extra[k] = v;
  }
  return JSON.stringify(extra);
}

export const IdParam = { type: 'object', properties: { id: { type: 'string', maxLength: 255 } }, required: ['id'] } as const;
