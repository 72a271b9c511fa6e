// GET /v3/role_assignments: filters, `effective` (groups expanded to their members, inherited
// assignments spread onto projects, implied roles added) and `include_names`.
import type { App } from '../../core/http.js';
import { badRequest } from '../../core/errors.js';
import { SYSTEM_TARGET } from '../roles.js';
import { allow, boolQuery, listBody, q, v3Url, type Deps } from './common.js';

interface Entry {
  actor: 'user' | 'group';
  actorId: string;
  scope: 'project' | 'domain' | 'system';
  targetId: string;
  roleId: string;
  inherited: boolean;
  viaGroup?: string;
  priorRoleId?: string;
}

export async function roleAssignmentRoutes(app: App, d: Deps): Promise<void> {
  app.get('/role_assignments', async (req) => {
    const f = q(req);
    const effective = boolQuery(f.effective, 'effective') ?? false;
    const names = boolQuery(f.include_names, 'include_names') ?? false;
    const userId = f['user.id'], groupId = f['group.id'], roleId = f['role.id'];
    const projectId = f['scope.project.id'], domainId = f['scope.domain.id'];
    const system = f['scope.system'];
    const inheritedTo = f['scope.OS-INHERIT:inherited_to'];
    if (effective && groupId) throw badRequest('group.id cannot be combined with effective.');
    if (projectId && domainId) throw badRequest('Specify at most one of scope.project.id and scope.domain.id.');
    allow(d, req, 'identity:list_role_assignments', { user_id: userId, domain_id: domainId, project_id: projectId });

    const rows = await d.core.db.selectFrom('identity_assignments').selectAll().execute();
    let entries: Entry[] = rows.map((r) => ({
      actor: r.type.startsWith('User') ? 'user' : 'group', actorId: r.actor_id,
      scope: r.type.endsWith('Project') ? 'project' : r.type.endsWith('Domain') ? 'domain' : 'system',
      targetId: r.target_id, roleId: r.role_id, inherited: !!Number(r.inherited),
    }));

    if (effective) {
      const members = await d.core.db.selectFrom('identity_group_members').selectAll().execute();
      entries = entries.flatMap((e) => e.actor === 'user' ? [e]
        : members.filter((m) => m.group_id === e.actorId).map((m) => ({ ...e, actor: 'user' as const, actorId: m.user_id, viaGroup: e.actorId })));
      const projects = await d.core.db.selectFrom('identity_projects').select(['id', 'domain_id', 'parent_id']).execute();
      const descendants = (id: string): string[] => {
        const kids = projects.filter((p) => p.parent_id === id).map((p) => p.id);
        return [...kids, ...kids.flatMap(descendants)];
      };
      entries = entries.flatMap((e) => {
        if (!e.inherited) return [e];
        const onto = e.scope === 'domain' ? projects.filter((p) => p.domain_id === e.targetId).map((p) => p.id) : descendants(e.targetId);
        return onto.map((p) => ({ ...e, scope: 'project' as const, targetId: p, inherited: false }));
      });
      const edges = await d.core.db.selectFrom('identity_implied_roles').selectAll().execute();
      const expanded: Entry[] = [];
      for (const e of entries) {
        expanded.push(e);
        const seen = new Set([e.roleId]);
        const queue = [e.roleId];
        while (queue.length) {
          const cur = queue.shift()!;
          for (const x of edges.filter((x) => x.prior_role_id === cur && !seen.has(x.implied_role_id))) {
            seen.add(x.implied_role_id);
            queue.push(x.implied_role_id);
            expanded.push({ ...e, roleId: x.implied_role_id, priorRoleId: e.roleId });
          }
        }
      }
      // The same role reached twice (directly and by implication) is listed once. Domain-specific
      // roles only carry what they imply: they are never effective themselves (as in Keystone).
      const domainRoles = new Set((await d.core.db.selectFrom('identity_roles').select('id').where('domain_id', '!=', '').execute()).map((r) => r.id));
      const key = (e: Entry) => `${e.actor}|${e.actorId}|${e.scope}|${e.targetId}|${e.roleId}|${e.viaGroup ?? ''}`;
      const seen = new Set<string>();
      entries = expanded.filter((e) => !domainRoles.has(e.roleId) && (seen.has(key(e)) ? false : (seen.add(key(e)), true)));
    }

    entries = entries.filter((e) =>
      (!userId || (e.actor === 'user' && e.actorId === userId)) &&
      (!groupId || (e.actor === 'group' && e.actorId === groupId)) &&
      (!roleId || e.roleId === roleId) &&
      (!projectId || (e.scope === 'project' && e.targetId === projectId)) &&
      (!domainId || (e.scope === 'domain' && e.targetId === domainId)) &&
      (system === undefined || (e.scope === 'system')) &&
      (!inheritedTo || e.inherited));

    // Non-admin callers reading their own assignments see only those.
    const auth = req.auth!;
    if (!d.ctx.policy.check('identity_reader', auth, { domain_id: domainId, target: { domain_id: domainId } })) {
      entries = entries.filter((e) => e.actor === 'user' && e.actorId === auth.userId);
    }

    const lookups = names ? await nameMaps(d) : undefined;
    const body = entries.map((e) => render(d, e, lookups));
    return listBody(d, req, 'role_assignments', body);
  });
}

