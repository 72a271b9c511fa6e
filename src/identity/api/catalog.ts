// /v3/regions, /v3/services, /v3/endpoints: the catalog clients find services through.
import type { App } from '../../core/http.js';
import { badRequest, conflict, notFound } from '../../core/errors.js';
import { hexId } from '../../core/ids.js';
import { toDbBool } from '../../core/db.js';
import { uniquely, type EndpointRow, type RegionRow, type ServiceRow } from '../store.js';
import { allow, boolQuery, extraOf, listBody, q, type Deps } from './common.js';
import { renderEndpoint, renderRegion, renderService } from './render.js';
import { EndpointCreate, EndpointUpdate, RegionCreate, RegionUpdate, ServiceCreate, ServiceUpdate } from './schemas.js';
import { IdParams } from './schemas.js';

type P = { id: string };

async function must<T>(row: Promise<T | undefined>, what: string, id: string): Promise<T> {
  const r = await row;
  if (!r) throw notFound(`Could not find ${what}: ${id}.`);
  return r;
}

export async function catalogRoutes(app: App, d: Deps): Promise<void> {
  const db = d.core.db;
  const region = (id: string) => must(db.selectFrom('identity_regions').selectAll().where('id', '=', id).executeTakeFirst(), 'region', id);
  const service = (id: string) => must(db.selectFrom('identity_services').selectAll().where('id', '=', id).executeTakeFirst(), 'service', id);
  const endpoint = (id: string) => must(db.selectFrom('identity_endpoints').selectAll().where('id', '=', id).executeTakeFirst(), 'endpoint', id);
  const checkParent = async (id: string | null | undefined, self?: string) => {
    if (!id) return;
    if (id === self) throw badRequest('A region cannot be its own parent.');
    await region(id).catch(() => { throw badRequest(`Could not find parent region: ${id}.`); });
    // Refuse cycles through the parent chain.
    let cur: string | null = id;
    for (let i = 0; cur && i < 64; i++) {
      if (cur === self) throw badRequest('That parent would create a loop of regions.');
      cur = (await db.selectFrom('identity_regions').select('parent_region_id').where('id', '=', cur).executeTakeFirst())?.parent_region_id ?? null;
    }
  };

  // ---------- regions ----------
  const createRegion = async (id: string, b: { description?: string | null; parent_region_id?: string | null } & Record<string, unknown>) => {
    await checkParent(b.parent_region_id);
    const row: RegionRow = { id, description: b.description ?? '', parent_region_id: b.parent_region_id ?? null, extra: extraOf(b, ['description', 'parent_region_id']) };
    await uniquely(`region '${id}'`, () => db.insertInto('identity_regions').values(row).execute());
    return row;
  };
  app.post('/regions', { schema: { body: RegionCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_region');
    const row = await createRegion(req.body.region.id ?? hexId(), req.body.region);
    reply.code(201);
    return { region: renderRegion(d, row) };
  });
  app.put('/regions/:id', { schema: { params: IdParams, body: RegionCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_region');
    if (req.body.region.id && req.body.region.id !== req.params.id) throw badRequest('The region id in the body differs from the URL.');
    const row = await createRegion(req.params.id, req.body.region);
    reply.code(201);
    return { region: renderRegion(d, row) };
  });
  app.get('/regions', async (req) => {
    allow(d, req, 'identity:list_regions');
    let qb = db.selectFrom('identity_regions').selectAll().orderBy('id');
    if (q(req).parent_region_id !== undefined) qb = qb.where('parent_region_id', '=', q(req).parent_region_id!);
    return listBody(d, req, 'regions', (await qb.execute()).map((r) => renderRegion(d, r)));
  });
  app.get<{ Params: P }>('/regions/:id', async (req) => {
    allow(d, req, 'identity:get_region');
    return { region: renderRegion(d, await region(req.params.id)) };
  });
  app.patch('/regions/:id', { schema: { params: IdParams, body: RegionUpdate } }, async (req) => {
    allow(d, req, 'identity:update_region');
    const r = await region(req.params.id);
    const b = req.body.region;
    if (b.parent_region_id !== undefined) await checkParent(b.parent_region_id, r.id);
    const next: RegionRow = {
      ...r, description: b.description === undefined ? r.description : (b.description ?? ''),
      parent_region_id: b.parent_region_id === undefined ? r.parent_region_id : b.parent_region_id,
      extra: extraOf(b, ['description', 'parent_region_id'], r.extra),
    };
    await db.updateTable('identity_regions').set(next).where('id', '=', r.id).execute();
    return { region: renderRegion(d, next) };
  });
  app.delete<{ Params: P }>('/regions/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_region');
    const r = await region(req.params.id);
    const child = await db.selectFrom('identity_regions').select('id').where('parent_region_id', '=', r.id).executeTakeFirst();
    if (child) throw conflict(`Region ${r.id} has child regions.`);
    const ep = await db.selectFrom('identity_endpoints').select('id').where('region_id', '=', r.id).executeTakeFirst();
    if (ep) throw conflict(`Region ${r.id} still has endpoints.`);
    await db.deleteFrom('identity_regions').where('id', '=', r.id).execute();
    reply.code(204);
  });

  // ---------- services ----------
  const SVC = ['type', 'name', 'description', 'enabled'];
  app.post('/services', { schema: { body: ServiceCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_service');
    const b = req.body.service;
    const row: ServiceRow = { id: hexId(), type: b.type, name: b.name ?? '', description: b.description ?? '', enabled: toDbBool(b.enabled ?? true), extra: extraOf(b, SVC) };
    await db.insertInto('identity_services').values(row).execute();
    reply.code(201);
    return { service: renderService(d, row) };
  });
  app.get('/services', async (req) => {
    allow(d, req, 'identity:list_services');
    const f = q(req);
    let qb = db.selectFrom('identity_services').selectAll().orderBy('type');
    if (f.type !== undefined) qb = qb.where('type', '=', f.type);
    if (f.name !== undefined) qb = qb.where('name', '=', f.name);
    return listBody(d, req, 'services', (await qb.execute()).map((r) => renderService(d, r)));
  });
  app.get<{ Params: P }>('/services/:id', async (req) => {
    allow(d, req, 'identity:get_service');
    return { service: renderService(d, await service(req.params.id)) };
  });
  app.patch('/services/:id', { schema: { params: IdParams, body: ServiceUpdate } }, async (req) => {
    allow(d, req, 'identity:update_service');
    const r = await service(req.params.id);
    const b = req.body.service;
    const next: ServiceRow = {
      ...r, type: b.type ?? r.type, name: b.name ?? r.name, description: b.description === undefined ? r.description : (b.description ?? ''),
      enabled: b.enabled === undefined ? r.enabled : toDbBool(b.enabled), extra: extraOf(b, SVC, r.extra),
    };
    await db.updateTable('identity_services').set(next).where('id', '=', r.id).execute();
    return { service: renderService(d, next) };
  });
  app.delete<{ Params: P }>('/services/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_service');
    const r = await service(req.params.id);
    await db.transaction().execute(async (trx) => {
      await trx.deleteFrom('identity_endpoints').where('service_id', '=', r.id).execute();
      await trx.deleteFrom('identity_registered_limits').where('service_id', '=', r.id).execute();
      await trx.deleteFrom('identity_limits').where('service_id', '=', r.id).execute();
      await trx.deleteFrom('identity_services').where('id', '=', r.id).execute();
    });
    reply.code(204);
  });

  // ---------- endpoints ----------
  const EP = ['service_id', 'interface', 'url', 'region_id', 'region', 'enabled'];
  // `region_id` must name an existing region; the legacy `region` (v2-style clients, tempest)
  // creates a missing one with that id, as Keystone does.
  const endpointRegion = async (regionId: string | null | undefined, legacy: string | null | undefined): Promise<string | null> => {
    if (regionId) {
      await region(regionId).catch(() => { throw badRequest(`Could not find region: ${regionId}.`); });
      return regionId;
    }
    if (regionId === undefined && legacy) {
      const exists = await db.selectFrom('identity_regions').select('id').where('id', '=', legacy).executeTakeFirst();
      if (!exists) {
        await db.insertInto('identity_regions').values({ id: legacy, description: '', parent_region_id: null, extra: '{}' })
          .execute().catch(async (e) => { if (!await db.selectFrom('identity_regions').select('id').where('id', '=', legacy).executeTakeFirst()) throw e; });
      }
      return legacy;
    }
    return null;
  };
  app.post('/endpoints', { schema: { body: EndpointCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_endpoint');
    const b = req.body.endpoint;
    await service(b.service_id).catch(() => { throw badRequest(`Could not find service: ${b.service_id}.`); });
    const regionId = await endpointRegion(b.region_id, b.region);
    const row: EndpointRow = {
      id: hexId(), service_id: b.service_id, region_id: regionId, interface: b.interface, url: b.url,
      enabled: toDbBool(b.enabled ?? true), extra: extraOf(b, EP),
    };
    await db.insertInto('identity_endpoints').values(row).execute();
    reply.code(201);
    return { endpoint: renderEndpoint(d, row) };
  });
  app.get('/endpoints', async (req) => {
    allow(d, req, 'identity:list_endpoints');
    const f = q(req);
    let qb = db.selectFrom('identity_endpoints').selectAll().orderBy('service_id').orderBy('interface');
    if (f.service_id !== undefined) qb = qb.where('service_id', '=', f.service_id);
    if (f.interface !== undefined) qb = qb.where('interface', '=', f.interface);
    if (f.region_id !== undefined) qb = qb.where('region_id', '=', f.region_id);
    const enabled = boolQuery(f.enabled, 'enabled');
    if (enabled !== undefined) qb = qb.where('enabled', '=', toDbBool(enabled));
    return listBody(d, req, 'endpoints', (await qb.execute()).map((r) => renderEndpoint(d, r)));
  });
  app.get<{ Params: P }>('/endpoints/:id', async (req) => {
    allow(d, req, 'identity:get_endpoint');
    return { endpoint: renderEndpoint(d, await endpoint(req.params.id)) };
  });
  app.patch('/endpoints/:id', { schema: { params: IdParams, body: EndpointUpdate } }, async (req) => {
    allow(d, req, 'identity:update_endpoint');
    const r = await endpoint(req.params.id);
    const b = req.body.endpoint;
    if (b.service_id) await service(b.service_id).catch(() => { throw badRequest(`Could not find service: ${b.service_id}.`); });
    const regionId = b.region_id === undefined && b.region === undefined ? r.region_id : await endpointRegion(b.region_id, b.region);
    const next: EndpointRow = {
      ...r, service_id: b.service_id ?? r.service_id, interface: b.interface ?? r.interface, url: b.url ?? r.url,
      region_id: regionId, enabled: b.enabled === undefined ? r.enabled : toDbBool(b.enabled), extra: extraOf(b, EP, r.extra),
    };
    await db.updateTable('identity_endpoints').set(next).where('id', '=', r.id).execute();
    return { endpoint: renderEndpoint(d, next) };
  });
  app.delete<{ Params: P }>('/endpoints/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_endpoint');
    const r = await endpoint(req.params.id);
    await db.deleteFrom('identity_endpoints').where('id', '=', r.id).execute();
    reply.code(204);
  });
}
