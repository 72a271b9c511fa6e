// /os-aggregates and /os-availability-zone.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import type { Aggregate, AggregateService } from '../aggregates.js';
import type { HostDirectory } from '../hosts.js';
import { atLeast } from './microversion.js';
import { allow, novaTime, type RouteDeps } from './common.js';

const Name = Type.String({ minLength: 1, maxLength: 255 });
const AggCreate = Type.Object({
  aggregate: Type.Object({
    name: Name,
    availability_zone: Type.Optional(Type.Union([Name, Type.Null()])),
  }, { additionalProperties: false }),
}, { additionalProperties: false });
const AggUpdate = Type.Object({
  aggregate: Type.Object({
    name: Type.Optional(Name),
    availability_zone: Type.Optional(Type.Union([Name, Type.Null()])),
  }, { additionalProperties: false, minProperties: 1 }),
}, { additionalProperties: false });
const HostRef = Type.Object({ host: Name }, { additionalProperties: false });
const AggAction = Type.Union([
  Type.Object({ add_host: HostRef }, { additionalProperties: false }),
  Type.Object({ remove_host: HostRef }, { additionalProperties: false }),
  Type.Object({
    set_metadata: Type.Object({
      metadata: Type.Record(Type.String({ minLength: 1, maxLength: 255 }), Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
    }, { additionalProperties: false }),
  }, { additionalProperties: false }),
]);
const IdParams = Type.Object({ id: Type.String() });

function view(req: FastifyRequest, a: Aggregate) {
  return {
    id: a.id, name: a.name, availability_zone: a.availabilityZone, hosts: a.hosts, metadata: a.metadata,
    created_at: novaTime(a.createdAt), updated_at: novaTime(a.updatedAt),
    deleted: false, deleted_at: null,
    ...(atLeast(req, 41) ? { uuid: a.uuid } : {}),
  };
}

export function registerAggregateRoutes(app: App, deps: RouteDeps, aggregates: AggregateService, hosts: HostDirectory): void {
  app.get('/os-aggregates', async (req) => {
    allow(deps, req, 'os_compute_api:os-aggregates:index');
    return { aggregates: (await aggregates.list()).map((a) => view(req, a)) };
  });
  app.post('/os-aggregates', { schema: { body: AggCreate } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-aggregates:create');
    const b = req.body.aggregate;
    const a = await aggregates.create(b.name, b.availability_zone);
    const { hosts: _h, metadata: _m, ...brief } = view(req, a);
    return { aggregate: brief };
  });
  app.get('/os-aggregates/:id', { schema: { params: IdParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-aggregates:show');
    return { aggregate: view(req, await aggregates.get(req.params.id)) };
  });
  app.put('/os-aggregates/:id', { schema: { params: IdParams, body: AggUpdate } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-aggregates:update');
    const b = req.body.aggregate;
    return { aggregate: view(req, await aggregates.update(req.params.id, { name: b.name, availabilityZone: b.availability_zone })) };
  });
  app.delete('/os-aggregates/:id', { schema: { params: IdParams } }, async (req, reply) => {
    allow(deps, req, 'os_compute_api:os-aggregates:delete');
    await aggregates.delete(req.params.id);
    return reply.code(200).send();
  });
  app.post('/os-aggregates/:id/action', { schema: { params: IdParams, body: AggAction } }, async (req) => {
    const b = req.body as { add_host?: { host: string }; remove_host?: { host: string }; set_metadata?: { metadata: Record<string, string | null> } };
    let a: Aggregate;
    if (b.add_host) {
      allow(deps, req, 'os_compute_api:os-aggregates:add_host');
      a = await aggregates.addHost(req.params.id, b.add_host.host);
    } else if (b.remove_host) {
      allow(deps, req, 'os_compute_api:os-aggregates:remove_host');
      a = await aggregates.removeHost(req.params.id, b.remove_host.host);
    } else {
      allow(deps, req, 'os_compute_api:os-aggregates:set_metadata');
      a = await aggregates.setMetadata(req.params.id, b.set_metadata!.metadata);
    }
    return { aggregate: view(req, a) };
  });

  // Availability zones: the zones that have compute hosts; available when one of them can take servers.
  const zones = async () => {
    const nodes = await hosts.list();
    const zoneOf = await aggregates.zoneMap(nodes.map((n) => n.name));
    const out = new Map<string, typeof nodes>();
    for (const n of nodes) {
      const z = zoneOf.get(n.name)!;
      out.set(z, [...(out.get(z) ?? []), n]);
    }
    return [...out.entries()].sort(([a], [b]) => a.localeCompare(b));
  };
  app.get('/os-availability-zone', async (req) => {
    allow(deps, req, 'os_compute_api:os-availability-zone:list');
    return {
      availabilityZoneInfo: (await zones()).map(([zoneName, ns]) => ({
        zoneName, zoneState: { available: ns.some((n) => n.schedulable) }, hosts: null,
      })),
    };
  });
  app.get('/os-availability-zone/detail', async (req) => {
    allow(deps, req, 'os_compute_api:os-availability-zone:detail');
    return {
      availabilityZoneInfo: (await zones()).map(([zoneName, ns]) => ({
        zoneName,
        zoneState: { available: ns.some((n) => n.schedulable) },
        hosts: Object.fromEntries(ns.map((n) => [n.name, {
          'nova-compute': { available: n.up, active: !n.disabled, updated_at: novaTime(n.heartbeatAt) },
        }])),
      })),
    };
  });
}
