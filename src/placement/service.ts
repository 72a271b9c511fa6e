// Placement's rules for the inventory side: providers and their trees, inventories, resource
// classes, traits and aggregates. Every change to a provider goes through a compare-and-swap of
// its generation (PlacementStore.bumpGeneration) inside one transaction.
import type { Database } from '../core/db.js';
import { isUniqueViolation } from '../core/db.js';
import { uuid as newUuid } from '../core/ids.js';
import { CODE, GenerationConflict, pBadRequest, pConflict, pNotFound, providerNotFound } from './codes.js';
import { STANDARD_RESOURCE_CLASSES, STANDARD_TRAITS } from './standard.js';
import { capacityOf, PlacementStore, type InventoryFields, type InventoryRow, type ProviderRow } from './store.js';

export const STANDARD_CLASS_SET = new Set(STANDARD_RESOURCE_CLASSES);
export const STANDARD_TRAIT_SET = new Set(STANDARD_TRAITS);
export const CUSTOM_NAME = /^CUSTOM_[A-Z0-9_]+$/;
export const MAX_INT = 2147483647;

export type InventoryInput = Partial<InventoryFields> & { total: number };

export interface InventoryOpts {
  /** From 1.26 reserved may equal total. */
  reservedMayEqualTotal?: boolean;
  /** Keep classes in use that the new inventory drops (host re-registration). */
  keepInUse?: boolean;
  /** The reshaper checks usage against inventory once, at the end. */
  skipInUseCheck?: boolean;
}

export const inventoryDefaults = (i: InventoryInput): InventoryFields => ({
  total: i.total, reserved: i.reserved ?? 0, min_unit: i.min_unit ?? 1, max_unit: i.max_unit ?? MAX_INT,
  step_size: i.step_size ?? 1, allocation_ratio: i.allocation_ratio ?? 1.0,
});

export interface ProviderFilter {
  name?: string;
  uuid?: string;
  /** Any provider uuid in the tree. */
  inTree?: string;
  /** Each inner list: member of at least one of these aggregates. */
  memberOf?: string[][];
  forbiddenAggregates?: string[];
  /** Each inner list: has at least one of these traits. */
  required?: string[][];
  forbidden?: string[];
  /** Has capacity for all of these amounts. */
  resources?: Record<string, number>;
}

export class PlacementService {
  readonly store: PlacementStore;

  constructor(readonly db: Database) {
    this.store = new PlacementStore(db.kysely);
  }

  /** Runs `fn` in one transaction with a store bound to it. */
  tx<T>(fn: (s: PlacementStore) => Promise<T>): Promise<T> {
    return this.db.kysely.transaction().execute((trx) => fn(new PlacementStore(trx)));
  }

  async provider(uuid: string, s = this.store): Promise<ProviderRow> {
    const p = await s.provider(uuid);
    if (!p) throw providerNotFound(uuid);
    return p;
  }

