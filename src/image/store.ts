// The image service's own tables: images, their custom properties, tags and members.
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import { fromDbBool, toDbBool, type Database } from '../core/db.js';

export type ImageStatus =
  'queued' | 'saving' | 'active' | 'killed' | 'deleted' | 'pending_delete' | 'deactivated' | 'uploading' | 'importing';
export type Visibility = 'public' | 'private' | 'shared' | 'community';
export type MemberStatus = 'pending' | 'accepted' | 'rejected';

export interface ImageRecord {
  id: string;
  name: string | null;
  status: ImageStatus;
  visibility: Visibility;
  protected: boolean;
  osHidden: boolean;
  owner: string | null;
  checksum: string | null;
  osHashAlgo: string | null;
  osHashValue: string | null;
  size: number | null;
  virtualSize: number | null;
  minDisk: number;
  minRam: number;
  diskFormat: string | null;
  containerFormat: string | null;
  /** Ids of the stores holding the data. */
  stores: string[];
  stagedSize: number | null;
  pendingImport: PendingImport | null;
  createdAt: string;
  updatedAt: string;
  tags: string[];
  /** Custom (additional) properties, all strings as in Glance. */
  properties: Record<string, string>;
}

export interface PendingImport {
  method: 'glance-direct' | 'copy-image';
  stores: string[];
  allStoresMustSucceed: boolean;
}

export interface MemberRecord {
  imageId: string;
  memberId: string;
  status: MemberStatus;
  createdAt: string;
  updatedAt: string;
}

interface ImageRow {
  id: string; name: string | null; status: string; visibility: string; protected: number; os_hidden: number;
  owner: string | null; checksum: string | null; os_hash_algo: string | null; os_hash_value: string | null;
  size: number | null; virtual_size: number | null; min_disk: number; min_ram: number;
  disk_format: string | null; container_format: string | null; stores: string; staged_size: number | null;
  pending_import: string | null; created_at: string; updated_at: string;
}
interface Tables {
  image_images: ImageRow;
  image_properties: { image_id: string; name: string; value: string };
  image_tags: { image_id: string; tag: string };
  image_members: { image_id: string; member_id: string; status: string; created_at: string; updated_at: string };
}

/** Columns a caller may change through `update` (everything but id and created_at). */
export type ImageChanges = Partial<Omit<ImageRecord, 'id' | 'createdAt' | 'tags' | 'properties'>>;

export const SORT_KEYS = {
  name: 'text', status: 'text', container_format: 'text', disk_format: 'text', size: 'num', virtual_size: 'num',
  id: 'text', created_at: 'text', updated_at: 'text', visibility: 'text', owner: 'text', min_disk: 'num', min_ram: 'num',
} as const;
export type SortKey = keyof typeof SORT_KEYS;

export interface ListQuery {
  viewer: { projectId?: string; admin: boolean };
  visibility?: Visibility | 'all';
  memberStatus?: MemberStatus | 'all';
  ids?: string[];
  names?: string[];
  statuses?: string[];
  owner?: string;
  diskFormats?: string[];
  containerFormats?: string[];
  sizeMin?: number;
  sizeMax?: number;
  /** undefined: hidden images excluded (Glance's default). */
  osHidden?: boolean;
  protected?: boolean;
  tags?: string[];
  properties?: Record<string, string>;
  times?: { column: 'created_at' | 'updated_at'; op: '>' | '>=' | '<' | '<=' | '=' | '<>'; value: string }[];
  sort: { key: SortKey; dir: 'asc' | 'desc' }[];
  marker?: ImageRecord;
  limit: number;
}

type EB = ExpressionBuilder<Tables, 'image_images'>;

export class ImageStore {
  private readonly db: Kysely<Tables>;
  constructor(database: Database) {
    this.db = database.kysely as Kysely<Tables>;
  }

