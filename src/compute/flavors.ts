// Flavors: sizes a server can be built with, their extra specs and (for private flavors) the
// projects allowed to use them. Store and rules in one place; the API layer renders them.
import type { Kysely } from 'kysely';
import { badRequest, conflict, notFound } from '../core/errors.js';
import { fromDbBool, isUniqueViolation, toDbBool } from '../core/db.js';
import { nowIso, uuid } from '../core/ids.js';

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  ephemeral: number;
  swap: number;
  rxtxFactor: number;
  isPublic: boolean;
  disabled: boolean;
  description: string | null;
  extraSpecs: Record<string, string>;
  createdAt: string;
}

/** Who is looking: admins see every flavor, others public ones and those shared with their project. */
export interface Viewer { projectId?: string; admin: boolean }

export interface FlavorInput {
  id?: string | null;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  ephemeral?: number;
  swap?: number;
  rxtxFactor?: number;
  isPublic?: boolean;
  description?: string | null;
}

export interface FlavorQuery {
  /** true: public (plus shared with the viewer's project); false: private only; null: all (admin). */
  isPublic?: boolean | null;
  minDisk?: number;
  minRam?: number;
  sortKey?: string;
  sortDir?: 'asc' | 'desc';
  limit?: number;
  marker?: string;
}

/** Sizes created at bootstrap: tiny ones for the test guest, usual ones for real guests (devstack's ids). */
export const DEFAULT_FLAVORS: FlavorInput[] = [
  { id: '42', name: 'm1.nano', vcpus: 1, ram: 192, disk: 1, description: 'Test guests' },
  { id: '84', name: 'm1.micro', vcpus: 1, ram: 256, disk: 2, description: 'Small test guests' },
  { id: '1', name: 'm1.tiny', vcpus: 1, ram: 512, disk: 1 },
  { id: '2', name: 'm1.small', vcpus: 1, ram: 2048, disk: 20 },
  { id: '3', name: 'm1.medium', vcpus: 2, ram: 4096, disk: 40 },
  { id: '4', name: 'm1.large', vcpus: 4, ram: 8192, disk: 80 },
  { id: '5', name: 'm1.xlarge', vcpus: 8, ram: 16384, disk: 160 },
];

// Nova's sort keys mapped to columns.
const SORT_COLUMNS: Record<string, string> = {
  flavorid: 'id', id: 'id', name: 'name', memory_mb: 'ram', vcpus: 'vcpus', root_gb: 'disk',
  ephemeral_gb: 'ephemeral', swap: 'swap', rxtx_factor: 'rxtx_factor', is_public: 'is_public',
  disabled: 'disabled', created_at: 'created_at', updated_at: 'updated_at', description: 'description',
};

const NAME_RE = /^(?! )[^\x00-\x1f]{1,255}(?<! )$/;
const ID_RE = /^[\w.\- ]{1,255}$/;

type Row = {
  id: string; name: string; vcpus: number; ram: number; disk: number; ephemeral: number; swap: number;
  rxtx_factor: number; is_public: number; disabled: number; description: string | null; created_at: string;
};

export class FlavorService {
  constructor(private readonly db: Kysely<any>) {}

  async list(viewer: Viewer, q: FlavorQuery = {}): Promise<Flavor[]> {
    const sortCol = SORT_COLUMNS[q.sortKey ?? 'flavorid'];
    if (!sortCol) throw badRequest(`Invalid sort_key: ${q.sortKey}`);
    const dir = q.sortDir ?? 'asc';
    let query = this.db.selectFrom('compute_flavors').selectAll();
    query = this.visible(query, viewer, q.isPublic === undefined ? true : q.isPublic);
    if (!viewer.admin) query = query.where('disabled', '=', 0);
    if (q.minDisk !== undefined) query = query.where('disk', '>=', q.minDisk);
    if (q.minRam !== undefined) query = query.where('ram', '>=', q.minRam);
    let rows = (await query.orderBy(sortCol, dir).orderBy('id', dir).execute()) as Row[];
    if (q.marker !== undefined) {
      const i = rows.findIndex((r) => r.id === q.marker);
      if (i < 0) throw badRequest(`marker [${q.marker}] not found`);
      rows = rows.slice(i + 1);
    }
    if (q.limit !== undefined) rows = rows.slice(0, q.limit);
    return this.hydrate(rows);
  }

