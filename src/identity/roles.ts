// Effective roles: direct and group assignments on a target, assignments inherited from the
// project's domain and ancestors, then implied roles (admin ⇒ member ⇒ reader) expanded.
import type { IdentityDb, RoleRow } from './store.js';

export type Target =
  | { kind: 'project'; id: string }
  | { kind: 'domain'; id: string }
  | { kind: 'system' };

export const SYSTEM_TARGET = 'all';

export async function groupIdsOf(db: IdentityDb, userId: string): Promise<string[]> {
  const rows = await db.selectFrom('identity_group_members').select('group_id').where('user_id', '=', userId).execute();
  return rows.map((r) => r.group_id);
}

/** The ids of the project's ancestors, nearest first (not including the project). */
export async function ancestorsOf(db: IdentityDb, projectId: string): Promise<{ ids: string[]; domainId?: string }> {
  const ids: string[] = [];
  let cur = await db.selectFrom('identity_projects').select(['parent_id', 'domain_id']).where('id', '=', projectId).executeTakeFirst();
  const domainId = cur?.domain_id;
  while (cur?.parent_id && !ids.includes(cur.parent_id) && ids.length < 32) {
    ids.push(cur.parent_id);
    cur = await db.selectFrom('identity_projects').select(['parent_id', 'domain_id']).where('id', '=', cur.parent_id).executeTakeFirst();
  }
  return { ids, domainId };
}

/** Role ids directly assigned (user or its groups) on the target, inheritance included. */
export async function assignedRoleIds(db: IdentityDb, userId: string, target: Target): Promise<Set<string>> {
  const actors = [userId, ...(await groupIdsOf(db, userId))];
  const out = new Set<string>();
  if (target.kind === 'system') {
    const rows = await db.selectFrom('identity_assignments').select('role_id')
      .where('type', 'in', ['UserSystem', 'GroupSystem']).where('actor_id', 'in', actors)
      .where('target_id', '=', SYSTEM_TARGET).execute();
    rows.forEach((r) => out.add(r.role_id));
    return out;
  }
  if (target.kind === 'domain') {
    const rows = await db.selectFrom('identity_assignments').select('role_id')
      .where('type', 'in', ['UserDomain', 'GroupDomain']).where('actor_id', 'in', actors)
      .where('target_id', '=', target.id).where('inherited', '=', 0).execute();
    rows.forEach((r) => out.add(r.role_id));
    return out;
  }
  const { ids: ancestors, domainId } = await ancestorsOf(db, target.id);
  const rows = await db.selectFrom('identity_assignments').select(['role_id', 'target_id', 'inherited', 'type'])
    .where('actor_id', 'in', actors)
    .where('target_id', 'in', [target.id, ...ancestors, ...(domainId ? [domainId] : [])]).execute();
  for (const r of rows) {
    const onProject = r.type === 'UserProject' || r.type === 'GroupProject';
    if (onProject && r.target_id === target.id && !r.inherited) out.add(r.role_id);
    else if (onProject && ancestors.includes(r.target_id) && r.inherited) out.add(r.role_id);
    else if (!onProject && (r.type === 'UserDomain' || r.type === 'GroupDomain') && r.target_id === domainId && r.inherited) out.add(r.role_id);
  }
  return out;
}

/** Expands implied roles transitively. */
export async function expandImplied(db: IdentityDb, ids: Iterable<string>): Promise<Set<string>> {
  const out = new Set(ids);
  if (out.size === 0) return out;
  const edges = await db.selectFrom('identity_implied_roles').selectAll().execute();
  let grew = true;
  while (grew) {
    grew = false;
    for (const e of edges) {
      if (out.has(e.prior_role_id) && !out.has(e.implied_role_id)) { out.add(e.implied_role_id); grew = true; }
    }
  }
  return out;
}

export async function rolesByIds(db: IdentityDb, ids: Iterable<string>): Promise<RoleRow[]> {
  const list = [...ids];
  if (list.length === 0) return [];
  return db.selectFrom('identity_roles').selectAll().where('id', 'in', list).orderBy('name').execute();
}

/** The roles a token carries: assigned and implied ones, less domain-specific roles (they only carry what they imply). */
export async function effectiveRoles(db: IdentityDb, userId: string, target: Target): Promise<RoleRow[]> {
  return (await rolesByIds(db, await expandImplied(db, await assignedRoleIds(db, userId, target)))).filter((r) => !r.domain_id);
}
