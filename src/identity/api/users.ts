// /v3/users (passwords, options, lockout), /v3/groups and group membership.
import type { App } from '../../core/http.js';
import { authOf } from '../../core/auth.js';
import { badRequest, forbidden, notFound } from '../../core/errors.js';
import { hexId, nowIso } from '../../core/ids.js';
import { toDbBool } from '../../core/db.js';
import { deleteGroup, deleteUser } from '../admin.js';
import { hashPassword } from '../passwords.js';
import { bool, fromJson, uniquely, type GroupRow, type UserRow } from '../store.js';
import { allow, boolQuery, extraOf, listBody, q, type Deps } from './common.js';
import { defaultDomainOf, mustDomain } from './projects.js';
import { renderGroup, renderProject, renderUser } from './render.js';
import { GroupCreate, GroupUpdate, PasswordChange, USER_OPTIONS, UserCreate, UserUpdate } from './schemas.js';
import { IdParams } from './schemas.js';

type P = { id: string };
const USER_FIELDS = ['name', 'domain_id', 'password', 'enabled', 'default_project_id', 'description', 'email', 'options'];
const GROUP_FIELDS = ['name', 'domain_id', 'description'];

export async function mustUser(d: Deps, id: string): Promise<UserRow> {
  const r = await d.core.user(id);
  if (!r) throw notFound(`Could not find user: ${id}.`);
  return r;
}

export async function mustGroup(d: Deps, id: string): Promise<GroupRow> {
  const r = await d.core.db.selectFrom('identity_groups').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw notFound(`Could not find group: ${id}.`);
  return r;
}

function checkOptions(opts: Record<string, unknown> | undefined, previous = '{}'): string {
  const merged = fromJson<Record<string, unknown>>(previous, {});
  for (const [k, v] of Object.entries(opts ?? {})) {
    if (!USER_OPTIONS.includes(k)) throw badRequest(`Invalid user option '${k}'.`);
    if (v === null) delete merged[k];
    else merged[k] = v;
  }
  return JSON.stringify(merged);
}

async function checkDefaultProject(d: Deps, id: string | null | undefined): Promise<void> {
  if (!id) return;
  const p = await d.core.project(id);
  if (!p) throw badRequest(`Could not find project: ${id}.`);
}