  // ---- providers ----
  async listProviders(f: ProviderFilter): Promise<ProviderRow[]> {
    let rows: ProviderRow[];
    if (f.inTree !== undefined) {
      const anchor = await this.store.provider(f.inTree);
      if (!anchor) return [];
      rows = await this.store.providers({ root: anchor.root_uuid });
    } else {
      rows = await this.store.providers({});
    }
    if (f.name !== undefined) rows = rows.filter((r) => r.name === f.name);
    if (f.uuid !== undefined) rows = rows.filter((r) => r.uuid === f.uuid);
    const ids = rows.map((r) => r.uuid);
    if (f.memberOf?.length || f.forbiddenAggregates?.length) {
      const aggs = groupLinks(await this.store.links('aggregates', ids));
      rows = rows.filter((r) => {
        const mine = aggs.get(r.uuid) ?? new Set<string>();
        return (f.memberOf ?? []).every((anyOf) => anyOf.some((a) => mine.has(a)))
          && !(f.forbiddenAggregates ?? []).some((a) => mine.has(a));
      });
    }
    if (f.required?.length || f.forbidden?.length) {
      const traits = groupLinks(await this.store.links('traits', rows.map((r) => r.uuid)));
      rows = rows.filter((r) => {
        const mine = traits.get(r.uuid) ?? new Set<string>();
        return (f.required ?? []).every((anyOf) => anyOf.some((t) => mine.has(t)))
          && !(f.forbidden ?? []).some((t) => mine.has(t));
      });
    }
    if (f.resources && Object.keys(f.resources).length) {
      const classes = Object.keys(f.resources);
      await this.assertClassesExist(classes);
      const ids2 = rows.map((r) => r.uuid);
      const inv = await this.store.inventories(ids2, classes);
      const usage = await this.store.usage(ids2, classes);
      const fits = new Map<string, number>();
      for (const i of inv) {
        const free = capacityOf(i) - (usage.get(i.rp_uuid)?.get(i.resource_class) ?? 0);
        const amount = f.resources[i.resource_class]!;
        // Listing providers checks capacity and max_unit only (as Placement does for this filter).
        if (amount <= free && amount <= i.max_unit) fits.set(i.rp_uuid, (fits.get(i.rp_uuid) ?? 0) + 1);
      }
      rows = rows.filter((r) => fits.get(r.uuid) === classes.length);
    }
    return rows;
  }

  async createProvider(input: { uuid?: string; name: string; parentUuid?: string | null }): Promise<ProviderRow> {
    const uuid = input.uuid ?? newUuid();
    return this.tx(async (s) => {
      let root = uuid;
      if (input.parentUuid) {
        const parent = await s.provider(input.parentUuid);
        if (!parent) throw pBadRequest('parent provider UUID does not exist.');
        root = parent.root_uuid;
      }
      if (await s.provider(uuid)) throw pConflict(`Conflicting resource provider uuid: ${uuid} already exists.`, CODE.duplicateName);
      if (await s.providerByName(input.name)) {
        throw pConflict(`Conflicting resource provider name: ${input.name} already exists.`, CODE.duplicateName);
      }
      try {
        await s.insertProvider({ uuid, name: input.name, parent_uuid: input.parentUuid ?? null, root_uuid: root });
      } catch (e) {
        if (isUniqueViolation(e)) throw pConflict(`Conflicting resource provider name: ${input.name} already exists.`, CODE.duplicateName);
        throw e;
      }
      return (await s.provider(uuid))!;
    });
  }

  /**
   * Renames and/or re-parents. `parentUuid` undefined leaves the parent alone. Giving a parent
   * to a root is allowed from 1.14; moving or removing an existing parent only from 1.37.
   */
  async updateProvider(uuid: string, input: { name: string; parentUuid?: string | null }, allowReparent: boolean): Promise<ProviderRow> {
    return this.tx(async (s) => {
      const p = await this.provider(uuid, s);
      const other = await s.providerByName(input.name);
      if (other && other.uuid !== uuid) {
        throw pConflict(`Conflicting resource provider name: ${input.name} already exists.`, CODE.duplicateName);
      }
      const patch: Partial<ProviderRow> = { name: input.name };
      if (input.parentUuid !== undefined && input.parentUuid !== p.parent_uuid) {
        if (p.parent_uuid !== null && !allowReparent) {
          throw pBadRequest(input.parentUuid === null
            ? 'un-parenting a provider is not currently allowed.'
            : 're-parenting a provider is not currently allowed.');
        }
        const tree = await s.treeMembers([p.root_uuid]);
        const subtree = descendants(tree, uuid);
        let newRoot = uuid;
        if (input.parentUuid !== null) {
          const parent = await s.provider(input.parentUuid);
          if (!parent) throw pBadRequest('parent provider UUID does not exist.');
          if (subtree.has(parent.uuid)) throw pBadRequest('creating loop in the provider tree is not allowed.');
          newRoot = parent.root_uuid;
        }
        patch.parent_uuid = input.parentUuid;
        await s.setRoot(p.root_uuid, [...subtree], newRoot);
      }
      try {
        await s.updateProvider(uuid, patch);
      } catch (e) {
        if (isUniqueViolation(e)) throw pConflict(`Conflicting resource provider name: ${input.name} already exists.`, CODE.duplicateName);
        throw e;
      }
      return (await s.provider(uuid))!;
    });
  }

