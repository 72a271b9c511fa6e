// /os-server-groups.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { badRequest } from '../../core/errors.js';
import type { ServerGroup, ServerGroupService } from '../server-groups.js';
import { atLeast } from './microversion.js';
import { allow, boolParam, intParam, lastOf, type Query, type RouteDeps } from './common.js';

const GroupCreate = Type.Object({
  server_group: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 255 }),
    policies: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 1 })),
    policy: Type.Optional(Type.String()),
    rules: Type.Optional(Type.Record(Type.String(), Type.Union([Type.Integer(), Type.String()]))),
  }, { additionalProperties: false }),
}, { additionalProperties: false });
const IdParams = Type.Object({ id: Type.String() });

function view(req: FastifyRequest, g: ServerGroup) {
  const common = {
    id: g.id, name: g.name, members: g.members,
    ...(atLeast(req, 13) ? { project_id: g.projectId, user_id: g.userId } : {}),
  };
  return atLeast(req, 64)
    ? { ...common, policy: g.policy, rules: g.rules }
    : { ...common, policies: [g.policy], metadata: {} };
}

export function registerServerGroupRoutes(app: App, deps: RouteDeps, groups: ServerGroupService): void {
  app.get('/os-server-groups', async (req) => {
    const c = allow(deps, req, 'os_compute_api:os-server-groups:index');
    const q = req.query as Query;
    const all = boolParam('all_projects', lastOf(q.all_projects)) === true;
    if (all) allow(deps, req, 'os_compute_api:os-server-groups:index:all_projects');
    const list = await groups.list({
      projectId: all ? undefined : c.projectId ?? '',
      limit: intParam('limit', lastOf(q.limit), 1), offset: intParam('offset', lastOf(q.offset)),
    });
    return { server_groups: list.map((g) => view(req, g)) };
  });

  app.post('/os-server-groups', { schema: { body: GroupCreate } }, async (req) => {
    const c = allow(deps, req, 'os_compute_api:os-server-groups:create');
    const b = req.body.server_group;
    let policy: string;
    if (atLeast(req, 64)) {
      if (b.policies !== undefined) throw badRequest("Invalid input for field/attribute server_group. Additional properties are not allowed ('policies' was unexpected)");
      if (b.policy === undefined) throw badRequest("Invalid input for field/attribute server_group. 'policy' is a required property");
      policy = b.policy;
    } else {
      if (b.policy !== undefined || b.rules !== undefined) throw badRequest("Invalid input for field/attribute server_group. 'policy' and 'rules' need microversion 2.64 or later.");
      if (!b.policies) throw badRequest("Invalid input for field/attribute server_group. 'policies' is a required property");
      policy = b.policies[0]!;
      if (policy.startsWith('soft-') && !atLeast(req, 15)) throw badRequest(`Invalid input for field/attribute policies. Policy '${policy}' needs microversion 2.15 or later.`);
    }
    const g = await groups.create({ name: b.name, projectId: c.projectId ?? '', userId: c.userId, policy, rules: b.rules });
    return { server_group: view(req, g) };
  });

  app.get('/os-server-groups/:id', { schema: { params: IdParams } }, async (req) => {
    const g = await groups.get(req.params.id);
    allow(deps, req, 'os_compute_api:os-server-groups:show', { project_id: g.projectId });
    return { server_group: view(req, g) };
  });

  app.delete('/os-server-groups/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const g = await groups.get(req.params.id);
    allow(deps, req, 'os_compute_api:os-server-groups:delete', { project_id: g.projectId });
    await groups.delete(g.id);
    return reply.code(204).send();
  });
}