  async insert(rec: ImageRecord): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('image_images').values(toRow(rec)).execute();
      await writeChildren(trx, rec.id, rec.properties, rec.tags);
    });
  }

  async get(id: string): Promise<ImageRecord | undefined> {
    const row = await this.db.selectFrom('image_images').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    return (await this.hydrate([row]))[0];
  }

  async findByName(name: string): Promise<ImageRecord[]> {
    const rows = await this.db.selectFrom('image_images').selectAll().where('name', '=', name).execute();
    return this.hydrate(rows);
  }

  async findByStatus(statuses: ImageStatus[]): Promise<ImageRecord[]> {
    const rows = await this.db.selectFrom('image_images').selectAll().where('status', 'in', statuses).execute();
    return this.hydrate(rows);
  }

  /**
   * Updates columns; with `ifStatus`, only while the image is in one of those states (an atomic
   * claim, e.g. queued → saving). Returns whether a row changed.
   */
  async update(id: string, changes: ImageChanges, opts: { ifStatus?: ImageStatus[]; updatedAt: string }): Promise<boolean> {
    const row = { ...partialRow(changes), updated_at: opts.updatedAt };
    let q = this.db.updateTable('image_images').set(row).where('id', '=', id);
    if (opts.ifStatus) q = q.where('status', 'in', opts.ifStatus);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Replaces the user-editable state of an image in one transaction (JSON-patch result). */
  async replaceMetadata(rec: ImageRecord): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const { id, created_at: _c, ...row } = toRow(rec);
      await trx.updateTable('image_images').set(row).where('id', '=', id).execute();
      await trx.deleteFrom('image_properties').where('image_id', '=', id).execute();
      await trx.deleteFrom('image_tags').where('image_id', '=', id).execute();
      await writeChildren(trx, id, rec.properties, rec.tags);
    });
  }

  async addTag(id: string, tag: string): Promise<void> {
    await this.db.insertInto('image_tags').values({ image_id: id, tag })
      .onConflict((oc) => oc.columns(['image_id', 'tag']).doNothing()).execute();
  }

  async deleteTag(id: string, tag: string): Promise<boolean> {
    const r = await this.db.deleteFrom('image_tags').where('image_id', '=', id).where('tag', '=', tag).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('image_images').where('id', '=', id).execute();
  }

  async list(q: ListQuery): Promise<ImageRecord[]> {
    let query = this.db.selectFrom('image_images').selectAll('image_images');
    query = query.where((eb) => eb.and(conditions(eb, q)));
    const keys = [...q.sort];
    if (!keys.some((k) => k.key === 'id')) keys.push({ key: 'id', dir: keys.at(-1)?.dir ?? 'desc' });
    if (q.marker) {
      const marker = toRow(q.marker) as unknown as Record<string, unknown>;
      query = query.where((eb) => {
        // Keyset: rows strictly after the marker in (k1, k2, ..., id) order.
        const ors: Expression<SqlBool>[] = [];
        for (let i = 0; i < keys.length; i++) {
          const ands: Expression<SqlBool>[] = [];
          for (let j = 0; j < i; j++) ands.push(eb(sortExpr(keys[j]!.key), '=', sortValue(keys[j]!.key, marker)));
          const k = keys[i]!;
          ands.push(eb(sortExpr(k.key), k.dir === 'asc' ? '>' : '<', sortValue(k.key, marker)));
          ors.push(eb.and(ands));
        }
        return eb.or(ors);
      });
    }
    for (const k of keys) query = query.orderBy(sortExpr(k.key), k.dir);
    const rows = await query.limit(q.limit).execute();
    return this.hydrate(rows);
  }

  // ---- usage, for quotas ----

  async usage(owner: string): Promise<{ count: number; size: number; uploading: number; staged: number }> {
    const r = await this.db.selectFrom('image_images')
      .select((eb) => [
        eb.fn.countAll<number>().as('count'),
        eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('size'),
        eb.fn.coalesce(eb.fn.sum<number>('staged_size'), sql<number>`0`).as('staged'),
        eb.fn.sum<number>(eb.case().when('status', 'in', ['saving', 'uploading', 'importing']).then(1).else(0).end())
          .as('uploading'),
      ])
      .where('owner', '=', owner).executeTakeFirstOrThrow();
    return { count: Number(r.count), size: Number(r.size ?? 0), uploading: Number(r.uploading ?? 0), staged: Number(r.staged ?? 0) };
  }

  // ---- members ----

  async addMember(m: MemberRecord): Promise<void> {
    await this.db.insertInto('image_members').values({
      image_id: m.imageId, member_id: m.memberId, status: m.status, created_at: m.createdAt, updated_at: m.updatedAt,
    }).execute();
  }

  async getMember(imageId: string, memberId: string): Promise<MemberRecord | undefined> {
    const r = await this.db.selectFrom('image_members').selectAll()
      .where('image_id', '=', imageId).where('member_id', '=', memberId).executeTakeFirst();
    return r ? memberOf(r) : undefined;
  }

  async listMembers(imageId: string): Promise<MemberRecord[]> {
    const rows = await this.db.selectFrom('image_members').selectAll().where('image_id', '=', imageId)
      .orderBy('created_at').orderBy('member_id').execute();
    return rows.map(memberOf);
  }

  async updateMember(imageId: string, memberId: string, status: MemberStatus, updatedAt: string): Promise<void> {
    await this.db.updateTable('image_members').set({ status, updated_at: updatedAt })
      .where('image_id', '=', imageId).where('member_id', '=', memberId).execute();
  }

  async deleteMember(imageId: string, memberId: string): Promise<void> {
    await this.db.deleteFrom('image_members').where('image_id', '=', imageId).where('member_id', '=', memberId).execute();
  }

  private async hydrate(rows: ImageRow[]): Promise<ImageRecord[]> {
    if (!rows.length) return [];
    const ids = rows.map((r) => r.id);
    const [props, tags] = await Promise.all([
      this.db.selectFrom('image_properties').selectAll().where('image_id', 'in', ids).execute(),
      this.db.selectFrom('image_tags').selectAll().where('image_id', 'in', ids).orderBy('tag').execute(),
    ]);
    return rows.map((r) => {
      const rec = fromRow(r);
      for (const p of props) if (p.image_id === r.id) rec.properties[p.name] = p.value;
      rec.tags = tags.filter((t) => t.image_id === r.id).map((t) => t.tag);
      return rec;
    });
  }
}

