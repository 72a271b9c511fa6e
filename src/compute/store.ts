// compute_hosts and compute_instances: rows ↔ records. Only the compute service uses this.
import type { Kysely, Transaction } from 'kysely';
import { fromDbBool, fromJson, toDbBool, toJson } from '../core/db.js';
import type { AgentTask, DesiredPower, DiskSource, ObservedPower } from './agent-protocol.js';

export interface InstanceSpecFields {
  keys: { name: string; publicKey: string }[];
  userData?: string;
  hostname: string;
  metadata: Record<string, string>;
  nics: { id: string; mac: string; tap: string; mtu?: number }[];
  /** The user asked for a config drive (config_drive=true): attached even to a guest with NICs. */
  configDrive?: boolean;
  /** OpenStack network_data.json for the config drive (the same the metadata service serves). */
  networkData?: Record<string, unknown>;
}

/**
 * The instance's second copy while it moves between hosts: the source's stopped guest while a
 * cold migration or resize waits for confirm/revert, or the destination's copy being deleted after
 * a revert. Its host's agent sees it as an ordinary desired instance (same id).
 */
export interface InstancePeer {
  host: string;
  migrationId: string;
  desiredPower: DesiredPower;
  deleted: boolean;
  generation: number;
  observedGeneration: number;
  powerState: ObservedPower | null;
  busy: boolean;
  fault: { message: string; at: string } | null;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  nics: InstanceSpecFields['nics'];
}

export interface InstanceRecord extends InstanceSpecFields {
  id: string;
  projectId: string;
  userId: string | null;
  name: string;
  host: string;
  imageId: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  desiredPower: DesiredPower;
  deleted: boolean;
  task: AgentTask | null;
  /** What is in progress (Nova task_state style): spawning, powering-off, rebooting, ... */
  taskState: string | null;
  generation: number;
  /** Last power state the agent reported (null before its first report). */
  powerState: ObservedPower | null;
  observedGeneration: number;
  pid: number | null;
  diskBytes: number | null;
  busy: boolean;
  fault: { message: string; at: string } | null;
  lastTaskResult: Record<string, unknown> | null;
  lastEvent: string | null;
  observedAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** The copy on another host during a move (null otherwise). */
  peer: InstancePeer | null;
  /** Where the root disk comes from when the guest is spawned on its host (a moved disk). */
  diskSource: DiskSource | null;
}

export interface HostRecord {
  name: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  cpuModel: string;
  hypervisorType: string;
  hypervisorVersion: string;
  accelerator: string;
  agentVersion: string;
  revision: number;
  usage: Record<string, unknown>;
  registeredAt: string;
  heartbeatAt: string;
}

type Db = Kysely<any> | Transaction<any>;

export function rowToInstance(r: Record<string, any>): InstanceRecord {
  const spec = fromJson<InstanceSpecFields>(r.spec, { keys: [], hostname: r.name, metadata: {}, nics: [] });
  return {
    ...spec,
    id: r.id, projectId: r.project_id, userId: r.user_id ?? null, name: r.name, host: r.host, imageId: r.image_id,
    vcpus: Number(r.vcpus), ramMb: Number(r.ram_mb), diskGb: Number(r.disk_gb),
    desiredPower: r.desired_power, deleted: fromDbBool(r.deleted),
    task: fromJson<AgentTask | null>(r.task, null), taskState: r.task_state ?? null,
    generation: Number(r.generation), powerState: r.power_state ?? null,
    observedGeneration: Number(r.observed_generation), pid: r.pid == null ? null : Number(r.pid),
    diskBytes: r.disk_bytes == null ? null : Number(r.disk_bytes), busy: fromDbBool(r.busy),
    fault: fromJson(r.fault, null), lastTaskResult: fromJson(r.last_task_result, null), lastEvent: r.last_event ?? null,
    observedAt: r.observed_at ?? null, createdAt: r.created_at, updatedAt: r.updated_at,
    peer: fromJson<InstancePeer | null>(r.peer, null), diskSource: fromJson<DiskSource | null>(r.disk_source, null),
  };
}

export function instanceToRow(i: InstanceRecord): Record<string, unknown> {
  const spec: InstanceSpecFields = {
    keys: i.keys, userData: i.userData, hostname: i.hostname, metadata: i.metadata, nics: i.nics,
    ...(i.configDrive ? { configDrive: true } : {}), ...(i.networkData ? { networkData: i.networkData } : {}),
  };
  return {
    id: i.id, project_id: i.projectId, user_id: i.userId, name: i.name, host: i.host, image_id: i.imageId,
    vcpus: i.vcpus, ram_mb: i.ramMb, disk_gb: i.diskGb, spec: toJson(spec), desired_power: i.desiredPower,
    deleted: toDbBool(i.deleted), task: i.task ? toJson(i.task) : null, task_state: i.taskState,
    generation: i.generation, power_state: i.powerState, observed_generation: i.observedGeneration,
    pid: i.pid, disk_bytes: i.diskBytes, busy: toDbBool(i.busy), fault: i.fault ? toJson(i.fault) : null,
    last_task_result: i.lastTaskResult ? toJson(i.lastTaskResult) : null, last_event: i.lastEvent,
    observed_at: i.observedAt, created_at: i.createdAt, updated_at: i.updatedAt,
    peer_host: i.peer?.host ?? null, peer: i.peer ? toJson(i.peer) : null, disk_source: i.diskSource ? toJson(i.diskSource) : null,
  };
}

