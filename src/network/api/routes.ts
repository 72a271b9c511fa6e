// Neutron v2.0 routes: one generic CRUD set per collection, plus router interface actions,
// extra routes, quotas, extensions and version discovery.
import type { FastifyRequest } from 'fastify';
import { authenticate, authOf, isAdmin } from '../../core/auth.js';
import { badRequest, neutronError, notFound } from '../../core/errors.js';
import { useErrorStyle, type App } from '../../core/http.js';
import type { PolicyEngine } from '../../core/policy.js';
import type { TokenValidator } from '../../core/auth.js';
import type { Caller } from '../core.js';
import type { NetworkService } from '../service.js';
import type { Kind } from '../store.js';
import { EXTENSIONS } from './extensions.js';
import { listResponse, projectFields } from './list.js';
import { AgentBody, createBody, intAttributes, InterfaceBody, QuotaBody, RoutesBody, Schemas } from './schemas.js';

interface Deps {
  service: NetworkService;
  policy: PolicyEngine;
  validator: TokenValidator;
  baseUrl(): string;
}

const COLLECTIONS: Array<{ kind: Kind; path: string; collection: string }> = [
  { kind: 'network', path: 'networks', collection: 'networks' },
  { kind: 'subnet', path: 'subnets', collection: 'subnets' },
  { kind: 'port', path: 'ports', collection: 'ports' },
  { kind: 'router', path: 'routers', collection: 'routers' },
  { kind: 'floatingip', path: 'floatingips', collection: 'floatingips' },
  { kind: 'security_group', path: 'security-groups', collection: 'security_groups' },
  { kind: 'security_group_rule', path: 'security-group-rules', collection: 'security_group_rules' },
  { kind: 'rbac_policy', path: 'rbac-policies', collection: 'rbac_policies' },
];

type Query = Record<string, string | string[] | undefined>;

