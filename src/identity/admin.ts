// Deletes that cascade through identity's tables (in one transaction: nothing half-deleted),
// and the revocation events each change implies.
import type { IdentityCore } from './service.js';
import type { IdentityDb } from './store.js';

type Trx = IdentityDb;

async function dropUserRows(trx: Trx, userIds: string[]): Promise<void> {
  if (!userIds.length) return;
  await trx.deleteFrom('identity_group_members').where('user_id', 'in', userIds).execute();
  await trx.deleteFrom('identity_assignments').where('type', 'in', ['UserProject', 'UserDomain', 'UserSystem']).where('actor_id', 'in', userIds).execute();
  await trx.deleteFrom('identity_app_creds').where('user_id', 'in', userIds).execute();
  await trx.deleteFrom('identity_credentials').where('user_id', 'in', userIds).execute();
  await trx.deleteFrom('identity_users').where('id', 'in', userIds).execute();
}

async function dropGroupRows(trx: Trx, groupIds: string[]): Promise<void> {
  if (!groupIds.length) return;
  await trx.deleteFrom('identity_group_members').where('group_id', 'in', groupIds).execute();
  await trx.deleteFrom('identity_assignments').where('type', 'in', ['GroupProject', 'GroupDomain', 'GroupSystem']).where('actor_id', 'in', groupIds).execute();
  await trx.deleteFrom('identity_groups').where('id', 'in', groupIds).execute();
}

async function dropProjectRows(trx: Trx, projectIds: string[]): Promise<void> {
  if (!projectIds.length) return;
  await trx.deleteFrom('identity_assignments').where('target_id', 'in', projectIds).where('type', 'in', ['UserProject', 'GroupProject']).execute();
  await trx.deleteFrom('identity_limits').where('project_id', 'in', projectIds).execute();
  await trx.deleteFrom('identity_app_creds').where('project_id', 'in', projectIds).execute();
  await trx.updateTable('identity_users').set({ default_project_id: null }).where('default_project_id', 'in', projectIds).execute();
  await trx.deleteFrom('identity_projects').where('id', 'in', projectIds).execute();
}

export async function deleteUser(core: IdentityCore, id: string): Promise<void> {
  await core.db.transaction().execute((trx) => dropUserRows(trx, [id]));
  await core.revoke({ user_id: id });
}

export async function deleteGroup(core: IdentityCore, id: string): Promise<void> {
  const members = await core.db.selectFrom('identity_group_members').select('user_id').where('group_id', '=', id).execute();
  await core.db.transaction().execute((trx) => dropGroupRows(trx, [id]));
  for (const m of members) await core.revoke({ user_id: m.user_id });
}

export async function deleteProject(core: IdentityCore, id: string): Promise<void> {
  await core.db.transaction().execute((trx) => dropProjectRows(trx, [id]));
  await core.revoke({ project_id: id });
}

export async function deleteDomain(core: IdentityCore, id: string): Promise<void> {
  await core.db.transaction().execute(async (trx) => {
    const projects = await trx.selectFrom('identity_projects').select('id').where('domain_id', '=', id).execute();
    await dropProjectRows(trx, projects.map((p) => p.id));
    const users = await trx.selectFrom('identity_users').select('id').where('domain_id', '=', id).execute();
    await dropUserRows(trx, users.map((u) => u.id));
    const groups = await trx.selectFrom('identity_groups').select('id').where('domain_id', '=', id).execute();
    await dropGroupRows(trx, groups.map((g) => g.id));
    const roles = await trx.selectFrom('identity_roles').select('id').where('domain_id', '=', id).execute();
    await dropRoleRows(trx, roles.map((r) => r.id));
    await trx.deleteFrom('identity_assignments').where('target_id', '=', id).where('type', 'in', ['UserDomain', 'GroupDomain']).execute();
    await trx.deleteFrom('identity_limits').where('domain_id', '=', id).execute();
    await trx.deleteFrom('identity_domains').where('id', '=', id).execute();
  });
  await core.revoke({ domain_id: id });
}

async function dropRoleRows(trx: Trx, roleIds: string[]): Promise<void> {
  if (!roleIds.length) return;
  await trx.deleteFrom('identity_assignments').where('role_id', 'in', roleIds).execute();
  await trx.deleteFrom('identity_implied_roles').where((eb) => eb.or([
    eb('prior_role_id', 'in', roleIds), eb('implied_role_id', 'in', roleIds)])).execute();
  await trx.deleteFrom('identity_roles').where('id', 'in', roleIds).execute();
}

export async function deleteRole(core: IdentityCore, id: string): Promise<void> {
  await core.db.transaction().execute((trx) => dropRoleRows(trx, [id]));
  await core.revoke({ role_id: id });
}

/** The users an assignment actor stands for (itself, or a group's members). */
export async function usersOfActor(core: IdentityCore, type: string, actorId: string): Promise<string[]> {
  if (type.startsWith('User')) return [actorId];
  const rows = await core.db.selectFrom('identity_group_members').select('user_id').where('group_id', '=', actorId).execute();
  return rows.map((r) => r.user_id);
}
