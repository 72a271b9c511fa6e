// Allocation candidates: which providers (or provider trees) could satisfy a request now.
//
// Cost is a fixed handful of queries whatever the cloud's size (no query per provider): the
// inventories of the requested classes with their usage, the provider rows, and only the trait
// and aggregate rows the request names; summaries add the chosen providers' full inventories.
// Then, per tree: a suffixed group takes one provider; the unsuffixed group may take each class
// from a different provider of the tree; sharing providers (MISC_SHARES_VIA_AGGREGATE) join any
// tree they share an aggregate with. Amounts are never split across providers.
import { chunks, capacityOf, type InventoryRow, type PlacementStore, type ProviderRow } from './store.js';
import { groupLinks } from './service.js';

export interface RequestGroup {
  /** '' for the unsuffixed group; '1', '_NET', ... for granular groups (1.25, 1.33). */
  suffix: string;
  resources: Record<string, number>;
  /** All inner lists must match; an inner list matches when any of its traits is present (1.39 `in:`). */
  required: string[][];
  forbidden: string[];
  memberOf: string[][];
  forbiddenAggregates: string[];
  /** A provider uuid: only providers of its tree. */
  inTree?: string;
}

export interface CandidateQuery {
  groups: RequestGroup[];
  groupPolicy?: 'none' | 'isolate';
  limit?: number;
  /** Traits the root of the tree must have / must not have (1.35). */
  rootRequired?: { required: string[][]; forbidden: string[] };
  /** 'requested': only the requested classes in summaries (< 1.27); 'all': every class. */
  summaries?: 'none' | 'requested' | 'all';
  /** Include every trait of summarized providers (1.17). */
  summaryTraits?: boolean;
  /** Summarize every provider of the candidates' trees (HTTP), not only those in candidates. */
  summaryTrees?: boolean;
}

export interface AllocationCandidate {
  /** rp uuid → class → amount: exactly what to claim. */
  allocations: Record<string, Record<string, number>>;
  /** Group suffix → providers satisfying it (1.34). */
  mappings: Record<string, string[]>;
  rootUuid: string;
}

export interface ProviderSummary {
  uuid: string;
  name: string;
  generation: number;
  parentUuid: string | null;
  rootUuid: string;
  resources: Record<string, { capacity: number; used: number }>;
  traits: string[];
}

export interface CandidateResult {
  candidates: AllocationCandidate[];
  summaries: Record<string, ProviderSummary>;
}

const SHARES = 'MISC_SHARES_VIA_AGGREGATE';
/** Bound on combinations explored per tree, so pathological trees cannot stall a request. */
const MAX_COMBOS_PER_TREE = 1000;

interface Slot { rp: string; rc: string; amount: number }
type Cap = Map<string, Map<string, { inv: InventoryRow; free: number }>>;
type Option = { slots: Slot[]; providers: string[] };

