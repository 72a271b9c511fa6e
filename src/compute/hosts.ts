// The compute hosts as the Nova API sees them: the agent's host records (registered by host
// agents, see service.ts) plus the operator's os-services switches (disable, force down) and
// availability zones from aggregates.
import type { Kysely } from 'kysely';
import { fromDbBool, toDbBool } from '../core/db.js';
import { notFound } from '../core/errors.js';
import { createHash } from 'node:crypto';
import { nowIso } from '../core/ids.js';
import type { HostRecord } from './store.js';

/** What compute's host registry gives (ComputeService.listHosts / getHost): the stored record, and whether it is up. */
export type HostInfo = Pick<HostRecord, 'name' | 'vcpus' | 'memoryMb' | 'diskGb' | 'cpuModel' | 'hypervisorType'
  | 'hypervisorVersion' | 'accelerator' | 'registeredAt' | 'heartbeatAt'> & { up: boolean };

/** The part of an instance record the host views need. */
export interface HostedInstance { id: string; name: string; vcpus: number; ramMb: number; diskGb: number; deleted: boolean }

export interface HostSource {
  listHosts(): Promise<HostInfo[]>;
  getHost(name: string): Promise<HostInfo | undefined>;
  listInstances(filter: { host?: string }): Promise<HostedInstance[]>;
}

export interface ServiceSwitch { disabled: boolean; disabledReason: string | null; forcedDown: boolean; updatedAt: string | null }

export interface ComputeNode extends HostInfo, ServiceSwitch {
  /** Usable by the scheduler: enabled, agent alive, not forced down. */
  schedulable: boolean;
  /** Integer id for microversions before 2.53 (order of registration, 1-based). */
  seq: number;
  /** UUID for 2.53+ (derived from the host name, stable). */
  uuid: string;
}

export class HostDirectory {
  constructor(private readonly db: Kysely<any>, private readonly source: HostSource) {}

  async list(): Promise<ComputeNode[]> {
    const [hosts, switches] = await Promise.all([
      this.source.listHosts(),
      this.db.selectFrom('compute_service_switches').selectAll().execute(),
    ]);
    const byHost = new Map(switches.map((s) => [s.host as string, s]));
    const ordered = [...hosts].sort((a, b) => a.registeredAt.localeCompare(b.registeredAt) || a.name.localeCompare(b.name));
    return ordered.map((h, i) => this.merge(h, byHost.get(h.name), i + 1));
  }

  async get(name: string): Promise<ComputeNode> {
    const n = (await this.list()).find((h) => h.name === name);
    if (!n) throw notFound(`Compute host ${name} could not be found.`);
    return n;
  }

  /** By host name, integer id (< 2.53) or UUID (2.53+). */
  async find(ref: string): Promise<ComputeNode | undefined> {
    return (await this.list()).find((h) => h.name === ref || h.uuid === ref || String(h.seq) === ref);
  }

  /** What the instances placed on a host use (deleted ones still hold resources until gone). */
  async usage(name: string): Promise<{ vcpus: number; ramMb: number; diskGb: number; instances: HostedInstance[] }> {
    const instances = await this.source.listInstances({ host: name });
    return {
      vcpus: instances.reduce((s, i) => s + i.vcpus, 0),
      ramMb: instances.reduce((s, i) => s + i.ramMb, 0),
      diskGb: instances.reduce((s, i) => s + i.diskGb, 0),
      instances,
    };
  }

  async setSwitch(name: string, patch: Partial<Pick<ServiceSwitch, 'disabled' | 'disabledReason' | 'forcedDown'>>): Promise<ComputeNode> {
    const cur = await this.get(name);
    const next = {
      host: name,
      disabled: toDbBool(patch.disabled ?? cur.disabled),
      // Nova clears the reason when a service is enabled again.
      disabled_reason: (patch.disabled === false ? null : patch.disabledReason !== undefined ? patch.disabledReason : cur.disabledReason),
      forced_down: toDbBool(patch.forcedDown ?? cur.forcedDown),
      updated_at: nowIso(),
    };
    const { host, ...rest } = next;
    await this.db.insertInto('compute_service_switches').values(next)
      .onConflict((oc) => oc.column('host').doUpdateSet(rest)).execute();
    void host;
    return this.get(name);
  }

  private merge(h: HostInfo, s: Record<string, any> | undefined, seq: number): ComputeNode {
    const sw: ServiceSwitch = {
      disabled: fromDbBool(s?.disabled), disabledReason: s?.disabled_reason ?? null,
      forcedDown: fromDbBool(s?.forced_down), updatedAt: s?.updated_at ?? null,
    };
    return {
      ...h, ...sw, up: h.up && !sw.forcedDown, schedulable: h.up && !sw.disabled && !sw.forcedDown,
      seq, uuid: nameUuid(h.name),
    };
  }
}

/** A stable UUID (version 5 style) for a host name. */
export function nameUuid(name: string): string {
  const h = createHash('sha1').update(`stratus-compute-host:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
