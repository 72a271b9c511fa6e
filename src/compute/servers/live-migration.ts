// Live migration of a server (os-migrateLive, admin): the API checks and records the request
// (migration record `live-migration`, status queued; server task `live-migration`, MIGRATING);
// the reconciler then, one resumable step per pass:
//   scheduling  the source's resources go to the migration's placement consumer; the scheduler
//               picks (or validates) a destination — not the current host, same zone when one was
//               asked at boot, server-group rules — and claims it for the server
//   moving      compute's instance service drives the agents (instance-moves.ts): destination
//               prepares, source sends; the record follows (preparing → running with progress →
//               completed) and the server moves to the destination at the switch-over
//   done        source resources released; or, on failure/abort, destination released and the
//               source's allocation given back to the server (it never left its host)
import { badRequest, conflict, notFound } from '../../core/errors.js';
import { nowIso } from '../../core/ids.js';
import type { HostDirectory } from '../hosts.js';
import type { MigrationRecord, MigrationService } from '../migrations/service.js';
import { closeAction } from './actions.js';
import type { InstanceApi, MoveLike } from './ports.js';
import { groupRequest, type ReconcilerDeps } from './reconciler.js';
import type { Caller, ServerService } from './service.js';
import type { ServerRecord } from './store.js';

export interface LiveMigrationTask {
  type: 'live-migration';
  step: 'scheduling' | 'moving';
  /** compute_migrations uuid (also the placement consumer holding the source). */
  migrationId: string;
  /** Asked for by the admin (validated by the scheduler), or null: the scheduler picks. */
  requestedHost: string | null;
  /** Chosen destination (set once claimed). */
  dest: string | null;
  /** The requested host bypasses the scheduler's filters (placement still claims). */
  force?: boolean;
  actionId: string;
}

/** A destination that never answers its prepare step is given up after this long. */
const PREPARE_TIMEOUT_MS = 5 * 60_000;

export interface LiveMigrateRequest {
  host: string | null;
  /** Stratus hosts never share instance storage: every live migration copies the disk (see docs). */
  blockMigration: boolean | 'auto';
  /** 2.30–2.67: skip the scheduler's filters for the requested host. */
  force?: boolean;
}

export class LiveMigrationOps {
  constructor(private readonly servers: ServerService, private readonly d: {
    instances: InstanceApi; hosts: HostDirectory; migrations: MigrationService;
  }) {}

