// Scheduler filters: each says whether a host may take the server. Resources are not here:
// placement's allocation candidates already hold only hosts with room (with allocation ratios).
import type { ComputeNode } from '../hosts.js';
import type { GroupPolicy } from '../server-groups.js';

export interface HostState {
  node: ComputeNode;
  zone: string;
  /** Metadata of the aggregates the host is in (a key may have several values). */
  aggregateMeta: Record<string, string[]>;
}

export interface FilterRequest {
  flavorExtraSpecs: Record<string, string>;
  imageProperties: Record<string, string>;
  zone?: string;
  triedHosts: string[];
  /** A move's requested destination (migrate with `host`, 2.56): the only host considered, filters still apply. */
  requestedHost?: string;
  group?: { policy: GroupPolicy; memberHosts: string[]; maxPerHost?: number };
}

export interface Filter {
  name: string;
  passes(h: HostState, r: FilterRequest): boolean;
}

const AGG_SCOPE = 'aggregate_instance_extra_specs:';

/** Hosts whose service is enabled, agent alive and not forced down. */
const compute: Filter = { name: 'ComputeFilter', passes: (h) => h.node.schedulable };

/** A failed build is not retried on the same host. */
const retry: Filter = { name: 'RetryFilter', passes: (h, r) => !r.triedHosts.includes(h.node.name) };

const zone: Filter = { name: 'AvailabilityZoneFilter', passes: (h, r) => !r.zone || h.zone === r.zone };

/** Flavor extra specs scoped `aggregate_instance_extra_specs:` must match the host's aggregate metadata. */
const aggregateSpecs: Filter = {
  name: 'AggregateInstanceExtraSpecsFilter',
  passes(h, r) {
    for (const [k, v] of Object.entries(r.flavorExtraSpecs)) {
      if (!k.startsWith(AGG_SCOPE)) continue;
      const have = h.aggregateMeta[k.slice(AGG_SCOPE.length)] ?? [];
      const wanted = v.startsWith('<in> ') ? v.slice(5).trim() : v;
      if (!have.some((x) => x.split(',').map((s) => s.trim()).includes(wanted))) return false;
    }
    return true;
  },
};

/** Image properties describing what the guest needs of the hypervisor. */
const imageProperties: Filter = {
  name: 'ImagePropertiesFilter',
  passes(h, r) {
    const arch = r.imageProperties.hw_architecture ?? r.imageProperties.architecture;
    if (arch && !['x86_64', 'amd64', 'i686', 'i386'].includes(arch.toLowerCase())) return false;
    const hv = r.imageProperties.img_hv_type ?? r.imageProperties.hypervisor_type;
    if (hv && !['qemu', 'kvm'].includes(hv.toLowerCase()) && hv.toLowerCase() !== h.node.hypervisorType.toLowerCase()) return false;
    const mode = r.imageProperties.hw_vm_mode ?? r.imageProperties.vm_mode;
    if (mode && !['hvm'].includes(mode.toLowerCase())) return false;
    return true;
  },
};

/** Hard server-group policies; the soft ones are weighers. */
const serverGroup: Filter = {
  name: 'ServerGroupFilter',
  passes(h, r) {
    if (!r.group) return true;
    const onHost = r.group.memberHosts.filter((x) => x === h.node.name).length;
    if (r.group.policy === 'affinity') return r.group.memberHosts.length === 0 || onHost === r.group.memberHosts.length;
    if (r.group.policy === 'anti-affinity') return onHost < (r.group.maxPerHost ?? 1);
    return true;
  },
};

const requested: Filter = { name: 'RequestedHostFilter', passes: (h, r) => !r.requestedHost || h.node.name === r.requestedHost };

export const FILTERS: Filter[] = [compute, retry, requested, zone, aggregateSpecs, imageProperties, serverGroup];
