// The scheduler: which host gets a server. Filters narrow the hosts, placement's allocation
// candidates keep those with room, weighers order the rest (spread or pack by free RAM and CPU,
// soft group policies, recent build failures), and the first candidate placement lets us claim
// wins — claims are atomic in placement, so concurrent builds never overbook a host.
import type { Logger } from '../../core/log.js';
import type { AggregateService } from '../aggregates.js';
import type { ComputeNode, HostDirectory } from '../hosts.js';
import { FILTERS, type FilterRequest, type HostState } from './filters.js';

/** The part of placement's in-process client the scheduler uses. */
export interface PlacementLike {
  ensureHostProvider(spec: { name: string; uuid?: string; inventories: Record<string, { total: number; reserved?: number; allocation_ratio?: number; min_unit?: number; max_unit?: number; step_size?: number }> }): Promise<{ uuid: string }>;
  getCandidates(req: { resources: Record<string, number>; limit?: number; summaries?: 'all' | 'requested' | 'none' }): Promise<{
    candidates: { allocations: Record<string, Record<string, number>> }[];
    summaries: Record<string, { name: string; resources: Record<string, { capacity: number; used: number }> }>;
  }>;
  claim(consumer: string, allocations: Record<string, Record<string, number>>, owner: { projectId: string; userId: string }): Promise<boolean>;
  deleteAllocations(consumer: string): Promise<void>;
  /** Moves all of `from`'s allocations to `to` atomically (migrations hold the source this way). */
  moveAllocations(from: string, to: string, opts?: { consumerType?: string }): Promise<void>;
  getAllocations(consumer: string): Promise<{ allocations: Record<string, { resources: Record<string, number> }> }>;
}

export interface SchedulerConfig {
  cpuAllocationRatio: number;
  ramAllocationRatio: number;
  diskAllocationRatio: number;
  reservedHostMemoryMb: number;
  /** Positive spreads (prefer free RAM), negative packs. */
  ramWeightMultiplier: number;
  cpuWeightMultiplier: number;
  /** How strongly a host's recent build failures push it down. */
  buildFailureWeightMultiplier: number;
}

export const DEFAULT_SCHEDULER: SchedulerConfig = {
  cpuAllocationRatio: 4, ramAllocationRatio: 1, diskAllocationRatio: 1, reservedHostMemoryMb: 0,
  ramWeightMultiplier: 1, cpuWeightMultiplier: 1, buildFailureWeightMultiplier: 1_000_000,
};

export interface PlacementRequest extends FilterRequest {
  serverId: string;
  projectId: string;
  userId: string;
  resources: { VCPU: number; MEMORY_MB: number; DISK_GB: number };
  /** Admin's forced host (az:host): filters other than resources are skipped. */
  forcedHost?: string;
  groupSoftPolicy?: 'soft-affinity' | 'soft-anti-affinity';
}

export type Decision = { host: string; providerUuid: string } | { error: string };

export class Scheduler {
  private readonly failures = new Map<string, number[]>();
  private readonly known = new Map<string, string>(); // host → inventory key last pushed to placement

  constructor(
    private readonly hosts: HostDirectory,
    private readonly aggregates: AggregateService,
    private readonly placement: PlacementLike,
    private readonly cfg: SchedulerConfig,
    private readonly log: Logger,
  ) {}

  /** Mirrors every host into placement as a resource provider with its inventory. */
  async syncProviders(nodes?: ComputeNode[]): Promise<void> {
    for (const n of nodes ?? await this.hosts.list()) {
      const key = `${n.uuid}:${n.vcpus}:${n.memoryMb}:${n.diskGb}`;
      if (this.known.get(n.name) === key) continue;
      await this.placement.ensureHostProvider({
        name: n.name, uuid: n.uuid,
        inventories: {
          VCPU: { total: n.vcpus, allocation_ratio: this.cfg.cpuAllocationRatio, max_unit: n.vcpus },
          MEMORY_MB: { total: n.memoryMb, reserved: Math.min(this.cfg.reservedHostMemoryMb, n.memoryMb - 1), allocation_ratio: this.cfg.ramAllocationRatio, max_unit: n.memoryMb },
          DISK_GB: { total: Math.max(n.diskGb, 1), allocation_ratio: this.cfg.diskAllocationRatio, max_unit: Math.max(n.diskGb, 1) },
        },
      });
      this.known.set(n.name, key);
    }
  }

  recordFailure(host: string): void {
    const now = Date.now();
    this.failures.set(host, [...(this.failures.get(host) ?? []).filter((t) => now - t < 600_000), now]);
  }

