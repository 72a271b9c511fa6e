// GET /v2/images query string → a ListQuery (filters, sort, paging), with clear 400s.
import { badRequest } from '../../core/errors.js';
import { SORT_KEYS, type ListQuery, type SortKey } from '../store.js';

export type RawQuery = Record<string, string | string[] | undefined>;
export type ParsedList = Omit<ListQuery, 'viewer' | 'marker'> & { markerId?: string };

const DEFAULT_LIMIT = 25;
const MAX_LIMIT = 1000;
const TIME_OPS = { gt: '>', gte: '>=', lt: '<', lte: '<=', eq: '=', neq: '<>' } as const;
const KNOWN = new Set(['limit', 'marker', 'sort_key', 'sort_dir', 'sort', 'name', 'id', 'status', 'visibility', 'owner',
  'member_status', 'tag', 'disk_format', 'container_format', 'size_min', 'size_max', 'os_hidden', 'protected',
  'created_at', 'updated_at']);

const all = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
function one(q: RawQuery, key: string): string | undefined {
  const v = all(q[key]);
  if (v.length > 1) throw badRequest(`Query parameter '${key}' may be given once.`);
  return v[0];
}
/** "in:a,b" → [a, b]; plain value → [value]. */
function values(q: RawQuery, key: string): string[] | undefined {
  const v = one(q, key);
  if (v === undefined) return undefined;
  return v.startsWith('in:') ? v.slice(3).split(',').map((s) => s.replace(/^"|"$/g, '')).filter(Boolean) : [v];
}
function int(q: RawQuery, key: string): number | undefined {
  const v = one(q, key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw badRequest(`Query parameter '${key}' must be a non-negative integer, got '${v}'.`);
  return Number(v);
}
function bool(q: RawQuery, key: string): boolean | undefined {
  const v = one(q, key)?.toLowerCase();
  if (v === undefined) return undefined;
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw badRequest(`Query parameter '${key}' must be a boolean, got '${v}'.`);
}
function sortKey(k: string): SortKey {
  if (!(k in SORT_KEYS)) throw badRequest(`Invalid sort key '${k}': one of ${Object.keys(SORT_KEYS).join(', ')}.`);
  return k as SortKey;
}
function sortDir(d: string): 'asc' | 'desc' {
  if (d !== 'asc' && d !== 'desc') throw badRequest(`Invalid sort direction '${d}': asc or desc.`);
  return d;
}

export function parseListQuery(q: RawQuery): ParsedList {
  const limit = Math.min(int(q, 'limit') ?? DEFAULT_LIMIT, MAX_LIMIT);
  let sort: ParsedList['sort'];
  const sortParam = one(q, 'sort');
  const keys = all(q.sort_key).flatMap((k) => k.split(',')).filter(Boolean);
  const dirs = all(q.sort_dir).flatMap((d) => d.split(',')).filter(Boolean);
  if (sortParam !== undefined) {
    if (keys.length || dirs.length) throw badRequest("'sort' cannot be combined with 'sort_key'/'sort_dir'.");
    sort = sortParam.split(',').filter(Boolean).map((s) => {
      const [k, d] = s.split(':');
      return { key: sortKey(k!.trim()), dir: sortDir((d ?? 'desc').trim()) };
    });
  } else if (keys.length) {
    if (dirs.length > 1 && dirs.length !== keys.length) throw badRequest('Give one sort_dir, or one per sort_key.');
    sort = keys.map((k, i) => ({ key: sortKey(k), dir: sortDir(dirs[i] ?? dirs[0] ?? 'desc') }));
  } else {
    sort = [{ key: 'created_at', dir: dirs[0] ? sortDir(dirs[0]) : 'desc' }];
  }
  const visibility = one(q, 'visibility');
  if (visibility && !['public', 'private', 'shared', 'community', 'all'].includes(visibility)) {
    throw badRequest(`Invalid visibility '${visibility}': public, private, shared, community or all.`);
  }
  const memberStatus = one(q, 'member_status');
  if (memberStatus && !['pending', 'accepted', 'rejected', 'all'].includes(memberStatus)) {
    throw badRequest(`Invalid member_status '${memberStatus}': pending, accepted, rejected or all.`);
  }
  const times: NonNullable<ListQuery['times']> = [];
  for (const column of ['created_at', 'updated_at'] as const) {
    const v = one(q, column);
    if (v === undefined) continue;
    const m = /^(gt|gte|lt|lte|eq|neq):(.+)$/.exec(v);
    const when = m ? Date.parse(m[2]!) : NaN;
    if (!m || Number.isNaN(when)) throw badRequest(`Invalid ${column} filter '${v}': OP:ISO-TIME with OP one of gt, gte, lt, lte, eq, neq.`);
    times.push({ column, op: TIME_OPS[m[1] as keyof typeof TIME_OPS], value: new Date(when).toISOString() });
  }
  const properties: Record<string, string> = {};
  for (const key of Object.keys(q)) {
    if (KNOWN.has(key)) continue;
    const v = one(q, key);
    if (v !== undefined) properties[key] = v;
  }
  return {
    limit, markerId: one(q, 'marker'), sort,
    visibility: visibility as ParsedList['visibility'], memberStatus: memberStatus as ParsedList['memberStatus'],
    ids: values(q, 'id'), names: values(q, 'name'), statuses: values(q, 'status'), owner: one(q, 'owner'),
    diskFormats: values(q, 'disk_format'), containerFormats: values(q, 'container_format'),
    sizeMin: int(q, 'size_min'), sizeMax: int(q, 'size_max'), osHidden: bool(q, 'os_hidden'), protected: bool(q, 'protected'),
    tags: all(q.tag), properties, times,
  };
}

/** The `next` link: the same query with the marker moved to the last image. */
export function nextLink(q: RawQuery, lastId: string): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (k === 'marker') continue;
    for (const x of all(v)) p.append(k, x);
  }
  p.set('marker', lastId);
  return `/v2/images?${p.toString()}`;
}