export async function findCandidates(s: PlacementStore, q: CandidateQuery): Promise<CandidateResult> {
  const groups = q.groups.filter((g) => Object.keys(g.resources).length > 0);
  const classes = [...new Set(groups.flatMap((g) => Object.keys(g.resources)))];
  if (!classes.length) return { candidates: [], summaries: {} };

  const inventories = await s.capacityOfClasses(classes);
  // provider → class → inventory and what is free of it (nested maps: no string keys to build).
  const cap: Cap = new Map();
  const rows = new Map<string, ProviderRow>();
  for (const i of inventories) {
    let m = cap.get(i.rp_uuid);
    if (!m) { cap.set(i.rp_uuid, (m = new Map())); rows.set(i.rp_uuid, i.provider); }
    m.set(i.resource_class, { inv: i, free: capacityOf(i) - i.used });
  }
  const holders = [...rows.keys()];

  // Only the trait and aggregate rows the request mentions (plus sharing markers).
  const traitNames = new Set<string>([SHARES]);
  const aggNames = new Set<string>();
  for (const g of groups) {
    g.required.flat().forEach((t) => traitNames.add(t));
    g.forbidden.forEach((t) => traitNames.add(t));
    g.memberOf.flat().forEach((a) => aggNames.add(a));
    g.forbiddenAggregates.forEach((a) => aggNames.add(a));
  }
  q.rootRequired?.required.flat().forEach((t) => traitNames.add(t));
  q.rootRequired?.forbidden.forEach((t) => traitNames.add(t));
  const traits = groupLinks(await s.links('traits', undefined, [...traitNames]));
  const sharing = holders.filter((rp) => traits.get(rp)?.has(SHARES));
  const aggs = groupLinks(await s.links('aggregates', undefined, [...aggNames]));

  // Sharing providers: which trees they serve (roots of providers in any of their aggregates).
  const servesRoots = new Map<string, Set<string>>();
  if (sharing.length) {
    const shareAggs = await s.links('aggregates', sharing);
    const byAgg = groupLinks((await s.links('aggregates', undefined, [...new Set(shareAggs.map((l) => l.name))]))
      .map((l) => ({ rp: l.name, name: l.rp })));
    const members = [...new Set([...byAgg.values()].flatMap((set) => [...set]))];
    const memberRows = new Map((await s.providers({ uuids: members })).map((p) => [p.uuid, p]));
    for (const l of shareAggs) {
      let set = servesRoots.get(l.rp);
      if (!set) servesRoots.set(l.rp, (set = new Set()));
      for (const m of byAgg.get(l.name) ?? []) { const r = memberRows.get(m); if (r) set.add(r.root_uuid); }
    }
  }

  const inTreeRoot = new Map<string, string | null>();
  for (const g of groups) {
    if (g.inTree && !inTreeRoot.has(g.inTree)) inTreeRoot.set(g.inTree, (await s.provider(g.inTree))?.root_uuid ?? null);
  }

  const has = (m: Map<string, Set<string>>, rp: string, name: string) => m.get(rp)?.has(name) ?? false;
  const passesOwn = (g: RequestGroup, rp: string, perProviderRequired: boolean): boolean => {
    const row = rows.get(rp)!;
    if (g.inTree) {
      const want = inTreeRoot.get(g.inTree);
      // Sharing providers serving the tree count as in it.
      if (want !== row.root_uuid && !(want && servesRoots.get(rp)?.has(want))) return false;
    }
    if (!g.memberOf.every((anyOf) => anyOf.some((a) => has(aggs, rp, a)))) return false;
    if (g.forbiddenAggregates.some((a) => has(aggs, rp, a))) return false;
    if (g.forbidden.some((t) => has(traits, rp, t))) return false;
    if (perProviderRequired && !g.required.every((anyOf) => anyOf.some((t) => has(traits, rp, t)))) return false;
    return true;
  };
  const fits = (rp: string, rc: string, amount: number): boolean => {
    const c = cap.get(rp)?.get(rc);
    if (!c) return false;
    const inv = c.inv;
    return amount >= inv.min_unit && amount <= inv.max_unit && amount % inv.step_size === 0
      && amount <= c.free;
  };

  // Per group and class: the providers that could take that amount on their own.
  const able = groups.map((g) => {
    const m = new Map<string, string[]>();
    for (const [rc, amount] of Object.entries(g.resources)) {
      m.set(rc, holders.filter((rp) => fits(rp, rc, amount) && passesOwn(g, rp, g.suffix !== '')));
    }
    return m;
  });
  // The same, indexed by tree (sharing providers listed under every tree they serve), so that
  // walking the trees stays linear in the number of providers.
  const ableByRoot = able.map((m) => {
    const out = new Map<string, Map<string, string[]>>();
    for (const [rc, list] of m) {
      for (const rp of list) {
        const trees = new Set([rows.get(rp)!.root_uuid, ...(servesRoots.get(rp) ?? [])]);
        for (const root of trees) {
          let byRc = out.get(root);
          if (!byRc) out.set(root, (byRc = new Map()));
          let l = byRc.get(rc);
          if (!l) byRc.set(rc, (l = []));
          l.push(rp);
        }
      }
    }
    return out;
  });

  // Candidate trees, in provider creation order (stable answers).
  const roots = new Set<string>();
  for (const m of able) for (const list of m.values()) for (const rp of list) {
    const row = rows.get(rp)!;
    if (servesRoots.has(rp)) servesRoots.get(rp)!.forEach((r) => roots.add(r));
    roots.add(row.root_uuid);
  }
  const rootOrder = [...roots].map((r) => rows.get(r)).filter((r): r is ProviderRow => !!r)
    .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.uuid < b.uuid ? -1 : 1)).map((r) => r.uuid);
  for (const r of roots) if (!rows.has(r)) rootOrder.push(r); // roots holding none of the classes (nested)
  const rootTraitNeeded = q.rootRequired && (q.rootRequired.required.length || q.rootRequired.forbidden.length);
  const rootTraits = rootTraitNeeded ? groupLinks(await s.links('traits', rootOrder)) : new Map<string, Set<string>>();

  const candidates: AllocationCandidate[] = [];
  const seen = new Set<string>();
  const limit = q.limit ?? Infinity;
  for (const root of rootOrder) {
    if (candidates.length >= limit) break;
    if (rootTraitNeeded) {
      const mine = rootTraits.get(root) ?? new Set<string>();
      if (!q.rootRequired!.required.every((anyOf) => anyOf.some((t) => mine.has(t)))) continue;
      if (q.rootRequired!.forbidden.some((t) => mine.has(t))) continue;
    }
    const perGroup: Option[][] = [];
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi]!;
      const here = ableByRoot[gi]!.get(root) ?? new Map<string, string[]>();
      const opts = g.suffix === '' ? unsuffixedOptions(g, here, traits) : suffixedOptions(g, here);
      if (!opts.length) break;
      perGroup.push(opts);
    }
    if (perGroup.length !== groups.length) continue;

    let explored = 0;
    const pick: Option[] = [];
    const walk = (gi: number): void => {
      if (candidates.length >= limit || explored >= MAX_COMBOS_PER_TREE) return;
      if (gi === groups.length) {
        explored++;
        const c = combine(groups, pick, q.groupPolicy === 'isolate', cap, root);
        if (!c) return;
        // Only sharing providers can make two trees yield the same candidate.
        if (!sharing.length) { candidates.push(c); return; }
        const key = JSON.stringify([c.allocations, c.mappings]);
        if (!seen.has(key)) { seen.add(key); candidates.push(c); }
        return;
      }
      for (const o of perGroup[gi]!) { pick.push(o); walk(gi + 1); pick.pop(); if (candidates.length >= limit) return; }
    };
    walk(0);
  }

  const mode = q.summaries ?? 'all';
  const known = { rows, cap };
  const summaries = mode === 'none' ? {} : await summarize(s, candidates, classes, mode, q.summaryTraits ?? true, q.summaryTrees ?? true, known);
  return { candidates, summaries };
}

