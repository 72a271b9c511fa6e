// /allocations, /usages and /allocation_candidates.
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import type { ConsumerAllocations, AllocationMap } from '../allocations.js';
import type { InventoryInput } from '../service.js';
import type { CandidateQuery, RequestGroup } from '../candidates.js';
import { findCandidates } from '../candidates.js';
import { CODE, pBadRequest } from '../codes.js';
import { mv, since } from '../microversion.js';
import type { Deps } from './deps.js';
import {
  all, allowOnly, isUuid, normUuid, one, parseMemberOf, parseRequired, parseResources, parseUuidParam, validate, type Query,
} from './util.js';

/** Placement's stand-in owner for consumers written before 1.8 made project/user mandatory. */
const INCOMPLETE = '00000000-0000-0000-0000-000000000000';
const RESOURCES = Type.Record(Type.String({ pattern: '^[A-Z0-9_]+$' }), Type.Integer({ minimum: 1, maximum: 2147483647 }), { minProperties: 1 });
const ID = Type.String({ minLength: 1, maxLength: 255 });
const CTYPE = Type.String({ pattern: '^[A-Z0-9_]+$', maxLength: 255 });

const allocationBody = (minor: number, forPost = false): TSchema => {
  const dict = Type.Record(Type.String(), Type.Object({ resources: RESOURCES, generation: Type.Optional(Type.Integer()) },
    { additionalProperties: false }), { minProperties: forPost || minor >= 28 ? 0 : 1 });
  const list = Type.Array(Type.Object({
    resource_provider: Type.Object({ uuid: Type.String() }, { additionalProperties: false }), resources: RESOURCES,
  }, { additionalProperties: false }), { minItems: 1 });
  return Type.Object({
    allocations: minor >= 12 ? dict : list,
    ...(minor >= 12 ? { project_id: ID, user_id: ID } : minor >= 8
      ? { project_id: ID, user_id: ID } : { project_id: Type.Optional(ID), user_id: Type.Optional(ID) }),
    ...(minor >= 28 ? { consumer_generation: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]) } : {}),
    ...(minor >= 38 ? { consumer_type: CTYPE } : {}),
  }, { additionalProperties: false });
};

const RESHAPE = Type.Object({
  inventories: Type.Record(Type.String(), Type.Object({
    resource_provider_generation: Type.Integer({ minimum: 0 }),
    inventories: Type.Record(Type.String({ pattern: '^[A-Z0-9_]+$' }), Type.Object({
      total: Type.Integer({ minimum: 1, maximum: 2147483647 }),
      reserved: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647 })),
      min_unit: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647 })),
      max_unit: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647 })),
      step_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647 })),
      allocation_ratio: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    }, { additionalProperties: false })),
  }, { additionalProperties: false })),
  allocations: Type.Record(Type.String(), Type.Unknown()),
}, { additionalProperties: false });

interface AllocBody {
  allocations: Record<string, { resources: Record<string, number> }> | Array<{ resource_provider: { uuid: string }; resources: Record<string, number> }>;
  project_id?: string;
  user_id?: string;
  consumer_generation?: number | null;
  consumer_type?: string;
}

function toEntry(consumerUuid: string, b: AllocBody, minor: number): ConsumerAllocations {
  const allocations: AllocationMap = {};
  const add = (rp: string, res: Record<string, number>) => {
    if (!isUuid(rp)) throw pBadRequest(`JSON does not validate: '${rp}' is not a resource provider uuid`);
    allocations[normUuid(rp)] = { ...res };
  };
  if (Array.isArray(b.allocations)) for (const a of b.allocations) add(a.resource_provider.uuid, a.resources);
  else for (const [rp, a] of Object.entries(b.allocations)) add(rp, a.resources);
  return {
    consumerUuid, allocations, projectId: b.project_id ?? INCOMPLETE, userId: b.user_id ?? INCOMPLETE,
    consumerGeneration: minor >= 28 ? b.consumer_generation ?? null : undefined,
    consumerType: minor >= 38 ? b.consumer_type : undefined,
  };
}

