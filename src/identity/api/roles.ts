// /v3/roles, implied roles, grants (users/groups on projects, domains, system; OS-INHERIT).
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import { badRequest, forbidden, notFound } from '../../core/errors.js';
import { hexId } from '../../core/ids.js';
import { deleteRole, usersOfActor } from '../admin.js';
import { SYSTEM_TARGET } from '../roles.js';
import { uniquely, type RoleRow } from '../store.js';
import { allow, extraOf, listBody, q, v3Url, type Deps } from './common.js';
import { mustDomain, mustProject } from './projects.js';
import { renderRole } from './render.js';
import { RoleCreate, RoleUpdate } from './schemas.js';
import { IdParams } from './schemas.js';
import { mustGroup, mustUser } from './users.js';
import { roleAssignmentRoutes } from './assignments.js';

type P = { id: string };
const ROLE_FIELDS = ['name', 'domain_id', 'description', 'options'];

export async function mustRole(d: Deps, id: string): Promise<RoleRow> {
  const r = await d.core.db.selectFrom('identity_roles').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) throw notFound(`Could not find role: ${id}.`);
  return r;
}

type TargetKind = 'projects' | 'domains' | 'system';
type ActorKind = 'users' | 'groups';

const typeOf = (t: TargetKind, a: ActorKind) =>
  `${a === 'users' ? 'User' : 'Group'}${t === 'projects' ? 'Project' : t === 'domains' ? 'Domain' : 'System'}`;