function suffixedOptions(g: RequestGroup, able: Map<string, string[]>): Option[] {
  const classes = Object.keys(g.resources);
  if (classes.some((rc) => !able.get(rc)?.length)) return [];
  const [first, ...rest] = classes.map((rc) => new Set(able.get(rc)!));
  if (!first) return [];
  const out: Option[] = [];
  for (const rp of first) {
    if (rest.every((set) => set.has(rp))) {
      out.push({ slots: Object.entries(g.resources).map(([rc, amount]) => ({ rp, rc, amount })), providers: [rp] });
    }
  }
  return out;
}

function unsuffixedOptions(g: RequestGroup, able: Map<string, string[]>, traits: Map<string, Set<string>>): Option[] {
  const perClass = Object.entries(g.resources).map(([rc, amount]) => ({ rc, amount, rps: able.get(rc) ?? [] }));
  if (perClass.some((c) => !c.rps.length)) return [];
  const out: Option[] = [];
  const slots: Slot[] = [];
  const walk = (i: number): void => {
    if (out.length >= MAX_COMBOS_PER_TREE) return;
    if (i === perClass.length) {
      const providers = [...new Set(slots.map((x) => x.rp))];
      // Required traits of the unsuffixed group may be spread over the providers it uses.
      const ok = g.required.every((anyOf) => anyOf.some((t) => providers.some((rp) => traits.get(rp)?.has(t))));
      if (ok) out.push({ slots: [...slots], providers });
      return;
    }
    const c = perClass[i]!;
    for (const rp of c.rps) { slots.push({ rp, rc: c.rc, amount: c.amount }); walk(i + 1); slots.pop(); }
  };
  walk(0);
  return out;
}

