// Moving an instance between hosts (cold migration, resize to another host) at the desired-state
// level. An instance is one row; during a move it has a `peer`: the copy on the other host. Both
// hosts' agents see the same instance id in their desired state (the primary on its host, the
// peer on the peer's host) and converge each copy on its own, so no agent ever talks to another:
//
//   exportDisk   the stopped guest uploads its flattened root disk to the controller (agent task)
//   beginMove    the primary moves to the destination (spawned from that disk, new flavor); the
//                source's stopped guest stays as the peer, untouched
//   dropPeer     confirm: the source's copy is deleted
//   swapBack     revert or failure: the source's copy is the primary again (its original disk),
//                the destination's copy becomes a peer to delete
//
// A peer's report ('deleted') clears it. Generations stay monotonic per host record on the agents.
import { badRequest, conflict, notFound } from '../core/errors.js';
import { nowIso, uuid } from '../core/ids.js';
import type { AgentTask, DesiredInstance, DesiredPower, DiskSource, ObservedInstance } from './agent-protocol.js';
import type { ComputeStore, InstancePeer, InstanceRecord } from './store.js';

type Nic = InstanceRecord['nics'][number];

export class InstanceMoves {
  constructor(
    private readonly store: ComputeStore,
    /** Tells watchers of these hosts and instance listeners about the change. */
    private readonly changed: (i: InstanceRecord, hosts: string[]) => void,
  ) {}

  /** Agent task: upload the stopped guest's root disk for migration `migrationId`. */
  async exportDisk(id: string, migrationId: string): Promise<{ instance: InstanceRecord; task: AgentTask }> {
    const task: AgentTask = { id: uuid(), type: 'export-disk', migrationId };
    const instance = await this.edit(id, (i) => {
      if (i.task) throw conflict(`Cannot migrate instance ${id} while it is in task_state ${i.taskState ?? i.task.type}`);
      if (i.desiredPower !== 'shutoff') throw conflict(`Instance ${id} must be stopped before its disk is moved.`);
      if (i.peer) throw conflict(`Instance ${id} is already moving.`);
      i.task = task;
      i.taskState = 'resize_migrating';
      i.generation += 1;
      return [i.host];
    });
    return { instance, task };
  }

  /** The primary goes to `host` (spawned from `disk`, with `flavor`); the old one stays as the peer. */
  async beginMove(id: string, to: { host: string; migrationId: string; flavor: { vcpus: number; ramMb: number; diskGb: number };
    power: 'running' | 'shutoff'; disk: DiskSource; nics?: Nic[] }): Promise<InstanceRecord> {
    if (!(await this.store.getHost(to.host))) throw badRequest(`unknown compute host '${to.host}'`);
    return this.edit(id, (i) => {
      if (i.peer) throw conflict(`Instance ${id} is already moving.`);
      if (i.host === to.host) throw conflict(`Instance ${id} is already on ${to.host}.`);
      if (i.task) throw conflict(`Cannot move instance ${id} while it is in task_state ${i.taskState ?? i.task.type}`);
      const from = i.host;
      i.peer = {
        host: from, migrationId: to.migrationId, desiredPower: i.desiredPower, deleted: false, generation: i.generation,
        observedGeneration: i.observedGeneration, powerState: i.powerState, busy: i.busy, fault: i.fault,
        vcpus: i.vcpus, ramMb: i.ramMb, diskGb: i.diskGb, nics: i.nics,
      };
      i.host = to.host;
      i.vcpus = to.flavor.vcpus; i.ramMb = to.flavor.ramMb; i.diskGb = to.flavor.diskGb;
      if (to.nics) i.nics = to.nics;
      i.desiredPower = to.power;
      i.diskSource = to.disk;
      i.generation += 1;
      i.observedGeneration = 0;
      i.powerState = null; i.pid = null; i.busy = false; i.fault = null; i.lastTaskResult = null;
      i.taskState = 'spawning';
      return [from, to.host];
    });
  }

  /** The destination has its disk: the transfer is no longer needed (no change for the agent). */
  async finishMove(id: string): Promise<void> {
    await this.edit(id, (i) => { i.diskSource = null; return []; });
  }

  /** Confirm: delete the peer (the source's copy). */
  async dropPeer(id: string): Promise<InstanceRecord> {
    return this.edit(id, (i) => {
      if (!i.peer) return [];
      if (!i.peer.deleted) { i.peer.deleted = true; i.peer.generation += 1; }
      return [i.peer.host];
    });
  }

  /** Revert (or a failed move): the peer becomes the primary again; the moved copy is deleted. */
  async swapBack(id: string, power: DesiredPower): Promise<InstanceRecord> {
    return this.edit(id, (i) => {
      const p = i.peer;
      if (!p || p.deleted) throw conflict(`Instance ${id} has no copy to go back to.`);
      const gone: InstancePeer = {
        host: i.host, migrationId: p.migrationId, desiredPower: 'shutoff', deleted: true, generation: i.generation + 1,
        observedGeneration: i.observedGeneration, powerState: i.powerState, busy: i.busy, fault: null,
        vcpus: i.vcpus, ramMb: i.ramMb, diskGb: i.diskGb, nics: i.nics,
      };
      i.host = p.host;
      i.vcpus = p.vcpus; i.ramMb = p.ramMb; i.diskGb = p.diskGb; i.nics = p.nics;
      i.desiredPower = power;
      i.generation = Math.max(i.generation, p.generation) + 1;
      i.observedGeneration = p.observedGeneration;
      i.powerState = p.powerState; i.pid = null; i.busy = p.busy; i.fault = null;
      i.task = null; i.diskSource = null;
      i.taskState = power === 'running' ? 'powering-on' : null;
      i.peer = gone;
      return [i.host, gone.host];
    });
  }

  /** A report from the peer's host. Returns the record when it changed. */
  applyPeerReport(i: InstanceRecord, o: ObservedInstance): boolean {
    const p = i.peer!;
    if (o.powerState === 'deleted') {
      if (!p.deleted) return false; // stale: a report from before the copy was kept
      i.peer = null;
      return true;
    }
    p.powerState = o.powerState;
    p.busy = !!o.busy;
    p.observedGeneration = Math.max(p.observedGeneration, o.observedGeneration);
    if (o.fault !== undefined) p.fault = o.fault;
    return true;
  }

  private async edit(id: string, fn: (i: InstanceRecord) => string[]): Promise<InstanceRecord> {
    let hosts: string[] = [];
    const rec = await this.store.db.transaction().execute(async (tx) => {
      const i = await this.store.getInstanceForUpdate(id, tx);
      if (!i) throw notFound(`Instance ${id} could not be found.`);
      if (i.deleted) throw conflict(`Instance ${id} is being deleted`);
      hosts = fn(i);
      i.updatedAt = nowIso();
      await this.store.updateInstance(i, tx);
      for (const h of hosts) await this.store.bumpRevision(h, tx);
      return i;
    });
    this.changed(rec, hosts);
    return rec;
  }
}

/** The peer as its host's agent sees it: the same guest, its own generation, power and flavor. */
export function peerDesired(i: InstanceRecord, primary: DesiredInstance): DesiredInstance {
  const p = i.peer!;
  const { task: _t, disk: _d, ...rest } = primary;
  return {
    ...rest, generation: p.generation, power: p.desiredPower, deleted: p.deleted || i.deleted,
    flavor: { vcpus: p.vcpus, ramMb: p.ramMb, diskGb: p.diskGb }, nics: p.nics,
  };
}
