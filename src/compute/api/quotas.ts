// /os-quota-sets and /limits: views of the project's unified limits with usage.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { badRequest } from '../../core/errors.js';
import type { IdentityModule } from '../../identity/index.js';
import { NETWORK_PROXIED, QUOTA_RESOURCES, type QuotaService } from '../quotas.js';
import type { ServerNetworking } from '../servers/networking.js';
import { atLeast, MIN_VERSION } from './microversion.js';
import { allow, boolParam, lastOf, NovaBool, NovaInt, novaInt, type Query, type RouteDeps } from './common.js';

const QUOTA_MAX = 2147483647;
const QuotaValue = NovaInt(-1);
const QuotaUpdate = Type.Object({
  quota_set: Type.Object({
    ...Object.fromEntries(QUOTA_RESOURCES.map((r) => [r.api, Type.Optional(QuotaValue)])),
    force: Type.Optional(NovaBool),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

const QuotaClassUpdate = Type.Object({
  quota_class_set: Type.Object(Object.fromEntries(QUOTA_RESOURCES.map((r) => [r.api, Type.Optional(QuotaValue)])), { additionalProperties: false }),
}, { additionalProperties: false });

const ProjectParams = Type.Object({ project: Type.String({ minLength: 1, maxLength: 255 }) });

/** The quota names shown at the request's microversion. */
function shown(req: FastifyRequest) {
  const minor = (req.microversion ?? MIN_VERSION).minor;
  return QUOTA_RESOURCES.filter((r) => r.maxMinor === undefined || minor <= r.maxMinor);
}

export function registerQuotaRoutes(app: App, deps: RouteDeps, quotas: QuotaService, identity: IdentityModule,
  network: () => ServerNetworking | undefined): void {
  // Usage of the network quotas shown before 2.36, by os-quota-sets name (0 without networking).
  const networkUsage = async (req: FastifyRequest, project: string): Promise<Record<string, number>> => {
    const net = network();
    if (atLeast(req, 36) || !net) return {};
    const u = await net.usage(project, NETWORK_PROXIED.map((r) => r.limit));
    return Object.fromEntries(NETWORK_PROXIED.map((r) => [r.api, u[r.limit] ?? 0]));
  };
  const pick = (req: FastifyRequest, values: Record<string, number>) =>
    Object.fromEntries(shown(req).map((r) => [r.api, values[r.api] ?? -1]));

  app.get('/os-quota-sets/:project', { schema: { params: ProjectParams } }, async (req) => {
    const project = req.params.project;
    allow(deps, req, 'os_compute_api:os-quota-sets:show', { project_id: project });
    if (lastOf((req.query as Query).user_id)) throw badRequest('Per-user quotas are not supported: Stratus keeps project limits in unified limits.');
    return { quota_set: { id: project, ...pick(req, await quotas.limits(project)) } };
  });

  app.get('/os-quota-sets/:project/detail', { schema: { params: ProjectParams } }, async (req) => {
    const project = req.params.project;
    allow(deps, req, 'os_compute_api:os-quota-sets:detail', { project_id: project });
    const [limits, used] = await Promise.all([quotas.limits(project), quotas.usage(project)]);
    Object.assign(used, await networkUsage(req, project));
    const detail = Object.fromEntries(shown(req).map((r) => [r.api, { limit: limits[r.api] ?? -1, in_use: used[r.api] ?? 0, reserved: 0 }]));
    return { quota_set: { id: project, ...detail } };
  });

  app.get('/os-quota-sets/:project/defaults', { schema: { params: ProjectParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-quota-sets:defaults', { project_id: req.params.project });
    return { quota_set: { id: req.params.project, ...pick(req, await quotas.defaults()) } };
  });

  app.put('/os-quota-sets/:project', { schema: { params: ProjectParams, body: QuotaUpdate } }, async (req) => {
    const project = req.params.project;
    allow(deps, req, 'os_compute_api:os-quota-sets:update', { project_id: project });
    if (lastOf((req.query as Query).user_id)) throw badRequest('Per-user quotas are not supported: Stratus keeps project limits in unified limits.');
    if (!(await identity.getProject(project))) throw badRequest(`Project ID ${project} is not a valid project.`);
    const { force, ...given } = req.body.quota_set as Record<string, number | string | boolean>;
    const shownNames = new Set(shown(req).map((r) => r.api));
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(given)) {
      if (!shownNames.has(k)) throw badRequest(`Invalid input for field/attribute quota_set. Additional properties are not allowed ('${k}' was unexpected)`);
      const n = novaInt(v as number | string);
      if (n > QUOTA_MAX) throw badRequest(`Invalid input for field/attribute ${k}. Value: ${v}. ${n} is greater than the maximum of ${QUOTA_MAX}`);
      values[k] = n;
    }
    await quotas.update(project, values, force !== undefined && boolParam('force', force) === true);
    return { quota_set: pick(req, await quotas.limits(project)) };
  });

  app.delete('/os-quota-sets/:project', { schema: { params: ProjectParams } }, async (req, reply) => {
    allow(deps, req, 'os_compute_api:os-quota-sets:delete', { project_id: req.params.project });
    await quotas.reset(req.params.project);
    return reply.code(202).send();
  });

  // Quota classes: only 'default' exists: the registered (default) limits in identity, the same
  // rows `openstack registered limit set` changes.
  app.get('/os-quota-class-sets/:project', { schema: { params: ProjectParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-quota-class-sets:show');
    return { quota_class_set: { id: req.params.project, ...pick(req, await quotas.defaults()) } };
  });
  app.put('/os-quota-class-sets/:project', { schema: { params: ProjectParams, body: QuotaClassUpdate } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-quota-class-sets:update');
    if (req.params.project !== 'default') throw badRequest('Only the quota class "default" exists: it holds the default limits.');
    const shownNames = new Set(shown(req).map((r) => r.api));
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(req.body.quota_class_set as Record<string, number | string>)) {
      if (!shownNames.has(k)) throw badRequest(`Invalid input for field/attribute quota_class_set. Additional properties are not allowed ('${k}' was unexpected)`);
      values[k] = novaInt(v);
      if (values[k]! > QUOTA_MAX) throw badRequest(`Invalid input for field/attribute ${k}. Value: ${v}. ${values[k]} is greater than the maximum of ${QUOTA_MAX}`);
    }
    await quotas.updateDefaults(values);
    return { quota_class_set: pick(req, await quotas.defaults()) };
  });

  app.get('/limits', async (req) => {
    const c = allow(deps, req, 'os_compute_api:limits');
    const asked = lastOf((req.query as Query).tenant_id);
    let project = c.projectId ?? '';
    if (asked && asked !== project) {
      allow(deps, req, 'os_compute_api:limits:other_project', { project_id: asked });
      project = asked;
    }
    const [l, u] = await Promise.all([quotas.limits(project), quotas.usage(project)]);
    const absolute: Record<string, number> = {
      maxServerMeta: l.metadata_items!, maxTotalKeypairs: l.key_pairs!,
      maxServerGroups: l.server_groups!, maxServerGroupMembers: l.server_group_members!,
      maxTotalCores: l.cores!, maxTotalInstances: l.instances!, maxTotalRAMSize: l.ram!,
      totalCoresUsed: u.cores ?? 0, totalInstancesUsed: u.instances ?? 0, totalRAMUsed: u.ram ?? 0,
      totalServerGroupsUsed: u.server_groups ?? 0,
    };
    if (!atLeast(req, 57)) {
      absolute.maxPersonality = l.injected_files!;
      absolute.maxPersonalitySize = l.injected_file_content_bytes!;
    }
    if (!atLeast(req, 39)) absolute.maxImageMeta = l.metadata_items!;
    if (!atLeast(req, 36)) {
      const n = await networkUsage(req, project);
      Object.assign(absolute, {
        maxTotalFloatingIps: l.floating_ips!, maxSecurityGroups: l.security_groups!, maxSecurityGroupRules: l.security_group_rules!,
        totalFloatingIpsUsed: n.floating_ips ?? 0, totalSecurityGroupsUsed: n.security_groups ?? 0,
      });
    }
    return { limits: { rate: [], absolute } };
  });
}