function combine(groups: RequestGroup[], pick: Option[], isolate: boolean, cap: Cap, root: string): AllocationCandidate | undefined {
  if (isolate) {
    const used = new Set<string>();
    for (let i = 0; i < groups.length; i++) {
      if (groups[i]!.suffix === '') continue;
      for (const rp of pick[i]!.providers) { if (used.has(rp)) return undefined; used.add(rp); }
    }
  }
  const allocations: Record<string, Record<string, number>> = {};
  const mappings: Record<string, string[]> = {};
  for (let i = 0; i < groups.length; i++) {
    mappings[groups[i]!.suffix] = pick[i]!.providers;
    for (const sl of pick[i]!.slots) {
      const r = (allocations[sl.rp] ??= {});
      r[sl.rc] = (r[sl.rc] ?? 0) + sl.amount;
    }
  }
  for (const [rp, res] of Object.entries(allocations)) {
    for (const [rc, amount] of Object.entries(res)) if (amount > (cap.get(rp)?.get(rc)?.free ?? 0)) return undefined;
  }
  return { allocations, mappings, rootUuid: root };
}

async function summarize(s: PlacementStore, candidates: AllocationCandidate[], classes: string[], mode: 'requested' | 'all',
  withTraits: boolean, trees: boolean,
  known: { rows: Map<string, ProviderRow>; cap: Cap }): Promise<Record<string, ProviderSummary>> {
  const members = new Map<string, ProviderRow>();
  if (trees) {
    const roots = [...new Set(candidates.map((c) => c.rootUuid))];
    for (const part of chunks(roots)) for (const p of await s.treeMembers(part)) members.set(p.uuid, p);
  }
  for (const c of candidates) {
    for (const rp of Object.keys(c.allocations)) { const p = known.rows.get(rp); if (p && !members.has(rp)) members.set(rp, p); }
  }
  const ids = [...members.keys()];
  const traits = withTraits ? groupLinks(await s.links('traits', ids)) : new Map<string, Set<string>>();
  const out: Record<string, ProviderSummary> = {};
  for (const p of members.values()) {
    out[p.uuid] = {
      uuid: p.uuid, name: p.name, generation: p.generation, parentUuid: p.parent_uuid, rootUuid: p.root_uuid,
      resources: {}, traits: [...(traits.get(p.uuid) ?? [])].sort(),
    };
  }
  if (mode === 'requested') {
    // Already loaded: the requested classes' capacity and usage.
    for (const id of ids) {
      for (const rc of classes) {
        const c = known.cap.get(id)?.get(rc);
        if (c) out[id]!.resources[rc] = { capacity: capacityOf(c.inv), used: capacityOf(c.inv) - c.free };
      }
    }
    return out;
  }
  const inv = await s.inventories(ids);
  const usage = await s.usage(ids);
  for (const i of inv) {
    out[i.rp_uuid]!.resources[i.resource_class] = { capacity: capacityOf(i), used: usage.get(i.rp_uuid)?.get(i.resource_class) ?? 0 };
  }
  return out;
}
