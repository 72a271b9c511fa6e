// The typed interface other services (compute's scheduler, host registration) call in-process.
// It skips HTTP policy: callers are trusted services. An HTTP-backed implementation can follow
// when services split across machines; the shapes are Placement's, in camelCase.
import { ApiError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { AllocationMap, AllocationService, ConsumerAllocations, ConsumerView } from './allocations.js';
import { findCandidates, type CandidateResult } from './candidates.js';
import { CODE, GenerationConflict } from './codes.js';
import { CUSTOM_NAME, fieldsOf, inventoryDefaults, type InventoryInput, type PlacementService } from './service.js';

export type { AllocationMap, CandidateResult, ConsumerAllocations, ConsumerView, InventoryInput };
export type { AllocationCandidate, ProviderSummary } from './candidates.js';

export interface HostProviderSpec {
  /** Stable provider uuid (the compute node's); looked up by name when omitted. */
  uuid?: string;
  /** Unique provider name: the host's hypervisor hostname. */
  name: string;
  /** Replaces the inventory (unchanged inventories bump nothing). Classes in use that vanish are kept. */
  inventories: Record<string, InventoryInput>;
  /** When given, replaces the provider's traits; unknown CUSTOM_* traits are created. */
  traits?: string[];
  /** When given, replaces the provider's aggregates (compute host aggregates mirror here). */
  aggregates?: string[];
  parentUuid?: string;
}

export interface ProviderInfo {
  uuid: string;
  name: string;
  generation: number;
}

export interface CandidateRequest {
  /** The unsuffixed group: e.g. { VCPU: 2, MEMORY_MB: 2048, DISK_GB: 10 }. */
  resources: Record<string, number>;
  /** Traits every candidate must have (any-of lists allowed via `anyTraits`). */
  required?: string[];
  anyTraits?: string[][];
  forbidden?: string[];
  /** Each inner list: the provider must be in at least one of these aggregates. */
  memberOf?: string[][];
  forbiddenAggregates?: string[];
  /** Only providers of this provider's tree (a forced host). */
  inTree?: string;
  /** Granular groups, each satisfied by one provider (PCI devices, bandwidth, ...). */
  groups?: Array<{ suffix: string; resources: Record<string, number>; required?: string[]; forbidden?: string[]; memberOf?: string[][] }>;
  groupPolicy?: 'none' | 'isolate';
  /** Most candidates wanted (default: all). */
  limit?: number;
  /** Hosts in random order instead of registration order (spread; fewer claim races). */
  randomize?: boolean;
  /**
   * Provider summaries of the providers in candidates: 'requested' classes only (default, no
   * extra query), 'all' classes, or 'none'.
   */
  summaries?: 'all' | 'requested' | 'none';
}

export interface PlacementClient {
  /** Idempotent registration of a host as a provider with its inventory. */
  ensureHostProvider(spec: HostProviderSpec): Promise<ProviderInfo>;
  /** Removes a host's provider; 409 ApiError while it still holds allocations. */
  deleteProvider(uuid: string): Promise<void>;
  setProviderAggregates(uuid: string, aggregates: string[]): Promise<void>;
  setProviderTraits(uuid: string, traits: string[]): Promise<void>;
  /** Providers that can take the request now, with summaries (capacity/used, traits) to weigh them. */
  getCandidates(req: CandidateRequest): Promise<CandidateResult>;
  /**
   * Atomically replaces `consumer`'s allocations with `allocations`. False when they no longer fit
   * (another claim won the race) — the scheduler then tries its next candidate.
   */
  claim(consumer: string, allocations: AllocationMap, owner: { projectId: string; userId: string; consumerType?: string }): Promise<boolean>;
  /** Several consumers at once, all or nothing (POST /allocations); false on conflict. */
  replaceAllocations(entries: ConsumerAllocations[]): Promise<boolean>;
  /**
   * Resize/migrate: moves everything `from` holds to `to` (e.g. instance → migration record),
   * atomically, leaving `from` empty; the caller then claims the destination for `from`.
   */
  moveAllocations(from: string, to: string, opts?: { consumerType?: string }): Promise<void>;
  /** Idempotent: no error when the consumer holds nothing. */
  deleteAllocations(consumer: string): Promise<void>;
  getAllocations(consumer: string): Promise<ConsumerView>;
  /** Totals per resource class for a project (optionally one user). */
  projectUsages(projectId: string, userId?: string): Promise<Record<string, number>>;
  providerUsages(uuid: string): Promise<Record<string, number>>;
}

export function createPlacementClient(svc: PlacementService, alloc: AllocationService, log: Logger): PlacementClient {
  const conflictToFalse = async (fn: () => Promise<void>): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) { log.debug({ err: e.message }, 'placement claim refused'); return false; }
      throw e;
    }
  };

  return {
    async ensureHostProvider(spec) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await ensureOnce(svc, spec);
        } catch (e) {
          // A concurrent registration of the same host (generation moved, or it created the
          // provider first): look again.
          const raced = e instanceof GenerationConflict || (e instanceof ApiError && e.status === 409 && e.extra.type === CODE.duplicateName);
          if (!raced || attempt >= 5) throw e;
        }
      }
    },
    deleteProvider: (uuid) => svc.deleteProvider(uuid),
    async setProviderAggregates(uuid, aggregates) { await svc.setProviderLinks('aggregates', uuid, aggregates, undefined); },
    async setProviderTraits(uuid, traits) {
      for (const t of traits) if (CUSTOM_NAME.test(t)) await svc.ensureTrait(t);
      await svc.setProviderLinks('traits', uuid, traits, undefined);
    },
    async getCandidates(req) {
      const groups = [{
        suffix: '', resources: req.resources,
        required: [...(req.required ?? []).map((t) => [t]), ...(req.anyTraits ?? [])],
        forbidden: req.forbidden ?? [], memberOf: req.memberOf ?? [], forbiddenAggregates: req.forbiddenAggregates ?? [],
        inTree: req.inTree,
      }, ...(req.groups ?? []).map((g) => ({
        suffix: g.suffix, resources: g.resources, required: (g.required ?? []).map((t) => [t]), forbidden: g.forbidden ?? [],
        memberOf: g.memberOf ?? [], forbiddenAggregates: [],
      }))];
      return findCandidates(svc.store, { groups, groupPolicy: req.groupPolicy, limit: req.limit, randomize: req.randomize,
        summaries: req.summaries ?? 'requested', summaryTraits: true, summaryTrees: false });
    },
    claim: (consumer, allocations, owner) => conflictToFalse(() => alloc.replace([{
      consumerUuid: consumer, allocations, projectId: owner.projectId, userId: owner.userId, consumerType: owner.consumerType,
    }])),
    replaceAllocations: (entries) => conflictToFalse(() => alloc.replace(entries)),
    async moveAllocations(from, to, opts = {}) {
      const v = await alloc.ofConsumer(from);
      if (!Object.keys(v.allocations).length) return;
      const allocations = Object.fromEntries(Object.entries(v.allocations).map(([rp, a]) => [rp, a.resources]));
      const target = await alloc.ofConsumer(to);
      // Generations pin both consumers: a concurrent change to either fails the move (409).
      await alloc.replace([
        { consumerUuid: from, allocations: {}, projectId: v.projectId!, userId: v.userId!, consumerGeneration: v.consumerGeneration ?? null },
        { consumerUuid: to, allocations, projectId: v.projectId!, userId: v.userId!, consumerGeneration: target.consumerGeneration ?? null,
          consumerType: opts.consumerType ?? 'MIGRATION' },
      ]);
    },
    async deleteAllocations(consumer) {
      const c = await svc.store.consumer(consumer);
      await alloc.replace([{ consumerUuid: consumer, allocations: {}, projectId: c?.project_id ?? '', userId: c?.user_id ?? '' }]);
    },
    getAllocations: (consumer) => alloc.ofConsumer(consumer),
    async projectUsages(projectId, userId) { return (await alloc.projectUsages(projectId, userId)).total; },
    async providerUsages(uuid) { return (await alloc.providerUsages(uuid)).usages; },
  };
}

