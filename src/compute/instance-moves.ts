// Live migration of an instance between two hosts, at the level of desired state (the agents'
// side; the server API, scheduling and placement are in servers/live-migration.ts). One row per
// moving instance in compute_instance_moves records the phase, so every step resumes after a
// controller restart; agents are told what to do through their watch (DesiredInstance.migration):
//
//   preparing   destination gets a copy of the instance: prepare (QEMU -incoming, NBD export),
//               reports the target                                    → migrating
//   migrating   source gets the target: mirror disk, migrate memory; reports progress, then
//               completed → the instance now belongs to the destination → finishing
//               failed/aborted → failed/aborted (the guest stays on the source)
//   aborting    source is asked to cancel                             → aborted (or finishing if too late)
//   finishing   destination closes the export (finished); source gets a deleted tombstone and
//               removes its leftovers (deleted)                       → done
//   failed / aborted: destination gets a deleted tombstone until its copy is gone
import type { EventEmitter } from 'node:events';
import type { Kysely, Transaction } from 'kysely';
import type { Logger } from 'pino';
import { fromJson, toJson } from '../core/db.js';
import { badRequest, conflict, notFound } from '../core/errors.js';
import { nowIso } from '../core/ids.js';
import type { DesiredInstance, MigrationTarget, ObservedInstance, ObservedMigration } from './agent-protocol.js';
import type { ComputeStore, InstanceRecord } from './store.js';

export type MovePhase = 'preparing' | 'migrating' | 'aborting' | 'finishing' | 'done' | 'failed' | 'aborted';

export interface InstanceMove {
  instanceId: string;
  migrationId: string;
  source: string;
  dest: string;
  phase: MovePhase;
  target: MigrationTarget | null;
  progress: NonNullable<ObservedMigration['progress']> | null;
  error: string | null;
  downtimeMs: number | null;
  /** The destination has finished (finishing) or removed its copy (failed/aborted). */
  destDone: boolean;
  /** The source has removed its leftovers (after the switch). */
  sourceDone: boolean;
  /** force_complete: the source pauses the guest so that the copy converges. */
  forceComplete: boolean;
  createdAt: string;
  updatedAt: string;
}

type Db = Kysely<any> | Transaction<any>;

const ACTIVE: MovePhase[] = ['preparing', 'migrating', 'aborting', 'finishing'];
export const isActive = (m: InstanceMove) => ACTIVE.includes(m.phase);
/** Nothing left for any agent to do. */
const settled = (m: InstanceMove) => m.phase === 'done' || ((m.phase === 'failed' || m.phase === 'aborted') && m.destDone);