function conditions(eb: EB, q: ListQuery): Expression<SqlBool>[] {
  const c: Expression<SqlBool>[] = [];
  const p = q.viewer.projectId;
  const memberStatus = q.memberStatus ?? 'accepted';
  const isMember = (statusFilter: MemberStatus | 'all') => eb.exists(
    eb.selectFrom('image_members').select('image_members.member_id')
      .whereRef('image_members.image_id', '=', 'image_images.id')
      .where('image_members.member_id', '=', p ?? '')
      .$if(statusFilter !== 'all', (s) => s.where('image_members.status', '=', statusFilter)),
  );
  const owned = p ? eb('owner', '=', p) : sql<SqlBool>`1 = 0`;
  if (q.visibility && q.visibility !== 'all') c.push(eb('visibility', '=', q.visibility));
  if (!q.viewer.admin) {
    switch (q.visibility) {
      case undefined:
        c.push(eb.or([owned, eb('visibility', '=', 'public'), eb.and([eb('visibility', '=', 'shared'), isMember(memberStatus)])]));
        break;
      case 'all':
        c.push(eb.or([owned, eb('visibility', 'in', ['public', 'community']),
          eb.and([eb('visibility', '=', 'shared'), isMember(memberStatus)])]));
        break;
      case 'shared':
        c.push(eb.or([owned, isMember(memberStatus)]));
        break;
      case 'private':
        c.push(owned);
        break;
      default: // public, community: everyone sees them
    }
  } else if (q.memberStatus && q.memberStatus !== 'all' && p) {
    c.push(eb.or([owned, eb('visibility', '<>', 'shared'), isMember(q.memberStatus)]));
  }
  if (q.ids?.length) c.push(eb('id', 'in', q.ids));
  if (q.names?.length) c.push(eb('name', 'in', q.names));
  if (q.statuses?.length) c.push(eb('status', 'in', q.statuses));
  if (q.owner !== undefined) c.push(eb('owner', '=', q.owner));
  if (q.diskFormats?.length) c.push(eb('disk_format', 'in', q.diskFormats));
  if (q.containerFormats?.length) c.push(eb('container_format', 'in', q.containerFormats));
  if (q.sizeMin !== undefined) c.push(eb('size', '>=', q.sizeMin));
  if (q.sizeMax !== undefined) c.push(eb('size', '<=', q.sizeMax));
  c.push(eb('os_hidden', '=', toDbBool(q.osHidden ?? false)));
  if (q.protected !== undefined) c.push(eb('protected', '=', toDbBool(q.protected)));
  for (const tag of q.tags ?? []) {
    c.push(eb.exists(eb.selectFrom('image_tags').select('image_tags.tag')
      .whereRef('image_tags.image_id', '=', 'image_images.id').where('image_tags.tag', '=', tag)));
  }
  for (const [name, value] of Object.entries(q.properties ?? {})) {
    c.push(eb.exists(eb.selectFrom('image_properties').select('image_properties.name')
      .whereRef('image_properties.image_id', '=', 'image_images.id')
      .where('image_properties.name', '=', name).where('image_properties.value', '=', value)));
  }
  for (const t of q.times ?? []) c.push(eb(t.column, t.op, t.value));
  return c;
}