export async function networkRoutes(app: App, d: Deps): Promise<void> {
  useErrorStyle(app, neutronError);
  const { service, policy } = d;
  const versionLink = () => `${d.baseUrl()}/network/v2.0/`;

  app.get('/', async () => ({
    versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ href: versionLink(), rel: 'self' }] }],
  }));
  app.get('/v2.0', async () => ({
    resources: COLLECTIONS.map((c) => ({
      name: c.kind, collection: c.collection, links: [{ href: `${d.baseUrl()}/network/v2.0/${c.path}`, rel: 'self' }],
    })),
  }));

  await app.register(async (v2) => {
    v2.addHook('preHandler', authenticate(d.validator));
    const callerOf = (req: FastifyRequest): Caller => {
      const auth = authOf(req);
      return { projectId: auth.projectId ?? '', isAdmin: isAdmin(auth), check: (rule, target) => policy.check(rule, auth, target) };
    };
    const selfUrl = (req: FastifyRequest) => `${d.baseUrl()}${req.url}`;

    for (const { kind, path, collection } of COLLECTIONS) {
      const schemas = Schemas[kind];
      v2.get(`/${path}`, async (req) => {
        const caller = callerOf(req);
        const views = await service.views(kind, caller, await service.list(kind, caller));
        return listResponse(collection, views, req.query as Query, selfUrl(req));
      });
      v2.get(`/${path}/:id`, async (req) => {
        const caller = callerOf(req);
        const [view] = await service.views(kind, caller, [await service.get(kind, caller, (req.params as { id: string }).id)]);
        return { [kind]: projectFields(view!, req.query as Query) };
      });
      v2.post(`/${path}`, { schema: { body: createBody(kind, collection) } }, async (req, reply) => {
        const caller = callerOf(req);
        const given = req.body as Record<string, unknown>;
        if ((kind in given) === (collection in given)) {
          throw badRequest(`Unable to find '${kind}' (or '${collection}' for a bulk create) in request body`);
        }
        if (collection in given) {
          const docs = await service.bulkCreate(kind, caller, (given[collection] as Array<Record<string, unknown>>).map(intAttributes));
          reply.code(201);
          return { [collection]: await service.views(kind, caller, docs) };
        }
        const doc = await create(kind, caller, intAttributes(given[kind] as Record<string, unknown>));
        const [view] = await service.views(kind, caller, [doc]);
        reply.code(201);
        return { [kind]: view };
      });
      v2.put(`/${path}/:id`, { schema: { body: schemas.update } }, async (req) => {
        const caller = callerOf(req);
        const id = (req.params as { id: string }).id;
        const doc = await update(kind, caller, id, intAttributes((req.body as Record<string, Record<string, unknown>>)[kind]!));
        const [view] = await service.views(kind, caller, [doc]);
        return { [kind]: view };
      });
      v2.delete(`/${path}/:id`, async (req, reply) => {
        await remove(kind, callerOf(req), (req.params as { id: string }).id);
        reply.code(204).send();
      });
    }

    v2.put('/routers/:id/add_router_interface', { schema: { body: InterfaceBody } }, async (req) =>
      service.addRouterInterface(callerOf(req), (req.params as { id: string }).id, req.body as Record<string, unknown>));
    v2.put('/routers/:id/remove_router_interface', { schema: { body: InterfaceBody } }, async (req) =>
      service.removeRouterInterface(callerOf(req), (req.params as { id: string }).id, req.body as Record<string, unknown>));
    for (const op of ['add_extraroutes', 'remove_extraroutes'] as const) {
      v2.put(`/routers/:id/${op}`, { schema: { body: RoutesBody } }, async (req) => {
        const caller = callerOf(req);
        const id = (req.params as { id: string }).id;
        const router = await service.get('router', caller, id);
        const given = (req.body as { router: { routes: Array<{ destination: string; nexthop: string }> } }).router.routes;
        const same = (a: { destination: string; nexthop: string }, b: typeof a) => a.destination === b.destination && a.nexthop === b.nexthop;
        const current = router.routes as typeof given;
        const routes = op === 'add_extraroutes'
          ? [...current, ...given.filter((g) => !current.some((c) => same(c, g)))]
          : current.filter((c) => !given.some((g) => same(c, g)));
        const doc = await service.updateRouter(caller, id, { routes });
        const [view] = await service.views('router', caller, [doc]);
        return { router: view };
      });
    }

    // Agents: the network side of the registered host agents (admins only; others see none).
    v2.get('/agents', async (req) => listResponse('agents', await service.listAgents(callerOf(req)), req.query as Query, selfUrl(req)));
    v2.get('/agents/:id', async (req) =>
      ({ agent: projectFields(await service.getAgent(callerOf(req), (req.params as { id: string }).id), req.query as Query) }));
    v2.put('/agents/:id', { schema: { body: AgentBody } }, async (req) => ({
      agent: await service.updateAgent(callerOf(req), (req.params as { id: string }).id, (req.body as { agent: Record<string, unknown> }).agent),
    }));

    v2.get('/extensions', async () => ({ extensions: EXTENSIONS }));
    v2.get('/extensions/:alias', async (req) => {
      const ext = EXTENSIONS.find((e) => e.alias === (req.params as { alias: string }).alias);
      if (!ext) throw notFound(`Extension with alias ${(req.params as { alias: string }).alias} does not exist`, 'ExtensionNotFound');
      return { extension: ext };
    });

    // Quotas, kept in identity's unified limits.
    v2.get('/quotas', async (req) => {
      const caller = callerOf(req);
      if (!caller.isAdmin) return { quotas: [{ ...await service.getQuota(caller, caller.projectId), project_id: caller.projectId, tenant_id: caller.projectId }] };
      return { quotas: await service.nonDefaultQuotas(caller) };
    });
    v2.get('/quotas/tenant', async (req) => ({ tenant: { tenant_id: callerOf(req).projectId } }));
    v2.get('/quotas/:project/default', async (req) => {
      const project = (req.params as { project: string }).project;
      policy.enforce('get_quota', authOf(req), { project_id: project });
      return { quota: service.defaultQuota() };
    });
    // Neutron accepts a `.json` suffix; tempest's quotas client asks for details.json.
    for (const path of ['/quotas/:project/details', '/quotas/:project/details.json']) {
      v2.get(path, async (req) =>
        ({ quota: await service.quotaDetails(callerOf(req), (req.params as { project: string }).project) }));
    }
    v2.get('/quotas/:project', async (req) =>
      ({ quota: await service.getQuota(callerOf(req), (req.params as { project: string }).project) }));
    v2.put('/quotas/:project', { schema: { body: QuotaBody } }, async (req) => ({
      quota: await service.setQuota(callerOf(req), (req.params as { project: string }).project, (req.body as { quota: Record<string, unknown> }).quota),
    }));
    v2.delete('/quotas/:project', async (req, reply) => {
      await service.resetQuota(callerOf(req), (req.params as { project: string }).project);
      reply.code(204).send();
    });
  }, { prefix: '/v2.0' });

  function create(kind: Kind, caller: Caller, body: Record<string, unknown>) {
    switch (kind) {
      case 'network': return service.createNetwork(caller, body);
      case 'subnet': return service.createSubnet(caller, body);
      case 'port': return service.createPort(caller, body);
      case 'router': return service.createRouter(caller, body);
      case 'floatingip': return service.createFloatingIp(caller, body);
      case 'security_group': return service.createSecurityGroup(caller, body);
      case 'security_group_rule': return service.createSecurityGroupRule(caller, body);
      case 'rbac_policy': return service.createRbacPolicy(caller, body);
    }
  }
  async function update(kind: Kind, caller: Caller, id: string, body: Record<string, unknown>) {
    switch (kind) {
      case 'network': return service.updateNetwork(caller, id, body);
      case 'subnet': return service.updateSubnet(caller, id, body);
      case 'port': return service.updatePort(caller, id, body);
      case 'router': return service.updateRouter(caller, id, body);
      case 'floatingip': return service.updateFloatingIp(caller, id, body);
      case 'security_group': return service.updateSecurityGroup(caller, id, body);
      case 'security_group_rule': return service.updateSecurityGroupRule(caller, id, body);
      case 'rbac_policy': return service.updateRbacPolicy(caller, id, body);
    }
  }
  function remove(kind: Kind, caller: Caller, id: string) {
    switch (kind) {
      case 'network': return service.deleteNetwork(caller, id);
      case 'subnet': return service.deleteSubnet(caller, id);
      case 'port': return service.deletePort(caller, id);
      case 'router': return service.deleteRouter(caller, id);
      case 'floatingip': return service.deleteFloatingIp(caller, id);
      case 'security_group': return service.deleteSecurityGroup(caller, id);
      case 'security_group_rule': return service.deleteSecurityGroupRule(caller, id);
      case 'rbac_policy': return service.deleteRbacPolicy(caller, id);
    }
  }
}
