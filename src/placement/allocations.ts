// Allocations: the claims consumers (servers, migrations, ports) hold against providers.
//
// Why this is safe under concurrency, on both engines: one transaction reads each affected
// provider's generation, THEN its usage, checks capacity, and bumps the generation with a
// compare-and-swap (UPDATE ... WHERE generation = read value). Two claims racing on a provider
// both read generation g; the first bump wins, the second matches no row (PostgreSQL re-checks
// the WHERE after the winner commits), rolls back and retries against the new usage. SQLite
// serializes writing transactions outright. Providers are bumped in uuid order (no deadlocks).
import type { Logger } from '../core/log.js';
import { CODE, GenerationConflict, pBadRequest, pConflict, pNotFound } from './codes.js';
import type { InventoryInput, PlacementService } from './service.js';
import { capacityOf, type AllocationRow, type PlacementStore } from './store.js';

/** rp uuid → resource class → amount. */
export type AllocationMap = Record<string, Record<string, number>>;

export interface ConsumerAllocations {
  consumerUuid: string;
  /** Replaces everything the consumer holds; empty removes its allocations (and the consumer). */
  allocations: AllocationMap;
  projectId: string;
  userId: string;
  /** null: the consumer must not exist yet; a number: must match; undefined: not checked. */
  consumerGeneration?: number | null;
  consumerType?: string | null;
}

export interface ConsumerView {
  allocations: Record<string, { generation: number; resources: Record<string, number> }>;
  projectId?: string;
  userId?: string;
  consumerGeneration?: number;
  consumerType?: string | null;
}

const RETRIES = 10;

