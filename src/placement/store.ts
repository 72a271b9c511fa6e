// Placement's tables, and nothing else: the SQL the service composes into transactions.
// A store wraps either the database or an open transaction, so the service decides atomicity.
import { sql, type Kysely } from 'kysely';
import { nowIso } from '../core/ids.js';

export interface ProviderRow {
  uuid: string;
  name: string;
  generation: number;
  parent_uuid: string | null;
  root_uuid: string;
  created_at: string;
  updated_at: string;
}

export interface InventoryFields {
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
}

export interface InventoryRow extends InventoryFields {
  rp_uuid: string;
  resource_class: string;
}

export interface ConsumerRow {
  uuid: string;
  project_id: string;
  user_id: string;
  consumer_type: string | null;
  generation: number;
  created_at: string;
  updated_at: string;
}

export interface AllocationRow {
  consumer_uuid: string;
  rp_uuid: string;
  resource_class: string;
  used: number;
}

/** Splits long IN lists so neither engine hits its bound-parameter limit. */
export function chunks<T>(items: readonly T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Integer capacity of an inventory: (total - reserved) * allocation_ratio, as Placement rounds it. */
export const capacityOf = (inv: InventoryFields): number => Math.floor((inv.total - inv.reserved) * inv.allocation_ratio);

export class PlacementStore {
  constructor(readonly db: Kysely<any>) {}

  // ---- providers ----
  async provider(uuid: string): Promise<ProviderRow | undefined> {
    return this.db.selectFrom('placement_resource_providers').selectAll().where('uuid', '=', uuid).executeTakeFirst() as Promise<ProviderRow | undefined>;
  }

  async providerByName(name: string): Promise<ProviderRow | undefined> {
    return this.db.selectFrom('placement_resource_providers').selectAll().where('name', '=', name).executeTakeFirst() as Promise<ProviderRow | undefined>;
  }

  async providers(filter: { name?: string; uuid?: string; root?: string; uuids?: string[] } = {}): Promise<ProviderRow[]> {
    if (filter.uuids) {
      const out: ProviderRow[] = [];
      for (const part of chunks(filter.uuids)) {
        out.push(...await this.db.selectFrom('placement_resource_providers').selectAll().where('uuid', 'in', part).execute() as ProviderRow[]);
      }
      return out;
    }
    let q = this.db.selectFrom('placement_resource_providers').selectAll();
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    if (filter.uuid !== undefined) q = q.where('uuid', '=', filter.uuid);
    if (filter.root !== undefined) q = q.where('root_uuid', '=', filter.root);
    return q.orderBy('created_at').orderBy('uuid').execute() as Promise<ProviderRow[]>;
  }

  /** Root providers, a page at a time in creation order. */
  async rootPage(offset: number, size: number): Promise<string[]> {
    const r = await this.db.selectFrom('placement_resource_providers').select('uuid').where('parent_uuid', 'is', null)
      .orderBy('created_at').orderBy('uuid')
      .$if(size < Number.MAX_SAFE_INTEGER, (q) => q.limit(size).offset(offset)).execute();
    return r.map((x) => x.uuid as string);
  }

  /** Every provider in the trees rooted at `roots`. */
  async treeMembers(roots: string[]): Promise<ProviderRow[]> {
    const out: ProviderRow[] = [];
    for (const part of chunks(roots)) {
      out.push(...await this.db.selectFrom('placement_resource_providers').selectAll().where('root_uuid', 'in', part).execute() as ProviderRow[]);
    }
    return out;
  }

  async insertProvider(p: { uuid: string; name: string; parent_uuid: string | null; root_uuid: string }): Promise<void> {
    const now = nowIso();
    await this.db.insertInto('placement_resource_providers')
      .values({ ...p, generation: 0, created_at: now, updated_at: now }).execute();
  }

  async updateProvider(uuid: string, patch: Partial<Pick<ProviderRow, 'name' | 'parent_uuid' | 'root_uuid'>>): Promise<void> {
    await this.db.updateTable('placement_resource_providers').set({ ...patch, updated_at: nowIso() })
      .where('uuid', '=', uuid).execute();
  }

  /** Moves a whole subtree under a new root (re-parenting, 1.37). */
  async setRoot(oldRoot: string, members: string[], newRoot: string): Promise<void> {
    for (const part of chunks(members)) {
      await this.db.updateTable('placement_resource_providers').set({ root_uuid: newRoot })
        .where('root_uuid', '=', oldRoot).where('uuid', 'in', part).execute();
    }
  }

  async childCount(uuid: string): Promise<number> {
    const r = await this.db.selectFrom('placement_resource_providers').select((eb) => eb.fn.countAll().as('n'))
      .where('parent_uuid', '=', uuid).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async deleteProvider(uuid: string): Promise<void> {
    for (const t of ['placement_inventories', 'placement_provider_traits', 'placement_provider_aggregates']) {
      await this.db.deleteFrom(t).where('rp_uuid', '=', uuid).execute();
    }
    await this.db.deleteFrom('placement_resource_providers').where('uuid', '=', uuid).execute();
  }

  /**
   * Compare-and-swap on the provider generation: the one serialization point of every change to
   * a provider (inventory, traits, aggregates, allocations). False when someone else changed it.
   */
  async bumpGeneration(uuid: string, expected: number): Promise<boolean> {
    const r = await this.db.updateTable('placement_resource_providers')
      .set((eb) => ({ generation: eb('generation', '+', 1), updated_at: nowIso() }))
      .where('uuid', '=', uuid).where('generation', '=', expected).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  // ---- inventories and usage ----
  async inventories(rps: string[], classes?: string[]): Promise<InventoryRow[]> {
    const out: InventoryRow[] = [];
    for (const part of chunks(rps)) {
      let q = this.db.selectFrom('placement_inventories').selectAll().where('rp_uuid', 'in', part);
      if (classes) q = q.where('resource_class', 'in', classes);
      out.push(...await q.orderBy('resource_class').execute() as InventoryRow[]);
    }
    return out.map(numericInventory);
  }

  /** Inventories of the given classes on every provider (the candidates' first cut). */
  async inventoriesOfClasses(classes: string[]): Promise<InventoryRow[]> {
    const rows = await this.db.selectFrom('placement_inventories').selectAll().where('resource_class', 'in', classes).execute();
    return rows.map(numericInventory);
  }

  /**
   * One pass for allocation candidates: every inventory of `classes` with its usage and its
   * provider's row (the provider repeats per class; cheaper than a second round trip).
   */
  async capacityOfClasses(classes: string[], only: { roots?: string[]; rps?: string[] } = {}): Promise<Array<InventoryRow & { used: number; provider: ProviderRow }>> {
    const list = sql.join(classes);
    const narrow = only.roots ? sql`AND p.root_uuid IN (${sql.join(only.roots)})`
      : only.rps ? sql`AND i.rp_uuid IN (${sql.join(only.rps)})` : sql``;
    const r = await sql<any>`
      SELECT i.rp_uuid, i.resource_class, i.total, i.reserved, i.min_unit, i.max_unit, i.step_size, i.allocation_ratio,
             COALESCE((SELECT SUM(a.used) FROM placement_allocations a
                        WHERE a.rp_uuid = i.rp_uuid AND a.resource_class = i.resource_class), 0) AS used,
             p.name, p.generation, p.parent_uuid, p.root_uuid, p.created_at, p.updated_at
        FROM placement_inventories i
        JOIN placement_resource_providers p ON p.uuid = i.rp_uuid
       WHERE i.resource_class IN (${list}) ${narrow}`.execute(this.db);
    return r.rows.map((x) => ({
      ...numericInventory(x), used: Number(x.used),
      provider: { uuid: x.rp_uuid, name: x.name, generation: Number(x.generation), parent_uuid: x.parent_uuid,
        root_uuid: x.root_uuid, created_at: x.created_at, updated_at: x.updated_at },
    }));
  }

  async replaceInventories(rp: string, rows: InventoryRow[]): Promise<void> {
    await this.db.deleteFrom('placement_inventories').where('rp_uuid', '=', rp).execute();
    if (rows.length) await this.db.insertInto('placement_inventories').values(rows).execute();
  }

  async deleteInventory(rp: string, rc: string): Promise<void> {
    await this.db.deleteFrom('placement_inventories').where('rp_uuid', '=', rp).where('resource_class', '=', rc).execute();
  }

  /** Used amounts per (provider, class); `classes` narrows the scan. */
  async usage(rps: string[] | 'all', classes?: string[]): Promise<Map<string, Map<string, number>>> {
    const out = new Map<string, Map<string, number>>();
    const run = async (part?: string[]) => {
      let q = this.db.selectFrom('placement_allocations')
        .select(['rp_uuid', 'resource_class', (eb) => eb.fn.sum<number>('used').as('used')])
        .groupBy(['rp_uuid', 'resource_class']);
      if (part) q = q.where('rp_uuid', 'in', part);
      if (classes) q = q.where('resource_class', 'in', classes);
      for (const r of await q.execute()) {
        let m = out.get(r.rp_uuid);
        if (!m) out.set(r.rp_uuid, (m = new Map()));
        m.set(r.resource_class, Number(r.used));
      }
    };
    if (rps === 'all') await run();
    else for (const part of chunks(rps)) await run(part);
    return out;
  }

  async hasAllocations(rp: string, rc?: string): Promise<boolean> {
    let q = this.db.selectFrom('placement_allocations').select('rp_uuid').where('rp_uuid', '=', rp);
    if (rc) q = q.where('resource_class', '=', rc);
    return (await q.limit(1).executeTakeFirst()) !== undefined;
  }

  // ---- consumers and allocations ----
  async consumer(uuid: string): Promise<ConsumerRow | undefined> {
    return this.db.selectFrom('placement_consumers').selectAll().where('uuid', '=', uuid).executeTakeFirst() as Promise<ConsumerRow | undefined>;
  }

  async insertConsumer(c: { uuid: string; project_id: string; user_id: string; consumer_type: string | null }): Promise<void> {
    const now = nowIso();
    await this.db.insertInto('placement_consumers').values({ ...c, generation: 0, created_at: now, updated_at: now }).execute();
  }

  /** CAS on the consumer generation, also recording its owner and type. */
  async bumpConsumer(c: { uuid: string; project_id: string; user_id: string; consumer_type: string | null }, expected: number): Promise<boolean> {
    const r = await this.db.updateTable('placement_consumers')
      .set((eb) => ({ generation: eb('generation', '+', 1), project_id: c.project_id, user_id: c.user_id,
        consumer_type: c.consumer_type, updated_at: nowIso() }))
      .where('uuid', '=', c.uuid).where('generation', '=', expected).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async deleteConsumer(uuid: string): Promise<void> {
    await this.db.deleteFrom('placement_consumers').where('uuid', '=', uuid).execute();
  }

  async consumerAllocations(uuid: string): Promise<AllocationRow[]> {
    const rows = await this.db.selectFrom('placement_allocations').select(['consumer_uuid', 'rp_uuid', 'resource_class', 'used'])
      .where('consumer_uuid', '=', uuid).orderBy('rp_uuid').orderBy('resource_class').execute();
    return rows.map((r) => ({ ...r, used: Number(r.used) }));
  }

  async providerAllocations(rp: string): Promise<AllocationRow[]> {
    const rows = await this.db.selectFrom('placement_allocations').select(['consumer_uuid', 'rp_uuid', 'resource_class', 'used'])
      .where('rp_uuid', '=', rp).orderBy('consumer_uuid').orderBy('resource_class').execute();
    return rows.map((r) => ({ ...r, used: Number(r.used) }));
  }

  async deleteConsumerAllocations(uuid: string): Promise<void> {
    await this.db.deleteFrom('placement_allocations').where('consumer_uuid', '=', uuid).execute();
  }

  async insertAllocations(rows: AllocationRow[]): Promise<void> {
    if (!rows.length) return;
    const now = nowIso();
    await this.db.insertInto('placement_allocations').values(rows.map((r) => ({ ...r, created_at: now }))).execute();
  }

  /** Usage of a project (optionally one user), per consumer type and class. */
  async projectUsage(projectId: string, userId?: string): Promise<Array<{ consumer_type: string | null; resource_class: string; used: number; consumers: number }>> {
    let q = this.db.selectFrom('placement_allocations as a')
      .innerJoin('placement_consumers as c', 'c.uuid', 'a.consumer_uuid')
      .select(['c.consumer_type', 'a.resource_class', (eb) => eb.fn.sum<number>('a.used').as('used'),
        (eb) => eb.fn.count<number>('a.consumer_uuid').distinct().as('consumers')])
      .where('c.project_id', '=', projectId)
      .groupBy(['c.consumer_type', 'a.resource_class']);
    if (userId !== undefined) q = q.where('c.user_id', '=', userId);
    const rows = await q.execute();
    return rows.map((r) => ({ ...r, used: Number(r.used), consumers: Number(r.consumers) }));
  }

  async projectConsumerCount(projectId: string, userId?: string): Promise<Array<{ consumer_type: string | null; n: number }>> {
    let q = this.db.selectFrom('placement_consumers').select(['consumer_type', (eb) => eb.fn.countAll<number>().as('n')])
      .where('project_id', '=', projectId).groupBy('consumer_type');
    if (userId !== undefined) q = q.where('user_id', '=', userId);
    return (await q.execute()).map((r) => ({ consumer_type: r.consumer_type, n: Number(r.n) }));
  }

  // ---- resource classes and traits (custom ones; standard ones live in code) ----
  async customNames(table: 'placement_resource_classes' | 'placement_traits'): Promise<string[]> {
    return (await this.db.selectFrom(table).select('name').orderBy('name').execute()).map((r) => r.name as string);
  }

  async customExists(table: 'placement_resource_classes' | 'placement_traits', name: string): Promise<boolean> {
    return (await this.db.selectFrom(table).select('name').where('name', '=', name).executeTakeFirst()) !== undefined;
  }

  async insertCustom(table: 'placement_resource_classes' | 'placement_traits', name: string): Promise<void> {
    await this.db.insertInto(table).values({ name, created_at: nowIso() }).execute();
  }

  async deleteCustom(table: 'placement_resource_classes' | 'placement_traits', name: string): Promise<void> {
    await this.db.deleteFrom(table).where('name', '=', name).execute();
  }

  async resourceClassInUse(rc: string): Promise<boolean> {
    const inv = await this.db.selectFrom('placement_inventories').select('rp_uuid').where('resource_class', '=', rc).limit(1).executeTakeFirst();
    if (inv) return true;
    return (await this.db.selectFrom('placement_allocations').select('rp_uuid').where('resource_class', '=', rc).limit(1).executeTakeFirst()) !== undefined;
  }

  async renameResourceClass(from: string, to: string): Promise<void> {
    await this.db.updateTable('placement_resource_classes').set({ name: to }).where('name', '=', from).execute();
    for (const t of ['placement_inventories', 'placement_allocations']) {
      await this.db.updateTable(t).set({ resource_class: to }).where('resource_class', '=', from).execute();
    }
  }

  async traitInUse(name: string): Promise<boolean> {
    return (await this.db.selectFrom('placement_provider_traits').select('rp_uuid').where('trait', '=', name).limit(1).executeTakeFirst()) !== undefined;
  }

  /** Distinct trait names associated with any provider. */
  async associatedTraits(): Promise<Set<string>> {
    const rows = await this.db.selectFrom('placement_provider_traits').select('trait').distinct().execute();
    return new Set(rows.map((r) => r.trait as string));
  }

  /** (provider, name) pairs of a link table, optionally narrowed to some providers and/or names. */
  async links(kind: 'traits' | 'aggregates', rps?: string[], names?: string[]): Promise<Array<{ rp: string; name: string }>> {
    const table = kind === 'traits' ? 'placement_provider_traits' : 'placement_provider_aggregates';
    const col = kind === 'traits' ? 'trait' : 'aggregate_uuid';
    const run = async (part?: string[]) => {
      let q = this.db.selectFrom(table).select(['rp_uuid', `${col} as name`]);
      if (part) q = q.where('rp_uuid', 'in', part);
      if (names) q = q.where(col, 'in', names);
      return (await q.orderBy(col).execute()).map((r) => ({ rp: r.rp_uuid as string, name: r.name as string }));
    };
    if (names && names.length === 0) return [];
    if (!rps) return run();
    const out: Array<{ rp: string; name: string }> = [];
    for (const part of chunks(rps)) out.push(...await run(part));
    return out;
  }

  async replaceLinks(kind: 'traits' | 'aggregates', rp: string, names: string[]): Promise<void> {
    const table = kind === 'traits' ? 'placement_provider_traits' : 'placement_provider_aggregates';
    const col = kind === 'traits' ? 'trait' : 'aggregate_uuid';
    await this.db.deleteFrom(table).where('rp_uuid', '=', rp).execute();
    if (names.length) await this.db.insertInto(table).values(names.map((n) => ({ rp_uuid: rp, [col]: n }))).execute();
  }
}

function numericInventory(r: any): InventoryRow {
  return {
    rp_uuid: r.rp_uuid, resource_class: r.resource_class, total: Number(r.total), reserved: Number(r.reserved),
    min_unit: Number(r.min_unit), max_unit: Number(r.max_unit), step_size: Number(r.step_size),
    allocation_ratio: Number(r.allocation_ratio),
  };
}
