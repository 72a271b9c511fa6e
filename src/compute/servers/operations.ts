// Server actions (POST /servers/{id}/action): each validates the server's state, records an
// instance action, and turns the request into desired state (compute's instance service) or a
// multi-step task for the reconciler.
import { badRequest, conflict, notImplemented } from '../../core/errors.js';
import { nowIso } from '../../core/ids.js';
import type { FlavorService } from '../flavors.js';
import type { HostDirectory } from '../hosts.js';
import type { QuotaService } from '../quotas.js';
import type { PlacementLike } from '../scheduler/index.js';
import type { MigrationService } from '../migrations/service.js';
import type { ServerMoves } from './moves.js';
import { closeAction } from './actions.js';
import { LiveMigrationOps } from './live-migration.js';
import type { ImageLookup, InstanceApi } from './ports.js';
import type { Caller, ServerService } from './service.js';
import type { FlavorSnapshot, ServerRecord } from './store.js';

export type PowerOp = 'start' | 'stop' | 'pause' | 'unpause' | 'suspend' | 'resume';

const NOVA_ACTION: Record<PowerOp, string> = {
  start: 'start', stop: 'stop', pause: 'pause', unpause: 'unpause', suspend: 'suspend', resume: 'resume',
};

export class ServerOperations {
  /** os-migrateLive and its abort (live-migration.ts). */
  readonly live: LiveMigrationOps;

  constructor(
    private readonly servers: ServerService,
    private readonly d: {
      instances: InstanceApi; flavors: FlavorService; quotas: QuotaService; placement: PlacementLike;
      hosts: HostDirectory; images: () => ImageLookup; migrations: MigrationService; moves: ServerMoves;
    },
  ) {
    this.live = new LiveMigrationOps(servers, d);
  }

  async power(c: Caller, id: string, op: PowerOp): Promise<void> {
    const s = await this.built(c, id, op);
    await this.run(c, s, NOVA_ACTION[op], `compute_${op}_instance`, () => this.d.instances[op](id));
  }

  async reboot(c: Caller, id: string, kind: 'SOFT' | 'HARD'): Promise<void> {
    const s = await this.built(c, id, 'reboot');
    await this.run(c, s, 'reboot', 'compute_reboot_instance', () => this.d.instances.reboot(id, kind === 'HARD' ? 'hard' : 'soft'));
  }

