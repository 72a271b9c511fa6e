// compute_servers (+ tags): rows ↔ records. The runtime half of a server (power, host-side
// task) is the compute_instances row of the same id, written by compute's service and agents.
import type { Kysely, Transaction } from 'kysely';
import { fromDbBool, fromJson, toDbBool, toJson } from '../../core/db.js';
import type { Flavor } from '../flavors.js';

/** The flavor as it was when the server was built (kept with the server, as Nova does). */
export type FlavorSnapshot = Pick<Flavor, 'id' | 'name' | 'vcpus' | 'ram' | 'disk' | 'ephemeral' | 'swap' | 'extraSpecs'>;

export interface ServerFault { code: number; message: string; details?: string; created: string }

/** What the scheduler needs to place (or re-place) a server. */
export interface ScheduleRequest {
  hints: Record<string, unknown>;
  groupId?: string;
  /** Hosts a build already failed on (not retried). */
  triedHosts: string[];
  attempts: number;
  /** An admin's `az:host` forced placement. */
  forcedHost?: string;
  /** A failed attempt's host whose guest must be gone before placing again. */
  retryFrom?: string;
  /** The flavor before the last resize (what revertResize goes back to). */
  previousFlavor?: FlavorSnapshot;
  imageProperties: Record<string, string>;
  /** NICs asked for at create time (resolved by the networking service), plugged at build. */
  nics?: import('./networking.js').RequestedNic[];
  /** Security groups asked for at create time (names or ids). */
  securityGroups?: string[];
}

/** A multi-step operation the server reconciler drives (resize, rebuild, snapshot). */
export type ServerTask =
  | { type: 'resize'; step: 'stopping' | 'resizing' | 'starting'; newFlavor: FlavorSnapshot; oldFlavor: FlavorSnapshot; wasRunning: boolean; actionId: string; migrationId?: string }
  | { type: 'revert'; step: 'stopping' | 'resizing' | 'starting'; newFlavor: FlavorSnapshot; oldFlavor: FlavorSnapshot; wasRunning: boolean; actionId: string; migrationId?: string }
  | { type: 'rebuild'; step: 'deleting' | 'creating'; imageId: string; actionId: string; power: 'running' | 'shutoff' }
  | { type: 'snapshot'; step: 'snapshotting' | 'uploading'; imageId: string; name: string; actionId: string; agentTaskId?: string }
  | { type: 'delete'; actionId: string }
  | import('./live-migration.js').LiveMigrationTask
  | MoveTask
  | { type: 'confirm-move'; migrationId: string; actionId: string }
  | { type: 'revert-move'; migrationId: string; actionId: string; source: string; power: 'running' | 'shutoff' };

/**
 * A cold migration or resize to another host (servers/moves.ts): stop → the source uploads the
 * disk (exporting) → the destination spawns from it (spawning) → VERIFY_RESIZE; any failure rolls
 * back (the source's copy is the server again).
 */
export interface MoveTask {
  type: 'move';
  kind: 'migration' | 'resize';
  step: 'stopping' | 'exporting' | 'spawning' | 'rollback';
  migrationId: string;
  source: string;
  dest: string;
  newFlavor: FlavorSnapshot;
  oldFlavor: FlavorSnapshot;
  wasRunning: boolean;
  actionId: string;
  agentTaskId?: string;
  /** Why the move is being rolled back. */
  error?: string;
}

export interface ServerRecord {
  id: string;
  projectId: string;
  userId: string;
  name: string;
  description: string | null;
  hostname: string;
  imageId: string | null;
  flavor: FlavorSnapshot;
  /** Set while a resize waits for confirmation: the flavor to go back to. */
  keyName: string | null;
  keyData: string | null;
  userData: string | null;
  metadata: Record<string, string>;
  configDrive: boolean;
  requestedAz: string | null;
  availabilityZone: string | null;
  host: string | null;
  vmState: 'building' | 'active' | 'resized' | 'error' | 'deleted';
  taskState: string | null;
  task: ServerTask | null;
  fault: ServerFault | null;
  request: ScheduleRequest;
  reservationId: string;
  launchIndex: number;
  locked: boolean;
  lockedReason: string | null;
  lockedBy: string | null;
  accessIpv4: string | null;
  accessIpv6: string | null;
  createdAt: string;
  updatedAt: string;
  launchedAt: string | null;
  terminatedAt: string | null;
  deleted: boolean;
  tags: string[];
}

type Db = Kysely<any> | Transaction<any>;