async function ensureOnce(svc: PlacementService, spec: HostProviderSpec): Promise<ProviderInfo> {
  let p = spec.uuid ? await svc.store.provider(spec.uuid) : await svc.store.providerByName(spec.name);
  if (!p) {
    p = await svc.createProvider({ uuid: spec.uuid, name: spec.name, parentUuid: spec.parentUuid ?? null });
  } else if (p.name !== spec.name) {
    p = await svc.updateProvider(p.uuid, { name: spec.name }, false);
  }
  const cur = await svc.inventories(p.uuid);
  const same = Object.keys(cur.inventories).length === Object.keys(spec.inventories).length
    && Object.entries(spec.inventories).every(([rc, i]) => {
      const have = cur.inventories[rc];
      return have !== undefined && JSON.stringify(fieldsOf(have)) === JSON.stringify(inventoryDefaults(i));
    });
  let generation = cur.generation;
  if (!same) generation = (await svc.setInventories(p.uuid, cur.generation, spec.inventories, { keepInUse: true })).generation;
  for (const [kind, names] of [['traits', spec.traits], ['aggregates', spec.aggregates]] as const) {
    if (!names) continue;
    if (kind === 'traits') for (const t of names) if (CUSTOM_NAME.test(t)) await svc.ensureTrait(t);
    const have = await svc.providerLinks(kind, p.uuid);
    if (JSON.stringify(have.names) !== JSON.stringify([...new Set(names)].sort())) {
      generation = (await svc.setProviderLinks(kind, p.uuid, names, have.generation)).generation;
    }
  }
  return { uuid: p.uuid, name: spec.name, generation };
}
