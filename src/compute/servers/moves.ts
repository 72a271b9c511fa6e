// Cold migration and resize to another host, server side. The API part (ServerMoves) schedules
// the destination synchronously, as Nova's conductor does for cold moves, so "no valid host" is a
// 400 and the server is untouched: the source allocation is moved to the migration record (its
// uuid as placement consumer) and the destination is claimed for the server. The reconciler part
// (moveStep) drives the `move` task one step per pass, every step recorded so a controller
// restart resumes it:
//   stopping  → the guest is stopped on the source
//   exporting → the source agent uploads the flattened disk to the controller (agent task)
//   spawning  → the instance's primary copy is on the destination, spawned from that disk
//   VERIFY_RESIZE; confirm deletes the source copy and its allocation, revert swaps back.
// Any failure before VERIFY_RESIZE rolls back: the source copy is the server again (ACTIVE, or
// SHUTOFF as it was), the destination copy, staged disk and destination allocation are released,
// the migration ends in `error` and the server keeps a fault saying why.
import { badRequest, conflict } from '../../core/errors.js';
import { nowIso } from '../../core/ids.js';
import type { AggregateService } from '../aggregates.js';
import type { HostDirectory } from '../hosts.js';
import type { MigrationRecord, MigrationService } from '../migrations/service.js';
import type { PlacementLike, Scheduler } from '../scheduler/index.js';
import type { ServerGroupService } from '../server-groups.js';
import { closeAction } from './actions.js';
import type { ServerNetworking, ServerNic } from './networking.js';
import type { InstanceApi, InstanceLike } from './ports.js';
import { groupRequest, type ReconcilerDeps } from './reconciler.js';
import type { Caller, ServerService } from './service.js';
import type { FlavorSnapshot, MoveTask, ServerRecord } from './store.js';
import { endTask } from './tasks.js';

export interface MoveDeps {
  servers: ServerService;
  instances: InstanceApi;
  placement: PlacementLike;
  scheduler: Scheduler;
  hosts: HostDirectory;
  aggregates: AggregateService;
  groups: ServerGroupService;
  migrations: MigrationService;
  network?: () => ServerNetworking | undefined;
}

const resources = (f: FlavorSnapshot) => ({ VCPU: f.vcpus, MEMORY_MB: f.ram, DISK_GB: Math.max(f.disk, 1) });

export class ServerMoves {
  constructor(private readonly d: MoveDeps) {}

  /**
   * Picks another host for `s` with `flavor` and claims it: the source allocation moves to the
   * migration record first. Returns the host, or the scheduler's reason (allocations restored).
   */
  async schedule(s: ServerRecord, flavor: FlavorSnapshot, m: MigrationRecord, requestedHost?: string): Promise<{ host: string } | { error: string }> {
    const d = this.d;
    await d.placement.moveAllocations(s.id, m.uuid);
    let decision;
    try {
      decision = await d.scheduler.place({
        serverId: s.id, projectId: s.projectId, userId: s.userId, resources: resources(flavor),
        flavorExtraSpecs: flavor.extraSpecs, imageProperties: s.request.imageProperties,
        zone: s.requestedAz ?? undefined, triedHosts: [s.host!], requestedHost,
        ...(await groupRequest({ groups: d.groups, store: d.servers.store }, s)),
      });
    } catch (e) {
      decision = { error: (e as Error).message };
    }
    if ('error' in decision) {
      await d.placement.moveAllocations(m.uuid, s.id, { consumerType: 'INSTANCE' });
      return decision;
    }
    await d.migrations.update(m.uuid, { destCompute: decision.host, destNode: decision.host, destHost: decision.host });
    return { host: decision.host };
  }

  /** Undoes schedule(): the destination claim goes, the source allocation is the server's again. */
  async unschedule(s: ServerRecord, m: MigrationRecord): Promise<void> {
    await this.d.placement.moveAllocations(m.uuid, s.id, { consumerType: 'INSTANCE' });
  }