export function rowToServer(r: Record<string, any>, tags: string[] = []): ServerRecord {
  return {
    id: r.id, projectId: r.project_id, userId: r.user_id, name: r.name, description: r.description ?? null,
    hostname: r.hostname, imageId: r.image_id ?? null, flavor: fromJson(r.flavor, {} as FlavorSnapshot),
    keyName: r.key_name ?? null, keyData: r.key_data ?? null, userData: r.user_data ?? null,
    metadata: fromJson(r.metadata, {}), configDrive: fromDbBool(r.config_drive),
    requestedAz: r.requested_az ?? null, availabilityZone: r.availability_zone ?? null, host: r.host ?? null,
    vmState: r.vm_state, taskState: r.task_state ?? null, task: fromJson(r.task, null), fault: fromJson(r.fault, null),
    request: fromJson(r.request, { hints: {}, triedHosts: [], attempts: 0, imageProperties: {} }),
    reservationId: r.reservation_id, launchIndex: Number(r.launch_index), locked: fromDbBool(r.locked),
    lockedReason: r.locked_reason ?? null, lockedBy: r.locked_by ?? null,
    accessIpv4: r.access_ipv4 ?? null, accessIpv6: r.access_ipv6 ?? null,
    createdAt: r.created_at, updatedAt: r.updated_at, launchedAt: r.launched_at ?? null,
    terminatedAt: r.terminated_at ?? null, deleted: fromDbBool(r.deleted), tags,
  };
}

export function serverToRow(s: ServerRecord): Record<string, unknown> {
  return {
    id: s.id, project_id: s.projectId, user_id: s.userId, name: s.name, description: s.description,
    hostname: s.hostname, image_id: s.imageId, flavor: toJson(s.flavor), key_name: s.keyName, key_data: s.keyData,
    user_data: s.userData, metadata: toJson(s.metadata), config_drive: toDbBool(s.configDrive),
    requested_az: s.requestedAz, availability_zone: s.availabilityZone, host: s.host, vm_state: s.vmState,
    task_state: s.taskState, task: s.task ? toJson(s.task) : null, fault: s.fault ? toJson(s.fault) : null,
    request: toJson(s.request), reservation_id: s.reservationId, launch_index: s.launchIndex,
    locked: toDbBool(s.locked), locked_reason: s.lockedReason, locked_by: s.lockedBy,
    access_ipv4: s.accessIpv4, access_ipv6: s.accessIpv6, created_at: s.createdAt, updated_at: s.updatedAt,
    launched_at: s.launchedAt, terminated_at: s.terminatedAt, deleted: toDbBool(s.deleted),
  };
}

export class ServerStore {
  constructor(readonly db: Kysely<any>) {}

  async get(id: string, tx: Db = this.db): Promise<ServerRecord | undefined> {
    const r = await tx.selectFrom('compute_servers').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    const tags = await tx.selectFrom('compute_server_tags').select('tag').where('server_id', '=', id).orderBy('tag').execute();
    return rowToServer(r, tags.map((t) => t.tag as string));
  }

  async insert(s: ServerRecord, tx: Db = this.db): Promise<void> {
    await tx.insertInto('compute_servers').values(serverToRow(s)).execute();
    for (const tag of s.tags) await tx.insertInto('compute_server_tags').values({ server_id: s.id, tag }).execute();
  }

  /** Many servers in a few statements (imports, benches); chunked under the engines' parameter limits. */
  async insertMany(servers: ServerRecord[], tx: Db = this.db): Promise<void> {
    for (let i = 0; i < servers.length; i += 200) {
      const chunk = servers.slice(i, i + 200);
      if (chunk.length) await tx.insertInto('compute_servers').values(chunk.map(serverToRow)).execute();
      const tags = chunk.flatMap((s) => [...new Set(s.tags)].map((tag) => ({ server_id: s.id, tag })));
      if (tags.length) await tx.insertInto('compute_server_tags').values(tags).execute();
    }
  }

  async update(s: ServerRecord, tx: Db = this.db): Promise<void> {
    const { id, ...rest } = serverToRow(s);
    await tx.updateTable('compute_servers').set(rest).where('id', '=', id as string).execute();
  }

  async setTags(id: string, tags: string[], tx: Db = this.db): Promise<void> {
    await tx.deleteFrom('compute_server_tags').where('server_id', '=', id).execute();
    for (const tag of [...new Set(tags)]) await tx.insertInto('compute_server_tags').values({ server_id: id, tag }).execute();
  }

  /** Servers whose build or multi-step task is not finished (the reconciler's work list). */
  async unfinished(): Promise<string[]> {
    const rows = await this.db.selectFrom('compute_servers').select('id')
      .where('deleted', '=', 0)
      .where((eb) => eb.or([eb('vm_state', '=', 'building'), eb('task', 'is not', null)]))
      .execute();
    return rows.map((r) => r.id as string);
  }
}
