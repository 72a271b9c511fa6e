// /flavors, their extra specs and access lists (Nova's flavors, os-flavor-manage,
// os-flavor-extra-specs and os-flavor-access APIs).
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { badRequest, notFound } from '../../core/errors.js';
import type { Flavor, FlavorService } from '../flavors.js';
import { atLeast } from './microversion.js';
import { allow, boolParam, caller, NovaBool, NovaInt, novaInt, intParam, lastOf, links, oneOf, type Query, type RouteDeps } from './common.js';

const FlavorCreate = Type.Object({
  flavor: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 255 }),
    ram: NovaInt(1),
    vcpus: NovaInt(1),
    disk: NovaInt(0),
    id: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 255 }), Type.Integer({ minimum: 0 }), Type.Null()])),
    'OS-FLV-EXT-DATA:ephemeral': Type.Optional(NovaInt(0)),
    swap: Type.Optional(Type.Union([NovaInt(0), Type.Literal('')])),
    rxtx_factor: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    'os-flavor-access:is_public': Type.Optional(NovaBool),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 65535 }), Type.Null()])),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

const FlavorUpdate = Type.Object({
  flavor: Type.Object({
    description: Type.Union([Type.String({ maxLength: 65535 }), Type.Null()]),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

const SpecValue = Type.Union([Type.String({ maxLength: 255 }), Type.Number(), Type.Boolean()]);
const ExtraSpecs = Type.Object({
  extra_specs: Type.Record(Type.String({ minLength: 1, maxLength: 255 }), SpecValue),
}, { additionalProperties: false });
const OneSpec = Type.Record(Type.String({ minLength: 1, maxLength: 255 }), SpecValue, { minProperties: 1, maxProperties: 1 });

const TenantRef = Type.Object({ tenant: Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: false });
const FlavorAction = Type.Union([
  Type.Object({ addTenantAccess: TenantRef }, { additionalProperties: false }),
  Type.Object({ removeTenantAccess: TenantRef }, { additionalProperties: false }),
]);

const IdParams = Type.Object({ id: Type.String() });
const KeyParams = Type.Object({ id: Type.String(), key: Type.String() });

export function flavorBrief(deps: RouteDeps, req: FastifyRequest, f: Flavor) {
  return {
    id: f.id, name: f.name, links: links(deps, 'flavors', f.id),
    ...(atLeast(req, 55) ? { description: f.description } : {}),
  };
}

export function flavorView(deps: RouteDeps, req: FastifyRequest, f: Flavor) {
  return {
    id: f.id, name: f.name, ram: f.ram, disk: f.disk, vcpus: f.vcpus,
    'OS-FLV-EXT-DATA:ephemeral': f.ephemeral,
    'OS-FLV-DISABLED:disabled': f.disabled,
    // Before 2.75 Nova rendered "no swap" as an empty string.
    swap: atLeast(req, 75) ? f.swap : (f.swap || ''),
    rxtx_factor: f.rxtxFactor,
    'os-flavor-access:is_public': f.isPublic,
    links: links(deps, 'flavors', f.id),
    ...(atLeast(req, 55) ? { description: f.description } : {}),
    ...(atLeast(req, 61) ? { extra_specs: f.extraSpecs } : {}),
  };
}

const specString = (v: string | number | boolean) => String(v);

export function registerFlavorRoutes(app: App, deps: RouteDeps, flavors: FlavorService): void {
  const list = async (req: FastifyRequest) => {
    const c = caller(req);
    const q = req.query as Query;
    const isPublicRaw = lastOf(q.is_public);
    const isPublic = isPublicRaw === undefined ? undefined
      : isPublicRaw.toLowerCase() === 'none' ? null : boolParam('is_public', isPublicRaw);
    return flavors.list({ admin: c.admin, projectId: c.projectId }, {
      // Non-admins always get public flavors plus the private ones shared with them.
      isPublic: c.admin ? isPublic : (isPublic === false ? false : true),
      minDisk: intParam('minDisk', lastOf(q.minDisk)),
      minRam: intParam('minRam', lastOf(q.minRam)),
      sortKey: lastOf(q.sort_key),
      sortDir: oneOf('sort_dir', lastOf(q.sort_dir), ['asc', 'desc'] as const),
      limit: intParam('limit', lastOf(q.limit)),
      marker: lastOf(q.marker),
    });
  };
  app.get('/flavors', async (req) => ({ flavors: (await list(req)).map((f) => flavorBrief(deps, req, f)) }));
  app.get('/flavors/detail', async (req) => ({ flavors: (await list(req)).map((f) => flavorView(deps, req, f)) }));

  app.get('/flavors/:id', { schema: { params: IdParams } }, async (req) => {
    const c = caller(req);
    return { flavor: flavorView(deps, req, await flavors.get(req.params.id, c)) };
  });

  app.post('/flavors', { schema: { body: FlavorCreate } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-flavor-manage:create');
    const b = req.body.flavor;
    if (b.description !== undefined && !atLeast(req, 55)) {
      throw badRequest("Invalid input for field/attribute flavor. Additional properties are not allowed ('description' was unexpected)");
    }
    const f = await flavors.create({
      id: b.id === null || b.id === undefined ? undefined : String(b.id), name: b.name, ram: novaInt(b.ram), vcpus: novaInt(b.vcpus), disk: novaInt(b.disk),
      ephemeral: novaInt(b['OS-FLV-EXT-DATA:ephemeral']), swap: b.swap === '' ? 0 : novaInt(b.swap), rxtxFactor: b.rxtx_factor,
      isPublic: boolParam('os-flavor-access:is_public', b['os-flavor-access:is_public']), description: b.description,
    });
    return { flavor: flavorView(deps, req, f) };
  });

  app.put('/flavors/:id', { schema: { params: IdParams, body: FlavorUpdate } }, async (req, reply) => {
    if (!atLeast(req, 55)) return reply.code(405).send({ badMethod: { code: 405, message: 'Updating a flavor requires microversion 2.55 or later.' } });
    allow(deps, req, 'os_compute_api:os-flavor-manage:update');
    return { flavor: flavorView(deps, req, await flavors.updateDescription(req.params.id, req.body.flavor.description)) };
  });

  app.delete('/flavors/:id', { schema: { params: IdParams } }, async (req, reply) => {
    allow(deps, req, 'os_compute_api:os-flavor-manage:delete');
    await flavors.delete(req.params.id);
    return reply.code(202).send();
  });

  // ---- extra specs ----
  app.get('/flavors/:id/os-extra_specs', { schema: { params: IdParams } }, async (req) => {
    const c = allow(deps, req, 'os_compute_api:os-flavor-extra-specs:index');
    return { extra_specs: (await flavors.get(req.params.id, c)).extraSpecs };
  });
  app.post('/flavors/:id/os-extra_specs', { schema: { params: IdParams, body: ExtraSpecs } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-flavor-extra-specs:create');
    const specs = Object.fromEntries(Object.entries(req.body.extra_specs).map(([k, v]) => [k, specString(v)]));
    await flavors.setExtraSpecs(req.params.id, specs);
    return { extra_specs: specs };
  });
  app.get('/flavors/:id/os-extra_specs/:key', { schema: { params: KeyParams } }, async (req) => {
    const c = allow(deps, req, 'os_compute_api:os-flavor-extra-specs:show');
    const f = await flavors.get(req.params.id, c);
    const v = f.extraSpecs[req.params.key];
    if (v === undefined) throw notFound(`Flavor ${f.id} has no extra specs with key ${req.params.key}.`);
    return { [req.params.key]: v };
  });
  app.put('/flavors/:id/os-extra_specs/:key', { schema: { params: KeyParams, body: OneSpec } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-flavor-extra-specs:update');
    const [[k, v]] = Object.entries(req.body) as [[string, string | number | boolean]];
    if (k !== req.params.key) throw badRequest('Request body and URI mismatch');
    await flavors.setExtraSpecs(req.params.id, { [k]: specString(v) });
    return { [k]: specString(v) };
  });
  app.delete('/flavors/:id/os-extra_specs/:key', { schema: { params: KeyParams } }, async (req, reply) => {
    allow(deps, req, 'os_compute_api:os-flavor-extra-specs:delete');
    await flavors.deleteExtraSpec(req.params.id, req.params.key);
    return reply.code(200).send();
  });

  // ---- access lists of private flavors ----
  const accessView = async (id: string) => ({
    flavor_access: (await flavors.accessList(id)).map((tenant_id) => ({ flavor_id: id, tenant_id })),
  });
  app.get('/flavors/:id/os-flavor-access', { schema: { params: IdParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-flavor-access');
    return accessView(req.params.id);
  });
  app.post('/flavors/:id/action', { schema: { params: IdParams, body: FlavorAction } }, async (req) => {
    const body = req.body as { addTenantAccess?: { tenant: string }; removeTenantAccess?: { tenant: string } };
    if (body.addTenantAccess) {
      allow(deps, req, 'os_compute_api:os-flavor-access:add_tenant_access');
      await flavors.addAccess(req.params.id, body.addTenantAccess.tenant);
    } else if (body.removeTenantAccess) {
      allow(deps, req, 'os_compute_api:os-flavor-access:remove_tenant_access');
      await flavors.removeAccess(req.params.id, body.removeTenantAccess.tenant);
    }
    return accessView(req.params.id);
  });
}