  async start(c: Caller, id: string, r: LiveMigrateRequest): Promise<void> {
    const s = await this.servers.get(c, id);
    if (s.vmState !== 'active' || !s.host) throw conflict(`Cannot 'os-migrateLive' instance ${id} while it is in vm_state ${s.vmState}`);
    if (s.task || s.taskState) throw conflict(`Cannot 'os-migrateLive' instance ${id} while it is in task_state ${s.taskState ?? s.task?.type}`);
    const inst = await this.d.instances.getInstance(id);
    if (!inst || (inst.desiredPower !== 'running' && inst.desiredPower !== 'paused')) {
      throw conflict(`Cannot 'os-migrateLive' instance ${id} while it is in power state ${inst?.desiredPower ?? 'unknown'}: only running or paused servers move live.`);
    }
    if (!this.d.instances.moves) throw badRequest('Live migration is not available in this deployment.');
    const nodes = await this.d.hosts.list();
    if (r.host !== null) {
      const n = nodes.find((h) => h.name === r.host);
      if (!n) throw badRequest(`Compute host ${r.host} could not be found.`);
      if (n.name === s.host) throw badRequest(`Unable to migrate instance (${id}) to current host (${s.host}).`);
      if (!n.schedulable) throw badRequest(`Compute service of ${n.name} is unavailable at this time.`);
    } else if (!nodes.some((h) => h.name !== s.host && h.schedulable)) {
      throw badRequest(`No valid host was found. There is no other compute host to live-migrate instance ${id} to.`);
    }
    const actionId = await this.servers.actions.start({ serverId: id, action: 'live-migration', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    await this.servers.actions.event(actionId, { event: 'conductor_live_migrate_instance', host: s.host });
    await this.servers.store.db.transaction().execute(async (tx) => {
      const m = await this.d.migrations.create({
        instanceUuid: id, migrationType: 'live-migration', status: 'queued', sourceCompute: s.host!, destCompute: r.host,
        oldFlavorId: s.flavor.id, newFlavorId: s.flavor.id, projectId: s.projectId, userId: c.userId,
      }, tx);
      const task: LiveMigrationTask = { type: 'live-migration', step: 'scheduling', migrationId: m.uuid, requestedHost: r.host, dest: null, actionId,
        ...(r.force && r.host ? { force: true } : {}) };
      s.task = task;
      s.taskState = 'migrating';
      s.updatedAt = nowIso();
      await this.servers.store.update(s, tx);
    });
    this.servers.kick(id);
  }

  /** DELETE /servers/{id}/migrations/{mid}: cancels a live migration that has not switched over. */
  async abort(c: Caller, id: string, mid: string): Promise<void> {
    const { s, m } = await this.current(c, id, mid);
    if (m.status === 'completed' || (m.status === 'running' && (await this.d.instances.moves!.get(id))?.phase === 'finishing')) {
      throw badRequest(`Migration ${mid} state of instance ${id} is ${m.status}: it has switched over and cannot be aborted.`);
    }
    const t = s.task as LiveMigrationTask;
    const move = await this.d.instances.moves!.get(id);
    if (move && move.migrationId === t.migrationId) await this.d.instances.moves!.abort(id);
    else {
      // Not handed to the agents yet: nothing runs anywhere; the reconciler undoes placement.
      await this.d.migrations.update(t.migrationId, { status: 'cancelled', error: 'aborted by request' });
    }
    this.servers.kick(id);
  }

  /** POST /servers/{id}/migrations/{mid}/action force_complete: the source pauses the guest so the copy converges. */
  async forceComplete(c: Caller, id: string, mid: string): Promise<void> {
    const { m } = await this.current(c, id, mid);
    const move = await this.d.instances.moves!.get(id);
    if (m.status !== 'running' || move?.migrationId !== m.uuid || move.phase !== 'migrating') {
      throw badRequest(`Migration ${mid} state of instance ${id} is ${m.status}. Cannot force_complete while the migration is in this state.`);
    }
    await this.d.instances.moves!.forceComplete(id);
  }

  private async current(c: Caller, id: string, mid: string): Promise<{ s: ServerRecord; m: MigrationRecord }> {
    const s = await this.servers.get(c, id);
    const m = /^\d+$/.test(mid) ? await this.d.migrations.get(Number(mid)) : undefined;
    const t = s.task?.type === 'live-migration' ? s.task as LiveMigrationTask : undefined;
    if (!m || m.instanceUuid !== id || m.migrationType !== 'live-migration') {
      throw notFound(`Migration ${mid} not found for instance ${id}.`);
    }
    if (!t || t.migrationId !== m.uuid) throw badRequest(`Migration ${mid} of instance ${id} is not in progress (${m.status}).`);
    return { s, m };
  }
}

/** One reconciler pass over a server whose task is a live migration. */
export async function liveMigrationStep(d: ReconcilerDeps & { migrations: MigrationService; hosts: HostDirectory }, s: ServerRecord): Promise<void> {
  const t = s.task as unknown as LiveMigrationTask;
  const moves = d.instances.moves!;
  const save = async () => { s.updatedAt = nowIso(); await d.store.update(s); };
  const m = await d.migrations.get(t.migrationId);
  const log = d.log.child({ server: s.id, migration: t.migrationId });

  const net = d.network?.();
  const finish = async (result: 'Success' | 'Error', status: 'completed' | 'failed' | 'cancelled' | 'error', error?: string) => {
    if (result === 'Error') {
      // The ports stay bound to the source only (the destination unplugs them).
      await net?.migrating?.(s.id, null);
      // The server never left its host: the destination's claim goes, the source's comes back
      // (when the migration holds nothing, the server still holds its source: nothing to undo).
      const held = await d.placement.getAllocations(t.migrationId);
      if (Object.keys(held.allocations).length) {
        await d.placement.deleteAllocations(s.id);
        await d.placement.moveAllocations(t.migrationId, s.id, { consumerType: 'INSTANCE' });
      }
    } else {
      await d.placement.deleteAllocations(t.migrationId);
    }
    await d.migrations.update(t.migrationId, { status, ...(error ? { error } : {}) });
    s.task = null;
    s.taskState = null;
    await save();
    await closeAction(d.store.db, t.actionId, result, error);
    log.info({ status, error }, 'live migration over');
  };

  if (t.step === 'scheduling') {
    if (m?.status === 'cancelled') return finish('Error', 'cancelled', 'aborted by request');
    if (!t.dest) {
      // Hold the source under the migration's consumer (unless a previous pass already did).
      const held = await d.placement.getAllocations(t.migrationId);
      if (!Object.keys(held.allocations).length) await d.placement.moveAllocations(s.id, t.migrationId, { consumerType: 'MIGRATION' });
      const hosts = t.requestedHost ? (await d.hosts.list()).map((h) => h.name) : [];
      const decision = await d.scheduler.place({
        serverId: s.id, projectId: s.projectId, userId: s.userId,
        resources: { VCPU: s.flavor.vcpus, MEMORY_MB: s.flavor.ram, DISK_GB: Math.max(s.flavor.disk, 1) },
        flavorExtraSpecs: s.flavor.extraSpecs, imageProperties: s.request.imageProperties,
        zone: s.requestedAz ?? undefined,
        // Never the current host; with a requested host, only that one (still filtered: 2.30+ without force).
        triedHosts: t.requestedHost ? hosts.filter((h) => h !== t.requestedHost) : [s.host!],
        ...(t.force && t.requestedHost ? { forcedHost: t.requestedHost } : {}),
        ...(await groupRequest(d, s)),
      });
      if ('error' in decision) return finish('Error', 'error', decision.error);
      t.dest = decision.host;
      await save();
      await d.migrations.update(t.migrationId, { destCompute: t.dest, destNode: t.dest, destHost: t.dest });
    }
    // Aborted while the destination was being chosen (the abort found nothing to cancel yet).
    if ((await d.migrations.get(t.migrationId))?.status === 'cancelled') return finish('Error', 'cancelled', 'aborted by request');
    const cur = await moves.get(s.id);
    if (!cur || cur.migrationId !== t.migrationId) {
      // The destination plugs the server's ports too (network, tap, security groups) before it
      // says it is prepared: the guest has its network the moment it resumes there.
      await net?.migrating?.(s.id, t.dest);
      try {
        await moves.start(s.id, { migrationId: t.migrationId, dest: t.dest });
      } catch (e) {
        return finish('Error', 'error', (e as Error).message);
      }
    }
    t.step = 'moving';
    await d.actions.event(t.actionId, { event: 'compute_live_migration', host: s.host });
    return save();
  }

  const mv = await moves.get(s.id);
  if (!mv || mv.migrationId !== t.migrationId) return finish('Error', 'error', 'the live migration record of the host agents is gone');
  if (m?.status === 'cancelled' && (mv.phase === 'preparing' || mv.phase === 'migrating')) {
    // The abort raced with the hand-over to the agents: cancel the move now (too late once switched over).
    await moves.abort(s.id).catch((e) => log.info({ err: (e as Error).message }, 'abort came too late'));
    return;
  }
  await follow(d, t, mv, m);
  if (mv.phase === 'preparing' && Date.now() - Date.parse(mv.updatedAt) > PREPARE_TIMEOUT_MS) {
    log.warn({ dest: mv.dest }, 'the destination did not prepare in time; aborting');
    await moves.abort(s.id).catch(() => undefined);
    return;
  }
  if ((mv.phase === 'finishing' || mv.phase === 'done') && s.host !== mv.dest) {
    // The guest runs on the destination now: so do its ports (the source unplugs them).
    await net?.bind?.(s.id, mv.dest);
    s.host = mv.dest;
    s.availabilityZone = (await d.aggregates.zoneMap([mv.dest])).get(mv.dest) ?? null;
    await save();
  }
  if ((mv.phase === 'finishing' || mv.phase === 'done') && mv.destDone) {
    await d.actions.event(t.actionId, { event: 'compute_live_migration', host: mv.dest, result: 'Success' });
    return finish('Success', 'completed');
  }
  if (mv.phase === 'failed') return finish('Error', 'failed', mv.error ?? 'live migration failed');
  if (mv.phase === 'aborted' && mv.destDone) return finish('Error', 'cancelled', mv.error ?? 'aborted by request');
}

/** Mirrors the agents' progress into the migration record (status and bytes). */
async function follow(d: { migrations: MigrationService }, t: LiveMigrationTask, mv: MoveLike, m: MigrationRecord | undefined): Promise<void> {
  const p = mv.progress;
  const status = m?.status === 'cancelled' ? undefined : mv.phase === 'preparing' ? 'preparing' : mv.phase === 'migrating' || mv.phase === 'aborting' || mv.phase === 'finishing' ? 'running' : undefined;
  const patch = {
    ...(status && m?.status !== status ? { status } : {}),
    ...(p?.diskTotal !== undefined ? { diskTotalBytes: p.diskTotal, diskProcessedBytes: p.diskDone ?? 0, diskRemainingBytes: p.diskTotal - (p.diskDone ?? 0) } : {}),
    ...(p?.memoryTotal !== undefined ? { memoryTotalBytes: p.memoryTotal, memoryProcessedBytes: p.memoryDone ?? 0, memoryRemainingBytes: Math.max(0, p.memoryTotal - (p.memoryDone ?? 0)) } : {}),
  };
  const changed = Object.entries(patch).some(([k, v]) => (m as unknown as Record<string, unknown> | undefined)?.[k] !== v);
  if (changed) await d.migrations.update(t.migrationId, patch as Parameters<MigrationService['update']>[1]);
}