  /** POST /servers/{id}/action {"migrate": {"host"?}} (admins): cold migration to another host. */
  async migrate(c: Caller, s: ServerRecord, host?: string): Promise<void> {
    const d = this.d;
    const inst = await d.instances.getInstance(s.id);
    if (!inst || !s.host) throw conflict(`Instance ${s.id} has no guest to migrate.`);
    if (inst.desiredPower !== 'running' && inst.desiredPower !== 'shutoff') {
      throw conflict(`Cannot 'migrate' instance ${s.id} while it is ${inst.desiredPower}: only running or stopped servers move.`);
    }
    if (host !== undefined) {
      if (!(await d.hosts.find(host))) throw badRequest(`Compute host ${host} could not be found.`);
      if (host === s.host) throw badRequest(`The target host can't be the same one: ${host}.`);
    }
    const others = (await d.hosts.list()).filter((h) => h.name !== s.host);
    if (!others.length) throw badRequest(`No valid host was found. ${s.host} is the only compute host: there is nowhere to migrate to.`);
    const actionId = await d.servers.actions.start({ serverId: s.id, action: 'migrate', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    const m = await d.migrations.create({ instanceUuid: s.id, migrationType: 'migration', status: 'pre-migrating', sourceCompute: s.host,
      oldFlavorId: s.flavor.id, newFlavorId: s.flavor.id, projectId: s.projectId, userId: c.userId });
    const placed = await this.schedule(s, s.flavor, m, host);
    if ('error' in placed) {
      await d.migrations.update(m.uuid, { status: 'error', error: placed.error });
      await closeAction(d.servers.store.db, actionId, 'Error', placed.error);
      throw badRequest(placed.error);
    }
    await d.servers.actions.event(actionId, { event: 'compute_prep_resize', host: placed.host });
    s.task = this.task('migration', s, m, placed.host, s.flavor, inst.desiredPower === 'running', actionId);
    s.request.previousFlavor = s.flavor;
    s.taskState = 'resize_prep';
    s.updatedAt = nowIso();
    await d.servers.store.update(s);
    d.servers.kick(s.id);
  }

  task(kind: MoveTask['kind'], s: ServerRecord, m: MigrationRecord, dest: string, newFlavor: FlavorSnapshot, wasRunning: boolean, actionId: string): MoveTask {
    return { type: 'move', kind, step: 'stopping', migrationId: m.uuid, source: s.host!, dest, newFlavor, oldFlavor: s.flavor, wasRunning, actionId };
  }

  /** Confirm of a move between hosts: the source copy and its allocation go. */
  async confirm(c: Caller, s: ServerRecord, m: MigrationRecord): Promise<void> {
    const d = this.d;
    const actionId = await d.servers.actions.start({ serverId: s.id, action: 'confirmResize', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await d.migrations.update(m.uuid, { status: 'confirming' });
    await d.instances.dropPeer(s.id);
    await d.placement.deleteAllocations(m.uuid);
    s.vmState = 'active';
    s.request.previousFlavor = undefined;
    s.task = { type: 'confirm-move', migrationId: m.uuid, actionId };
    s.updatedAt = nowIso();
    await d.servers.store.update(s);
    d.servers.kick(s.id);
  }

  /** Revert of a move between hosts: back on the source with its original disk and flavor. */
  async revert(c: Caller, s: ServerRecord, m: MigrationRecord, oldFlavor: FlavorSnapshot): Promise<void> {
    const d = this.d;
    const inst = await d.instances.getInstance(s.id);
    if (!inst?.peer || inst.peer.deleted) throw conflict(`Instance ${s.id} has no copy on ${m.sourceCompute} to revert to.`);
    const actionId = await d.servers.actions.start({ serverId: s.id, action: 'revertResize', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await d.migrations.update(m.uuid, { status: 'reverting' });
    const power = inst.desiredPower === 'running' ? 'running' : 'shutoff';
    await this.replug(s, m.sourceCompute);
    await d.instances.swapBack(s.id, power);
    await this.unschedule(s, m);
    s.host = m.sourceCompute;
    s.availabilityZone = (await d.aggregates.zoneMap([m.sourceCompute])).get(m.sourceCompute) ?? s.availabilityZone;
    s.flavor = oldFlavor;
    s.request.previousFlavor = undefined;
    s.task = { type: 'revert-move', migrationId: m.uuid, actionId, source: m.sourceCompute, power };
    s.taskState = 'resize_reverting';
    s.updatedAt = nowIso();
    await d.servers.store.update(s);
    d.servers.kick(s.id);
  }

  /** Binds the server's ports to `host` (its agent plugs the taps); none without networking. */
  async replug(s: ServerRecord, host: string): Promise<ServerNic[] | undefined> {
    const net = this.d.network?.();
    if (!net || !s.request.nics?.length) return undefined;
    const zone = (await this.d.aggregates.zoneMap([host])).get(host) ?? null;
    return net.plug({ id: s.id, projectId: s.projectId, host, availabilityZone: zone, nics: s.request.nics, securityGroups: s.request.securityGroups });
  }
}

const settled = (i: InstanceLike) => i.observedGeneration >= i.generation && !i.busy && !i.task && !i.taskState;

/** One reconciler pass over a server's move, confirm or revert task. */
export async function moveStep(d: ReconcilerDeps & { moves?: ServerMoves }, s: ServerRecord, inst: InstanceLike | undefined): Promise<void> {
  const t = s.task!;
  const save = async () => { s.updatedAt = nowIso(); await d.store.update(s); };
  if (t.type === 'confirm-move') {
    if (inst?.peer) return; // the source's copy is not gone yet
    await d.migrations.update(t.migrationId, { status: 'confirmed' });
    return endTask(d, s, 'Success');
  }
  if (t.type === 'revert-move') {
    const want = t.power === 'running' ? 'running' : 'shutdown';
    if (!inst || inst.peer || !settled(inst) || inst.powerState !== want) {
      if (inst?.fault && inst.observedGeneration >= inst.generation) {
        await d.migrations.update(t.migrationId, { status: 'error', error: inst.fault.message });
        s.vmState = 'error';
        return endTask(d, s, 'Error', `revert failed on ${t.source}: ${inst.fault.message}`);
      }
      return;
    }
    await d.migrations.update(t.migrationId, { status: 'reverted' });
    s.vmState = 'active';
    return endTask(d, s, 'Success');
  }
  if (t.type !== 'move') return;

  const moves = d.moves!;
  const mig = (status: Parameters<MigrationService['update']>[1]['status'], error?: string) =>
    d.migrations.update(t.migrationId, { status, ...(error ? { error } : {}) });
  const timedOut = Date.now() - Date.parse(s.updatedAt) > d.buildTimeoutMs;
  const rollback = async (why: string) => {
    d.log.warn({ server: s.id, migration: t.migrationId, why }, 'move failed; rolling back to the source');
    t.step = 'rollback';
    t.error = why;
    s.taskState = 'resize_reverting';
    return save();
  };

  if (t.step === 'stopping') {
    if (!inst) return rollback('the server has no guest on its host');
    if (inst.desiredPower !== 'shutoff') { if (!inst.task) await d.instances.stop(s.id); return; }
    if (inst.fault && inst.observedGeneration >= inst.generation) return rollback(`the guest did not stop: ${inst.fault.message}`);
    if (!settled(inst) || inst.powerState !== 'shutdown') return timedOut ? rollback('the guest did not stop in time') : undefined;
    const { task } = await d.instances.exportDisk(s.id, t.migrationId);
    t.step = 'exporting';
    t.agentTaskId = task.id;
    s.taskState = 'resize_migrating';
    await mig('migrating');
    return save();
  }
  if (t.step === 'exporting') {
    const r = inst?.lastTaskResult as { taskId?: string; ok?: boolean; error?: string; result?: { sha256?: string; sizeBytes?: number } } | null | undefined;
    if (!inst) return rollback('the server has no guest on its host');
    if (inst.host === t.dest && inst.peer?.migrationId === t.migrationId) {
      // Moved already (a restart between beginMove and recording it): carry on.
      t.step = 'spawning';
      s.host = t.dest;
      return save();
    }
    if (!r || r.taskId !== t.agentTaskId) return timedOut ? rollback('the disk was not exported in time') : undefined;
    if (!r.ok || !r.result?.sha256) return rollback(`moving the disk off ${t.source} failed: ${r.error ?? 'no checksum'}`);
    let nics;
    try { nics = await moves.replug(s, t.dest); } catch (e) { return rollback(`the ports could not move to ${t.dest}: ${(e as Error).message}`); }
    await d.instances.beginMove(s.id, {
      host: t.dest, migrationId: t.migrationId, power: t.wasRunning ? 'running' : 'shutoff', ...(nics ? { nics } : {}),
      flavor: { vcpus: t.newFlavor.vcpus, ramMb: t.newFlavor.ram, diskGb: t.newFlavor.disk },
      disk: { migrationId: t.migrationId, sha256: r.result.sha256, sizeBytes: r.result.sizeBytes ?? 0 },
    });
    t.step = 'spawning';
    s.host = t.dest;
    s.availabilityZone = (await d.aggregates.zoneMap([t.dest])).get(t.dest) ?? s.availabilityZone;
    s.taskState = 'resize_finish';
    await mig('post-migrating');
    return save();
  }
  if (t.step === 'spawning') {
    if (!inst) return rollback('the server has no guest on its host');
    // Any fault is the destination's (beginMove cleared the source's).
    if (inst.fault) return rollback(`the guest did not start on ${t.dest}: ${inst.fault.message}`);
    const want = t.wasRunning ? 'running' : 'shutdown';
    if (!settled(inst) || inst.powerState !== want) return timedOut ? rollback(`the guest did not start on ${t.dest} in time`) : undefined;
    await d.instances.finishMove(s.id);
    await mig('finished');
    s.vmState = 'resized';
    d.log.info({ server: s.id, from: t.source, to: t.dest, migration: t.migrationId }, `${t.kind} to another host done; waiting for confirm`);
    return endTask(d, s, 'Success');
  }

  // rollback: the source's copy becomes the server again, then everything of the move is released.
  const power = t.wasRunning ? 'running' : 'shutoff';
  if (inst && inst.host === t.dest && inst.peer && !inst.peer.deleted) {
    await moves.replug(s, t.source).catch((e: Error) => d.log.warn({ server: s.id, err: e.message }, 'ports did not move back'));
    await d.instances.swapBack(s.id, power);
    return;
  }
  if (inst && inst.host === t.source && !inst.peer && t.wasRunning && inst.desiredPower === 'shutoff' && !inst.task && settled(inst)) {
    await d.instances.start(s.id);
    return;
  }
  if (inst && (inst.peer || !settled(inst))) return;
  const m = await d.migrations.get(t.migrationId);
  if (m) await moves.unschedule(s, m);
  await d.instances.discardTransfer(t.migrationId);
  await mig('error', t.error);
  s.host = t.source;
  s.availabilityZone = (await d.aggregates.zoneMap([t.source])).get(t.source) ?? s.availabilityZone;
  s.flavor = t.oldFlavor;
  s.request.previousFlavor = undefined;
  s.vmState = 'active';
  return endTask(d, s, 'Error', `${t.kind === 'resize' ? 'Resize' : 'Migration'} to ${t.dest} failed: ${t.error}`);
}

