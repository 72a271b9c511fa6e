// /resource_providers and what hangs off one provider: inventories, traits, aggregates, usages,
// allocations.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import { pBadRequest, pConflict, pNotFound } from '../codes.js';
import { mv, since } from '../microversion.js';
import { fieldsOf, MAX_INT, type InventoryInput } from '../service.js';
import type { Deps } from './deps.js';
import {
  allowOnly, isUuid, normUuid, one, all, parseMemberOf, parseRequired, parseResources, parseUuidParam, providerView, validate,
  type Query,
} from './util.js';

const NAME = Type.String({ minLength: 1, maxLength: 200 });
const UUID_STR = Type.String({ pattern: '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' });
const GEN = Type.Integer({ minimum: 0 });
const inventoryProps = {
  reserved: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INT })),
  min_unit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_INT })),
  max_unit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_INT })),
  step_size: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_INT })),
  allocation_ratio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 3.40282e38 })),
};
const TOTAL = Type.Integer({ minimum: 1, maximum: MAX_INT });
const INVENTORY = Type.Object({ total: TOTAL, ...inventoryProps }, { additionalProperties: false });
const PUT_INVENTORIES = Type.Object({
  resource_provider_generation: GEN,
  inventories: Type.Record(Type.String({ pattern: '^[A-Z0-9_]+$' }), INVENTORY),
}, { additionalProperties: false });
const POST_INVENTORY = Type.Object({ resource_class: Type.String({ pattern: '^[A-Z0-9_]+$' }), resource_provider_generation: GEN, total: TOTAL, ...inventoryProps }, { additionalProperties: false });
const PUT_INVENTORY = Type.Object({ resource_provider_generation: GEN, total: TOTAL, ...inventoryProps }, { additionalProperties: false });
const CREATE_RP = (minor: number) => Type.Object({
  name: NAME, uuid: Type.Optional(UUID_STR),
  ...(minor >= 14 ? { parent_provider_uuid: Type.Optional(Type.Union([UUID_STR, Type.Null()])) } : {}),
}, { additionalProperties: false });
const UPDATE_RP = (minor: number) => Type.Object({
  name: NAME,
  ...(minor >= 14 ? { parent_provider_uuid: Type.Optional(Type.Union([UUID_STR, Type.Null()])) } : {}),
}, { additionalProperties: false });
const PUT_TRAITS = Type.Object({ traits: Type.Array(Type.String({ minLength: 1, maxLength: 255 })), resource_provider_generation: GEN },
  { additionalProperties: false });
const PUT_AGGS_OLD = Type.Array(UUID_STR);
const PUT_AGGS = Type.Object({ aggregates: Type.Array(UUID_STR), resource_provider_generation: GEN }, { additionalProperties: false });

interface Params { uuid: string; rc: string }

