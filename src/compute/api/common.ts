// What every compute route shares: the caller, policy enforcement, links, query parsing.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { authOf, isAdmin } from '../../core/auth.js';
import type { AuthContext } from '../../core/auth.js';
import { badRequest } from '../../core/errors.js';
import type { PolicyEngine, Target } from '../../core/policy.js';

export interface RouteDeps {
  policy: PolicyEngine;
  /** Public base URL of the compute API, without the version (http://host:port/compute). */
  computeUrl(): string;
}

export interface Caller {
  auth: AuthContext;
  admin: boolean;
  projectId?: string;
  userId: string;
}

export function caller(req: FastifyRequest): Caller {
  const auth = authOf(req);
  return { auth, admin: isAdmin(auth), projectId: auth.projectId, userId: auth.userId };
}

/** Enforces `rule` (Nova's policy name) on the request's caller; returns the caller. */
export function allow(deps: RouteDeps, req: FastifyRequest, rule: string, target?: Target): Caller {
  const c = caller(req);
  deps.policy.enforce(rule, c.auth, target ?? { project_id: c.projectId, user_id: c.userId });
  return c;
}

export function links(deps: RouteDeps, collection: string, id: string | number) {
  const base = deps.computeUrl();
  return [
    { rel: 'self', href: `${base}/v2.1/${collection}/${id}` },
    { rel: 'bookmark', href: `${base}/${collection}/${id}` },
  ];
}

/** A `*_links` next link for paged collections, when the page is full. */
export function nextLink(deps: RouteDeps, path: string, query: Record<string, unknown>, marker: string | undefined) {
  if (marker === undefined) return undefined;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && k !== 'marker') q.set(k, String(v));
  q.set('marker', marker);
  return [{ rel: 'next', href: `${deps.computeUrl()}/v2.1/${path}?${q}` }];
}

/** Nova's `parameter_types.boolean` in request bodies: a JSON boolean or one of these strings. */
export const NovaBool = Type.Union([Type.Boolean(),
  Type.String({ pattern: '^(True|TRUE|true|1|ON|On|on|YES|Yes|yes|False|FALSE|false|0|OFF|Off|off|NO|No|no)$' })]);

/** Nova's `flavor_param`-style integers in bodies: a JSON integer or a string of digits (bodies are not coerced). */
export const NovaInt = (minimum: number, maximum?: number) => Type.Union([Type.Integer(maximum === undefined ? { minimum } : { minimum, maximum }),
  Type.String({ pattern: minimum < 0 ? '^-?[0-9]+$' : '^[0-9]+$' })]);
export const novaInt = <T extends number | string | undefined>(v: T): T extends undefined ? number | undefined : number =>
  (v === undefined ? undefined : Number(v)) as never;

/** Nova's lenient boolean query parsing ('1', 'true', 'yes', 'on' ...); undefined when absent. */
export function boolParam(name: string, v: unknown): boolean | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const s = String(v).toLowerCase();
  if (['1', 't', 'true', 'on', 'y', 'yes'].includes(s)) return true;
  if (['0', 'f', 'false', 'off', 'n', 'no'].includes(s)) return false;
  throw badRequest(`Invalid value '${String(v)}' for '${name}': expected a boolean.`);
}

export function intParam(name: string, v: unknown, min = 0): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const s = String(v);
  if (!/^-?\d+$/.test(s) || Number(s) < min || Number(s) > Number.MAX_SAFE_INTEGER) {
    throw badRequest(`Invalid input for query parameters ${name}. Value should be an integer >= ${min}.`);
  }
  return Number(s);
}

export function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (v === undefined || v === '') return undefined;
  if (!allowed.includes(v as T)) throw badRequest(`Invalid value '${String(v)}' for '${name}': expected one of ${allowed.join(', ')}.`);
  return v as T;
}

/** Query strings as Fastify parses them: repeated keys become arrays; take the last one. */
export function lastOf(v: unknown): string | undefined {
  if (Array.isArray(v)) return v.length ? String(v[v.length - 1]) : undefined;
  return v === undefined ? undefined : String(v);
}

export type Query = Record<string, string | string[] | undefined>;

/** Nova's timestamp style in older APIs (aggregates, services): no zone, microseconds. */
export function novaTime(iso: string | null | undefined): string | null {
  if (!iso) return null;
  return new Date(iso).toISOString().replace(/\.(\d{3})Z$/, '.$1000');
}
