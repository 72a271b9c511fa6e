// Unified limits as other services use them: registered defaults per service type and resource,
// overridden per project. The HTTP API (api/limits.ts) writes the same tables.
import { badRequest } from '../core/errors.js';
import { hexId } from '../core/ids.js';
import type { LimitQuery } from './index.js';
import { isUniqueViolationSafe, type IdentityDb } from './store.js';

async function serviceIdOf(db: IdentityDb, type: string): Promise<string | undefined> {
  const r = await db.selectFrom('identity_services').select('id').where('type', '=', type).orderBy('id').executeTakeFirst();
  return r?.id;
}

const prefer = <T extends { region_id: string }>(rows: T[], region: string): T | undefined =>
  rows.find((r) => r.region_id === region) ?? rows.find((r) => r.region_id === '');

export async function getLimit(db: IdentityDb, q: LimitQuery): Promise<number | undefined> {
  const serviceId = await serviceIdOf(db, q.serviceType);
  if (!serviceId) return undefined;
  const region = q.regionId ?? '';
  const regions = region ? [region, ''] : [''];
  const limits = await db.selectFrom('identity_limits').selectAll()
    .where('project_id', '=', q.projectId).where('service_id', '=', serviceId)
    .where('resource_name', '=', q.resourceName).where('region_id', 'in', regions).execute();
  const own = prefer(limits, region);
  if (own) return own.resource_limit;
  const reg = await db.selectFrom('identity_registered_limits').selectAll()
    .where('service_id', '=', serviceId).where('resource_name', '=', q.resourceName)
    .where('region_id', 'in', regions).execute();
  return prefer(reg, region)?.default_limit;
}

/** Projects that have a project limit of their own on a service type (Neutron's quota listing). */
export async function projectsWithLimits(db: IdentityDb, serviceType: string): Promise<string[]> {
  const serviceId = await serviceIdOf(db, serviceType);
  if (!serviceId) return [];
  const rows = await db.selectFrom('identity_limits').select('project_id').distinct()
    .where('service_id', '=', serviceId).where('project_id', '!=', '').orderBy('project_id').execute();
  return rows.map((r) => String(r.project_id));
}

export async function setProjectLimit(db: IdentityDb, q: LimitQuery & { value: number }): Promise<void> {
  if (!Number.isInteger(q.value) || q.value < -1) throw badRequest(`Invalid limit ${q.value}: expecting an integer >= -1.`);
  const serviceId = await serviceIdOf(db, q.serviceType);
  if (!serviceId) throw badRequest(`No service of type '${q.serviceType}' in the catalog.`);
  const region = q.regionId ?? '';
  const where = db.updateTable('identity_limits').set({ resource_limit: q.value })
    .where('project_id', '=', q.projectId).where('domain_id', '=', '').where('service_id', '=', serviceId)
    .where('region_id', '=', region).where('resource_name', '=', q.resourceName);
  const r = await where.executeTakeFirst();
  if (Number(r.numUpdatedRows) > 0) return;
  try {
    await db.insertInto('identity_limits').values({
      id: hexId(), project_id: q.projectId, domain_id: '', service_id: serviceId, region_id: region,
      resource_name: q.resourceName, resource_limit: q.value, description: '',
    }).execute();
  } catch (e) {
    if (!isUniqueViolationSafe(e)) throw e;
    await where.execute(); // created concurrently: update it
  }
}

export async function ensureRegisteredLimit(
  db: IdentityDb, q: Omit<LimitQuery, 'projectId'> & { defaultLimit: number; description?: string },
): Promise<void> {
  const serviceId = await serviceIdOf(db, q.serviceType);
  if (!serviceId) throw new Error(`ensureRegisteredLimit: no service of type '${q.serviceType}' in the catalog`);
  const region = q.regionId ?? '';
  const existing = await db.selectFrom('identity_registered_limits').select('id')
    .where('service_id', '=', serviceId).where('region_id', '=', region).where('resource_name', '=', q.resourceName)
    .executeTakeFirst();
  if (existing) return;
  try {
    await db.insertInto('identity_registered_limits').values({
      id: hexId(), service_id: serviceId, region_id: region, resource_name: q.resourceName,
      default_limit: q.defaultLimit, description: q.description ?? '',
    }).execute();
  } catch (e) {
    if (!isUniqueViolationSafe(e)) throw e;
  }
}

/** Changes (or registers) a default limit: Nova's quota class `default` writes here. */
export async function setRegisteredLimit(db: IdentityDb, q: Omit<LimitQuery, 'projectId'> & { value: number }): Promise<void> {
  if (!Number.isInteger(q.value) || q.value < -1) throw badRequest(`Invalid limit ${q.value}: expecting an integer >= -1.`);
  const serviceId = await serviceIdOf(db, q.serviceType);
  if (!serviceId) throw badRequest(`No service of type '${q.serviceType}' in the catalog.`);
  const region = q.regionId ?? '';
  const r = await db.updateTable('identity_registered_limits').set({ default_limit: q.value })
    .where('service_id', '=', serviceId).where('region_id', '=', region).where('resource_name', '=', q.resourceName)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) await ensureRegisteredLimit(db, { ...q, defaultLimit: q.value });
}