  async lock(c: Caller, id: string, reason?: string): Promise<void> {
    const s = await this.servers.get(c, id);
    const a = await this.servers.actions.start({ serverId: id, action: 'lock', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    s.locked = true; s.lockedBy = c.admin && s.projectId !== c.projectId ? 'admin' : c.userId; s.lockedReason = reason ?? null;
    s.updatedAt = nowIso();
    await this.servers.store.update(s);
    await closeAction(this.servers.store.db, a, 'Success');
  }

  async unlock(c: Caller, id: string): Promise<void> {
    const s = await this.servers.get(c, id);
    if (s.locked && s.lockedBy === 'admin' && !c.admin) throw conflict(`Instance ${id} was locked by an administrator`);
    const a = await this.servers.actions.start({ serverId: id, action: 'unlock', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    s.locked = false; s.lockedBy = null; s.lockedReason = null;
    s.updatedAt = nowIso();
    await this.servers.store.update(s);
    await closeAction(this.servers.store.db, a, 'Success');
  }

  /**
   * Cold resize: to another host when one fits (servers/moves.ts), else on the server's own host
   * (claim the new size there, then stop → resize → start). The new size is charged to the quota.
   */
  async resize(c: Caller, id: string, flavorRef: string): Promise<void> {
    const s = await this.built(c, id, 'resize');
    let flavor;
    try { flavor = await this.d.flavors.get(flavorRef, { admin: c.admin, projectId: c.projectId }); } catch {
      throw badRequest(`Flavor ${flavorRef} could not be found.`);
    }
    if (flavor.id === s.flavor.id) throw badRequest('When resizing, instances must change flavor!');
    if (flavor.disk < s.flavor.disk) throw badRequest(`Resize error: Unable to resize disk down (flavor ${flavor.name} has ${flavor.disk} GB, the server ${s.flavor.disk} GB).`);
    const next: FlavorSnapshot = { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ram: flavor.ram, disk: flavor.disk,
      ephemeral: flavor.ephemeral, swap: flavor.swap, extraSpecs: flavor.extraSpecs };
    const old = s.flavor;
    const source = s.host!;
    const m = await this.d.migrations.create({ instanceUuid: id, migrationType: 'resize', status: 'pre-migrating',
      sourceCompute: source, oldFlavorId: old.id, newFlavorId: next.id, projectId: s.projectId, userId: c.userId });
    // Another host when one fits; the server's own host otherwise (as before multi-host resize).
    const others = (await this.d.hosts.list()).some((h) => h.name !== source && h.schedulable);
    const placed = others ? await this.d.moves.schedule(s, next, m) : { error: 'no other host' };
    const dest = 'host' in placed ? placed.host : source;
    if (dest === source) {
      try { await this.claimOnHost(s, next, 'resize'); } catch (e) {
        await this.d.migrations.update(m.uuid, { status: 'error', error: (e as Error).message });
        throw e;
      }
      await this.d.migrations.update(m.uuid, { destCompute: source, destNode: source, destHost: source });
    }
    const undo = async () => {
      if (dest !== source) await this.d.moves.unschedule(s, m);
      else await this.claimOnHost(s, old, 'revert').catch(() => {});
    };
    const inst = await this.d.instances.getInstance(id);
    const wasRunning = inst?.desiredPower === 'running';
    const actionId = await this.servers.actions.start({ serverId: id, action: 'resize', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await this.servers.actions.event(actionId, { event: dest === source ? 'compute_resize_instance' : 'compute_prep_resize', host: dest });
    const delta = { cores: Math.max(0, next.vcpus - old.vcpus), ram: Math.max(0, next.ram - old.ram) };
    try {
      await this.d.quotas.consume(s.projectId, delta, async (tx) => {
        s.task = dest === source
          ? { type: 'resize', step: 'stopping', newFlavor: next, oldFlavor: old, wasRunning, actionId, migrationId: m.uuid }
          : this.d.moves.task('resize', s, m, dest, next, wasRunning, actionId);
        s.request.previousFlavor = old;
        s.flavor = next;
        s.taskState = 'resize_prep';
        s.updatedAt = nowIso();
        await this.servers.store.update(s, tx);
      });
    } catch (e) {
      await undo();
      await this.d.migrations.update(m.uuid, { status: 'error', error: (e as Error).message });
      await closeAction(this.servers.store.db, actionId, 'Error', (e as Error).message);
      throw e;
    }
    this.servers.kick(id);
  }

  /** Cold migration to another host (admins): see servers/moves.ts. */
  async migrate(c: Caller, id: string, host?: string): Promise<void> {
    const s = await this.built(c, id, 'migrate');
    await this.d.moves.migrate(c, s, host);
  }

  async confirmResize(c: Caller, id: string): Promise<void> {
    const s = await this.servers.get(c, id);
    this.servers.checkLock(c, s);
    if (s.vmState !== 'resized') throw conflict(`Cannot 'confirmResize' instance ${id} while it is in vm_state ${s.vmState}`);
    if (s.task) throw conflict(`Cannot 'confirmResize' instance ${id} while it is in task_state ${s.taskState ?? s.task.type}`);
    const m = await this.waitingMigration(id);
    if (m && m.destCompute && m.destCompute !== m.sourceCompute) return this.d.moves.confirm(c, s, m);
    const a = await this.servers.actions.start({ serverId: id, action: 'confirmResize', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    if (m) await this.d.migrations.update(m.uuid, { status: 'confirmed' });
    s.vmState = 'active';
    s.request.previousFlavor = undefined;
    s.updatedAt = nowIso();
    await this.servers.store.update(s);
    await closeAction(this.servers.store.db, a, 'Success');
  }

  async revertResize(c: Caller, id: string): Promise<void> {
    const s = await this.servers.get(c, id);
    this.servers.checkLock(c, s);
    if (s.vmState !== 'resized') throw conflict(`Cannot 'revertResize' instance ${id} while it is in vm_state ${s.vmState}`);
    if (s.task) throw conflict(`Cannot 'revertResize' instance ${id} while it is in task_state ${s.taskState ?? s.task.type}`);
    const last = await this.lastResize(s);
    if (!last) throw conflict(`Instance ${id} has no resize to revert.`);
    const m = await this.waitingMigration(id);
    if (m && m.destCompute && m.destCompute !== m.sourceCompute) return this.d.moves.revert(c, s, m, last.oldFlavor);
    await this.claimOnHost(s, last.oldFlavor, 'revert');
    const inst = await this.d.instances.getInstance(id);
    const actionId = await this.servers.actions.start({ serverId: id, action: 'revertResize', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    if (m) await this.d.migrations.update(m.uuid, { status: 'reverting' });
    s.task = { type: 'revert', step: 'stopping', newFlavor: s.flavor, oldFlavor: last.oldFlavor, wasRunning: inst?.desiredPower === 'running', actionId,
      ...(m ? { migrationId: m.uuid } : {}) };
    s.flavor = last.oldFlavor;
    s.request.previousFlavor = undefined;
    s.taskState = 'resize_reverting';
    s.updatedAt = nowIso();
    await this.servers.store.update(s);
    this.servers.kick(id);
  }

  async rebuild(c: Caller, id: string, imageRef: string, opts: { name?: string; metadata?: Record<string, string>; description?: string | null }): Promise<ServerRecord> {
    const s = await this.built(c, id, 'rebuild');
    let image;
    try { image = await this.d.images().getImage(imageRef, c.auth); } catch { throw badRequest(`Image ${imageRef} could not be found.`); }
    if (image.status !== 'active') throw badRequest(`Image ${image.id} is not active.`);
    const inst = await this.d.instances.getInstance(id);
    const actionId = await this.servers.actions.start({ serverId: id, action: 'rebuild', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await this.servers.actions.event(actionId, { event: 'compute_rebuild_instance', host: s.host });
    s.task = { type: 'rebuild', step: 'deleting', imageId: image.id, actionId, power: inst?.desiredPower === 'shutoff' ? 'shutoff' : 'running' };
    s.imageId = image.id;
    s.taskState = 'rebuilding';
    if (opts.name !== undefined) s.name = opts.name;
    if (opts.metadata !== undefined) s.metadata = opts.metadata;
    if (opts.description !== undefined) s.description = opts.description;
    s.updatedAt = nowIso();
    await this.servers.store.update(s);
    this.servers.kick(id);
    return s;
  }

  /** Snapshot of the root disk into a new image of the caller's project; returns the image id. */
  async createImage(c: Caller, id: string, name: string, metadata: Record<string, string>): Promise<string> {
    const s = await this.built(c, id, 'createImage');
    const images = this.d.images();
    if (!images.createImage || !images.uploadImageData) throw notImplemented('Snapshots need the image service, which is not wired into this cloud.');
    const img = await images.createImage(c.auth, {
      name, disk_format: 'qcow2', container_format: 'bare', visibility: 'private',
      properties: { ...metadata, image_type: 'snapshot', instance_uuid: s.id, ...(s.imageId ? { base_image_ref: s.imageId } : {}), owner_user_name: c.auth.userName },
    });
    const actionId = await this.servers.actions.start({ serverId: id, action: 'createImage', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await this.servers.actions.event(actionId, { event: 'compute_snapshot_instance', host: s.host });
    const { task } = await this.d.instances.snapshot(id, { name, imageId: img.id });
    s.task = { type: 'snapshot', step: 'snapshotting', imageId: img.id, name, actionId, agentTaskId: task.id };
    s.taskState = 'image_snapshot';
    s.updatedAt = nowIso();
    await this.servers.store.update(s);
    this.servers.kick(id);
    return img.id;
  }

  /** The last `lines` lines (all when null) of the guest's serial console, up to 1 MiB. */
  async consoleOutput(c: Caller, id: string, lines: number | null): Promise<string> {
    const s = await this.servers.get(c, id);
    if (s.vmState === 'building' || s.vmState === 'error' || !s.host) throw conflict(`Instance ${id} is not ready: it has no console yet.`);
    const { text } = await this.d.instances.consoleOutput(id, { offset: -1024 * 1024, maxBytes: 1024 * 1024 });
    return lines === null ? text : tailLines(text, lines);
  }

  /** A built server, not locked against the caller, with no operation in progress. */
  private async built(c: Caller, id: string, op: string): Promise<ServerRecord> {
    const s = await this.servers.get(c, id);
    this.servers.checkLock(c, s);
    if (s.vmState !== 'active') {
      throw conflict(`Cannot '${op}' instance ${id} while it is in vm_state ${s.vmState}`);
    }
    if (s.task || s.taskState) throw conflict(`Cannot '${op}' instance ${id} while it is in task_state ${s.taskState ?? s.task?.type}`);
    return s;
  }

  private async run(c: Caller, s: ServerRecord, action: string, event: string, fn: () => Promise<unknown>): Promise<void> {
    const a = await this.servers.actions.start({ serverId: s.id, action, requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await this.servers.actions.event(a, { event, host: s.host });
    try {
      await fn();
    } catch (e) {
      await closeAction(this.servers.store.db, a, 'Error', (e as Error).message);
      throw e;
    }
    this.servers.kick(s.id);
  }

  private async claimOnHost(s: ServerRecord, f: FlavorSnapshot, what: string): Promise<void> {
    const node = s.host ? await this.d.hosts.find(s.host) : undefined;
    if (!node) throw conflict(`Instance ${s.id} has no host to ${what} on.`);
    const ok = await this.d.placement.claim(s.id, { [node.uuid]: { VCPU: f.vcpus, MEMORY_MB: f.ram, DISK_GB: Math.max(f.disk, 1) } },
      { projectId: s.projectId, userId: s.userId });
    if (!ok) throw badRequest(`No valid host was found. Host ${s.host} has no room for flavor ${f.name} (Stratus resizes on the server's own host).`);
  }

  /** The server's cold migration or resize waiting for confirm/revert (status finished). */
  private async waitingMigration(id: string) {
    return (await this.d.migrations.list({ instanceUuid: id, status: 'finished' }))
      .find((m) => m.migrationType === 'resize' || m.migrationType === 'migration');
  }

  private async lastResize(s: ServerRecord): Promise<{ oldFlavor: FlavorSnapshot } | undefined> {
    // The flavor before the last resize is kept in the server's request (set when the resize finished).
    return s.request.previousFlavor ? { oldFlavor: s.request.previousFlavor } : undefined;
  }
}

/**
 * Nova's console tail: the last `lines` pieces of the text split on newlines (a final newline
 * counts as an empty last piece), so the answer always splits into at most `lines` pieces.
 */
export function tailLines(text: string, lines: number): string {
  return lines === 0 ? '' : text.split('\n').slice(-lines).join('\n');
}
