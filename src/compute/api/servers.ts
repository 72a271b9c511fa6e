// /servers: create, list (brief and detail, filters, paging), show, update, delete.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { App } from '../../core/http.js';
import { badRequest } from '../../core/errors.js';
import { rowToInstance } from '../store.js';
import type { HostDirectory } from '../hosts.js';
import type { ServerGroupService } from '../server-groups.js';
import type { Caller, ServerService } from '../servers/service.js';
import { rowToServer, type ServerRecord } from '../servers/store.js';
import type { InstanceLike } from '../servers/ports.js';
import { atLeast } from './microversion.js';
import { allow, boolParam, caller, intParam, lastOf, nextLink, type Query, type RouteDeps } from './common.js';
import { serverBrief, serverView, statusOf, taskStateOf, vmStateOf } from './server-views.js';

const Str255 = Type.String({ maxLength: 255 });
const Meta = Type.Record(Type.String({ minLength: 1, maxLength: 255 }), Type.String({ maxLength: 255 }));
const ServerCreate = Type.Object({
  server: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 255 }),
    imageRef: Type.String({ maxLength: 255 }),
    flavorRef: Type.Union([Type.String({ minLength: 1, maxLength: 255 }), Type.Integer()]),
    key_name: Type.Optional(Str255),
    user_data: Type.Optional(Type.String({ maxLength: 65535 * 2 })),
    metadata: Type.Optional(Meta),
    availability_zone: Type.Optional(Str255),
    config_drive: Type.Optional(Type.Union([Type.Boolean(), Type.String()])),
    min_count: Type.Optional(Type.Integer({ minimum: 1 })),
    max_count: Type.Optional(Type.Integer({ minimum: 1 })),
    return_reservation_id: Type.Optional(Type.Boolean()),
    // No `type` on the string branch: with coerceTypes 'array', Ajv would otherwise unwrap a one-element list.
    networks: Type.Optional(Type.Union([Type.Unsafe<'auto' | 'none'>({ enum: ['auto', 'none'] }), Type.Array(Type.Object({
      uuid: Type.Optional(Type.String()), port: Type.Optional(Type.String()), fixed_ip: Type.Optional(Type.String()), tag: Type.Optional(Type.String()),
    }, { additionalProperties: false }))])),
    security_groups: Type.Optional(Type.Array(Type.Object({ name: Type.String() }))),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 60 }), { maxItems: 50 })),
    hostname: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    accessIPv4: Type.Optional(Type.String({ format: 'ipv4' })),
    accessIPv6: Type.Optional(Type.String({ format: 'ipv6' })),
    adminPass: Type.Optional(Type.String()),
    'OS-DCF:diskConfig': Type.Optional(Type.Union([Type.Literal('AUTO'), Type.Literal('MANUAL')])),
    personality: Type.Optional(Type.Array(Type.Object({ path: Type.String(), contents: Type.String() }))),
    block_device_mapping_v2: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()))),
  }, { additionalProperties: false }),
  'os:scheduler_hints': Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  'OS-SCH-HNT:scheduler_hints': Type.Optional(Type.Record(Type.String(), Type.Unknown())),
}, { additionalProperties: false });