  async deleteProvider(uuid: string): Promise<void> {
    await this.tx(async (s) => {
      await this.provider(uuid, s);
      if (await s.hasAllocations(uuid)) {
        throw pConflict(`Unable to delete resource provider ${uuid}: Resource provider has allocations.`, CODE.providerInUse);
      }
      if (await s.childCount(uuid)) {
        throw pConflict(`Unable to delete parent resource provider ${uuid}: It has child resource providers.`, CODE.cannotDeleteParent);
      }
      await s.deleteProvider(uuid);
    });
  }

  // ---- inventories ----
  async inventories(uuid: string): Promise<{ generation: number; inventories: Record<string, InventoryFields> }> {
    const p = await this.provider(uuid);
    const rows = await this.store.inventories([uuid]);
    return { generation: p.generation, inventories: Object.fromEntries(rows.map((r) => [r.resource_class, fieldsOf(r)])) };
  }

  /**
   * Replaces the provider's whole inventory if `generation` is current. Classes that disappear
   * must have no allocations (409 inventory in use); `keepInUse` keeps them instead (host agents
   * re-registering a shrunken host must not fail).
   */
  async setInventories(uuid: string, generation: number | undefined, inv: Record<string, InventoryInput>,
    opts: InventoryOpts = {}): Promise<{ generation: number; inventories: Record<string, InventoryFields> }> {
    await this.assertClassesExist(Object.keys(inv), (rc) => `Unknown resource class in inventory for resource provider ${uuid}: ${rc}`);
    return this.tx((s) => this.applyInventories(s, uuid, generation, inv, opts));
  }

  /** setInventories inside the caller's transaction (the reshaper applies several). */
  async applyInventories(s: PlacementStore, uuid: string, generation: number | undefined, inv: Record<string, InventoryInput>,
    opts: InventoryOpts = {}): Promise<{ generation: number; inventories: Record<string, InventoryFields> }> {
    const full = Object.entries(inv).map(([rc, i]) => ({ rp_uuid: uuid, resource_class: rc, ...inventoryDefaults(i) }));
    for (const r of full) validateInventory(uuid, r, opts.reservedMayEqualTotal ?? true);
    const p = await this.provider(uuid, s);
    const current = await s.inventories([uuid]);
    for (const old of current) {
      if (inv[old.resource_class] || opts.skipInUseCheck) continue;
      if (!(await s.hasAllocations(uuid, old.resource_class))) continue;
      if (opts.keepInUse) { full.push(old); continue; }
      throw pConflict(`update conflict: Inventory for '${old.resource_class}' on resource provider '${uuid}' in use.`, CODE.inventoryInUse);
    }
    if (!(await s.bumpGeneration(uuid, generation ?? p.generation))) throw new GenerationConflict();
    await s.replaceInventories(uuid, full);
    return { generation: p.generation + 1, inventories: Object.fromEntries(full.map((r) => [r.resource_class, fieldsOf(r)])) };
  }

  async setInventory(uuid: string, generation: number, rc: string, i: InventoryInput, reservedMayEqualTotal: boolean): Promise<{ generation: number; inventory: InventoryFields }> {
    const cur = await this.inventories(uuid);
    const merged: Record<string, InventoryInput> = { ...cur.inventories, [rc]: i };
    const r = await this.setInventories(uuid, generation, merged, { reservedMayEqualTotal });
    return { generation: r.generation, inventory: r.inventories[rc]! };
  }