  /** A flavor the viewer may see, or 404. */
  async get(id: string, viewer: Viewer): Promise<Flavor> {
    let query = this.db.selectFrom('compute_flavors').selectAll().where('id', '=', id);
    if (!viewer.admin) query = this.visible(query, viewer, true);
    const row = (await query.executeTakeFirst()) as Row | undefined;
    if (!row) throw notFound(`Flavor ${id} could not be found.`);
    return (await this.hydrate([row]))[0]!;
  }

  async create(input: FlavorInput): Promise<Flavor> {
    const name = input.name.trim() === input.name ? input.name : '';
    if (!NAME_RE.test(name)) throw badRequest('Invalid input for field/attribute name. Flavor names must be 1-255 printable characters without leading or trailing spaces.');
    const id = input.id ?? uuid();
    if (!ID_RE.test(id)) throw badRequest('Invalid input for field/attribute id. Flavor ids may only contain letters, digits, spaces, periods, dashes and underscores (1-255).');
    for (const [k, v, min] of [['ram', input.ram, 1], ['vcpus', input.vcpus, 1], ['disk', input.disk, 0],
      ['OS-FLV-EXT-DATA:ephemeral', input.ephemeral ?? 0, 0], ['swap', input.swap ?? 0, 0]] as const) {
      if (!Number.isInteger(v) || v < min || v > 2147483647) {
        throw badRequest(`Invalid input for field/attribute ${k}. Value must be an integer between ${min} and 2147483647.`);
      }
    }
    const rxtx = input.rxtxFactor ?? 1;
    if (!(rxtx > 0 && rxtx <= 3.4e38)) throw badRequest('Invalid input for field/attribute rxtx_factor. Value must be greater than 0.');
    if (await this.db.selectFrom('compute_flavors').select('id').where('name', '=', name).executeTakeFirst()) {
      throw conflict(`Flavor with name ${name} already exists.`);
    }
    try {
      await this.db.insertInto('compute_flavors').values({
        id, name, vcpus: input.vcpus, ram: input.ram, disk: input.disk, ephemeral: input.ephemeral ?? 0,
        swap: input.swap ?? 0, rxtx_factor: rxtx, is_public: toDbBool(input.isPublic ?? true), disabled: 0,
        description: input.description ?? null, created_at: nowIso(), updated_at: null,
      }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) {
        const byId = await this.db.selectFrom('compute_flavors').select('id').where('id', '=', id).executeTakeFirst();
        throw conflict(byId ? `Flavor with ID ${id} already exists.` : `Flavor with name ${name} already exists.`);
      }
      throw e;
    }
    return this.get(id, { admin: true });
  }

  /** Creates the default flavors that do not exist yet (by name), so operators may delete them. */
  async ensureDefaults(): Promise<void> {
    const have = await this.db.selectFrom('compute_flavors').select('id').limit(1).executeTakeFirst();
    if (have) return; // only on a fresh cloud: an operator's deletions stay deleted
    for (const f of DEFAULT_FLAVORS) {
      try { await this.create(f); } catch (e) { if (!(e as { status?: number }).status) throw e; }
    }
  }

  async updateDescription(id: string, description: string | null): Promise<Flavor> {
    await this.get(id, { admin: true });
    await this.db.updateTable('compute_flavors').set({ description, updated_at: nowIso() }).where('id', '=', id).execute();
    return this.get(id, { admin: true });
  }

  async delete(id: string): Promise<void> {
    const r = await this.db.deleteFrom('compute_flavors').where('id', '=', id).executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound(`Flavor ${id} could not be found.`);
  }

