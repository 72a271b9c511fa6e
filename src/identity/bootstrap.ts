// First-start data (Keystone's `keystone-manage bootstrap`, plus a demo user), idempotent: each
// piece is created only when missing, so every start runs it. Endpoint URLs follow the base URL.
import { hexId, nowIso, secret } from '../core/ids.js';
import type { CatalogEntry } from '../core/service.js';
import { hashPassword } from './passwords.js';
import { getMeta, setMeta, type IdentityDb } from './store.js';

export interface BootstrapInput {
  catalog: CatalogEntry[];
  baseUrl: string;
  regionId: string;
}

export const DEFAULT_DOMAIN_ID = 'default';
const INTERFACES = ['public', 'internal', 'admin'] as const;

async function ensureRole(db: IdentityDb, name: string): Promise<string> {
  const r = await db.selectFrom('identity_roles').select('id').where('name', '=', name).where('domain_id', '=', '').executeTakeFirst();
  if (r) return r.id;
  const id = hexId();
  await db.insertInto('identity_roles').values({ id, name, domain_id: '', description: '', options: '{}', extra: '{}' }).execute();
  return id;
}

async function ensureProject(db: IdentityDb, name: string, description: string): Promise<string> {
  const r = await db.selectFrom('identity_projects').select('id').where('domain_id', '=', DEFAULT_DOMAIN_ID).where('name', '=', name).executeTakeFirst();
  if (r) return r.id;
  const id = hexId();
  await db.insertInto('identity_projects').values({
    id, name, domain_id: DEFAULT_DOMAIN_ID, parent_id: null, description, enabled: 1, tags: '[]', extra: '{}', created_at: nowIso(),
  }).execute();
  return id;
}

/** Creates the user with a generated password if missing; returns the password only then. */
async function ensureUser(db: IdentityDb, name: string, projectId: string): Promise<{ id: string; password?: string }> {
  const r = await db.selectFrom('identity_users').select('id').where('domain_id', '=', DEFAULT_DOMAIN_ID).where('name', '=', name).executeTakeFirst();
  if (r) return { id: r.id };
  const id = hexId();
  const password = secret(18);
  await db.insertInto('identity_users').values({
    id, name, domain_id: DEFAULT_DOMAIN_ID, enabled: 1, password_hash: await hashPassword(password),
    password_created_at: nowIso(), password_expires_at: null, default_project_id: projectId, description: '',
    email: null, options: '{}', extra: '{}', failed_auth_count: 0, failed_auth_at: null, last_active_at: null, created_at: nowIso(),
  }).execute();
  return { id, password };
}

async function ensureAssignment(db: IdentityDb, type: string, actorId: string, targetId: string, roleId: string): Promise<void> {
  const r = await db.selectFrom('identity_assignments').select('role_id')
    .where('type', '=', type).where('actor_id', '=', actorId).where('target_id', '=', targetId).where('role_id', '=', roleId)
    .executeTakeFirst();
  if (!r) await db.insertInto('identity_assignments').values({ type, actor_id: actorId, target_id: targetId, role_id: roleId, inherited: 0 }).execute();
}

async function ensureImplied(db: IdentityDb, prior: string, implied: string): Promise<void> {
  const r = await db.selectFrom('identity_implied_roles').select('prior_role_id')
    .where('prior_role_id', '=', prior).where('implied_role_id', '=', implied).executeTakeFirst();
  if (!r) await db.insertInto('identity_implied_roles').values({ prior_role_id: prior, implied_role_id: implied }).execute();
}

export async function bootstrap(db: IdentityDb, input: BootstrapInput): Promise<{ adminPassword?: string; demoPassword?: string }> {
  const domain = await db.selectFrom('identity_domains').select('id').where('id', '=', DEFAULT_DOMAIN_ID).executeTakeFirst();
  if (!domain) {
    await db.insertInto('identity_domains').values({
      id: DEFAULT_DOMAIN_ID, name: 'Default', description: 'The default domain', enabled: 1, tags: '[]', extra: '{}', created_at: nowIso(),
    }).execute();
  }
  const admin = await ensureRole(db, 'admin');
  const member = await ensureRole(db, 'member');
  const reader = await ensureRole(db, 'reader');
  await ensureImplied(db, admin, member);
  await ensureImplied(db, member, reader);

  const adminProject = await ensureProject(db, 'admin', 'Bootstrap project for initializing the cloud.');
  const demoProject = await ensureProject(db, 'demo', 'Demo project');
  const adminUser = await ensureUser(db, 'admin', adminProject);
  const demoUser = await ensureUser(db, 'demo', demoProject);
  await ensureAssignment(db, 'UserProject', adminUser.id, adminProject, admin);
  await ensureAssignment(db, 'UserSystem', adminUser.id, 'all', admin);
  await ensureAssignment(db, 'UserProject', demoUser.id, demoProject, member);

  const region = await db.selectFrom('identity_regions').select('id').where('id', '=', input.regionId).executeTakeFirst();
  if (!region) await db.insertInto('identity_regions').values({ id: input.regionId, description: '', parent_region_id: null, extra: '{}' }).execute();

  // A new base URL (other listen address or public URL) moves every endpoint that used the old one.
  const oldBase = await getMeta(db, 'base_url');
  if (oldBase && oldBase !== input.baseUrl) {
    const moved = await db.selectFrom('identity_endpoints').select(['id', 'url']).execute();
    for (const e of moved) {
      if (e.url === oldBase || e.url.startsWith(`${oldBase}/`)) {
        await db.updateTable('identity_endpoints').set({ url: input.baseUrl + e.url.slice(oldBase.length) }).where('id', '=', e.id).execute();
      }
    }
  }
  await setMeta(db, 'base_url', input.baseUrl);

  for (const entry of input.catalog) {
    let svc = await db.selectFrom('identity_services').select('id').where('type', '=', entry.type).where('name', '=', entry.name).executeTakeFirst();
    if (!svc) {
      svc = { id: hexId() };
      await db.insertInto('identity_services').values({
        id: svc.id, type: entry.type, name: entry.name, description: entry.description ?? '', enabled: 1, extra: '{}',
      }).execute();
    }
    const url = input.baseUrl + entry.path;
    for (const iface of INTERFACES) {
      const e = await db.selectFrom('identity_endpoints').select(['id', 'url'])
        .where('service_id', '=', svc.id).where('interface', '=', iface).where('region_id', '=', input.regionId).executeTakeFirst();
      if (!e) {
        await db.insertInto('identity_endpoints').values({
          id: hexId(), service_id: svc.id, region_id: input.regionId, interface: iface, url, enabled: 1, extra: '{}',
        }).execute();
      }
    }
  }
  return { adminPassword: adminUser.password, demoPassword: demoUser.password };
}