  async deleteInventory(uuid: string, rc: string): Promise<void> {
    await this.tx(async (s) => {
      const p = await this.provider(uuid, s);
      const inv = await s.inventories([uuid], [rc]);
      if (!inv.length) throw pNotFound(`No inventory of class ${rc} found for delete`);
      if (await s.hasAllocations(uuid, rc)) {
        throw pConflict(`Unable to delete inventory of class ${rc}: Inventory for '${rc}' on resource provider '${uuid}' in use.`, CODE.inventoryInUse);
      }
      if (!(await s.bumpGeneration(uuid, p.generation))) throw new GenerationConflict();
      await s.deleteInventory(uuid, rc);
    });
  }

  // ---- resource classes ----
  async resourceClasses(): Promise<string[]> {
    return [...STANDARD_RESOURCE_CLASSES, ...await this.store.customNames('placement_resource_classes')];
  }

  async resourceClassExists(name: string): Promise<boolean> {
    return STANDARD_CLASS_SET.has(name) || this.store.customExists('placement_resource_classes', name);
  }

  async assertClassesExist(names: string[], message = (rc: string) => `Invalid resource class in resources parameter: No such resource class ${rc}.`): Promise<void> {
    for (const rc of names) if (!(await this.resourceClassExists(rc))) throw pBadRequest(message(rc));
  }

  /** Creates a custom class; `idempotent` (PUT from 1.7) returns false instead of 409 when it exists. */
  async createResourceClass(name: string, idempotent: boolean): Promise<boolean> {
    if (!CUSTOM_NAME.test(name)) throw pBadRequest(`Invalid resource class name '${name}': custom resource classes must match ^CUSTOM_[A-Z0-9_]+$.`);
    if (await this.resourceClassExists(name)) {
      if (idempotent) return false;
      throw pConflict(`Conflicting resource class already exists: ${name}`, CODE.duplicateName);
    }
    try {
      await this.store.insertCustom('placement_resource_classes', name);
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      if (idempotent) return false;
      throw pConflict(`Conflicting resource class already exists: ${name}`, CODE.duplicateName);
    }
    return true;
  }

  async renameResourceClass(from: string, to: string): Promise<void> {
    if (STANDARD_CLASS_SET.has(from)) throw pBadRequest(`Cannot update standard resource class ${from}`);
    if (!CUSTOM_NAME.test(to)) throw pBadRequest(`Invalid resource class name '${to}'.`);
    await this.tx(async (s) => {
      if (!(await s.customExists('placement_resource_classes', from))) throw pNotFound(`No such resource class ${from}.`);
      if (STANDARD_CLASS_SET.has(to) || await s.customExists('placement_resource_classes', to)) {
        throw pConflict(`Resource class already exists: ${to}`, CODE.duplicateName);
      }
      await s.renameResourceClass(from, to);
    });
  }

  async deleteResourceClass(name: string): Promise<void> {
    if (STANDARD_CLASS_SET.has(name)) throw pBadRequest(`Cannot delete standard resource class ${name}: Cannot delete standard resource class.`);
    await this.tx(async (s) => {
      if (!(await s.customExists('placement_resource_classes', name))) throw pNotFound(`No such resource class ${name}.`);
      if (await s.resourceClassInUse(name)) throw pConflict(`Unable to delete resource class ${name}: Resource class in use.`);
      await s.deleteCustom('placement_resource_classes', name);
    });
  }

  // ---- traits ----
  async traits(filter: { startsWith?: string; in?: string[]; associated?: boolean } = {}): Promise<string[]> {
    let all = [...STANDARD_TRAITS, ...await this.store.customNames('placement_traits')];
    if (filter.startsWith !== undefined) all = all.filter((t) => t.startsWith(filter.startsWith!));
    if (filter.in) { const want = new Set(filter.in); all = all.filter((t) => want.has(t)); }
    if (filter.associated !== undefined) {
      const used = await this.store.associatedTraits();
      all = all.filter((t) => used.has(t) === filter.associated);
    }
    return all.sort();
  }

  async traitExists(name: string): Promise<boolean> {
    return STANDARD_TRAIT_SET.has(name) || this.store.customExists('placement_traits', name);
  }