export function rowToHost(r: Record<string, any>): HostRecord {
  return {
    name: r.name, vcpus: Number(r.vcpus), memoryMb: Number(r.memory_mb), diskGb: Number(r.disk_gb),
    cpuModel: r.cpu_model, hypervisorType: r.hypervisor_type, hypervisorVersion: r.hypervisor_version,
    accelerator: r.accelerator, agentVersion: r.agent_version, revision: Number(r.revision),
    usage: fromJson(r.usage, {}), registeredAt: r.registered_at, heartbeatAt: r.heartbeat_at,
  };
}

export class ComputeStore {
  constructor(readonly db: Kysely<any>) {}

  async getInstance(id: string, tx: Db = this.db): Promise<InstanceRecord | undefined> {
    const r = await tx.selectFrom('compute_instances').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? rowToInstance(r) : undefined;
  }

  async listInstances(f: { host?: string; projectId?: string } = {}, tx: Db = this.db): Promise<InstanceRecord[]> {
    let q = tx.selectFrom('compute_instances').selectAll().orderBy('created_at').orderBy('id');
    if (f.host) q = q.where('host', '=', f.host);
    if (f.projectId) q = q.where('project_id', '=', f.projectId);
    return (await q.execute()).map(rowToInstance);
  }

  /**
   * The instance, its row locked until the transaction ends (a no-op update: PostgreSQL holds the
   * row; SQLite serialises writers anyway). Read-modify-write of an instance must use it: during a
   * move two hosts' agents report on the same row at once, and one would undo the other's change.
   */
  async getInstanceForUpdate(id: string, tx: Db): Promise<InstanceRecord | undefined> {
    await tx.updateTable('compute_instances').set((eb) => ({ updated_at: eb.ref('updated_at') })).where('id', '=', id).execute();
    return this.getInstance(id, tx);
  }

  /** What a host's agent must see: instances on the host and copies of moving ones left there. */
  async listForHost(host: string, tx: Db = this.db): Promise<InstanceRecord[]> {
    const rows = await tx.selectFrom('compute_instances').selectAll()
      .where((eb) => eb.or([eb('host', '=', host), eb('peer_host', '=', host)]))
      .orderBy('created_at').orderBy('id').execute();
    return rows.map(rowToInstance);
  }

  async insertInstance(i: InstanceRecord, tx: Db = this.db): Promise<void> {
    await tx.insertInto('compute_instances').values(instanceToRow(i)).execute();
  }

  async updateInstance(i: InstanceRecord, tx: Db = this.db): Promise<void> {
    const { id, ...rest } = instanceToRow(i);
    await tx.updateTable('compute_instances').set(rest).where('id', '=', id as string).execute();
  }

  async removeInstance(id: string, tx: Db = this.db): Promise<void> {
    await tx.deleteFrom('compute_instances').where('id', '=', id).execute();
  }

  async getHost(name: string, tx: Db = this.db): Promise<HostRecord | undefined> {
    const r = await tx.selectFrom('compute_hosts').selectAll().where('name', '=', name).executeTakeFirst();
    return r ? rowToHost(r) : undefined;
  }

  async listHosts(): Promise<HostRecord[]> {
    return (await this.db.selectFrom('compute_hosts').selectAll().orderBy('name').execute()).map(rowToHost);
  }

  async upsertHost(h: HostRecord): Promise<void> {
    const row = {
      name: h.name, vcpus: h.vcpus, memory_mb: h.memoryMb, disk_gb: h.diskGb, cpu_model: h.cpuModel,
      hypervisor_type: h.hypervisorType, hypervisor_version: h.hypervisorVersion, accelerator: h.accelerator,
      agent_version: h.agentVersion, revision: h.revision, usage: toJson(h.usage),
      registered_at: h.registeredAt, heartbeat_at: h.heartbeatAt,
    };
    const { name, revision, registered_at, ...update } = row;
    await this.db.insertInto('compute_hosts').values(row)
      .onConflict((oc) => oc.column('name').doUpdateSet(update)).execute();
  }

  async touchHost(name: string, at: string, usage: Record<string, unknown>): Promise<boolean> {
    const r = await this.db.updateTable('compute_hosts').set({ heartbeat_at: at, usage: toJson(usage) })
      .where('name', '=', name).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Bumps the host's revision (the agents' watch cursor); returns the new value. */
  async bumpRevision(name: string, tx: Db = this.db): Promise<number> {
    await tx.updateTable('compute_hosts').set((eb) => ({ revision: eb('revision', '+', 1) })).where('name', '=', name).execute();
    const r = await tx.selectFrom('compute_hosts').select('revision').where('name', '=', name).executeTakeFirst();
    return r ? Number(r.revision) : 0;
  }
}
