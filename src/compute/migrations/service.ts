// Migration records (compute_migrations): one row per move of a server between hosts — cold
// migration, resize (also on the same host), live migration, evacuation — with Nova's fields and
// statuses. The server operations write them; os-migrations and /servers/{id}/migrations read them.
// The record's uuid is also the placement consumer that holds the source host's resources while
// a cold move waits for confirm/revert (as in Nova).
import type { Kysely, Transaction } from 'kysely';
import { badRequest } from '../../core/errors.js';
import { dbIntegerId } from '../../core/db.js';
import { nowIso, uuid as newUuid } from '../../core/ids.js';

export type MigrationType = 'migration' | 'resize' | 'live-migration' | 'evacuation';

/**
 * Nova's statuses. Cold (migration/resize): pre-migrating → migrating → post-migrating → finished
 * (VERIFY_RESIZE) → confirming → confirmed, or reverting → reverted; error on failure.
 * Live: queued → preparing → running → completed, or failed / cancelled / error.
 */
export type MigrationStatus =
  | 'pre-migrating' | 'migrating' | 'post-migrating' | 'finished' | 'confirming' | 'confirmed' | 'reverting' | 'reverted'
  | 'queued' | 'accepted' | 'preparing' | 'running' | 'completed' | 'failed' | 'cancelled' | 'error' | 'done';

/** Statuses after which a migration is over (Nova's get_in_progress_by_instance excludes these). */
export const FINISHED_STATUSES: readonly MigrationStatus[] = ['confirmed', 'reverted', 'completed', 'failed', 'cancelled', 'error', 'done', 'accepted'];

export interface MigrationProgress {
  memoryTotalBytes: number | null;
  memoryProcessedBytes: number | null;
  memoryRemainingBytes: number | null;
  diskTotalBytes: number | null;
  diskProcessedBytes: number | null;
  diskRemainingBytes: number | null;
}

export interface MigrationRecord extends MigrationProgress {
  /** Nova's integer id (shown by the API). */
  id: number;
  uuid: string;
  instanceUuid: string;
  migrationType: MigrationType;
  status: MigrationStatus;
  sourceCompute: string;
  sourceNode: string;
  destCompute: string | null;
  destNode: string | null;
  /** Nova shows the destination's address here; Stratus shows the destination host name. */
  destHost: string | null;
  oldFlavorId: string;
  newFlavorId: string;
  projectId: string;
  userId: string;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NewMigration {
  instanceUuid: string;
  migrationType: MigrationType;
  status: MigrationStatus;
  sourceCompute: string;
  destCompute?: string | null;
  oldFlavorId: string;
  newFlavorId: string;
  projectId: string;
  userId: string;
}

export type MigrationPatch = Partial<Pick<MigrationRecord, 'status' | 'destCompute' | 'destNode' | 'destHost' | 'error'> & MigrationProgress>;

export interface MigrationFilter {
  /** Source or destination compute. */
  host?: string;
  status?: string;
  instanceUuid?: string;
  migrationType?: MigrationType;
  sourceCompute?: string;
  projectId?: string;
  userId?: string;
  /** updated_at >= (ISO). */
  changesSince?: string;
  /** updated_at <= (ISO). */
  changesBefore?: string;
  /** Only those not finished (FINISHED_STATUSES). */
  inProgress?: boolean;
  limit?: number;
  /** uuid of the last migration of the previous page; 400 when unknown. */
  marker?: string;
}

type Db = Kysely<any> | Transaction<any>;

const COLUMNS: Record<keyof MigrationPatch, string> = {
  status: 'status', destCompute: 'dest_compute', destNode: 'dest_node', destHost: 'dest_host', error: 'error',
  memoryTotalBytes: 'memory_total_bytes', memoryProcessedBytes: 'memory_processed_bytes', memoryRemainingBytes: 'memory_remaining_bytes',
  diskTotalBytes: 'disk_total_bytes', diskProcessedBytes: 'disk_processed_bytes', diskRemainingBytes: 'disk_remaining_bytes',
};

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

function rowToMigration(r: Record<string, any>): MigrationRecord {
  return {
    id: Number(r.id), uuid: r.uuid, instanceUuid: r.instance_uuid, migrationType: r.migration_type, status: r.status,
    sourceCompute: r.source_compute, sourceNode: r.source_node, destCompute: r.dest_compute ?? null, destNode: r.dest_node ?? null,
    destHost: r.dest_host ?? null, oldFlavorId: r.old_flavor_id, newFlavorId: r.new_flavor_id, projectId: r.project_id,
    userId: r.user_id, error: r.error ?? null, createdAt: r.created_at, updatedAt: r.updated_at,
    memoryTotalBytes: num(r.memory_total_bytes), memoryProcessedBytes: num(r.memory_processed_bytes),
    memoryRemainingBytes: num(r.memory_remaining_bytes), diskTotalBytes: num(r.disk_total_bytes),
    diskProcessedBytes: num(r.disk_processed_bytes), diskRemainingBytes: num(r.disk_remaining_bytes),
  };
}

export class MigrationService {
  constructor(private readonly db: Kysely<any>) {}

