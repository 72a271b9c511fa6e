// GET /servers and /servers/detail: filtering, sorting and paging in two passes, so a page costs
// what the page holds, not what the project holds. Pass 1 reads only the narrow columns the
// filters, sort and marker need (one row per server; tags and runtime state only when a filter
// asks); pass 2 loads the page's full records, tags and instances. As in Nova, a page holds at
// most MAX_LIMIT servers (`limit` above it, or none, means MAX_LIMIT), and `servers_links` points
// to the next page when more servers match.
import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { badRequest } from '../../core/errors.js';
import { rowToServer, type ServerRecord } from '../servers/store.js';
import type { ServerNetworking } from '../servers/networking.js';
import { boolParam, intParam, lastOf, nextLink, type Query, type RouteDeps } from './common.js';
import { statusOf, taskStateOf, vmStateOf, type ServerRuntime } from './server-views.js';

/** Nova's `[api] max_limit` default. */
export const MAX_LIMIT = 1000;
const CHUNK = 500;

const SORT_KEYS: Record<string, string> = { created_at: 'created_at', updated_at: 'updated_at', display_name: 'name', host: 'host', uuid: 'id', launched_at: 'launched_at' };

export interface ListCaller { admin: boolean; projectId: string }

export interface ServerPage { servers: ServerRecord[]; insts: Map<string, ServerRuntime>; next?: { rel: string; href: string }[] }

/** The runtime half of each server (what the host agent observes), as the views need it. */
export async function runtimeOf(db: Kysely<any>, ids: string[]): Promise<Map<string, ServerRuntime>> {
  const out = new Map<string, ServerRuntime>();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const rows = await db.selectFrom('compute_instances').select(['id', 'power_state', 'task_state']).where('id', 'in', ids.slice(i, i + CHUNK)).execute();
    for (const r of rows) out.set(r.id as string, { powerState: r.power_state ?? null, taskState: r.task_state ?? null });
  }
  return out;
}

async function tagsOf(db: Kysely<any>, ids: string[]): Promise<Map<string, string[]>> {
  const tags = new Map<string, string[]>();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const rows = await db.selectFrom('compute_server_tags').select(['server_id', 'tag']).where('server_id', 'in', ids.slice(i, i + CHUNK)).execute();
    for (const t of rows) {
      const list = tags.get(t.server_id as string);
      if (list) list.push(t.tag as string); else tags.set(t.server_id as string, [t.tag as string]);
    }
  }
  for (const list of tags.values()) list.sort();
  return tags;
}

