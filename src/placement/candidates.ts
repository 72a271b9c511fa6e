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
  /** Lists of group suffixes whose providers must share a subtree (1.36). */
  sameSubtree?: string[][];
  /** Traits the root of the tree must have / must not have (1.35). */
  rootRequired?: { required: string[][]; forbidden: string[] };
  /** 'requested': only the requested classes in summaries (< 1.27); 'all': every class. */
  summaries?: 'none' | 'requested' | 'all';
  /** Include every trait of summarized providers (1.17). */
  summaryTraits?: boolean;
  /** Summarize every provider of the candidates' trees (HTTP), not only those in candidates. */
  summaryTrees?: boolean;
  /** Trees in random order (a scheduler spreading load; concurrent schedulers collide less). */
  randomize?: boolean;
  /** False before 1.29: candidates may not involve nested (non-root) providers. */
  nestedAware?: boolean;
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
  // Resourceless groups (1.36) only make sense inside a same_subtree: they name a provider.
  const groups = q.groups.filter((g) => Object.keys(g.resources).length > 0 || g.suffix !== '');
  const classes = [...new Set(groups.flatMap((g) => Object.keys(g.resources)))];
  const needTrees = groups.some((g) => !Object.keys(g.resources).length) || (q.sameSubtree?.length ?? 0) > 0;
  if (!classes.length) return { candidates: [], summaries: {} };

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
  const aggs = groupLinks(await s.links('aggregates', undefined, [...aggNames]));

  // provider → class → inventory and what is free of it (nested maps: no string keys to build).
  const cap: Cap = new Map();
  const rows = new Map<string, ProviderRow>();
  const load = (inventories: Awaited<ReturnType<PlacementStore['capacityOfClasses']>>): string[] => {
    const fresh: string[] = [];
    for (const i of inventories) {
      let m = cap.get(i.rp_uuid);
      if (!m) { cap.set(i.rp_uuid, (m = new Map())); rows.set(i.rp_uuid, i.provider); fresh.push(i.rp_uuid); }
      m.set(i.resource_class, { inv: i, free: capacityOf(i) - i.used });
    }
    return fresh;
  };

  // Sharing providers, loaded up front: they may serve trees on any page.
  const sharingIds = [...traits].filter(([, set]) => set.has(SHARES)).map(([rp]) => rp);
  const sharing = sharingIds.length ? load(await s.capacityOfClasses(classes, { rps: sharingIds })) : [];
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
  // Every group pinned to one tree: only that tree's rows are needed.
  const pinnedRoots = new Set(groups.map((g) => (g.inTree ? inTreeRoot.get(g.inTree) ?? null : undefined)));
  const pinned = pinnedRoots.size === 1 && !pinnedRoots.has(undefined) ? [...pinnedRoots][0] : undefined;
  if (pinned === null) return { candidates: [], summaries: {} };

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

  const candidates: AllocationCandidate[] = [];
  const seen = new Set<string>();
  const limit = q.limit ?? Infinity;
  const rootTraitNeeded = !!q.rootRequired && (q.rootRequired.required.length > 0 || q.rootRequired.forbidden.length > 0);

  /** Finds the candidates of the trees in `rootOrder`, whose providers are `holders` (plus sharing ones). */
  const parentOf = new Map<string, string | null>();
  const processTrees = async (holders: string[], rootOrder: string[]): Promise<void> => {
    const pool = [...holders, ...sharing];
    // Whole trees, for resourceless groups and same_subtree (only when the request has them).
    const membersOf = new Map<string, string[]>();
    if (needTrees) {
      for (const part of chunks(rootOrder)) {
        for (const p of await s.treeMembers(part)) {
          parentOf.set(p.uuid, p.parent_uuid);
          if (!rows.has(p.uuid)) rows.set(p.uuid, p);
          let l = membersOf.get(p.root_uuid);
          if (!l) membersOf.set(p.root_uuid, (l = []));
          l.push(p.uuid);
        }
      }
    }
    // Per group and class: the providers that could take that amount on their own, indexed by
    // tree (sharing providers under every tree they serve): walking trees stays linear.
    const ableByRoot = groups.map((g) => {
      const out = new Map<string, Map<string, string[]>>();
      for (const [rc, amount] of Object.entries(g.resources)) {
        for (const rp of pool) {
          if (!fits(rp, rc, amount) || !passesOwn(g, rp, g.suffix !== '')) continue;
          const own = rows.get(rp)!.root_uuid;
          const served = servesRoots.get(rp);
          for (const root of served ? new Set([own, ...served]) : [own]) {
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
    const rootTraits = rootTraitNeeded ? groupLinks(await s.links('traits', rootOrder)) : new Map<string, Set<string>>();
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
        let opts: Option[];
        if (!Object.keys(g.resources).length) {
          opts = (membersOf.get(root) ?? []).filter((rp) => passesOwn(g, rp, true)).map((rp) => ({ slots: [], providers: [rp] }));
        } else {
          const here = ableByRoot[gi]!.get(root);
          if (!here) break;
          opts = g.suffix === '' ? unsuffixedOptions(g, here, traits) : suffixedOptions(g, here);
        }
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
          if (!c || !sameSubtreeOk(q.sameSubtree, c.mappings, parentOf)) return;
          if (q.nestedAware === false && Object.keys(c.allocations).some((rp) => rows.get(rp)!.parent_uuid !== null)) return;
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
  };

  if (pinned !== undefined) {
    await processTrees(load(await s.capacityOfClasses(classes, { roots: [pinned] })), [pinned]);
  } else if (q.limit !== undefined || q.randomize) {
    // Trees a page at a time (creation order, or shuffled), stopping once the limit is reached.
    const all = await s.rootPage(0, Number.MAX_SAFE_INTEGER);
    if (q.randomize) shuffle(all);
    const pageSize = Math.min(5000, Math.max(100, (q.limit ?? 5000) * 4));
    for (let at = 0; at < all.length && candidates.length < limit; at += pageSize) {
      const roots = all.slice(at, at + pageSize);
      await processTrees(load(await s.capacityOfClasses(classes, { roots })), roots);
    }
  } else {
    const holders = load(await s.capacityOfClasses(classes));
    const roots = new Set<string>();
    for (const rp of [...holders, ...sharing]) {
      roots.add(rows.get(rp)!.root_uuid);
      servesRoots.get(rp)?.forEach((r) => roots.add(r));
    }
    // Trees in provider creation order (stable answers); roots holding none of the classes last.
    const rootOrder = [...roots].map((r) => rows.get(r)).filter((r): r is ProviderRow => !!r)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.uuid < b.uuid ? -1 : 1)).map((r) => r.uuid);
    for (const r of roots) if (!rows.has(r)) rootOrder.push(r);
    await processTrees(holders, rootOrder);
  }

  const mode = q.summaries ?? 'all';
  const known = { rows, cap };
  const summaries = mode === 'none' ? {} : await summarize(s, candidates, classes, mode, q.summaryTraits ?? true, q.summaryTrees ?? true, known);
  return { candidates, summaries };
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}

/** same_subtree: one provider among the listed groups' providers is an ancestor of (or is) all the others. */
function sameSubtreeOk(lists: string[][] | undefined, mappings: Record<string, string[]>, parentOf: Map<string, string | null>): boolean {
  if (!lists?.length) return true;
  const ancestors = (rp: string): Set<string> => {
    const out = new Set<string>();
    for (let cur: string | null | undefined = rp; cur && !out.has(cur); cur = parentOf.get(cur)) out.add(cur);
    return out;
  };
  return lists.every((suffixes) => {
    const providers = [...new Set(suffixes.flatMap((sfx) => mappings[sfx] ?? []))];
    const lines = providers.map(ancestors);
    return providers.some((top) => lines.every((line) => line.has(top)));
  });
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
      if (groups[i]!.suffix === '' || !Object.keys(groups[i]!.resources).length) continue;
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