  async create(m: NewMigration, tx: Db = this.db): Promise<MigrationRecord> {
    const now = nowIso();
    const uuid = newUuid();
    // A host is one node in Stratus: node names are the host names.
    await tx.insertInto('compute_migrations').values({
      uuid, instance_uuid: m.instanceUuid, migration_type: m.migrationType, status: m.status,
      source_compute: m.sourceCompute, source_node: m.sourceCompute, dest_compute: m.destCompute ?? null,
      dest_node: m.destCompute ?? null, dest_host: m.destCompute ?? null, old_flavor_id: m.oldFlavorId,
      new_flavor_id: m.newFlavorId, project_id: m.projectId, user_id: m.userId, created_at: now, updated_at: now,
    }).execute();
    return (await this.get(uuid, tx))!;
  }

  /** By uuid, or by Nova's integer id. */
  async get(ref: string | number, tx: Db = this.db): Promise<MigrationRecord | undefined> {
    const byId = typeof ref === 'number' || /^\d+$/.test(ref);
    const id = byId ? dbIntegerId(ref) : undefined;
    if (byId && id === undefined) return undefined;
    const r = await tx.selectFrom('compute_migrations').selectAll()
      .where(byId ? 'id' : 'uuid', '=', byId ? id! : ref).executeTakeFirst();
    return r ? rowToMigration(r) : undefined;
  }

  /** Sets the given fields (and updated_at); returns the record, undefined when it does not exist. */
  async update(uuid: string, patch: MigrationPatch, tx: Db = this.db): Promise<MigrationRecord | undefined> {
    const set: Record<string, unknown> = { updated_at: nowIso() };
    for (const [k, v] of Object.entries(patch)) if (v !== undefined) set[COLUMNS[k as keyof MigrationPatch]] = v;
    let q = tx.updateTable('compute_migrations').set(set).where('uuid', '=', uuid);
    // A cancelled migration stays cancelled: a progress update read before the abort (another
    // request, another controller) must not bring it back to life.
    if (patch.status !== undefined && !FINISHED_STATUSES.includes(patch.status)) q = q.where('status', '!=', 'cancelled');
    await q.execute();
    return this.get(uuid, tx);
  }

  /** Newest first (created_at, then id), as Nova lists them. */
  async list(f: MigrationFilter = {}, tx: Db = this.db): Promise<MigrationRecord[]> {
    let q = tx.selectFrom('compute_migrations').selectAll();
    if (f.host) q = q.where((eb) => eb.or([eb('source_compute', '=', f.host!), eb('dest_compute', '=', f.host!)]));
    if (f.status) q = q.where('status', '=', f.status);
    if (f.instanceUuid) q = q.where('instance_uuid', '=', f.instanceUuid);
    if (f.migrationType) q = q.where('migration_type', '=', f.migrationType);
    if (f.sourceCompute) q = q.where('source_compute', '=', f.sourceCompute);
    if (f.projectId) q = q.where('project_id', '=', f.projectId);
    if (f.userId) q = q.where('user_id', '=', f.userId);
    if (f.changesSince) q = q.where('updated_at', '>=', new Date(f.changesSince).toISOString());
    if (f.changesBefore) q = q.where('updated_at', '<=', new Date(f.changesBefore).toISOString());
    if (f.inProgress) q = q.where('status', 'not in', [...FINISHED_STATUSES]);
    if (f.marker) {
      const m = await this.get(f.marker, tx);
      if (!m || /^\d+$/.test(f.marker)) throw badRequest(`Marker ${f.marker} could not be found.`);
      q = q.where((eb) => eb.or([
        eb('created_at', '<', m.createdAt),
        eb.and([eb('created_at', '=', m.createdAt), eb('id', '<', m.id)]),
      ]));
    }
    q = q.orderBy('created_at', 'desc').orderBy('id', 'desc');
    if (f.limit !== undefined) q = q.limit(f.limit);
    return (await q.execute()).map(rowToMigration);
  }

  /** The instance's migration in progress of one of `types` (newest), if any. */
  async inProgress(instanceUuid: string, types?: MigrationType[], tx: Db = this.db): Promise<MigrationRecord | undefined> {
    const all = await this.list({ instanceUuid, inProgress: true }, tx);
    return all.find((m) => !types || types.includes(m.migrationType));
  }
}