export async function allocationRoutes(app: App, d: Deps): Promise<void> {
  const consumerOf = (req: FastifyRequest) => {
    const c = (req.params as { consumer: string }).consumer;
    if (!isUuid(c)) throw pBadRequest(`Malformed consumer_uuid: ${c}`);
    return normUuid(c);
  };

  app.get('/allocations/:consumer', async (req) => {
    d.enforce(req, 'placement:allocations:list');
    const minor = mv(req);
    const v = await d.alloc.ofConsumer(consumerOf(req));
    const out: Record<string, unknown> = { allocations: v.allocations };
    if (minor >= 12 && v.projectId !== undefined) { out.project_id = v.projectId; out.user_id = v.userId; }
    if (minor >= 28 && v.consumerGeneration !== undefined) out.consumer_generation = v.consumerGeneration;
    if (minor >= 38 && v.consumerGeneration !== undefined) out.consumer_type = v.consumerType ?? 'unknown';
    return out;
  });

  app.put('/allocations/:consumer', async (req, reply) => {
    d.enforce(req, 'placement:allocations:update');
    const minor = mv(req);
    const consumer = consumerOf(req);
    const b = validate<AllocBody>(allocationBody(minor), req.body);
    await d.alloc.replace([toEntry(consumer, b, minor)]);
    reply.code(204).send();
  });

  app.delete('/allocations/:consumer', async (req, reply) => {
    d.enforce(req, 'placement:allocations:delete');
    await d.alloc.delete(consumerOf(req));
    reply.code(204).send();
  });

  app.post('/allocations', async (req, reply) => {
    since(req, 13);
    d.enforce(req, 'placement:allocations:manage');
    const minor = mv(req);
    const body = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body) || !Object.keys(body).length) {
      throw pBadRequest('JSON does not validate: the body must map at least one consumer uuid to its allocations');
    }
    const entries = Object.entries(body as Record<string, unknown>).map(([c, v]) => {
      if (!isUuid(c)) throw pBadRequest(`JSON does not validate: '${c}' is not a consumer uuid`);
      return toEntry(normUuid(c), validate<AllocBody>(allocationBody(Math.max(minor, 12), true), v), minor);
    });
    await d.alloc.replace(entries);
    reply.code(204).send();
  });

  app.post('/reshaper', async (req, reply) => {
    since(req, 30);
    d.enforce(req, 'placement:reshaper:reshape');
    const minor = mv(req);
    const b = validate<{ inventories: Record<string, { resource_provider_generation: number; inventories: Record<string, InventoryInput> }>;
      allocations: Record<string, unknown> }>(RESHAPE, req.body);
    const invs = Object.entries(b.inventories).map(([rp, v]) => {
      if (!isUuid(rp)) throw pBadRequest(`JSON does not validate: '${rp}' is not a resource provider uuid`);
      return { rp: normUuid(rp), generation: v.resource_provider_generation, inventories: v.inventories };
    });
    for (const i of invs) await d.svc.provider(i.rp);
    const entries = Object.entries(b.allocations).map(([c, v]) => {
      if (!isUuid(c)) throw pBadRequest(`JSON does not validate: '${c}' is not a consumer uuid`);
      return toEntry(normUuid(c), validate<AllocBody>(allocationBody(Math.max(minor, 28), true), v), Math.max(minor, 28));
    });
    await d.alloc.reshape(invs, entries, minor >= 26);
    reply.code(204).send();
  });

  app.get('/usages', async (req) => {
    since(req, 9);
    d.enforce(req, 'placement:usages');
    const q = req.query as Query;
    allowOnly(q, ['project_id', 'user_id', ...(mv(req) >= 38 ? ['consumer_type'] : [])]);
    const project = one(q, 'project_id');
    if (!project) throw pBadRequest(`Invalid query string parameters: 'project_id' is a required property`, CODE.missingValue);
    const r = await d.alloc.projectUsages(project, one(q, 'user_id'));
    if (mv(req) < 38) return { usages: r.total };
    const type = one(q, 'consumer_type');
    if (type && type !== 'all') return { usages: r.byType[type] ? { [type]: r.byType[type] } : {} };
    return { usages: r.byType };
  });

  app.get('/allocation_candidates', async (req) => {
    since(req, 10);
    d.enforce(req, 'placement:allocation_candidates:list');
    const minor = mv(req);
    const query = parseCandidateQuery(req.query as Query, minor);
    const classes = [...new Set(query.groups.flatMap((g) => Object.keys(g.resources)))];
    await d.svc.assertClassesExist(classes);
    await d.svc.assertTraitsExist([...new Set(query.groups.flatMap((g) => [...g.required.flat(), ...g.forbidden])
      .concat(query.rootRequired ? [...query.rootRequired.required.flat(), ...query.rootRequired.forbidden] : []))]);
    query.summaries = minor >= 27 ? 'all' : 'requested';
    query.summaryTraits = minor >= 17;
    query.nestedAware = minor >= 29;
    query.summaryTrees = minor >= 29;
    const r = await findCandidates(d.svc.store, query);
    const allocation_requests = r.candidates.map((c) => {
      const out: Record<string, unknown> = minor >= 12
        ? { allocations: Object.fromEntries(Object.entries(c.allocations).map(([rp, res]) => [rp, { resources: res }])) }
        : { allocations: Object.entries(c.allocations).map(([rp, res]) => ({ resource_provider: { uuid: rp }, resources: res })) };
      if (minor >= 34) out.mappings = c.mappings;
      return out;
    });
    const provider_summaries: Record<string, unknown> = {};
    for (const [rp, sum] of Object.entries(r.summaries)) {
      const out: Record<string, unknown> = { resources: sum.resources };
      if (minor >= 17) out.traits = sum.traits;
      if (minor >= 29) { out.parent_provider_uuid = sum.parentUuid; out.root_provider_uuid = sum.rootUuid; }
      provider_summaries[rp] = out;
    }
    return { allocation_requests, provider_summaries };
  });
}

