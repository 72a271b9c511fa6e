// /servers: create, list (brief and detail, filters, paging), show, update, delete.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { App } from '../../core/http.js';
import { badRequest } from '../../core/errors.js';
import type { HostDirectory } from '../hosts.js';
import type { ServerGroupService } from '../server-groups.js';
import type { Caller, ServerService } from '../servers/service.js';
import type { ServerRecord } from '../servers/store.js';
import type { InstanceLike } from '../servers/ports.js';
import { atLeast } from './microversion.js';
import { allow, boolParam, caller, lastOf, NovaBool, NovaInt, novaInt, type Query, type RouteDeps } from './common.js';
import { serverBrief, serverView, updateView, type ServerRuntime } from './server-views.js';
import { listServers, runtimeOf } from './server-list.js';

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
    min_count: Type.Optional(NovaInt(1)),
    max_count: Type.Optional(NovaInt(1)),
    return_reservation_id: Type.Optional(NovaBool),
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

/** Servers as the API shows them: what every row needs (hosts, groups, addresses) is read once per page, not per server. */
export async function renderServers(d: ServerRouteDeps, req: FastifyRequest, servers: ServerRecord[], insts?: Map<string, ServerRuntime>) {
  const c = caller(req);
  const ids = servers.map((s) => s.id);
  const runtime = insts ?? await runtimeOf(d.db, ids);
  const nodes = c.admin && atLeast(req, 16) && servers.some((s) => s.host)
    ? new Map((await d.hosts.list()).map((n) => [n.name, n.up])) : undefined;
  const groups = atLeast(req, 71) ? await d.groups.groupIdsOf(ids) : new Map<string, string[]>();
  const net = d.network?.();
  const live = servers.filter((s) => !s.deleted).map((s) => s.id);
  const addresses = net && live.length ? await net.addressesOf(live) : undefined;
  const securityGroups = net?.securityGroupsOf && live.length ? await net.securityGroupsOf(live) : undefined;
  return servers.map((s) => serverView(d, req, s, runtime.get(s.id), {
    admin: c.admin, hostUp: s.host ? nodes?.get(s.host) : undefined, groups: groups.get(s.id) ?? [],
    addresses: s.deleted ? {} : addresses && (addresses.get(s.id) ?? {}),
    securityGroups: s.deleted ? undefined : securityGroups?.get(s.id),
  }));
}

export async function renderServer(d: ServerRouteDeps, req: FastifyRequest, s: ServerRecord, inst?: InstanceLike) {
  return (await renderServers(d, req, [s], inst ? new Map([[s.id, inst]]) : undefined))[0]!;
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
      minCount: novaInt(b.min_count), maxCount: novaInt(b.max_count), hints, networks: b.networks ?? 'auto', securityGroups: b.security_groups?.map((g) => g.name), description: b.description,
      tags: b.tags, hostname: b.hostname, accessIPv4: b.accessIPv4, accessIPv6: canonicalIpv6(b.accessIPv6),
    });
    reply.code(202);
    if (b.return_reservation_id !== undefined && boolParam('return_reservation_id', b.return_reservation_id)) return { reservation_id: servers[0]!.reservationId };
    const s = servers[0]!;
    reply.header('Location', `${d.computeUrl()}/v2.1/servers/${s.id}`);
    return { server: { id: s.id, links: serverBrief(d, s).links, 'OS-DCF:diskConfig': 'MANUAL', security_groups: [{ name: 'default' }] } };
  });

  const list = async (req: FastifyRequest, path: 'servers' | 'servers/detail') => {
    const c = callerOf(req);
    allow(d, req, 'os_compute_api:servers:index');
    const q = req.query as Query;
    const all = boolParam('all_tenants', lastOf(q.all_tenants) ?? (q.all_tenants !== undefined ? 'true' : undefined)) === true;
    if (all) allow(d, req, 'os_compute_api:servers:index:get_all_tenants');
    return listServers(d, req, c, path);
  };

  app.get('/servers', async (req) => {
    const { servers, next } = await list(req, 'servers');
    return { servers: servers.map((s) => serverBrief(d, s)), ...(next ? { servers_links: next } : {}) };
  });

  app.get('/servers/detail', async (req) => {
    allow(d, req, 'os_compute_api:servers:detail');
    const { servers, insts, next } = await list(req, 'servers/detail');
    return { servers: await renderServers(d, req, servers, insts), ...(next ? { servers_links: next } : {}) };
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
    return { server: updateView(req, await renderServer(d, req, s)) };
  });

  app.delete('/servers/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const c = callerOf(req);
    const s = await d.servers.get(c, req.params.id);
    allow(d, req, 'os_compute_api:servers:delete', { project_id: s.projectId });
    await d.servers.delete(c, s.id);
    return reply.code(204).send();
  });
}
