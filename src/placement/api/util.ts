// Request parsing shared by Placement's routes: JSON body checks whose shape depends on the
// microversion, and the query-string syntaxes (resources=, required=, member_of=).
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { FastifyRequest } from 'fastify';
import { CODE, pBadRequest } from '../codes.js';
import type { ProviderRow } from '../store.js';
import { mv } from '../microversion.js';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** Validates a body against a TypeBox schema chosen at run time (shapes vary by microversion). */
export function validate<T>(schema: TSchema, body: unknown): T {
  let c = compiled.get(schema);
  if (!c) compiled.set(schema, (c = TypeCompiler.Compile(schema)));
  if (!c.Check(body)) {
    const e = c.Errors(body).First();
    const where = e?.path ? ` at '${e.path.replace(/^\//, '').replace(/\//g, '.')}'` : '';
    throw pBadRequest(`JSON does not validate: ${e?.message ?? 'invalid body'}${where}`);
  }
  return body as T;
}

export type Query = Record<string, string | string[] | undefined>;

/** 400 on parameters not in `allowed` (names or patterns), as Placement's query schemas do. */
export function allowOnly(q: Query, allowed: Array<string | RegExp>): void {
  for (const k of Object.keys(q)) {
    if (!allowed.some((a) => (typeof a === 'string' ? a === k : a.test(k)))) {
      throw pBadRequest(`Invalid query string parameters: Additional properties are not allowed ('${k}' was unexpected)`);
    }
  }
}

export function all(q: Query, key: string): string[] {
  const v = q[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A parameter given at most once. */
export function one(q: Query, key: string): string | undefined {
  const v = all(q, key);
  if (v.length > 1) throw pBadRequest(`Query parameter '${key}' may only be given once.`, CODE.duplicateKey);
  return v[0];
}

export function parseResources(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(',')) {
    const m = /^([A-Z0-9_]+):(\d+)$/.exec(part.trim());
    if (!m) {
      throw pBadRequest(`Badly formed resources parameter. Expected resources query string parameter in form: `
        + `?resources=VCPU:2,MEMORY_MB:1024. Got: ${text}.`, CODE.badValue);
    }
    const amount = Number(m[2]);
    if (amount < 1) throw pBadRequest(`Requested resource ${m[1]} expected positive integer amount.`, CODE.badValue);
    if (out[m[1]!] !== undefined) throw pBadRequest(`Resource class ${m[1]} appears more than once in resources.`, CODE.badValue);
    out[m[1]!] = amount;
  }
  return out;
}

/** required=A,!B and (1.39) required=in:C,D, possibly repeated: all-of lists of any-of lists. */
export function parseRequired(values: string[], minor: number, param = 'required'): { required: string[][]; forbidden: string[] } {
  const required: string[][] = [];
  const forbidden: string[] = [];
  for (const v of values) {
    if (!v) throw pBadRequest(`Invalid query string parameters: Expected '${param}' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC.`, CODE.missingValue);
    if (v.startsWith('in:')) {
      if (minor < 39) throw pBadRequest(`Invalid query string parameters: The format 'in:' is not supported in '${param}' before microversion 1.39.`);
      required.push(v.slice(3).split(',').map((t) => t.trim()));
      continue;
    }
    for (const t of v.split(',').map((x) => x.trim())) {
      if (t.startsWith('!')) {
        if (minor < 22) throw pBadRequest(`Invalid query string parameters: forbidden traits are not supported before microversion 1.22: ${t}`);
        forbidden.push(t.slice(1));
      } else {
        required.push([t]);
      }
    }
  }
  const names = [...required.flat(), ...forbidden];
  if (names.some((n) => !n)) throw pBadRequest(`Invalid query string parameters: Expected '${param}' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC.`, CODE.badValue);
  const conflicting = forbidden.filter((f) => required.some((r) => r.length === 1 && r[0] === f));
  if (conflicting.length) throw pBadRequest(`Conflicting required and forbidden traits found in the following traits keys: ${param}: (${conflicting.join(', ')})`);
  return { required, forbidden };
}

const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
export const isUuid = (s: string): boolean => UUID.test(s);

/** Normalizes a uuid to its dashed lowercase form. */
export function normUuid(s: string): string {
  const h = s.replace(/-/g, '').toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** member_of=a | in:a,b | !a | !in:a,b (1.32), repeatable from 1.24. */
export function parseMemberOf(values: string[], minor: number, param = 'member_of'): { memberOf: string[][]; forbidden: string[] } {
  if (values.length > 1 && minor < 24) throw pBadRequest(`Multiple ${param} parameters are not supported before microversion 1.24.`, CODE.duplicateKey);
  const memberOf: string[][] = [];
  const forbidden: string[] = [];
  for (const raw of values) {
    let v = raw;
    let neg = false;
    if (v.startsWith('!')) {
      if (minor < 32) throw pBadRequest(`Forbidden aggregates are not supported before microversion 1.32.`);
      neg = true; v = v.slice(1);
    }
    const list = v.startsWith('in:') ? v.slice(3).split(',') : [v];
    if (list.some((u) => !isUuid(u.trim()))) {
      throw pBadRequest(`Invalid query string parameters: Expected '${param}' parameter to contain valid UUID(s).`, CODE.badValue);
    }
    const uuids = list.map((u) => normUuid(u.trim()));
    if (neg) {
      if (raw.startsWith('!in:') === false && uuids.length > 1) throw pBadRequest(`Bad ${param} value: ${raw}`);
      forbidden.push(...uuids);
    } else {
      memberOf.push(uuids);
    }
  }
  return { memberOf, forbidden };
}

export function parseUuidParam(v: string, param: string): string {
  if (!isUuid(v)) throw pBadRequest(`Invalid query string parameters: Expected '${param}' parameter to be a format of uuid.`, CODE.badValue);
  return normUuid(v);
}

export function providerView(req: FastifyRequest, p: ProviderRow): Record<string, unknown> {
  const minor = mv(req);
  const base = `/placement/resource_providers/${p.uuid}`;
  const links = [
    { rel: 'self', href: base },
    { rel: 'inventories', href: `${base}/inventories` },
    { rel: 'usages', href: `${base}/usages` },
  ];
  if (minor >= 1) links.push({ rel: 'aggregates', href: `${base}/aggregates` });
  if (minor >= 6) links.push({ rel: 'traits', href: `${base}/traits` });
  if (minor >= 11) links.push({ rel: 'allocations', href: `${base}/allocations` });
  const out: Record<string, unknown> = { uuid: p.uuid, name: p.name, generation: p.generation, links };
  if (minor >= 14) {
    out.parent_provider_uuid = p.parent_uuid;
    out.root_provider_uuid = p.root_uuid;
  }
  return out;
}