export async function userRoutes(app: App, d: Deps): Promise<void> {
  app.post('/users', { schema: { body: UserCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_user');
    const b = req.body.user;
    const domainId = b.domain_id ?? defaultDomainOf(req);
    await mustDomain(d, domainId); // a 404, as Keystone answers
    await checkDefaultProject(d, b.default_project_id);
    const now = nowIso();
    const row: UserRow = {
      id: hexId(), name: b.name, domain_id: domainId, enabled: toDbBool(b.enabled ?? true),
      password_hash: b.password ? await hashPassword(b.password) : null, password_created_at: b.password ? now : null,
      password_expires_at: null, default_project_id: b.default_project_id ?? null, description: b.description ?? '',
      email: b.email ?? null, options: checkOptions(b.options), extra: extraOf(b, USER_FIELDS),
      failed_auth_count: 0, failed_auth_at: null, last_active_at: null, created_at: now,
    };
    await uniquely(`user '${b.name}' in domain ${domainId}`, () => d.core.db.insertInto('identity_users').values(row).execute());
    reply.code(201);
    return { user: renderUser(d, row) };
  });

  app.get('/users', async (req) => {
    const f = q(req);
    allow(d, req, 'identity:list_users', { domain_id: f.domain_id });
    let qb = d.core.db.selectFrom('identity_users').selectAll().orderBy('name');
    if (f.name !== undefined) qb = qb.where('name', '=', f.name);
    if (f.domain_id !== undefined) qb = qb.where('domain_id', '=', f.domain_id);
    const enabled = boolQuery(f.enabled, 'enabled');
    if (enabled !== undefined) qb = qb.where('enabled', '=', toDbBool(enabled));
    let rows = await qb.execute();
    const a = authOf(req);
    if (!d.ctx.policy.check('cloud_reader', a)) rows = rows.filter((r) => r.domain_id === a.domainId);
    return listBody(d, req, 'users', rows.map((r) => renderUser(d, r)));
  });

  app.get<{ Params: P }>('/users/:id', async (req) => {
    const r = await mustUser(d, req.params.id);
    allow(d, req, 'identity:get_user', { user_id: r.id, domain_id: r.domain_id });
    return { user: renderUser(d, r) };
  });

  app.patch('/users/:id', { schema: { params: IdParams, body: UserUpdate } }, async (req) => {
    allow(d, req, 'identity:update_user');
    const r = await mustUser(d, req.params.id);
    const b = req.body.user;
    if (b.domain_id !== undefined && b.domain_id !== r.domain_id) throw badRequest('Cannot change the domain of a user.');
    await checkDefaultProject(d, b.default_project_id);
    const next: UserRow = {
      ...r, name: b.name ?? r.name, enabled: b.enabled === undefined ? r.enabled : toDbBool(b.enabled),
      default_project_id: b.default_project_id === undefined ? r.default_project_id : b.default_project_id,
      description: b.description === undefined ? r.description : (b.description ?? ''),
      email: b.email === undefined ? r.email : b.email, options: checkOptions(b.options, r.options),
      extra: extraOf(b, USER_FIELDS, r.extra),
    };
    const passwordChanged = b.password !== undefined;
    if (passwordChanged) {
      next.password_hash = b.password ? await hashPassword(b.password) : null;
      next.password_created_at = nowIso();
    }
    // An administrator enabling a user also lifts a lockout.
    if (b.enabled === true || passwordChanged) { next.failed_auth_count = 0; next.failed_auth_at = null; }
    await uniquely(`user '${next.name}'`, () => d.core.db.updateTable('identity_users').set(next).where('id', '=', r.id).execute());
    if ((bool(r.enabled) && !bool(next.enabled)) || passwordChanged) await d.core.revoke({ user_id: r.id });
    return { user: renderUser(d, next) };
  });

  app.delete<{ Params: P }>('/users/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_user');
    const r = await mustUser(d, req.params.id);
    await deleteUser(d.core, r.id);
    reply.code(204);
  });

  app.post('/users/:id/password', { schema: { params: IdParams, body: PasswordChange } }, async (req, reply) => {
    const r = await mustUser(d, req.params.id);
    allow(d, req, 'identity:change_password', { user_id: r.id });
    if (fromJson<Record<string, unknown>>(r.options, {}).lock_password) throw forbidden('The password of this user is locked.');
    const { password, original_password: original } = req.body.user;
    await d.core.checkPassword(r.id, original);
    await d.core.db.updateTable('identity_users')
      .set({ password_hash: await hashPassword(password), password_created_at: nowIso(), failed_auth_count: 0, failed_auth_at: null })
      .where('id', '=', r.id).execute();
    await d.core.revoke({ user_id: r.id });
    reply.code(204);
  });

  app.get<{ Params: P }>('/users/:id/projects', async (req) => {
    const r = await mustUser(d, req.params.id);
    allow(d, req, 'identity:list_user_projects', { user_id: r.id, domain_id: r.domain_id });
    const groups = (await d.core.db.selectFrom('identity_group_members').select('group_id').where('user_id', '=', r.id).execute()).map((g) => g.group_id);
    const ids = (await d.core.db.selectFrom('identity_assignments').select('target_id').distinct()
      .where('type', 'in', ['UserProject', 'GroupProject']).where('actor_id', 'in', [r.id, ...groups]).execute()).map((x) => x.target_id);
    const rows = ids.length ? await d.core.db.selectFrom('identity_projects').selectAll().where('id', 'in', ids).orderBy('name').execute() : [];
    return listBody(d, req, 'projects', rows.map((p) => renderProject(d, p)));
  });

  app.get<{ Params: P }>('/users/:id/groups', async (req) => {
    const r = await mustUser(d, req.params.id);
    allow(d, req, 'identity:list_groups_for_user', { user_id: r.id, domain_id: r.domain_id });
    const rows = await d.core.db.selectFrom('identity_groups').selectAll()
      .where('id', 'in', d.core.db.selectFrom('identity_group_members').select('group_id').where('user_id', '=', r.id))
      .orderBy('name').execute();
    return listBody(d, req, 'groups', rows.map((g) => renderGroup(d, g)));
  });

  // ---------- groups ----------
  app.post('/groups', { schema: { body: GroupCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_group');
    const b = req.body.group;
    const domainId = b.domain_id ?? defaultDomainOf(req);
    await mustDomain(d, domainId).catch(() => { throw badRequest(`Could not find domain: ${domainId}.`); });
    const row: GroupRow = {
      id: hexId(), name: b.name, domain_id: domainId, description: b.description ?? '', extra: extraOf(b, GROUP_FIELDS), created_at: nowIso(),
    };
    await uniquely(`group '${b.name}' in domain ${domainId}`, () => d.core.db.insertInto('identity_groups').values(row).execute());
    reply.code(201);
    return { group: renderGroup(d, row) };
  });

  app.get('/groups', async (req) => {
    const f = q(req);
    allow(d, req, 'identity:list_groups', { domain_id: f.domain_id });
    let qb = d.core.db.selectFrom('identity_groups').selectAll().orderBy('name');
    if (f.name !== undefined) qb = qb.where('name', '=', f.name);
    if (f.domain_id !== undefined) qb = qb.where('domain_id', '=', f.domain_id);
    let rows = await qb.execute();
    const a = authOf(req);
    if (!d.ctx.policy.check('cloud_reader', a)) rows = rows.filter((r) => r.domain_id === a.domainId);
    return listBody(d, req, 'groups', rows.map((r) => renderGroup(d, r)));
  });

  app.get<{ Params: P }>('/groups/:id', async (req) => {
    const r = await mustGroup(d, req.params.id);
    allow(d, req, 'identity:get_group', { domain_id: r.domain_id });
    return { group: renderGroup(d, r) };
  });

  app.patch('/groups/:id', { schema: { params: IdParams, body: GroupUpdate } }, async (req) => {
    allow(d, req, 'identity:update_group');
    const r = await mustGroup(d, req.params.id);
    const b = req.body.group;
    if (b.domain_id !== undefined && b.domain_id !== r.domain_id) throw badRequest('Cannot change the domain of a group.');
    const next: GroupRow = {
      ...r, name: b.name ?? r.name, description: b.description === undefined ? r.description : (b.description ?? ''),
      extra: extraOf(b, GROUP_FIELDS, r.extra),
    };
    await uniquely(`group '${next.name}'`, () => d.core.db.updateTable('identity_groups').set(next).where('id', '=', r.id).execute());
    return { group: renderGroup(d, next) };
  });

  app.delete<{ Params: P }>('/groups/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_group');
    const r = await mustGroup(d, req.params.id);
    await deleteGroup(d.core, r.id);
    reply.code(204);
  });

  app.get<{ Params: P }>('/groups/:id/users', async (req) => {
    const r = await mustGroup(d, req.params.id);
    allow(d, req, 'identity:list_users_in_group', { domain_id: r.domain_id });
    const rows = await d.core.db.selectFrom('identity_users').selectAll()
      .where('id', 'in', d.core.db.selectFrom('identity_group_members').select('user_id').where('group_id', '=', r.id))
      .orderBy('name').execute();
    return listBody(d, req, 'users', rows.map((u) => renderUser(d, u)));
  });

  type GU = { id: string; user: string };
  const member = async (groupId: string, userId: string) => {
    const g = await mustGroup(d, groupId);
    const u = await mustUser(d, userId);
    return { g, u };
  };
  app.put<{ Params: GU }>('/groups/:id/users/:user', async (req, reply) => {
    allow(d, req, 'identity:add_user_to_group');
    const { g, u } = await member(req.params.id, req.params.user);
    const exists = await d.core.db.selectFrom('identity_group_members').select('user_id')
      .where('group_id', '=', g.id).where('user_id', '=', u.id).executeTakeFirst();
    if (!exists) await d.core.db.insertInto('identity_group_members').values({ group_id: g.id, user_id: u.id }).execute().catch(() => undefined);
    reply.code(204);
  });
  const check = async (req: { params: GU }) => {
    const { g, u } = await member(req.params.id, req.params.user);
    const exists = await d.core.db.selectFrom('identity_group_members').select('user_id')
      .where('group_id', '=', g.id).where('user_id', '=', u.id).executeTakeFirst();
    if (!exists) throw notFound(`User ${u.id} is not a member of group ${g.id}.`);
    return { g, u };
  };
  app.get<{ Params: GU }>('/groups/:id/users/:user', async (req, reply) => {
    allow(d, req, 'identity:check_user_in_group');
    await check(req);
    reply.code(204);
  });
  app.delete<{ Params: GU }>('/groups/:id/users/:user', async (req, reply) => {
    allow(d, req, 'identity:remove_user_from_group');
    const { g, u } = await check(req);
    await d.core.db.deleteFrom('identity_group_members').where('group_id', '=', g.id).where('user_id', '=', u.id).execute();
    await d.core.revoke({ user_id: u.id });
    reply.code(204);
  });
}
