// Unified limits: /v3/registered_limits (defaults per service/region/resource) and /v3/limits
// (per project or domain). Other services read them through IdentityModule.getLimit.
import type { App } from '../../core/http.js';
import { badRequest, notFound } from '../../core/errors.js';
import { hexId } from '../../core/ids.js';
import { uniquely, type IdentityDb, type LimitRow, type RegisteredLimitRow } from '../store.js';
import { allow, listBody, q, v3Url, type Deps } from './common.js';
import { IdParams, LimitsCreate, LimitUpdate, RegisteredLimitsCreate, RegisteredLimitUpdate } from './schemas.js';

type P = { id: string };

async function checkRefs(db: IdentityDb, serviceId: string, regionId: string | null | undefined): Promise<void> {
  const s = await db.selectFrom('identity_services').select('id').where('id', '=', serviceId).executeTakeFirst();
  if (!s) throw badRequest(`Could not find service: ${serviceId}.`);
  if (regionId) {
    const r = await db.selectFrom('identity_regions').select('id').where('id', '=', regionId).executeTakeFirst();
    if (!r) throw badRequest(`Could not find region: ${regionId}.`);
  }
}

export async function limitRoutes(app: App, d: Deps): Promise<void> {
  const db = d.core.db;
  const renderReg = (r: RegisteredLimitRow) => ({
    id: r.id, service_id: r.service_id, region_id: r.region_id || null, resource_name: r.resource_name,
    default_limit: r.default_limit, description: r.description || null, links: { self: v3Url(d, `/registered_limits/${r.id}`) },
  });
  const renderLimit = (r: LimitRow) => ({
    id: r.id, project_id: r.project_id || null, domain_id: r.domain_id || null, service_id: r.service_id,
    region_id: r.region_id || null, resource_name: r.resource_name, resource_limit: r.resource_limit,
    description: r.description || null, links: { self: v3Url(d, `/limits/${r.id}`) },
  });

  app.get('/limits/model', async (req) => {
    allow(d, req, 'identity:get_limit_model');
    return { model: { name: 'flat', description: 'Limit enforcement and validation does not take project hierarchy into consideration.' } };
  });

  // ---------- registered limits ----------
  app.post('/registered_limits', { schema: { body: RegisteredLimitsCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_registered_limits');
    const rows: RegisteredLimitRow[] = [];
    for (const b of req.body.registered_limits) {
      await checkRefs(db, b.service_id, b.region_id);
      rows.push({ id: hexId(), service_id: b.service_id, region_id: b.region_id ?? '', resource_name: b.resource_name, default_limit: b.default_limit, description: b.description ?? '' });
    }
    // All or nothing.
    await uniquely('registered limit', () => db.transaction().execute(async (trx) => {
      for (const r of rows) await trx.insertInto('identity_registered_limits').values(r).execute();
    }));
    reply.code(201);
    return { registered_limits: rows.map(renderReg) };
  });
  app.get('/registered_limits', async (req) => {
    allow(d, req, 'identity:list_registered_limits');
    const f = q(req);
    let qb = db.selectFrom('identity_registered_limits').selectAll().orderBy('resource_name');
    if (f.service_id !== undefined) qb = qb.where('service_id', '=', f.service_id);
    if (f.region_id !== undefined) qb = qb.where('region_id', '=', f.region_id);
    if (f.resource_name !== undefined) qb = qb.where('resource_name', '=', f.resource_name);
    return listBody(d, req, 'registered_limits', (await qb.execute()).map(renderReg));
  });
  const reg = async (id: string) => {
    const r = await db.selectFrom('identity_registered_limits').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw notFound(`Could not find registered limit: ${id}.`);
    return r;
  };
  app.get<{ Params: P }>('/registered_limits/:id', async (req) => {
    allow(d, req, 'identity:get_registered_limit');
    return { registered_limit: renderReg(await reg(req.params.id)) };
  });
  app.patch('/registered_limits/:id', { schema: { params: IdParams, body: RegisteredLimitUpdate } }, async (req) => {
    allow(d, req, 'identity:update_registered_limit');
    const r = await reg(req.params.id);
    const b = req.body.registered_limit;
    const next: RegisteredLimitRow = {
      ...r, service_id: b.service_id ?? r.service_id, region_id: b.region_id === undefined ? r.region_id : (b.region_id ?? ''),
      resource_name: b.resource_name ?? r.resource_name, default_limit: b.default_limit ?? r.default_limit,
      description: b.description === undefined ? r.description : (b.description ?? ''),
    };
    await checkRefs(db, next.service_id, next.region_id);
    await uniquely('registered limit', () => db.updateTable('identity_registered_limits').set(next).where('id', '=', r.id).execute());
    return { registered_limit: renderReg(next) };
  });
  app.delete<{ Params: P }>('/registered_limits/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_registered_limit');
    const r = await reg(req.params.id);
    const used = await db.selectFrom('identity_limits').select('id').where('service_id', '=', r.service_id)
      .where('region_id', '=', r.region_id).where('resource_name', '=', r.resource_name).executeTakeFirst();
    if (used) throw badRequest('Limits still refer to this registered limit: delete them first.');
    await db.deleteFrom('identity_registered_limits').where('id', '=', r.id).execute();
    reply.code(204);
  });

  // ---------- limits ----------
  app.post('/limits', { schema: { body: LimitsCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_limits');
    const rows: LimitRow[] = [];
    for (const b of req.body.limits) {
      if (!!b.project_id === !!b.domain_id) throw badRequest('A limit is for exactly one of project_id or domain_id.');
      await checkRefs(db, b.service_id, b.region_id);
      if (b.project_id && !(await db.selectFrom('identity_projects').select('id').where('id', '=', b.project_id).executeTakeFirst())) {
        throw badRequest(`Could not find project: ${b.project_id}.`);
      }
      if (b.domain_id && !(await db.selectFrom('identity_domains').select('id').where('id', '=', b.domain_id).executeTakeFirst())) {
        throw badRequest(`Could not find domain: ${b.domain_id}.`);
      }
      const registered = await db.selectFrom('identity_registered_limits').select('id').where('service_id', '=', b.service_id)
        .where('region_id', '=', b.region_id ?? '').where('resource_name', '=', b.resource_name).executeTakeFirst();
      if (!registered) throw badRequest(`No registered limit for ${b.resource_name} of service ${b.service_id}${b.region_id ? ` in ${b.region_id}` : ''}: register one first.`);
      rows.push({
        id: hexId(), project_id: b.project_id ?? '', domain_id: b.domain_id ?? '', service_id: b.service_id, region_id: b.region_id ?? '',
        resource_name: b.resource_name, resource_limit: b.resource_limit, description: b.description ?? '',
      });
    }
    await uniquely('limit', () => db.transaction().execute(async (trx) => {
      for (const r of rows) await trx.insertInto('identity_limits').values(r).execute();
    }));
    reply.code(201);
    return { limits: rows.map(renderLimit) };
  });
  app.get('/limits', async (req) => {
    const auth = allow(d, req, 'identity:list_limits');
    const f = q(req);
    let qb = db.selectFrom('identity_limits').selectAll().orderBy('resource_name');
    if (f.service_id !== undefined) qb = qb.where('service_id', '=', f.service_id);
    if (f.region_id !== undefined) qb = qb.where('region_id', '=', f.region_id);
    if (f.resource_name !== undefined) qb = qb.where('resource_name', '=', f.resource_name);
    if (f.project_id !== undefined) qb = qb.where('project_id', '=', f.project_id);
    if (f.domain_id !== undefined) qb = qb.where('domain_id', '=', f.domain_id);
    let rows = await qb.execute();
    // Everyone but cloud readers sees the limits of their own project or domain only.
    if (!d.ctx.policy.check('cloud_reader', auth)) {
      rows = rows.filter((r) => (auth.projectId && r.project_id === auth.projectId) || (auth.domainId && r.domain_id === auth.domainId));
    }
    return listBody(d, req, 'limits', rows.map(renderLimit));
  });
  const limit = async (id: string) => {
    const r = await db.selectFrom('identity_limits').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw notFound(`Could not find limit: ${id}.`);
    return r;
  };
  app.get<{ Params: P }>('/limits/:id', async (req) => {
    const r = await limit(req.params.id);
    allow(d, req, 'identity:get_limit', { project_id: r.project_id || undefined, domain_id: r.domain_id || undefined });
    return { limit: renderLimit(r) };
  });
  app.patch('/limits/:id', { schema: { params: IdParams, body: LimitUpdate } }, async (req) => {
    allow(d, req, 'identity:update_limit');
    const r = await limit(req.params.id);
    const b = req.body.limit;
    const next: LimitRow = {
      ...r, resource_limit: b.resource_limit ?? r.resource_limit,
      description: b.description === undefined ? r.description : (b.description ?? ''),
    };
    await db.updateTable('identity_limits').set(next).where('id', '=', r.id).execute();
    return { limit: renderLimit(next) };
  });
  app.delete<{ Params: P }>('/limits/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_limit');
    const r = await limit(req.params.id);
    await db.deleteFrom('identity_limits').where('id', '=', r.id).execute();
    reply.code(204);
  });
}