  async setExtraSpecs(id: string, specs: Record<string, string>): Promise<void> {
    await this.get(id, { admin: true });
    for (const [key, value] of Object.entries(specs)) {
      if (!/^[\w.\-: ]{1,255}$/.test(key)) {
        throw badRequest(`Invalid input for field/attribute extra_specs. Key '${key}' must be 1-255 letters, digits, spaces, or . - _ :`);
      }
      if (value.length > 255) throw badRequest(`Invalid input for field/attribute extra_specs. Value of '${key}' is longer than 255 characters.`);
    }
    await this.db.transaction().execute(async (tx) => {
      for (const [key, value] of Object.entries(specs)) {
        await tx.deleteFrom('compute_flavor_extra_specs').where('flavor_id', '=', id).where('key', '=', key).execute();
        await tx.insertInto('compute_flavor_extra_specs').values({ flavor_id: id, key, value }).execute();
      }
    });
  }

  async deleteExtraSpec(id: string, key: string): Promise<void> {
    await this.get(id, { admin: true });
    const r = await this.db.deleteFrom('compute_flavor_extra_specs').where('flavor_id', '=', id).where('key', '=', key)
      .executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound(`Flavor ${id} has no extra specs with key ${key}.`);
  }

  async accessList(id: string): Promise<string[]> {
    const f = await this.get(id, { admin: true });
    if (f.isPublic) throw notFound('Access list not available for public flavors.');
    const rows = await this.db.selectFrom('compute_flavor_projects').select('project_id').where('flavor_id', '=', id)
      .orderBy('project_id').execute();
    return rows.map((r) => r.project_id as string);
  }

  async addAccess(id: string, projectId: string): Promise<void> {
    const f = await this.get(id, { admin: true });
    if (f.isPublic) throw conflict('Can not add access to a public flavor.');
    try {
      await this.db.insertInto('compute_flavor_projects').values({ flavor_id: id, project_id: projectId }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Flavor access already exists for flavor ${id} and project ${projectId} combination.`);
      throw e;
    }
  }

  async removeAccess(id: string, projectId: string): Promise<void> {
    await this.get(id, { admin: true });
    const r = await this.db.deleteFrom('compute_flavor_projects').where('flavor_id', '=', id)
      .where('project_id', '=', projectId).executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound(`Flavor access not found for ${id} / ${projectId} combination.`);
  }

  private visible<Q extends { where: (...a: any[]) => Q }>(query: Q, viewer: Viewer, isPublic: boolean | null): Q {
    if (isPublic === null) {
      if (viewer.admin) return query;
      isPublic = true;
    }
    if (!isPublic) {
      // Private flavors: admins see all of them, others only those shared with their project.
      query = query.where('is_public', '=', 0);
      if (viewer.admin) return query;
    }
    const project = viewer.projectId ?? '';
    return query.where((eb: any) => eb.or([
      ...(isPublic ? [eb('is_public', '=', 1)] : []),
      eb('id', 'in', eb.selectFrom('compute_flavor_projects').select('flavor_id').where('project_id', '=', project)),
    ]));
  }

  private async hydrate(rows: Row[]): Promise<Flavor[]> {
    if (!rows.length) return [];
    const specs = await this.db.selectFrom('compute_flavor_extra_specs').selectAll()
      .where('flavor_id', 'in', rows.map((r) => r.id)).execute();
    const byFlavor = new Map<string, Record<string, string>>();
    for (const s of specs) {
      const m = byFlavor.get(s.flavor_id) ?? {};
      m[s.key] = s.value;
      byFlavor.set(s.flavor_id, m);
    }
    return rows.map((r) => ({
      id: r.id, name: r.name, vcpus: Number(r.vcpus), ram: Number(r.ram), disk: Number(r.disk),
      ephemeral: Number(r.ephemeral), swap: Number(r.swap), rxtxFactor: Number(r.rxtx_factor),
      isPublic: fromDbBool(r.is_public), disabled: fromDbBool(r.disabled), description: r.description,
      extraSpecs: byFlavor.get(r.id) ?? {}, createdAt: r.created_at,
    }));
  }
}
