// Neutron list semantics shared by every collection: attribute filters (repeatable = any of),
// `fields`, sort_key/sort_dir, limit/marker/page_reverse paging with `<collection>_links`.
import { badRequest } from '../../core/errors.js';

type Query = Record<string, string | string[] | undefined>;
type Item = Record<string, unknown>;
const RESERVED = new Set(['fields', 'sort_key', 'sort_dir', 'limit', 'marker', 'page_reverse',
  'tags', 'tags-any', 'not-tags', 'not-tags-any']);

const many = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function matches(value: unknown, wanted: string): boolean {
  if (value === null || value === undefined) return wanted === '' || wanted === 'None';
  if (typeof value === 'boolean') return String(value) === wanted.toLowerCase();
  if (Array.isArray(value)) return value.some((x) => (typeof x === 'object' ? false : String(x) === wanted));
  return String(value) === wanted;
}

/** `fixed_ips=ip_address=10.0.0.5` / `fixed_ips=subnet_id=X` / `ip_address_substr=...`, as Neutron. */
function matchesFixedIp(value: unknown, wanted: string): boolean {
  const [k, v = ''] = wanted.split(/=(.*)/s);
  return Array.isArray(value) && value.some((f: Record<string, string>) =>
    k === 'ip_address_substr' ? f.ip_address?.includes(v) : f[k!] === v);
}

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const x = typeof a === 'object' ? JSON.stringify(a) : String(a);
  const y = typeof b === 'object' ? JSON.stringify(b) : String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function listResponse(collection: string, items: Item[], query: Query, selfUrl: string): Record<string, unknown> {
  let out = items;
  const known = new Set(items.flatMap((i) => Object.keys(i)));
  for (const [key, raw] of Object.entries(query)) {
    if (RESERVED.has(key)) continue;
    if (items.length && !known.has(key)) throw badRequest(`[${key}] is invalid attribute for filtering`, 'HTTPBadRequest');
    const wanted = many(raw);
    out = out.filter((i) => wanted.some((w) => (key === 'fixed_ips' ? matchesFixedIp(i[key], w) : matches(i[key], w))));
  }
  const tagSets = (k: string) => many(query[k]).flatMap((v) => v.split(',')).filter(Boolean);
  const tagsOf = (i: Item) => (Array.isArray(i.tags) ? (i.tags as string[]) : []);
  if (tagSets('tags').length) out = out.filter((i) => tagSets('tags').every((t) => tagsOf(i).includes(t)));
  if (tagSets('tags-any').length) out = out.filter((i) => tagSets('tags-any').some((t) => tagsOf(i).includes(t)));
  if (tagSets('not-tags').length) out = out.filter((i) => !tagSets('not-tags').every((t) => tagsOf(i).includes(t)));
  if (tagSets('not-tags-any').length) out = out.filter((i) => !tagSets('not-tags-any').some((t) => tagsOf(i).includes(t)));

  const keys = many(query.sort_key);
  const dirs = many(query.sort_dir);
  for (const d of dirs) if (d !== 'asc' && d !== 'desc') throw badRequest(`${d} is an invalid value for sort_dir, valid values are 'asc' and 'desc'`);
  for (const k of keys) if (items.length && !known.has(k)) throw badRequest(`${k} is an invalid attribute for sort_key`);
  const order: Array<[string, number]> = keys.map((k, i) => [k, (dirs[i] ?? dirs[0] ?? 'asc') === 'desc' ? -1 : 1]);
  if (!keys.includes('id')) order.push(['id', order[0]?.[1] ?? 1]);
  out = [...out].sort((a, b) => {
    for (const [k, d] of order) {
      const c = compare(a[k], b[k]);
      if (c) return c * d;
    }
    return 0;
  });

  const limitText = many(query.limit)[0];
  const limit = limitText === undefined ? 0 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 0) throw badRequest(`Limit must be an integer 0 or greater and not '${limitText}'`);
  const marker = many(query.marker)[0];
  const reverse = /^true$/i.test(many(query.page_reverse)[0] ?? '');
  let page = out;
  let more = false;
  if (marker !== undefined) {
    const at = out.findIndex((i) => i.id === marker);
    if (at < 0) throw badRequest(`Marker ${marker} could not be found.`, 'HTTPBadRequest');
    page = reverse ? out.slice(0, at) : out.slice(at + 1);
  }
  if (limit > 0 && page.length > limit) {
    more = true;
    page = reverse ? page.slice(page.length - limit) : page.slice(0, limit);
  }

  const fields = many(query.fields);
  const shown = fields.length ? page.map((i) => Object.fromEntries(fields.filter((f) => f in i).map((f) => [f, i[f]]))) : page;
  const body: Record<string, unknown> = { [collection]: shown };
  if (limit > 0) {
    const links: Array<{ rel: string; href: string }> = [];
    const link = (rel: string, m: string, rev: boolean) => {
      const u = new URL(selfUrl);
      u.searchParams.delete('marker');
      u.searchParams.delete('page_reverse');
      u.searchParams.set('limit', String(limit));
      u.searchParams.set('marker', m);
      if (rev) u.searchParams.set('page_reverse', 'True');
      links.push({ rel, href: u.toString() });
    };
    const first = page[0]?.id as string | undefined, last = page[page.length - 1]?.id as string | undefined;
    if (reverse) {
      if (more && first) link('previous', first, true);
      if (marker && last) link('next', last, false);
    } else {
      if (more && last) link('next', last, false);
      if (marker && first) link('previous', first, true);
    }
    body[`${collection}_links`] = links;
  }
  return body;
}

export function projectFields(item: Item, query: Query): Item {
  const fields = many(query.fields);
  return fields.length ? Object.fromEntries(fields.filter((f) => f in item).map((f) => [f, item[f]])) : item;
}