export async function roleRoutes(app: App, d: Deps): Promise<void> {
  app.post('/roles', { schema: { body: RoleCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_role');
    const b = req.body.role;
    if (b.domain_id) await mustDomain(d, b.domain_id).catch(() => { throw badRequest(`Could not find domain: ${b.domain_id}.`); });
    const row: RoleRow = {
      id: hexId(), name: b.name, domain_id: b.domain_id ?? '', description: b.description ?? '',
      options: JSON.stringify(b.options ?? {}), extra: extraOf(b, ROLE_FIELDS),
    };
    await uniquely(`role '${b.name}'`, () => d.core.db.insertInto('identity_roles').values(row).execute());
    reply.code(201);
    return { role: renderRole(d, row) };
  });

  app.get('/roles', async (req) => {
    const f = q(req);
    allow(d, req, 'identity:list_roles', { domain_id: f.domain_id });
    let qb = d.core.db.selectFrom('identity_roles').selectAll().orderBy('name').where('domain_id', '=', f.domain_id ?? '');
    if (f.name !== undefined) qb = qb.where('name', '=', f.name);
    return listBody(d, req, 'roles', (await qb.execute()).map((r) => renderRole(d, r)));
  });

  app.get<{ Params: P }>('/roles/:id', async (req) => {
    const r = await mustRole(d, req.params.id);
    allow(d, req, 'identity:get_role', { domain_id: r.domain_id || undefined });
    return { role: renderRole(d, r) };
  });

  app.patch('/roles/:id', { schema: { params: IdParams, body: RoleUpdate } }, async (req) => {
    allow(d, req, 'identity:update_role');
    const r = await mustRole(d, req.params.id);
    const b = req.body.role;
    if (b.domain_id !== undefined && (b.domain_id ?? '') !== r.domain_id) throw badRequest('Cannot change the domain of a role.');
    const next: RoleRow = {
      ...r, name: b.name ?? r.name, description: b.description === undefined ? r.description : (b.description ?? ''),
      options: b.options ? JSON.stringify(b.options) : r.options, extra: extraOf(b, ROLE_FIELDS, r.extra),
    };
    await uniquely(`role '${next.name}'`, () => d.core.db.updateTable('identity_roles').set(next).where('id', '=', r.id).execute());
    return { role: renderRole(d, next) };
  });

  app.delete<{ Params: P }>('/roles/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_role');
    const r = await mustRole(d, req.params.id);
    await deleteRole(d.core, r.id);
    reply.code(204);
  });

  // ---------- implied roles ----------
  const ref = (r: RoleRow) => ({ id: r.id, name: r.name, links: { self: v3Url(d, `/roles/${r.id}`) } });
  type PI = { id: string; implied: string };
  const pair = async (req: FastifyRequest<{ Params: PI }>) => ({ prior: await mustRole(d, req.params.id), implied: await mustRole(d, req.params.implied) });

  app.put<{ Params: PI }>('/roles/:id/implies/:implied', async (req, reply) => {
    allow(d, req, 'identity:create_implied_role');
    const { prior, implied } = await pair(req);
    if (implied.name === 'admin') throw forbidden('The admin role cannot be implied by another role.');
    if (prior.id === implied.id) throw badRequest('A role cannot imply itself.');
    if (!prior.domain_id && implied.domain_id) throw forbidden('A global role cannot imply a domain-specific role.');
    const edges = await d.core.db.selectFrom('identity_implied_roles').selectAll().execute();
    // Refuse loops: `implied` must not already lead back to `prior`.
    const reach = new Set([implied.id]);
    for (let grew = true; grew;) {
      grew = false;
      for (const e of edges) if (reach.has(e.prior_role_id) && !reach.has(e.implied_role_id)) { reach.add(e.implied_role_id); grew = true; }
    }
    if (reach.has(prior.id)) throw badRequest(`Implying ${implied.name} from ${prior.name} would create a loop.`);
    if (!edges.some((e) => e.prior_role_id === prior.id && e.implied_role_id === implied.id)) {
      await d.core.db.insertInto('identity_implied_roles').values({ prior_role_id: prior.id, implied_role_id: implied.id }).execute();
    }
    reply.code(201);
    return { role_inference: { prior_role: ref(prior), implies: ref(implied) }, links: { self: v3Url(d, `/roles/${prior.id}/implies/${implied.id}`) } };
  });

  const getEdge = async (req: FastifyRequest<{ Params: PI }>) => {
    const { prior, implied } = await pair(req);
    const e = await d.core.db.selectFrom('identity_implied_roles').selectAll()
      .where('prior_role_id', '=', prior.id).where('implied_role_id', '=', implied.id).executeTakeFirst();
    if (!e) throw notFound(`${prior.id} does not imply ${implied.id}.`);
    return { prior, implied };
  };
  // HEAD checks a rule: 204, as Keystone answers (not the 200 of an implicit HEAD of GET).
  app.head<{ Params: PI }>('/roles/:id/implies/:implied', async (req, reply) => {
    allow(d, req, 'identity:check_implied_role');
    await getEdge(req);
    reply.code(204).send();
  });
  app.get<{ Params: PI }>('/roles/:id/implies/:implied', async (req) => {
    allow(d, req, 'identity:list_implied_roles');
    const { prior, implied } = await getEdge(req);
    return { role_inference: { prior_role: ref(prior), implies: ref(implied) }, links: { self: v3Url(d, `/roles/${prior.id}/implies/${implied.id}`) } };
  });
  app.delete<{ Params: PI }>('/roles/:id/implies/:implied', async (req, reply) => {
    allow(d, req, 'identity:delete_implied_role');
    const { prior, implied } = await getEdge(req);
    await d.core.db.deleteFrom('identity_implied_roles').where('prior_role_id', '=', prior.id).where('implied_role_id', '=', implied.id).execute();
    await d.core.revoke({ role_id: prior.id });
    reply.code(204);
  });

  const inferences = async (priorId?: string) => {
    const roles = await d.core.db.selectFrom('identity_roles').selectAll().execute();
    const byId = new Map(roles.map((r) => [r.id, r]));
    let edges = await d.core.db.selectFrom('identity_implied_roles').selectAll().execute();
    if (priorId) edges = edges.filter((e) => e.prior_role_id === priorId);
    const priors = [...new Set(edges.map((e) => e.prior_role_id))];
    return priors.map((p) => ({
      prior_role: ref(byId.get(p)!),
      implies: edges.filter((e) => e.prior_role_id === p).map((e) => ref(byId.get(e.implied_role_id)!)),
    }));
  };
  app.get<{ Params: P }>('/roles/:id/implies', async (req) => {
    allow(d, req, 'identity:list_implied_roles');
    const r = await mustRole(d, req.params.id);
    const inf = await inferences(r.id);
    return { role_inference: inf[0] ?? { prior_role: ref(r), implies: [] }, links: { self: v3Url(d, `/roles/${r.id}/implies`) } };
  });
  app.get('/role_inferences', async (req) => {
    allow(d, req, 'identity:list_role_inference_rules');
    return { role_inferences: await inferences(), links: { self: v3Url(d, '/role_inferences') } };
  });

  // ---------- grants ----------
  const resolve = async (t: TargetKind, targetId: string | undefined, a: ActorKind, actorId: string) => {
    if (t === 'projects') await mustProject(d, targetId!);
    else if (t === 'domains') await mustDomain(d, targetId!);
    if (a === 'users') await mustUser(d, actorId); else await mustGroup(d, actorId);
    return t === 'system' ? SYSTEM_TARGET : targetId!;
  };

  for (const t of ['projects', 'domains', 'system'] as TargetKind[]) {
    for (const a of ['users', 'groups'] as ActorKind[]) {
      for (const inherited of t === 'system' ? [false] : [false, true]) {
        const base = inherited ? `/OS-INHERIT/${t}/:target/${a}/:actor/roles` : t === 'system' ? `/system/${a}/:actor/roles` : `/${t}/:target/${a}/:actor/roles`;
        const suffix = inherited ? '/inherited_to_projects' : '';
        type GP = { target?: string; actor: string; role: string };
        const type = typeOf(t, a);
        const inh = inherited ? 1 : 0;
        const find = (targetId: string, actorId: string, roleId: string) => d.core.db.selectFrom('identity_assignments').select('role_id')
          .where('type', '=', type).where('actor_id', '=', actorId).where('target_id', '=', targetId)
          .where('role_id', '=', roleId).where('inherited', '=', inh).executeTakeFirst();

        app.put<{ Params: GP }>(`${base}/:role${suffix}`, async (req, reply) => {
          allow(d, req, 'identity:create_grant', { project_id: req.params.target, domain_id: req.params.target });
          const target = await resolve(t, req.params.target, a, req.params.actor);
          const role = await mustRole(d, req.params.role);
          if (!(await find(target, req.params.actor, role.id))) {
            await d.core.db.insertInto('identity_assignments').values({ type, actor_id: req.params.actor, target_id: target, role_id: role.id, inherited: inh })
              .execute().catch(() => undefined); // granted concurrently: the same outcome
          }
          reply.code(204);
        });
        app.get<{ Params: GP }>(`${base}/:role${suffix}`, async (req, reply) => {
          allow(d, req, 'identity:check_grant', { project_id: req.params.target, domain_id: req.params.target });
          const target = await resolve(t, req.params.target, a, req.params.actor);
          const role = await mustRole(d, req.params.role);
          if (!(await find(target, req.params.actor, role.id))) throw notFound(`Could not find role assignment of ${role.id}.`);
          reply.code(204);
        });
        app.delete<{ Params: GP }>(`${base}/:role${suffix}`, async (req, reply) => {
          allow(d, req, 'identity:revoke_grant', { project_id: req.params.target, domain_id: req.params.target });
          const target = await resolve(t, req.params.target, a, req.params.actor);
          const role = await mustRole(d, req.params.role);
          if (!(await find(target, req.params.actor, role.id))) throw notFound(`Could not find role assignment of ${role.id}.`);
          await d.core.db.deleteFrom('identity_assignments').where('type', '=', type).where('actor_id', '=', req.params.actor)
            .where('target_id', '=', target).where('role_id', '=', role.id).where('inherited', '=', inh).execute();
          for (const userId of await usersOfActor(d.core, type, req.params.actor)) {
            await d.core.revoke(t === 'projects' && !inherited ? { user_id: userId, project_id: target }
              : t === 'domains' && !inherited ? { user_id: userId, domain_id: target } : { user_id: userId });
          }
          reply.code(204);
        });
        if (!inherited || t === 'domains') {
          app.get<{ Params: GP }>(inherited ? `${base}/inherited_to_projects` : base, async (req) => {
            allow(d, req, 'identity:list_grants', { project_id: req.params.target, domain_id: req.params.target });
            const target = await resolve(t, req.params.target, a, req.params.actor);
            const ids = (await d.core.db.selectFrom('identity_assignments').select('role_id').where('type', '=', type)
              .where('actor_id', '=', req.params.actor).where('target_id', '=', target).where('inherited', '=', inh).execute()).map((r) => r.role_id);
            const rows = ids.length ? await d.core.db.selectFrom('identity_roles').selectAll().where('id', 'in', ids).orderBy('name').execute() : [];
            return listBody(d, req, 'roles', rows.map((r) => renderRole(d, r)));
          });
        }
      }
    }
  }
  await roleAssignmentRoutes(app, d);
}