type NameMaps = Awaited<ReturnType<typeof nameMaps>>;

async function nameMaps(d: Deps) {
  const db = d.core.db;
  const [domains, projects, users, groups, roles] = await Promise.all([
    db.selectFrom('identity_domains').select(['id', 'name']).execute(),
    db.selectFrom('identity_projects').select(['id', 'name', 'domain_id']).execute(),
    db.selectFrom('identity_users').select(['id', 'name', 'domain_id']).execute(),
    db.selectFrom('identity_groups').select(['id', 'name', 'domain_id']).execute(),
    db.selectFrom('identity_roles').select(['id', 'name', 'domain_id']).execute(),
  ]);
  return {
    domains: new Map(domains.map((x) => [x.id, x])), projects: new Map(projects.map((x) => [x.id, x])),
    users: new Map(users.map((x) => [x.id, x])), groups: new Map(groups.map((x) => [x.id, x])), roles: new Map(roles.map((x) => [x.id, x])),
  };
}

function render(d: Deps, e: Entry, n: NameMaps | undefined): Record<string, unknown> {
  const dom = (id: string) => ({ id, ...(n ? { name: n.domains.get(id)?.name } : {}) });
  const named = (x: { name: string; domain_id: string } | undefined) => (n && x ? { name: x.name, domain: dom(x.domain_id) } : {});
  const role: Record<string, unknown> = { id: e.roleId };
  if (n) {
    const r = n.roles.get(e.roleId);
    role.name = r?.name;
    if (r?.domain_id) role.domain = dom(r.domain_id);
  }
  const out: Record<string, unknown> = { role };
  if (e.actor === 'user') out.user = { id: e.actorId, ...named(n?.users.get(e.actorId)) };
  else out.group = { id: e.actorId, ...named(n?.groups.get(e.actorId)) };
  const scope: Record<string, unknown> = e.scope === 'system' ? { system: { all: true } }
    : e.scope === 'domain' ? { domain: dom(e.targetId) }
      : { project: { id: e.targetId, ...named(n?.projects.get(e.targetId)) } };
  if (e.inherited) scope['OS-INHERIT:inherited_to'] = 'projects';
  out.scope = scope;
  const actorPath = e.viaGroup ? `groups/${e.viaGroup}` : `${e.actor}s/${e.actorId}`;
  const targetPath = e.scope === 'system' ? 'system' : `${e.scope}s/${e.targetId}`;
  const assignment = v3Url(d, `${e.inherited ? '/OS-INHERIT' : ''}/${targetPath}/${actorPath}/roles/${e.priorRoleId ?? e.roleId}${e.inherited ? '/inherited_to_projects' : ''}`);
  out.links = { assignment, ...(e.viaGroup ? { membership: v3Url(d, `/groups/${e.viaGroup}/users/${e.actorId}`) } : {}) };
  if (e.priorRoleId) out.prior_role = { id: e.priorRoleId, ...(n ? { name: n.roles.get(e.priorRoleId)?.name } : {}) };
  void SYSTEM_TARGET;
  return out;
}