/** `path`: 'servers' or 'servers/detail' — the next link stays on the view it came from, as in Nova. */
export async function listServers(d: RouteDeps & { db: Kysely<any>; network?: () => ServerNetworking | undefined }, req: FastifyRequest, c: ListCaller,
  path: 'servers' | 'servers/detail'): Promise<ServerPage> {
  const q = req.query as Query;
  const all = boolParam('all_tenants', lastOf(q.all_tenants) ?? (q.all_tenants !== undefined ? 'true' : undefined)) === true;
  const changesSince = lastOf(q['changes-since']);
  const changesBefore = lastOf(q['changes-before']);
  for (const [k, v] of [['changes-since', changesSince], ['changes-before', changesBefore]] as const) {
    if (v !== undefined && Number.isNaN(Date.parse(v))) throw badRequest(`Invalid input for query parameters ${k}. '${v}' is not a valid ISO 8601 date-time.`);
  }
  const sortDir = lastOf(q.sort_dir) === 'asc' ? 'asc' : 'desc';
  const sortKey = SORT_KEYS[lastOf(q.sort_key) ?? 'created_at'];
  if (!sortKey) throw badRequest(`Invalid sort_key: ${lastOf(q.sort_key)}`);
  const limit = Math.min(intParam('limit', lastOf(q.limit)) ?? MAX_LIMIT, MAX_LIMIT);
  const name = lastOf(q.name);
  let nameRe: RegExp | undefined;
  if (name) {
    try { nameRe = new RegExp(name); } catch { throw badRequest(`Invalid regular expression for name: ${name}`); }
  }
  const status = lastOf(q.status)?.toUpperCase();
  const flavor = lastOf(q.flavor);
  const locked = boolParam('locked', lastOf(q.locked));
  const tagList = (k: string) => lastOf(q[k])?.split(',').filter(Boolean);
  const tagAll = tagList('tags'); const tagAny = tagList('tags-any'); const notTags = tagList('not-tags'); const notAny = tagList('not-tags-any');

  // Pass 1: the matching servers' ids in order, from narrow columns.
  const cols = ['s.id', 's.name', 's.vm_state', 's.task_state', 's.deleted', ...(flavor ? ['s.flavor'] : [])];
  let query = d.db.selectFrom('compute_servers as s').select(cols as any);
  if (status) {
    query = query.leftJoin('compute_instances as i', 'i.id', 's.id')
      .select(['i.power_state as i_power_state', 'i.task_state as i_task_state'] as any);
  }
  const deleted = c.admin ? boolParam('deleted', lastOf(q.deleted)) : undefined;
  const project = lastOf(q.project_id) ?? lastOf(q.tenant_id);
  if (!all) query = query.where('s.project_id', '=', c.projectId);
  else if (project) query = query.where('s.project_id', '=', project);
  // Deleted servers show only when asked for (admins) or with changes-since, as in Nova.
  if (deleted !== true && !changesSince) query = query.where('s.deleted', '=', 0);
  if (deleted === true) query = query.where('s.deleted', '=', 1);
  if (changesSince) query = query.where('s.updated_at', '>=', new Date(changesSince).toISOString());
  if (changesBefore) query = query.where('s.updated_at', '<=', new Date(changesBefore).toISOString());
  const eq = (col: string, v: string | undefined) => { if (v) query = query.where(`s.${col}`, '=', v); };
  eq('image_id', lastOf(q.image)); eq('key_name', lastOf(q.key_name)); eq('reservation_id', lastOf(q.reservation_id));
  eq('availability_zone', lastOf(q.availability_zone));
  if (c.admin) eq('host', lastOf(q.host));
  if (locked !== undefined) query = query.where('s.locked', '=', locked ? 1 : 0);
  let rows = await query.orderBy(`s.${sortKey}`, sortDir).orderBy('s.id', sortDir).execute() as Record<string, any>[];

  if (nameRe) rows = rows.filter((r) => nameRe.test(r.name));
  if (status) {
    rows = rows.filter((r) => {
      const s = { deleted: r.deleted === 1 || r.deleted === true, vmState: r.vm_state, taskState: r.task_state ?? null };
      // No instance row reads as nulls, which the views treat as they treat no instance.
      const inst = { powerState: r.i_power_state ?? null, taskState: r.i_task_state ?? null };
      return statusOf(vmStateOf(s, inst), taskStateOf(s, inst)) === status;
    });
  }
  if (flavor) rows = rows.filter((r) => (JSON.parse(r.flavor) as { id: string }).id === flavor);
  if (tagAll || tagAny || notTags || notAny) {
    const tags = await tagsOf(d.db, rows.map((r) => r.id));
    const has = (id: string, t: string) => tags.get(id)?.includes(t) ?? false;
    rows = rows.filter((r) => (!tagAll || tagAll.every((t) => has(r.id, t))) && (!tagAny || tagAny.some((t) => has(r.id, t)))
      && (!notTags || !notTags.every((t) => has(r.id, t))) && (!notAny || !notAny.some((t) => has(r.id, t))));
  }
  let ids = rows.map((r) => r.id as string);
  // `ip`/`ip6`: regular expressions matched against the server's fixed and floating addresses.
  for (const [k, v] of [['ip', 4], ['ip6', 6]] as const) {
    const pattern = lastOf(q[k]);
    if (!pattern) continue;
    let re: RegExp;
    try { re = new RegExp(pattern); } catch { throw badRequest(`Invalid regular expression for ${k}: ${pattern}`); }
    const net = d.network?.();
    const addresses = net ? await net.addressesOf(ids) : new Map<string, Record<string, unknown[]>>();
    ids = ids.filter((id) => (Object.values(addresses.get(id) ?? {}).flat() as { addr: string; version: number }[])
      .some((a) => a.version === v && re.test(a.addr)));
  }
  const marker = lastOf(q.marker);
  if (marker) {
    const i = ids.indexOf(marker);
    if (i < 0) throw badRequest(`marker [${marker}] not found`);
    ids = ids.slice(i + 1);
  }
  const more = ids.length > limit;
  ids = ids.slice(0, limit);

  // Pass 2: the page's records.
  const full = new Map<string, Record<string, any>>();
  for (let i = 0; i < ids.length; i += CHUNK) {
    for (const r of await d.db.selectFrom('compute_servers').selectAll().where('id', 'in', ids.slice(i, i + CHUNK)).execute()) full.set(r.id as string, r);
  }
  const tags = await tagsOf(d.db, ids);
  const servers = ids.map((id) => rowToServer(full.get(id)!, tags.get(id) ?? []));
  const insts = await runtimeOf(d.db, ids);
  const next = more ? nextLink(d, path, Object.fromEntries(Object.entries(q).map(([k, v]) => [k, lastOf(v)])), ids[ids.length - 1]) : undefined;
  return { servers, insts, next };
}