/** Database errors that mean "another transaction got there first": try again. */
function retryable(e: unknown): boolean {
  if (e instanceof GenerationConflict) return true;
  const code = (e as { code?: string })?.code ?? '';
  return ['40001', '40P01', '23505', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED'].includes(code);
}

export class AllocationService {
  constructor(private readonly svc: PlacementService, private readonly log: Logger) {}

  /**
   * Atomically replaces the allocations of every consumer in `entries` (PUT /allocations/{c}
   * is one entry; POST /allocations and moves are several). All or nothing.
   */
  async replace(entries: ConsumerAllocations[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.svc.tx((s) => this.replaceOnce(s, entries));
        return;
      } catch (e) {
        if (!retryable(e) || attempt >= RETRIES) {
          if (retryable(e)) throw new GenerationConflict();
          throw e;
        }
        this.log.debug({ attempt }, 'allocation write raced; retrying');
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }

  private async replaceOnce(s: PlacementStore, entries: ConsumerAllocations[]): Promise<void> {
    const seen = new Set<string>();
    const consumers = new Map<string, Awaited<ReturnType<PlacementStore['consumer']>>>();
    const affected = new Set<string>();
    for (const e of entries) {
      if (seen.has(e.consumerUuid)) throw pBadRequest(`Consumer ${e.consumerUuid} appears more than once.`);
      seen.add(e.consumerUuid);
      const c = await s.consumer(e.consumerUuid);
      consumers.set(e.consumerUuid, c);
      if (e.consumerGeneration !== undefined) {
        const actual = c?.generation ?? null;
        if (actual !== e.consumerGeneration) {
          throw pConflict(`consumer generation conflict - expected ${e.consumerGeneration ?? 'null'} but got ${actual ?? 'null'}`,
            CODE.concurrentUpdate);
        }
      }
      for (const a of await s.consumerAllocations(e.consumerUuid)) affected.add(a.rp_uuid);
      for (const [rp, res] of Object.entries(e.allocations)) {
        if (Object.keys(res).length) affected.add(rp);
      }
    }

    // Generations first, then usage: a claim committed in between shows as a moved generation.
    const providers = new Map((await s.providers({ uuids: [...affected] })).map((p) => [p.uuid, p]));
    const wanted = new Map<string, Map<string, number>>();
    const rows: AllocationRow[] = [];
    for (const e of entries) {
      for (const [rp, res] of Object.entries(e.allocations)) {
        if (!providers.has(rp)) throw pBadRequest(`Allocation for resource provider '${rp}' that does not exist.`);
        for (const [rc, amount] of Object.entries(res)) {
          let m = wanted.get(rp);
          if (!m) wanted.set(rp, (m = new Map()));
          m.set(rc, (m.get(rc) ?? 0) + amount);
          rows.push({ consumer_uuid: e.consumerUuid, rp_uuid: rp, resource_class: rc, used: amount });
        }
      }
    }
    for (const e of entries) await s.deleteConsumerAllocations(e.consumerUuid);

    const rpList = [...wanted.keys()];
    const inventories = await s.inventories(rpList);
    const usage = await s.usage(rpList);
    const invOf = new Map(inventories.map((i) => [`${i.rp_uuid} ${i.resource_class}`, i]));
    for (const r of rows) {
      const inv = invOf.get(`${r.rp_uuid} ${r.resource_class}`);
      if (!(await this.svc.resourceClassExists(r.resource_class))) {
        throw pBadRequest(`Unable to allocate inventory: No such resource class ${r.resource_class}.`);
      }
      if (!inv) {
        throw pConflict(`Unable to allocate inventory: Inventory for '${r.resource_class}' on resource provider '${r.rp_uuid}' invalid.`);
      }
      if (r.used < inv.min_unit || r.used > inv.max_unit || r.used % inv.step_size !== 0) {
        throw pBadRequest(`Unable to allocate inventory: Unable to allocate ${r.used} of ${r.resource_class} on resource provider ${r.rp_uuid}: `
          + `it must be between min_unit ${inv.min_unit} and max_unit ${inv.max_unit} in steps of ${inv.step_size}.`);
      }
    }
    for (const [rp, m] of wanted) {
      for (const [rc, amount] of m) {
        const inv = invOf.get(`${rp} ${rc}`)!;
        const used = usage.get(rp)?.get(rc) ?? 0;
        if (used + amount > capacityOf(inv)) {
          throw pConflict(`Unable to allocate inventory: Unable to create allocation for '${rc}' on resource provider '${rp}'. `
            + 'The requested amount would exceed the capacity.');
        }
      }
    }

    for (const rp of [...affected].sort()) {
      if (!(await s.bumpGeneration(rp, providers.get(rp)!.generation))) throw new GenerationConflict();
    }
    await s.insertAllocations(rows);
    for (const e of entries) {
      const c = consumers.get(e.consumerUuid);
      const owner = { uuid: e.consumerUuid, project_id: e.projectId, user_id: e.userId, consumer_type: e.consumerType ?? c?.consumer_type ?? null };
      const holds = Object.values(e.allocations).some((r) => Object.keys(r).length > 0);
      if (!holds) {
        if (c) await s.deleteConsumer(e.consumerUuid);
      } else if (!c) {
        await s.insertConsumer(owner);
      } else if (!(await s.bumpConsumer(owner, c.generation))) {
        throw pConflict('consumer generation conflict - the consumer changed concurrently', CODE.concurrentUpdate);
      }
    }
  }

  /**
   * POST /reshaper (1.30): new inventories and allocations in one transaction, so that usage can
   * move between providers (e.g. VCPU from a host to its NUMA children) without a window.
   * Generations are the caller's (a race answers 409; the caller re-reads and retries).
   */
  async reshape(inventories: Array<{ rp: string; generation: number; inventories: Record<string, InventoryInput> }>,
    entries: ConsumerAllocations[], reservedMayEqualTotal: boolean): Promise<void> {
    for (const i of inventories) {
      await this.svc.assertClassesExist(Object.keys(i.inventories), (rc) => `Unknown resource class in inventory for resource provider ${i.rp}: ${rc}`);
    }
    try {
      await this.svc.tx(async (s) => {
        for (const i of inventories) {
          await this.svc.applyInventories(s, i.rp, i.generation, i.inventories, { skipInUseCheck: true, reservedMayEqualTotal });
        }
        await this.replaceOnce(s, entries);
        // What is still allocated must still have an inventory to be allocated from.
        const usage = await s.usage(inventories.map((i) => i.rp));
        for (const i of inventories) {
          for (const rc of usage.get(i.rp)?.keys() ?? []) {
            if (!i.inventories[rc]) {
              throw pConflict(`update conflict: Inventory for '${rc}' on resource provider '${i.rp}' in use.`, CODE.inventoryInUse);
            }
          }
        }
      });
    } catch (e) {
      if (retryable(e) && !(e instanceof GenerationConflict)) throw new GenerationConflict();
      throw e;
    }
  }

  /** DELETE /allocations/{consumer}: 404 when it holds nothing. */
  async delete(consumerUuid: string): Promise<void> {
    const c = await this.svc.store.consumer(consumerUuid);
    const held = await this.svc.store.consumerAllocations(consumerUuid);
    if (!held.length) throw pNotFound(`No allocations for consumer '${consumerUuid}'`);
    await this.replace([{ consumerUuid, allocations: {}, projectId: c?.project_id ?? '', userId: c?.user_id ?? '' }]);
  }

  async ofConsumer(consumerUuid: string): Promise<ConsumerView> {
    const s = this.svc.store;
    const rows = await s.consumerAllocations(consumerUuid);
    const c = await s.consumer(consumerUuid);
    const gens = new Map((await s.providers({ uuids: [...new Set(rows.map((r) => r.rp_uuid))] })).map((p) => [p.uuid, p.generation]));
    const allocations: ConsumerView['allocations'] = {};
    for (const r of rows) {
      (allocations[r.rp_uuid] ??= { generation: gens.get(r.rp_uuid) ?? 0, resources: {} }).resources[r.resource_class] = r.used;
    }
    if (!c) return { allocations };
    return { allocations, projectId: c.project_id, userId: c.user_id, consumerGeneration: c.generation, consumerType: c.consumer_type };
  }

  async ofProvider(rp: string): Promise<{ generation: number; allocations: Record<string, { resources: Record<string, number> }> }> {
    const p = await this.svc.provider(rp);
    const allocations: Record<string, { resources: Record<string, number> }> = {};
    for (const r of await this.svc.store.providerAllocations(rp)) {
      (allocations[r.consumer_uuid] ??= { resources: {} }).resources[r.resource_class] = r.used;
    }
    return { generation: p.generation, allocations };
  }

  /** Every inventory class of the provider with what is used of it (0 when nothing). */
  async providerUsages(rp: string): Promise<{ generation: number; usages: Record<string, number> }> {
    const p = await this.svc.provider(rp);
    const inv = await this.svc.store.inventories([rp]);
    const used = (await this.svc.store.usage([rp])).get(rp) ?? new Map<string, number>();
    const usages: Record<string, number> = {};
    for (const i of inv) usages[i.resource_class] = used.get(i.resource_class) ?? 0;
    for (const [rc, n] of used) usages[rc] = n;
    return { generation: p.generation, usages };
  }

  /** Totals of a project (and user); `byType` groups them per consumer type with consumer counts (1.38). */
  async projectUsages(projectId: string, userId?: string): Promise<{ total: Record<string, number>; byType: Record<string, Record<string, number>> }> {
    const rows = await this.svc.store.projectUsage(projectId, userId);
    const counts = await this.svc.store.projectConsumerCount(projectId, userId);
    const total: Record<string, number> = {};
    const byType: Record<string, Record<string, number>> = {};
    for (const c of counts) {
      const t = c.consumer_type ?? 'unknown';
      (byType[t] ??= { consumer_count: 0 }).consumer_count! += c.n;
      (byType.all ??= { consumer_count: 0 }).consumer_count! += c.n;
    }
    for (const r of rows) {
      total[r.resource_class] = (total[r.resource_class] ?? 0) + r.used;
      const t = r.consumer_type ?? 'unknown';
      (byType[t] ??= { consumer_count: 0 })[r.resource_class] = (byType[t]![r.resource_class] ?? 0) + r.used;
      (byType.all ??= { consumer_count: 0 })[r.resource_class] = (byType.all![r.resource_class] ?? 0) + r.used;
    }
    return { total, byType };
  }
}