function toMove(r: Record<string, any>): InstanceMove {
  return {
    instanceId: r.instance_id, migrationId: r.migration_id, source: r.source, dest: r.dest, phase: r.phase,
    target: fromJson(r.target, null), progress: fromJson(r.progress, null), error: r.error ?? null,
    downtimeMs: r.downtime_ms == null ? null : Number(r.downtime_ms),
    destDone: Number(r.dest_done) === 1, sourceDone: Number(r.source_done) === 1, forceComplete: Number(r.force_complete ?? 0) === 1, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function toRow(m: InstanceMove): Record<string, unknown> {
  return {
    instance_id: m.instanceId, migration_id: m.migrationId, source: m.source, dest: m.dest, phase: m.phase,
    target: m.target ? toJson(m.target) : null, progress: m.progress ? toJson(m.progress) : null, error: m.error,
    downtime_ms: m.downtimeMs, dest_done: m.destDone ? 1 : 0, source_done: m.sourceDone ? 1 : 0, force_complete: m.forceComplete ? 1 : 0,
    created_at: m.createdAt, updated_at: m.updatedAt,
  };
}

export const instanceMovesMigration = {
  async up(db: Kysely<any>) {
    await db.schema.createTable('compute_instance_moves')
      .addColumn('instance_id', 'text', (c) => c.primaryKey())
      .addColumn('migration_id', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('dest', 'text', (c) => c.notNull())
      .addColumn('phase', 'text', (c) => c.notNull())
      .addColumn('target', 'text')
      .addColumn('progress', 'text')
      .addColumn('error', 'text')
      .addColumn('downtime_ms', 'integer')
      .addColumn('dest_done', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('source_done', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('compute_instance_moves_source').on('compute_instance_moves').column('source').execute();
    await db.schema.createIndex('compute_instance_moves_dest').on('compute_instance_moves').column('dest').execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('compute_instance_moves').execute();
  },
};

export const instanceMovesForceMigration = {
  async up(db: Kysely<any>) {
    await db.schema.alterTable('compute_instance_moves').addColumn('force_complete', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable('compute_instance_moves').dropColumn('force_complete').execute();
  },
};

class MoveStore {
  /**
   * Row lock for a read-modify-write of a move (a no-op update: PostgreSQL holds the row until
   * commit; SQLite serialises write transactions anyway). Agents' reports race otherwise: a
   * progress report read before the completion and written after it would undo the switch-over.
   */
  async lock(db: Db, instanceId: string): Promise<void> {
    await db.updateTable('compute_instance_moves').set((eb) => ({ updated_at: eb.ref('updated_at') }))
      .where('instance_id', '=', instanceId).execute();
  }

  async get(db: Db, instanceId: string): Promise<InstanceMove | undefined> {
    const r = await db.selectFrom('compute_instance_moves').selectAll().where('instance_id', '=', instanceId).executeTakeFirst();
    return r ? toMove(r) : undefined;
  }

  /** Moves some agent of `host` still has work for. */
  async forHost(db: Db, host: string): Promise<InstanceMove[]> {
    const rows = await db.selectFrom('compute_instance_moves').selectAll()
      .where((eb) => eb.or([eb('source', '=', host), eb('dest', '=', host)])).execute();
    return rows.map(toMove).filter((m) => !settled(m));
  }

  async insert(db: Db, m: InstanceMove): Promise<void> {
    await db.deleteFrom('compute_instance_moves').where('instance_id', '=', m.instanceId).execute();
    await db.insertInto('compute_instance_moves').values(toRow(m)).execute();
  }

  async update(db: Db, m: InstanceMove): Promise<void> {
    m.updatedAt = nowIso();
    const { instance_id, ...rest } = toRow(m);
    await db.updateTable('compute_instance_moves').set(rest).where('instance_id', '=', instance_id as string).execute();
  }

  async remove(db: Db, instanceId: string): Promise<void> {
    await db.deleteFrom('compute_instance_moves').where('instance_id', '=', instanceId).execute();
  }
}

/**
 * Adds the migration steps to a host's desired state: the `migration` field of instances this
 * host owns, plus copies (destination before the switch) and tombstones (leftovers to remove).
 */
export function withMoves(host: string, own: DesiredInstance[], moves: InstanceMove[], instanceOf: (id: string) => DesiredInstance | undefined): DesiredInstance[] {
  const byId = new Map(moves.map((m) => [m.instanceId, m]));
  const out = own.map((d) => {
    const m = byId.get(d.id);
    if (!m || d.deleted) return d;
    if ((m.phase === 'migrating' || m.phase === 'aborting') && m.source === host && m.target) {
      return { ...d, migration: { id: m.migrationId, role: 'source' as const, target: m.target,
        ...(m.phase === 'aborting' ? { abort: true } : {}), ...(m.forceComplete ? { forceComplete: true } : {}) } };
    }
    if (m.phase === 'finishing' && m.dest === host && !m.destDone) {
      return { ...d, migration: { id: m.migrationId, role: 'destination' as const, phase: 'finish' as const } };
    }
    return d;
  });
  const ownIds = new Set(own.map((d) => d.id));
  for (const m of moves) {
    if (ownIds.has(m.instanceId)) continue;
    const d = instanceOf(m.instanceId);
    if (!d) {
      // The instance is gone (deleted mid-move): only the destination's copy is left to remove.
      if (m.dest === host && !m.destDone) out.push(tombstone(m.instanceId));
      continue;
    }
    const copy = m.dest === host && ['preparing', 'migrating', 'aborting'].includes(m.phase) && !d.deleted;
    const destTomb = m.dest === host && !m.destDone && (m.phase === 'failed' || m.phase === 'aborted' || d.deleted);
    const sourceTomb = m.source === host && !m.sourceDone && (m.phase === 'finishing' || m.phase === 'done');
    if (copy) out.push({ ...d, migration: { id: m.migrationId, role: 'destination', phase: 'prepare' } });
    else if (destTomb || sourceTomb) out.push({ ...d, deleted: true });
  }
  return out;
}

/** What a report changed: the instance (to save), hosts whose desired state moved on. */
export interface MoveEffect {
  instance?: InstanceRecord;
  bump: string[];
  /** The report was about the migration only: the instance's observed state is not updated from it. */
  consumed: boolean;
}

/**
 * Applies an agent's report to a moving instance. `i` is the instance row (host = its owner).
 * Reports from the host that does not own the instance are about the copy or the leftovers.
 */
export function observeMove(m: InstanceMove, i: InstanceRecord, host: string, o: ObservedInstance): MoveEffect {
  const eff: MoveEffect = { bump: [], consumed: host !== i.host };
  const mig = o.migration && o.migration.id === m.migrationId ? o.migration : undefined;
  const fail = (phase: 'failed' | 'aborted', error: string | null) => {
    m.phase = phase;
    m.error = error;
    i.taskState = null;
    i.generation += 1; // the source forgets the migration and converges as before
    eff.instance = i;
    eff.bump.push(m.source, m.dest);
  };

  if (host === m.dest && i.host !== host) {
    // The destination's copy, before the switch.
    if (o.powerState === 'deleted') m.destDone = true;
    if (mig?.state === 'prepared' && m.phase === 'preparing' && mig.target) {
      m.phase = 'migrating';
      m.target = mig.target;
      i.generation += 1; // the source now gets the target
      eff.instance = i;
      eff.bump.push(m.source);
    } else if (mig?.state === 'failed' && (m.phase === 'preparing' || m.phase === 'migrating' || m.phase === 'aborting')) {
      fail('failed', `the destination ${m.dest} could not take the instance: ${mig.error ?? 'unknown error'}`);
    }
    return eff;
  }

  if (host === m.source && i.host === host) {
    if (!mig) return eff;
    eff.consumed = mig.state !== 'running';
    if (mig.state === 'running') {
      m.progress = mig.progress ?? m.progress;
    } else if (mig.state === 'completed' && (m.phase === 'migrating' || m.phase === 'aborting')) {
      // The guest runs on the destination now: the instance is the destination's.
      m.phase = 'finishing';
      m.downtimeMs = mig.downtimeMs ?? null;
      m.progress = { phase: 'done' };
      i.host = m.dest;
      i.generation += 1;
      i.pid = null;
      i.busy = true;
      i.taskState = 'migrating';
      eff.instance = i;
      eff.bump.push(m.source, m.dest);
    } else if (mig.state === 'aborted' && (m.phase === 'aborting' || m.phase === 'migrating')) {
      fail('aborted', 'aborted by request');
    } else if (mig.state === 'failed' && (m.phase === 'migrating' || m.phase === 'aborting')) {
      fail('failed', mig.error ?? 'live migration failed');
    }
    return eff;
  }

  if (host === m.source && i.host !== host) {
    // Leftovers on the source after the switch.
    if (o.powerState === 'deleted' && !m.sourceDone) {
      m.sourceDone = true;
      if (m.destDone) { m.phase = 'done'; i.taskState = null; eff.instance = i; }
    }
    return eff;
  }

  if (host === m.dest && i.host === host && m.phase === 'finishing' && mig?.state === 'finished' && !m.destDone) {
    m.destDone = true;
    if (m.sourceDone) m.phase = 'done';
    i.generation += 1; // drops the finish step from the desired state
    i.taskState = m.phase === 'done' ? null : 'migrating';
    eff.instance = i;
    eff.bump.push(m.dest);
  }
  return eff;
}

function tombstone(id: string): DesiredInstance {
  return {
    id, name: id, projectId: '', generation: 0, power: 'shutoff', deleted: true, flavor: { vcpus: 1, ramMb: 1, diskGb: 0 },
    imageId: '', configDrive: { metaData: {} }, nics: [],
  };
}

/** The compute service's side of live migrations: start, abort, and what agents see and say. */
export class LiveMoves {
  private readonly rows = new MoveStore();

  constructor(private readonly store: ComputeStore, private readonly events: EventEmitter, private readonly log: Logger) {}

  get(instanceId: string): Promise<InstanceMove | undefined> {
    return this.rows.get(this.store.db, instanceId);
  }

  /** Starts moving a running (or paused) instance to `dest`; the destination agent is asked to prepare. */
  async start(instanceId: string, opts: { migrationId: string; dest: string }): Promise<InstanceMove> {
    const m = await this.store.db.transaction().execute(async (tx) => {
      await this.rows.lock(tx, instanceId);
      const i = await this.store.getInstance(instanceId, tx);
      if (!i || i.deleted) throw notFound(`Instance ${instanceId} could not be found.`);
      if (i.host === opts.dest) throw badRequest(`The instance is already on host ${opts.dest}.`);
      if (!(await this.store.getHost(opts.dest, tx))) throw badRequest(`Compute host ${opts.dest} could not be found.`);
      if (i.task || i.desiredPower === 'shutoff' || i.desiredPower === 'suspended') {
        throw conflict(`Cannot live-migrate instance ${instanceId} while it is ${i.task ? `in task ${i.task.type}` : i.desiredPower}`);
      }
      const cur = await this.rows.get(tx, instanceId);
      if (cur && !settled(cur)) throw conflict(`Instance ${instanceId} is already being migrated (${cur.phase}).`);
      const now = nowIso();
      const move: InstanceMove = {
        instanceId, migrationId: opts.migrationId, source: i.host, dest: opts.dest, phase: 'preparing', target: null, progress: null,
        error: null, downtimeMs: null, destDone: false, sourceDone: false, forceComplete: false, createdAt: now, updatedAt: now,
      };
      await this.rows.insert(tx, move);
      i.taskState = 'migrating';
      i.updatedAt = now;
      await this.store.updateInstance(i, tx);
      await this.store.bumpRevision(opts.dest, tx);
      return move;
    });
    this.log.info({ instance: instanceId, from: m.source, to: m.dest, migration: m.migrationId }, 'live migration requested');
    this.events.emit(`host:${m.dest}`);
    return m;
  }

  /** Cancels a move that has not switched over yet (409 once the guest runs on the destination). */
  async abort(instanceId: string): Promise<InstanceMove> {
    const m = await this.store.db.transaction().execute(async (tx) => {
      await this.rows.lock(tx, instanceId);
      const m = await this.rows.get(tx, instanceId);
      if (!m || !isActive(m)) throw badRequest(`Instance ${instanceId} is not being live-migrated.`);
      if (m.phase === 'finishing') throw conflict('The live migration has already switched over to the destination.');
      if (m.phase === 'aborting') return m;
      const i = (await this.store.getInstance(instanceId, tx))!;
      // Before the source got the target there is nothing to cancel there.
      m.phase = m.phase === 'preparing' ? 'aborted' : 'aborting';
      if (m.phase === 'aborted') { m.error = 'aborted by request'; i.taskState = null; } else i.generation += 1;
      i.updatedAt = nowIso();
      await this.store.updateInstance(i, tx);
      await this.rows.update(tx, m);
      await this.store.bumpRevision(m.source, tx);
      await this.store.bumpRevision(m.dest, tx);
      return m;
    });
    this.events.emit(`host:${m.source}`);
    this.events.emit(`host:${m.dest}`);
    return m;
  }

  /** force_complete: while the source copies memory, it pauses the guest so the copy converges. */
  async forceComplete(instanceId: string): Promise<InstanceMove> {
    const m = await this.store.db.transaction().execute(async (tx) => {
      await this.rows.lock(tx, instanceId);
      const m = await this.rows.get(tx, instanceId);
      if (!m || m.phase !== 'migrating') throw badRequest(`Instance ${instanceId} is not copying memory to another host${m ? ` (${m.phase})` : ''}.`);
      if (m.forceComplete) return m;
      m.forceComplete = true;
      const i = (await this.store.getInstance(instanceId, tx))!;
      i.generation += 1;
      i.updatedAt = nowIso();
      await this.store.updateInstance(i, tx);
      await this.rows.update(tx, m);
      await this.store.bumpRevision(m.source, tx);
      return m;
    });
    this.events.emit(`host:${m.source}`);
    return m;
  }

  /** A host's desired instances with the migration steps added. */
  async desired(host: string, own: DesiredInstance[], toDesired: (i: InstanceRecord) => DesiredInstance): Promise<DesiredInstance[]> {
    const moves = await this.rows.forHost(this.store.db, host);
    if (!moves.length) return own;
    const others = new Map<string, DesiredInstance>();
    for (const m of moves) {
      const i = await this.store.getInstance(m.instanceId);
      if (i) others.set(i.id, toDesired(i));
    }
    return withMoves(host, own, moves, (id) => others.get(id));
  }

  /** First thing in a report's transaction: serialises it with other writers of the instance's move. */
  lock(tx: Transaction<any>, instanceId: string): Promise<void> {
    return this.rows.lock(tx, instanceId);
  }

  /**
   * Inside the report's transaction: applies what `host` says about a moving instance. Returns
   * undefined when the instance is not moving (the normal report path applies).
   */
  async observe(tx: Transaction<any>, host: string, o: ObservedInstance, i: InstanceRecord | undefined): Promise<MoveEffect | undefined> {
    const m = await this.rows.get(tx, o.id);
    if (!m || settled(m) || (m.source !== host && m.dest !== host)) return undefined;
    if (!i) {
      if (host === m.dest && o.powerState === 'deleted') { m.destDone = true; await this.rows.update(tx, m); }
      return { bump: [], consumed: true };
    }
    if (i.deleted && host === i.host && !m.destDone && isActive(m)) {
      // Deleted mid-move: the destination's copy goes too (a tombstone in its desired state).
      m.phase = 'aborted';
      m.error = 'the instance was deleted';
      await this.rows.update(tx, m);
      return { bump: [m.dest], consumed: false };
    }
    const before = JSON.stringify(m);
    const eff = observeMove(m, i, host, o);
    if (JSON.stringify(m) !== before) {
      await this.rows.update(tx, m);
      if (m.phase !== JSON.parse(before).phase) this.log.info({ instance: m.instanceId, migration: m.migrationId, phase: m.phase, error: m.error ?? undefined }, 'live migration moved on');
    }
    return eff;
  }
}