const ServerUpdate = Type.Object({
  server: Type.Object({
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
    hostname: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    accessIPv4: Type.Optional(Type.String({ format: 'ipv4' })),
    accessIPv6: Type.Optional(Type.String({ format: 'ipv6' })),
    'OS-DCF:diskConfig': Type.Optional(Type.String()),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

/** IPv6 addresses in their canonical (compressed) form, as Nova stores accessIPv6. */
const canonicalIpv6 = (a: string | undefined) => (a === undefined ? undefined : new URL(`http://[${a}]/`).hostname.slice(1, -1));

const IdParams = Type.Object({ id: Type.String() });

export interface ServerRouteDeps extends RouteDeps {
  servers: ServerService;
  hosts: HostDirectory;
  groups: ServerGroupService;
  db: Kysely<any>;
  network?: () => import('../servers/networking.js').ServerNetworking | undefined;
  /** Remote consoles (tokens and URLs), for the legacy os-get*Console actions. */
  consoles?: import('../consoles/service.js').ConsoleService;
}

export function callerOf(req: FastifyRequest): Caller {
  const c = caller(req);
  return { auth: c.auth, admin: c.admin, projectId: c.projectId ?? '', userId: c.userId, requestId: req.id };
}

/** Instances of the given servers, by id (the runtime half of each server). */
export async function instancesOf(db: Kysely<any>, ids: string[]): Promise<Map<string, InstanceLike>> {
  const out = new Map<string, InstanceLike>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db.selectFrom('compute_instances').selectAll().where('id', 'in', ids.slice(i, i + 500)).execute();
    for (const r of rows) out.set(r.id as string, rowToInstance(r) as unknown as InstanceLike);
  }
  return out;
}

export async function renderServer(d: ServerRouteDeps, req: FastifyRequest, s: ServerRecord, inst?: InstanceLike) {
  const c = caller(req);
  const i = inst ?? (await instancesOf(d.db, [s.id])).get(s.id);
  const node = c.admin && s.host && atLeast(req, 16) ? await d.hosts.find(s.host) : undefined;
  const groups = atLeast(req, 71) ? (await d.groups.groupsOf(s.id)).map((g) => g.id) : [];
  const addresses = s.deleted ? {} : await d.network?.()?.addresses(s.id);
  return serverView(d, req, s, i, { admin: c.admin, hostUp: node ? node.up : undefined, groups, addresses });
}

export function registerServerRoutes(app: App, d: ServerRouteDeps): void {
  app.post('/servers', { schema: { body: ServerCreate } }, async (req, reply) => {
    allow(d, req, 'os_compute_api:servers:create');
    const c = callerOf(req);
    const b = req.body.server;
    if (atLeast(req, 37) && b.networks === undefined) throw badRequest("Invalid input for field/attribute server. 'networks' is a required property");
    if (b.personality && atLeast(req, 57)) throw badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('personality' was unexpected)");
    if (b.personality?.length) throw badRequest('File injection (personality) is not supported: use user_data or a config drive.');
    if (b.block_device_mapping_v2?.some((m) => m.source_type !== 'image' || m.destination_type === 'volume')) {
      throw badRequest('Booting from volume is not supported yet: use imageRef.');
    }
    if (!b.imageRef) throw badRequest('Missing imageRef attribute (booting from volume is not supported yet).');
    if (b.hostname !== undefined && !atLeast(req, 90)) throw badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('hostname' was unexpected)");
    if (b.tags !== undefined && !atLeast(req, 52)) throw badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)");
    if (b.description !== undefined && !atLeast(req, 19)) throw badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('description' was unexpected)");
    const hints = req.body['os:scheduler_hints'] ?? req.body['OS-SCH-HNT:scheduler_hints'] ?? {};
    const servers = await d.servers.create(c, {
      name: b.name, imageRef: b.imageRef, flavorRef: String(b.flavorRef), keyName: b.key_name, userData: b.user_data,
      metadata: b.metadata, availabilityZone: b.availability_zone,
      configDrive: typeof b.config_drive === 'string' ? boolParam('config_drive', b.config_drive) ?? false : b.config_drive,
      minCount: b.min_count, maxCount: b.max_count, hints, networks: b.networks ?? 'auto', securityGroups: b.security_groups?.map((g) => g.name), description: b.description,
      tags: b.tags, hostname: b.hostname, accessIPv4: b.accessIPv4, accessIPv6: canonicalIpv6(b.accessIPv6),
    });
    reply.code(202);
    if (b.return_reservation_id) return { reservation_id: servers[0]!.reservationId };
    const s = servers[0]!;
    reply.header('Location', `${d.computeUrl()}/v2.1/servers/${s.id}`);
    return { server: { id: s.id, links: serverBrief(d, s).links, 'OS-DCF:diskConfig': 'MANUAL', security_groups: [{ name: 'default' }] } };
  });

  const list = async (req: FastifyRequest) => {
    const c = callerOf(req);
    allow(d, req, 'os_compute_api:servers:index');
    const q = req.query as Query;
    const all = boolParam('all_tenants', lastOf(q.all_tenants) ?? (q.all_tenants !== undefined ? 'true' : undefined)) === true;
    if (all) allow(d, req, 'os_compute_api:servers:index:get_all_tenants');
    const changesSince = lastOf(q['changes-since']);
    const changesBefore = lastOf(q['changes-before']);
    for (const [k, v] of [['changes-since', changesSince], ['changes-before', changesBefore]] as const) {
      if (v !== undefined && Number.isNaN(Date.parse(v))) throw badRequest(`Invalid input for query parameters ${k}. '${v}' is not a valid ISO 8601 date-time.`);
    }
    const deleted = c.admin ? boolParam('deleted', lastOf(q.deleted)) : undefined;
    let query = d.db.selectFrom('compute_servers').selectAll();
    const project = lastOf(q.project_id) ?? lastOf(q.tenant_id);
    if (!all) query = query.where('project_id', '=', c.projectId);
    else if (project) query = query.where('project_id', '=', project);
    // Deleted servers show only when asked for (admins) or with changes-since, as in Nova.
    if (deleted !== true && !changesSince) query = query.where('deleted', '=', 0);
    if (deleted === true) query = query.where('deleted', '=', 1);
    if (changesSince) query = query.where('updated_at', '>=', new Date(changesSince).toISOString());
    if (changesBefore) query = query.where('updated_at', '<=', new Date(changesBefore).toISOString());
    const image = lastOf(q.image); if (image) query = query.where('image_id', '=', image);
    const keyName = lastOf(q.key_name); if (keyName) query = query.where('key_name', '=', keyName);
    const rid = lastOf(q.reservation_id); if (rid) query = query.where('reservation_id', '=', rid);
    const az = lastOf(q.availability_zone); if (az) query = query.where('availability_zone', '=', az);
    if (c.admin) { const host = lastOf(q.host); if (host) query = query.where('host', '=', host); }
    const sortDir = lastOf(q.sort_dir) === 'asc' ? 'asc' : 'desc';
    const sortKey = ({ created_at: 'created_at', updated_at: 'updated_at', display_name: 'name', host: 'host', uuid: 'id', launched_at: 'launched_at' } as Record<string, string>)[lastOf(q.sort_key) ?? 'created_at'];
    if (!sortKey) throw badRequest(`Invalid sort_key: ${lastOf(q.sort_key)}`);
    const rows = await query.orderBy(sortKey, sortDir).orderBy('id', sortDir).execute();
    const tags = new Map<string, string[]>();
    for (let i = 0; i < rows.length; i += 500) {
      const tagRows = await d.db.selectFrom('compute_server_tags').selectAll()
        .where('server_id', 'in', rows.slice(i, i + 500).map((r) => r.id as string)).execute();
      for (const t of tagRows) tags.set(t.server_id as string, [...(tags.get(t.server_id as string) ?? []), t.tag as string]);
    }
    let servers = rows.map((r) => rowToServer(r, (tags.get(r.id as string) ?? []).sort()));
    const insts = await instancesOf(d.db, servers.map((s) => s.id));
    const name = lastOf(q.name);
    if (name) {
      let re: RegExp;
      try { re = new RegExp(name); } catch { throw badRequest(`Invalid regular expression for name: ${name}`); }
      servers = servers.filter((s) => re.test(s.name));
    }
    const status = lastOf(q.status)?.toUpperCase();
    if (status) servers = servers.filter((s) => statusOf(vmStateOf(s, insts.get(s.id)), taskStateOf(s, insts.get(s.id))) === status);
    const flavor = lastOf(q.flavor); if (flavor) servers = servers.filter((s) => s.flavor.id === flavor);
    const locked = boolParam('locked', lastOf(q.locked)); if (locked !== undefined) servers = servers.filter((s) => s.locked === locked);
    const tagList = (k: string) => lastOf(q[k])?.split(',').filter(Boolean);
    const all_ = tagList('tags'); if (all_) servers = servers.filter((s) => all_.every((t) => s.tags.includes(t)));
    const any = tagList('tags-any'); if (any) servers = servers.filter((s) => any.some((t) => s.tags.includes(t)));
    const not = tagList('not-tags'); if (not) servers = servers.filter((s) => !not.every((t) => s.tags.includes(t)));
    const notAny = tagList('not-tags-any'); if (notAny) servers = servers.filter((s) => !notAny.some((t) => s.tags.includes(t)));
    // `ip`/`ip6`: regular expressions matched against the server's fixed and floating addresses.
    for (const [k, v] of [['ip', 4], ['ip6', 6]] as const) {
      const pattern = lastOf(q[k]);
      if (!pattern) continue;
      let re: RegExp;
      try { re = new RegExp(pattern); } catch { throw badRequest(`Invalid regular expression for ${k}: ${pattern}`); }
      const net = d.network?.();
      const keep: typeof servers = [];
      for (const s of servers) {
        const addrs = Object.values(net ? await net.addresses(s.id) : {}).flat() as { addr: string; version: number }[];
        if (addrs.some((a) => a.version === v && re.test(a.addr))) keep.push(s);
      }
      servers = keep;
    }
    const marker = lastOf(q.marker);
    if (marker) {
      const i = servers.findIndex((s) => s.id === marker);
      if (i < 0) throw badRequest(`marker [${marker}] not found`);
      servers = servers.slice(i + 1);
    }
    const limit = intParam('limit', lastOf(q.limit));
    const full = limit !== undefined && servers.length > limit;
    if (limit !== undefined) servers = servers.slice(0, limit);
    const next = full && servers.length ? nextLink(d, 'servers', Object.fromEntries(Object.entries(q).map(([k, v]) => [k, lastOf(v)])), servers[servers.length - 1]!.id) : undefined;
    return { servers, insts, next };
  };

  app.get('/servers', async (req) => {
    const { servers, next } = await list(req);
    return { servers: servers.map((s) => serverBrief(d, s)), ...(next ? { servers_links: next } : {}) };
  });

  app.get('/servers/detail', async (req) => {
    allow(d, req, 'os_compute_api:servers:detail');
    const { servers, insts, next } = await list(req);
    const out = [];
    for (const s of servers) out.push(await renderServer(d, req, s, insts.get(s.id)));
    return { servers: out, ...(next ? { servers_links: next } : {}) };
  });

  app.get('/servers/:id', { schema: { params: IdParams } }, async (req) => {
    const c = callerOf(req);
    const s = await d.servers.get(c, req.params.id);
    allow(d, req, 'os_compute_api:servers:show', { project_id: s.projectId });
    return { server: await renderServer(d, req, s) };
  });

  app.put('/servers/:id', { schema: { params: IdParams, body: ServerUpdate } }, async (req) => {
    const c = callerOf(req);
    const s0 = await d.servers.get(c, req.params.id);
    allow(d, req, 'os_compute_api:servers:update', { project_id: s0.projectId });
    const b = req.body.server;
    if (b.description !== undefined && !atLeast(req, 19)) throw badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('description' was unexpected)");
    if (b.hostname !== undefined && !atLeast(req, 90)) throw badRequest("Invalid input for field/attribute server. Additional properties are not allowed ('hostname' was unexpected)");
    const s = await d.servers.update(c, req.params.id, { ...b, ...(b.accessIPv6 !== undefined ? { accessIPv6: canonicalIpv6(b.accessIPv6) } : {}) });
    return { server: await renderServer(d, req, s) };
  });

  app.delete('/servers/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const c = callerOf(req);
    const s = await d.servers.get(c, req.params.id);
    allow(d, req, 'os_compute_api:servers:delete', { project_id: s.projectId });
    await d.servers.delete(c, s.id);
    return reply.code(204).send();
  });
}