/** The allocation_candidates query string → request groups, per the microversion's syntax. */
export function parseCandidateQuery(q: Query, minor: number): CandidateQuery {
  const suffix = minor >= 33 ? '([a-zA-Z0-9_-]{1,64})' : minor >= 25 ? '(\\d+)' : '()';
  const allowed: Array<string | RegExp> = ['resources'];
  if (minor >= 16) allowed.push('limit');
  if (minor >= 17) allowed.push('required');
  if (minor >= 21) allowed.push('member_of');
  if (minor >= 31) allowed.push('in_tree');
  if (minor >= 35) allowed.push('root_required');
  if (minor >= 36) allowed.push('same_subtree');
  if (minor >= 25) {
    allowed.push('group_policy');
    for (const p of ['resources', 'required', 'member_of', ...(minor >= 31 ? ['in_tree'] : [])]) allowed.push(new RegExp(`^${p}${suffix}$`));
  }
  allowOnly(q, allowed);
  const sameSubtree = all(q, 'same_subtree').map((v) => v.split(',').map((x) => x.trim()));

  const suffixes = new Set<string>(['']);
  const re = new RegExp(`^(?:resources|required|member_of|in_tree)${suffix}$`);
  for (const k of Object.keys(q)) { const m = re.exec(k); if (m && m[1]) suffixes.add(m[1]); }

  const groups: RequestGroup[] = [];
  for (const sfx of suffixes) {
    const res = one(q, `resources${sfx}`);
    const req = parseRequired(all(q, `required${sfx}`), minor, `required${sfx}`);
    if (all(q, `required${sfx}`).length > 1 && minor < 39) throw pBadRequest(`Query parameter 'required${sfx}' may only be given once.`, CODE.duplicateKey);
    const mem = parseMemberOf(all(q, `member_of${sfx}`), minor, `member_of${sfx}`);
    const tree = one(q, `in_tree${sfx}`);
    if (res === undefined) {
      if (sfx === '' && minor < 25) throw pBadRequest(`Invalid query string parameters: 'resources' is a required property`, CODE.missingValue);
      // A suffixed group without resources names a provider for same_subtree (1.36).
      if (sfx !== '' && !sameSubtree.some((l) => l.includes(sfx))) {
        throw pBadRequest(`All request groups must specify resources (or be used in same_subtree). Group '${sfx}' has none.`);
      }
      if (sfx === '') continue;
    }
    groups.push({
      suffix: sfx, resources: res !== undefined ? parseResources(res) : {},
      required: req.required, forbidden: req.forbidden, memberOf: mem.memberOf, forbiddenAggregates: mem.forbidden,
      inTree: tree !== undefined ? parseUuidParam(tree, `in_tree${sfx}`) : undefined,
    });
  }
  if (!groups.length) throw pBadRequest(`At least one request group (resources or resources{N}) is required.`, CODE.missingValue);

  const unknown = sameSubtree.flat().filter((sfx) => !groups.some((g) => g.suffix === sfx && sfx !== ''));
  if (unknown.length) throw pBadRequest(`Real suffixes should be specified in same_subtree: ${unknown.join(', ')} not found in request groups.`, CODE.badValue);
  const policy = one(q, 'group_policy');
  if (policy !== undefined && !['none', 'isolate'].includes(policy)) {
    throw pBadRequest(`Invalid query string parameters: '${policy}' is not one of ['none', 'isolate']`, CODE.badValue);
  }
  if (groups.filter((g) => g.suffix !== '' && Object.keys(g.resources).length).length > 1 && policy === undefined) {
    throw pBadRequest('The "group_policy" parameter is required when specifying more than one "resources{N}" parameter.', CODE.missingValue);
  }
  let limit: number | undefined;
  const lim = one(q, 'limit');
  if (lim !== undefined) {
    if (!/^[1-9]\d*$/.test(lim)) throw pBadRequest(`Invalid query string parameters: Failed validating 'pattern' in schema['properties']['limit']: '${lim}'`, CODE.badValue);
    limit = Number(lim);
  }
  const rootReq = one(q, 'root_required');
  let rootRequired: CandidateQuery['rootRequired'];
  if (rootReq !== undefined) rootRequired = parseRequired([rootReq], minor, 'root_required');
  return { groups, groupPolicy: policy as 'none' | 'isolate' | undefined, limit, rootRequired, sameSubtree };
}