// Nullable sort keys are coalesced so that NULLs order the same on SQLite and PostgreSQL.
function sortExpr(key: SortKey) {
  return SORT_KEYS[key] === 'num' ? sql<number>`coalesce(${sql.ref(key)}, -1)` : sql<string>`coalesce(${sql.ref(key)}, '')`;
}
function sortValue(key: SortKey, row: Record<string, unknown>): string | number {
  const v = row[key];
  if (v === null || v === undefined) return SORT_KEYS[key] === 'num' ? -1 : '';
  return v as string | number;
}

async function writeChildren(trx: Kysely<Tables>, id: string, props: Record<string, string>, tags: string[]): Promise<void> {
  const p = Object.entries(props).map(([name, value]) => ({ image_id: id, name, value }));
  if (p.length) await trx.insertInto('image_properties').values(p).execute();
  const t = [...new Set(tags)].map((tag) => ({ image_id: id, tag }));
  if (t.length) await trx.insertInto('image_tags').values(t).execute();
}

function toRow(r: ImageRecord): ImageRow {
  return {
    id: r.id, name: r.name, status: r.status, visibility: r.visibility, protected: toDbBool(r.protected),
    os_hidden: toDbBool(r.osHidden), owner: r.owner, checksum: r.checksum, os_hash_algo: r.osHashAlgo,
    os_hash_value: r.osHashValue, size: r.size, virtual_size: r.virtualSize, min_disk: r.minDisk, min_ram: r.minRam,
    disk_format: r.diskFormat, container_format: r.containerFormat, stores: r.stores.join(','),
    staged_size: r.stagedSize, pending_import: r.pendingImport ? JSON.stringify(r.pendingImport) : null,
    created_at: r.createdAt, updated_at: r.updatedAt,
  };
}

const COLUMN: Record<string, keyof ImageRow> = {
  name: 'name', status: 'status', visibility: 'visibility', protected: 'protected', osHidden: 'os_hidden',
  owner: 'owner', checksum: 'checksum', osHashAlgo: 'os_hash_algo', osHashValue: 'os_hash_value', size: 'size',
  virtualSize: 'virtual_size', minDisk: 'min_disk', minRam: 'min_ram', diskFormat: 'disk_format',
  containerFormat: 'container_format', stores: 'stores', stagedSize: 'staged_size', pendingImport: 'pending_import',
  updatedAt: 'updated_at',
};

function partialRow(changes: ImageChanges): Partial<ImageRow> {
  const full = toRow({ ...EMPTY, ...changes } as ImageRecord) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(changes)) {
    const col = COLUMN[k];
    if (col) out[col] = full[col];
  }
  return out as Partial<ImageRow>;
}

const EMPTY: ImageRecord = {
  id: '', name: null, status: 'queued', visibility: 'shared', protected: false, osHidden: false, owner: null,
  checksum: null, osHashAlgo: null, osHashValue: null, size: null, virtualSize: null, minDisk: 0, minRam: 0,
  diskFormat: null, containerFormat: null, stores: [], stagedSize: null, pendingImport: null, createdAt: '',
  updatedAt: '', tags: [], properties: {},
};

function fromRow(r: ImageRow): ImageRecord {
  return {
    id: r.id, name: r.name, status: r.status as ImageStatus, visibility: r.visibility as Visibility,
    protected: fromDbBool(r.protected), osHidden: fromDbBool(r.os_hidden), owner: r.owner, checksum: r.checksum,
    osHashAlgo: r.os_hash_algo, osHashValue: r.os_hash_value,
    size: r.size === null ? null : Number(r.size), virtualSize: r.virtual_size === null ? null : Number(r.virtual_size),
    minDisk: Number(r.min_disk), minRam: Number(r.min_ram), diskFormat: r.disk_format, containerFormat: r.container_format,
    stores: r.stores ? r.stores.split(',') : [], stagedSize: r.staged_size === null ? null : Number(r.staged_size),
    pendingImport: r.pending_import ? JSON.parse(r.pending_import) as PendingImport : null,
    createdAt: r.created_at, updatedAt: r.updated_at, tags: [], properties: {},
  };
}

function memberOf(r: Tables['image_members']): MemberRecord {
  return { imageId: r.image_id, memberId: r.member_id, status: r.status as MemberStatus, createdAt: r.created_at, updatedAt: r.updated_at };
}