  /** PUT /traits/{name}: true when created, false when it already existed. */
  async ensureTrait(name: string): Promise<boolean> {
    if (!CUSTOM_NAME.test(name) || name.length > 255) {
      throw pBadRequest('The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix "CUSTOM_" and use following characters: "A"-"Z", "0"-"9" and "_"');
    }
    if (await this.traitExists(name)) return false;
    try {
      await this.store.insertCustom('placement_traits', name);
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async deleteTrait(name: string): Promise<void> {
    if (STANDARD_TRAIT_SET.has(name)) throw pBadRequest(`Cannot delete standard trait ${name}.`);
    await this.tx(async (s) => {
      if (!(await s.customExists('placement_traits', name))) throw pNotFound(`No such trait(s): ${name}.`);
      if (await s.traitInUse(name)) throw pConflict(`The trait ${name} is in use by a resource provider.`);
      await s.deleteCustom('placement_traits', name);
    });
  }

  async assertTraitsExist(names: string[]): Promise<void> {
    const missing: string[] = [];
    for (const t of names) if (!(await this.traitExists(t))) missing.push(t);
    if (missing.length) throw pBadRequest(`No such trait(s): ${missing.join(', ')}.`);
  }

  // ---- traits and aggregates on providers ----
  async providerLinks(kind: 'traits' | 'aggregates', uuid: string): Promise<{ generation: number; names: string[] }> {
    const p = await this.provider(uuid);
    return { generation: p.generation, names: (await this.store.links(kind, [uuid])).map((l) => l.name) };
  }

  /** Replaces the provider's traits or aggregates; `generation` undefined skips the check (aggregates < 1.19). */
  async setProviderLinks(kind: 'traits' | 'aggregates', uuid: string, names: string[], generation: number | undefined): Promise<{ generation: number; names: string[] }> {
    const unique = [...new Set(names)].sort();
    if (kind === 'traits') await this.assertTraitsExist(unique);
    return this.tx(async (s) => {
      const p = await this.provider(uuid, s);
      if (!(await s.bumpGeneration(uuid, generation ?? p.generation))) throw new GenerationConflict();
      await s.replaceLinks(kind, uuid, unique);
      return { generation: p.generation + 1, names: unique };
    });
  }
}

export function fieldsOf(r: InventoryFields): InventoryFields {
  return {
    total: r.total, reserved: r.reserved, min_unit: r.min_unit, max_unit: r.max_unit,
    step_size: r.step_size, allocation_ratio: r.allocation_ratio,
  };
}

function validateInventory(uuid: string, r: InventoryRow, reservedMayEqualTotal: boolean): void {
  const bad = (why: string) => pBadRequest(`Unable to update inventory for resource provider ${uuid}: Invalid inventory for '${r.resource_class}' on resource provider '${uuid}'. ${why}`);
  if (r.reserved > r.total || (!reservedMayEqualTotal && r.reserved === r.total && r.total > 0)) {
    throw bad('The reserved value is greater than or equal to total.');
  }
  if (r.min_unit > r.max_unit) throw bad('The min_unit value is greater than max_unit.');
  if (r.step_size > r.max_unit) throw bad('The step_size value is greater than max_unit.');
  if (!(r.allocation_ratio > 0)) throw bad('The allocation_ratio must be greater than 0.');
}

export function groupLinks(links: Array<{ rp: string; name: string }>): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const l of links) {
    let s = m.get(l.rp);
    if (!s) m.set(l.rp, (s = new Set()));
    s.add(l.name);
  }
  return m;
}

/** `uuid` and everything below it in `tree`. */
export function descendants(tree: ProviderRow[], uuid: string): Set<string> {
  const out = new Set([uuid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of tree) {
      if (p.parent_uuid && out.has(p.parent_uuid) && !out.has(p.uuid)) { out.add(p.uuid); grew = true; }
    }
  }
  return out;
}