  recordSuccess(host: string): void {
    this.failures.delete(host);
  }

  /** Chooses a host and claims the resources there; an error says why nothing fits. */
  async place(r: PlacementRequest): Promise<Decision> {
    const nodes = await this.hosts.list();
    await this.syncProviders(nodes);
    const zoneOf = await this.aggregates.zoneMap(nodes.map((n) => n.name));
    const meta = await this.aggregates.hostMetadata();
    let states: HostState[] = nodes.map((node) => ({ node, zone: zoneOf.get(node.name)!, aggregateMeta: meta.get(node.name) ?? {} }));
    if (!states.length) return { error: 'No valid host was found. There are no compute hosts.' };

    if (r.forcedHost) {
      states = states.filter((s) => s.node.name === r.forcedHost);
      if (!states.length) return { error: `No valid host was found. Compute host ${r.forcedHost} could not be found.` };
    } else {
      for (const f of FILTERS) {
        const before = states.length;
        states = states.filter((s) => f.passes(s, r));
        if (!states.length) {
          this.log.info({ server: r.serverId, filter: f.name, before }, 'scheduler: no host left');
          return { error: `No valid host was found. There are not enough hosts available (${f.name} eliminated all ${before}).` };
        }
      }
    }

    // The weighers read free VCPU and MEMORY_MB, both requested: their summaries come with the
    // candidates' own query ('all' would read every inventory of every candidate again).
    const res = await this.placement.getCandidates({ resources: { ...r.resources }, summaries: 'requested' });
    const byName = new Map(states.map((s) => [s.node.name, s]));
    const byUuid = new Map(states.map((s) => [s.node.uuid, s]));
    const options: { state: HostState; providerUuid: string; alloc: Record<string, Record<string, number>>; free: { ram: number; cpu: number } }[] = [];
    for (const c of res.candidates) {
      const rps = Object.keys(c.allocations);
      if (rps.length !== 1) continue; // a host is one provider (no nested providers yet)
      const rp = rps[0]!;
      const summary = res.summaries[rp];
      const state = byUuid.get(rp) ?? (summary ? byName.get(summary.name) : undefined);
      if (!state) continue;
      const freeOf = (rc: string) => { const x = summary?.resources[rc]; return x ? x.capacity - x.used : 0; };
      options.push({ state, providerUuid: rp, alloc: c.allocations, free: { ram: freeOf('MEMORY_MB'), cpu: freeOf('VCPU') } });
    }
    if (!options.length) {
      return { error: `No valid host was found. There are not enough resources available for ${r.resources.VCPU} vCPU, ${r.resources.MEMORY_MB} MB RAM, ${r.resources.DISK_GB} GB disk.` };
    }

    const weigh = weigher(options.map((o) => o.free), this.cfg);
    const now = Date.now();
    const scored = options.map((o) => {
      let w = weigh(o.free);
      const recent = (this.failures.get(o.state.node.name) ?? []).filter((t) => now - t < 600_000).length;
      w -= recent * this.cfg.buildFailureWeightMultiplier;
      if (r.group && r.groupSoftPolicy) {
        const members = r.group.memberHosts.filter((h) => h === o.state.node.name).length;
        w += (r.groupSoftPolicy === 'soft-affinity' ? members : -members) * 1000;
      }
      return { o, w };
    }).sort((a, b) => b.w - a.w || a.o.state.node.name.localeCompare(b.o.state.node.name));

    for (const { o } of scored) {
      if (await this.placement.claim(r.serverId, o.alloc, { projectId: r.projectId, userId: r.userId })) {
        return { host: o.state.node.name, providerUuid: o.providerUuid };
      }
      this.log.info({ server: r.serverId, host: o.state.node.name }, 'scheduler: claim lost a race, trying the next host');
    }
    return { error: 'No valid host was found. Every candidate host filled up while claiming.' };
  }
}

/** Normalised RAM and CPU weighers (Nova's: each 0..1 across the candidates, times its multiplier). */
function weigher(all: { ram: number; cpu: number }[], cfg: SchedulerConfig) {
  const span = (xs: number[]) => ({ min: Math.min(...xs), max: Math.max(...xs) });
  const ram = span(all.map((f) => f.ram));
  const cpu = span(all.map((f) => f.cpu));
  const norm = (v: number, s: { min: number; max: number }) => (s.max === s.min ? 0 : (v - s.min) / (s.max - s.min));
  return (f: { ram: number; cpu: number }) => cfg.ramWeightMultiplier * norm(f.ram, ram) + cfg.cpuWeightMultiplier * norm(f.cpu, cpu);
}