export async function providerRoutes(app: App, d: Deps): Promise<void> {
  const rpUuid = (req: FastifyRequest) => (req.params as Params).uuid;

  app.get('/resource_providers', async (req) => {
    d.enforce(req, 'placement:resource_providers:list');
    const minor = mv(req);
    const q = req.query as Query;
    allowOnly(q, ['name', 'uuid', ...(minor >= 3 ? ['member_of'] : []), ...(minor >= 4 ? ['resources'] : []),
      ...(minor >= 14 ? ['in_tree'] : []), ...(minor >= 18 ? ['required'] : [])]);
    const uuid = one(q, 'uuid');
    const inTree = one(q, 'in_tree');
    const res = one(q, 'resources');
    const members = parseMemberOf(all(q, 'member_of'), minor);
    const traits = parseRequired(all(q, 'required'), minor);
    await d.svc.assertTraitsExist([...traits.required.flat(), ...traits.forbidden]);
    const rows = await d.svc.listProviders({
      name: one(q, 'name'), uuid: uuid !== undefined ? parseUuidParam(uuid, 'uuid') : undefined,
      inTree: inTree !== undefined ? parseUuidParam(inTree, 'in_tree') : undefined,
      memberOf: members.memberOf, forbiddenAggregates: members.forbidden,
      required: traits.required, forbidden: traits.forbidden,
      resources: res !== undefined ? parseResources(res) : undefined,
    });
    return { resource_providers: rows.map((r) => providerView(req, r)) };
  });

  app.post('/resource_providers', async (req, reply) => {
    d.enforce(req, 'placement:resource_providers:create');
    const minor = mv(req);
    const b = validate<{ name: string; uuid?: string; parent_provider_uuid?: string | null }>(CREATE_RP(minor), req.body);
    const p = await d.svc.createProvider({
      name: b.name, uuid: b.uuid ? normUuid(b.uuid) : undefined,
      parentUuid: b.parent_provider_uuid ? normUuid(b.parent_provider_uuid) : null,
    });
    reply.header('Location', `${d.baseUrl()}/placement/resource_providers/${p.uuid}`);
    if (minor >= 20) return providerView(req, p);
    reply.code(201).send();
  });

  app.get('/resource_providers/:uuid', async (req) => {
    d.enforce(req, 'placement:resource_providers:show');
    return providerView(req, await d.svc.provider(rpUuid(req)));
  });

  app.put('/resource_providers/:uuid', async (req) => {
    d.enforce(req, 'placement:resource_providers:update');
    const minor = mv(req);
    const b = validate<{ name: string; parent_provider_uuid?: string | null }>(UPDATE_RP(minor), req.body);
    const parent = b.parent_provider_uuid === undefined ? undefined : b.parent_provider_uuid === null ? null : normUuid(b.parent_provider_uuid);
    if (parent === rpUuid(req)) throw pBadRequest('creating loop in the provider tree is not allowed.');
    return providerView(req, await d.svc.updateProvider(rpUuid(req), { name: b.name, parentUuid: parent }, minor >= 37));
  });

  app.delete('/resource_providers/:uuid', async (req, reply) => {
    d.enforce(req, 'placement:resource_providers:delete');
    await d.svc.deleteProvider(rpUuid(req));
    reply.code(204).send();
  });

  // ---- inventories ----
  app.get('/resource_providers/:uuid/inventories', async (req) => {
    d.enforce(req, 'placement:resource_providers:inventories:list');
    const r = await d.svc.inventories(rpUuid(req));
    return { inventories: r.inventories, resource_provider_generation: r.generation };
  });

  app.put('/resource_providers/:uuid/inventories', async (req) => {
    d.enforce(req, 'placement:resource_providers:inventories:update');
    const b = validate<{ resource_provider_generation: number; inventories: Record<string, InventoryInput> }>(PUT_INVENTORIES, req.body);
    await d.svc.provider(rpUuid(req));
    const r = await d.svc.setInventories(rpUuid(req), b.resource_provider_generation, b.inventories, { reservedMayEqualTotal: mv(req) >= 26 });
    return { inventories: r.inventories, resource_provider_generation: r.generation };
  });

  app.delete('/resource_providers/:uuid/inventories', async (req, reply) => {
    since(req, 5);
    d.enforce(req, 'placement:resource_providers:inventories:delete');
    const p = await d.svc.provider(rpUuid(req));
    await d.svc.setInventories(p.uuid, p.generation, {});
    reply.code(204).send();
  });

  app.post('/resource_providers/:uuid/inventories', async (req, reply) => {
    d.enforce(req, 'placement:resource_providers:inventories:create');
    const b = validate<InventoryInput & { resource_class: string; resource_provider_generation: number }>(POST_INVENTORY, req.body);
    const { resource_class: rc, resource_provider_generation: gen, ...inv } = b;
    const cur = await d.svc.inventories(rpUuid(req));
    if (cur.inventories[rc]) throw pConflict(`Update conflict: Inventory for '${rc}' already exists on resource provider '${rpUuid(req)}'.`);
    const r = await d.svc.setInventory(rpUuid(req), gen, rc, inv, mv(req) >= 26);
    reply.code(201).header('Location', `${d.baseUrl()}/placement/resource_providers/${rpUuid(req)}/inventories/${rc}`);
    return { ...r.inventory, resource_provider_generation: r.generation };
  });

  app.get('/resource_providers/:uuid/inventories/:rc', async (req) => {
    d.enforce(req, 'placement:resource_providers:inventories:show');
    const { rc } = req.params as Params;
    const r = await d.svc.inventories(rpUuid(req));
    const inv = r.inventories[rc];
    if (!inv) throw pNotFound(`No inventory of class ${rc} for ${rpUuid(req)}`);
    return { ...fieldsOf(inv), resource_provider_generation: r.generation };
  });

  app.put('/resource_providers/:uuid/inventories/:rc', async (req) => {
    d.enforce(req, 'placement:resource_providers:inventories:update');
    const { rc } = req.params as Params;
    const b = validate<InventoryInput & { resource_provider_generation: number }>(PUT_INVENTORY, req.body);
    const { resource_provider_generation: gen, ...inv } = b;
    const r = await d.svc.setInventory(rpUuid(req), gen, rc, inv, mv(req) >= 26);
    return { ...r.inventory, resource_provider_generation: r.generation };
  });

  app.delete('/resource_providers/:uuid/inventories/:rc', async (req, reply) => {
    d.enforce(req, 'placement:resource_providers:inventories:delete');
    await d.svc.deleteInventory(rpUuid(req), (req.params as Params).rc);
    reply.code(204).send();
  });

  // ---- traits and aggregates of a provider ----
  app.get('/resource_providers/:uuid/traits', async (req) => {
    since(req, 6);
    d.enforce(req, 'placement:resource_providers:traits:list');
    const r = await d.svc.providerLinks('traits', rpUuid(req));
    return { traits: r.names, resource_provider_generation: r.generation };
  });

  app.put('/resource_providers/:uuid/traits', async (req) => {
    since(req, 6);
    d.enforce(req, 'placement:resource_providers:traits:update');
    const b = validate<{ traits: string[]; resource_provider_generation: number }>(PUT_TRAITS, req.body);
    await d.svc.provider(rpUuid(req));
    const r = await d.svc.setProviderLinks('traits', rpUuid(req), b.traits, b.resource_provider_generation);
    return { traits: r.names, resource_provider_generation: r.generation };
  });

  app.delete('/resource_providers/:uuid/traits', async (req, reply) => {
    since(req, 6);
    d.enforce(req, 'placement:resource_providers:traits:delete');
    const p = await d.svc.provider(rpUuid(req));
    await d.svc.setProviderLinks('traits', p.uuid, [], p.generation);
    reply.code(204).send();
  });

  app.get('/resource_providers/:uuid/aggregates', async (req) => {
    since(req, 1);
    d.enforce(req, 'placement:resource_providers:aggregates:list');
    const r = await d.svc.providerLinks('aggregates', rpUuid(req));
    return mv(req) >= 19 ? { aggregates: r.names, resource_provider_generation: r.generation } : { aggregates: r.names };
  });

  app.put('/resource_providers/:uuid/aggregates', async (req) => {
    since(req, 1);
    d.enforce(req, 'placement:resource_providers:aggregates:update');
    const minor = mv(req);
    let aggs: string[];
    let gen: number | undefined;
    if (minor >= 19) {
      const b = validate<{ aggregates: string[]; resource_provider_generation: number }>(PUT_AGGS, req.body);
      aggs = b.aggregates; gen = b.resource_provider_generation;
    } else {
      aggs = validate<string[]>(PUT_AGGS_OLD, req.body);
    }
    if (aggs.some((a) => !isUuid(a))) throw pBadRequest('JSON does not validate: aggregates must be UUIDs');
    await d.svc.provider(rpUuid(req));
    const r = await d.svc.setProviderLinks('aggregates', rpUuid(req), aggs.map(normUuid), gen);
    return minor >= 19 ? { aggregates: r.names, resource_provider_generation: r.generation } : { aggregates: r.names };
  });

  // ---- usages and allocations of a provider ----
  app.get('/resource_providers/:uuid/usages', async (req) => {
    d.enforce(req, 'placement:resource_providers:usages');
    const r = await d.alloc.providerUsages(rpUuid(req));
    return { usages: r.usages, resource_provider_generation: r.generation };
  });

  app.get('/resource_providers/:uuid/allocations', async (req) => {
    d.enforce(req, 'placement:resource_providers:allocations:list');
    const r = await d.alloc.ofProvider(rpUuid(req));
    return { allocations: r.allocations, resource_provider_generation: r.generation };
  });
}
