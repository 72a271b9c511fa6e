// Host aggregates: named groups of hosts with metadata; the metadata key `availability_zone`
// makes an aggregate an availability zone (as in Nova). Hosts outside any zone are in the
// default zone.
import type { Kysely } from 'kysely';
import { badRequest, conflict, notFound } from '../core/errors.js';
import { dbIntegerId, isUniqueViolation } from '../core/db.js';
import { nowIso, uuid } from '../core/ids.js';

export const DEFAULT_AZ = 'nova';
const AZ_KEY = 'availability_zone';

export interface Aggregate {
  id: number;
  uuid: string;
  name: string;
  availabilityZone: string | null;
  hosts: string[];
  metadata: Record<string, string>;
  createdAt: string;
  updatedAt: string | null;
}

export class AggregateService {
  constructor(private readonly db: Kysely<any>, private readonly hostExists: (name: string) => Promise<boolean>) {}

  async list(): Promise<Aggregate[]> {
    const rows = await this.db.selectFrom('compute_aggregates').selectAll().orderBy('id').execute();
    return this.hydrate(rows);
  }

  /** By integer id, or by uuid. */
  async get(ref: string | number): Promise<Aggregate> {
    const s = String(ref);
    const q = this.db.selectFrom('compute_aggregates').selectAll();
    const id = /^\d+$/.test(s) ? dbIntegerId(s) : undefined;
    const row = /^\d+$/.test(s) ? (id === undefined ? undefined : await q.where('id', '=', id).executeTakeFirst())
      : await q.where('uuid', '=', s).executeTakeFirst();
    if (!row) throw notFound(`Aggregate ${s} could not be found.`);
    return (await this.hydrate([row]))[0]!;
  }

  async create(name: string, az?: string | null): Promise<Aggregate> {
    validName('name', name);
    if (az) validName('availability_zone', az);
    const now = nowIso();
    let id!: number;
    try {
      await this.db.transaction().execute(async (tx) => {
        await tx.insertInto('compute_aggregates').values({ uuid: uuid(), name, created_at: now, updated_at: null }).execute();
        const row = await tx.selectFrom('compute_aggregates').select('id').where('name', '=', name).executeTakeFirstOrThrow();
        id = Number(row.id);
        if (az) await tx.insertInto('compute_aggregate_metadata').values({ aggregate_id: id, key: AZ_KEY, value: az }).execute();
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Aggregate ${name} already exists.`);
      throw e;
    }
    return this.get(id);
  }

  async update(ref: string | number, patch: { name?: string; availabilityZone?: string | null }): Promise<Aggregate> {
    const a = await this.get(ref);
    if (patch.name !== undefined) {
      validName('name', patch.name);
      try {
        await this.db.updateTable('compute_aggregates').set({ name: patch.name, updated_at: nowIso() }).where('id', '=', a.id).execute();
      } catch (e) {
        if (isUniqueViolation(e)) throw conflict(`Aggregate ${patch.name} already exists.`);
        throw e;
      }
    }
    if (patch.availabilityZone !== undefined) await this.setMetadata(a.id, { [AZ_KEY]: patch.availabilityZone });
    return this.get(a.id);
  }

  async delete(ref: string | number): Promise<void> {
    const a = await this.get(ref);
    if (a.hosts.length) throw badRequest(`Cannot remove aggregate ${a.id}: it still has hosts (${a.hosts.join(', ')}).`);
    await this.db.deleteFrom('compute_aggregates').where('id', '=', a.id).execute();
  }

  async addHost(ref: string | number, host: string): Promise<Aggregate> {
    const a = await this.get(ref);
    if (!(await this.hostExists(host))) throw notFound(`Compute host ${host} could not be found.`);
    if (a.hosts.includes(host)) throw conflict(`Aggregate ${a.id} already has host ${host}.`);
    if (a.availabilityZone) {
      const other = (await this.zonesOf(host)).filter((z) => z !== a.availabilityZone);
      if (other.length) {
        throw conflict(`Cannot add host ${host} to aggregate ${a.id}: the host is already in availability zone ${other.join(', ')}.`);
      }
    }
    await this.db.insertInto('compute_aggregate_hosts').values({ aggregate_id: a.id, host }).execute();
    return this.get(a.id);
  }

  async removeHost(ref: string | number, host: string): Promise<Aggregate> {
    const a = await this.get(ref);
    const r = await this.db.deleteFrom('compute_aggregate_hosts').where('aggregate_id', '=', a.id).where('host', '=', host)
      .executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound(`Cannot remove host ${host} in aggregate ${a.id}: the host is not in it.`);
    return this.get(a.id);
  }

  /** Sets (value) or removes (null) metadata keys. */
  async setMetadata(ref: string | number, meta: Record<string, string | null>): Promise<Aggregate> {
    const a = await this.get(ref);
    for (const [k, v] of Object.entries(meta)) {
      if (!/^[\w.\-: ]{1,255}$/.test(k)) throw badRequest(`Invalid metadata key '${k}'.`);
      if (v !== null && v.length > 255) throw badRequest(`Metadata value of '${k}' is longer than 255 characters.`);
    }
    const az = meta[AZ_KEY];
    if (az !== undefined && az !== null) {
      validName('availability_zone', az);
      // A host cannot be in two zones: every host of this aggregate must be free of other zones.
      for (const h of a.hosts) {
        const other = (await this.zonesOf(h, a.id)).filter((z) => z !== az);
        if (other.length) throw conflict(`Cannot set availability zone ${az} on aggregate ${a.id}: host ${h} is in availability zone ${other.join(', ')}.`);
      }
    }
    await this.db.transaction().execute(async (tx) => {
      for (const [key, value] of Object.entries(meta)) {
        await tx.deleteFrom('compute_aggregate_metadata').where('aggregate_id', '=', a.id).where('key', '=', key).execute();
        if (value !== null) await tx.insertInto('compute_aggregate_metadata').values({ aggregate_id: a.id, key, value }).execute();
      }
      await tx.updateTable('compute_aggregates').set({ updated_at: nowIso() }).where('id', '=', a.id).execute();
    });
    return this.get(a.id);
  }

  /** Zones named by the aggregates holding `host` (optionally ignoring one aggregate). */
  async zonesOf(host: string, except?: number): Promise<string[]> {
    let q = this.db.selectFrom('compute_aggregate_hosts as h')
      .innerJoin('compute_aggregate_metadata as m', 'm.aggregate_id', 'h.aggregate_id')
      .select('m.value').where('h.host', '=', host).where('m.key', '=', AZ_KEY);
    if (except !== undefined) q = q.where('h.aggregate_id', '!=', except);
    return [...new Set((await q.execute()).map((r) => r.value as string))];
  }

  /** Every host's availability zone (the default zone for hosts in none). */
  async zoneMap(hosts: string[]): Promise<Map<string, string>> {
    const rows = await this.db.selectFrom('compute_aggregate_hosts as h')
      .innerJoin('compute_aggregate_metadata as m', 'm.aggregate_id', 'h.aggregate_id')
      .select(['h.host', 'm.value']).where('m.key', '=', AZ_KEY).execute();
    const out = new Map(hosts.map((h) => [h, DEFAULT_AZ]));
    for (const r of rows) if (out.has(r.host as string)) out.set(r.host as string, r.value as string);
    return out;
  }

  /** Merged metadata of every aggregate a host is in (for the scheduler's aggregate filters). */
  async hostMetadata(): Promise<Map<string, Record<string, string[]>>> {
    const rows = await this.db.selectFrom('compute_aggregate_hosts as h')
      .innerJoin('compute_aggregate_metadata as m', 'm.aggregate_id', 'h.aggregate_id')
      .select(['h.host', 'm.key', 'm.value']).execute();
    const out = new Map<string, Record<string, string[]>>();
    for (const r of rows) {
      const m = out.get(r.host as string) ?? {};
      (m[r.key as string] ??= []).push(r.value as string);
      out.set(r.host as string, m);
    }
    return out;
  }

  private async hydrate(rows: Record<string, any>[]): Promise<Aggregate[]> {
    if (!rows.length) return [];
    const ids = rows.map((r) => Number(r.id));
    const [hosts, meta] = await Promise.all([
      this.db.selectFrom('compute_aggregate_hosts').selectAll().where('aggregate_id', 'in', ids).orderBy('host').execute(),
      this.db.selectFrom('compute_aggregate_metadata').selectAll().where('aggregate_id', 'in', ids).orderBy('key').execute(),
    ]);
    return rows.map((r) => {
      const id = Number(r.id);
      const metadata = Object.fromEntries(meta.filter((m) => Number(m.aggregate_id) === id).map((m) => [m.key, m.value]));
      return {
        id, uuid: r.uuid, name: r.name, availabilityZone: metadata[AZ_KEY] ?? null,
        hosts: hosts.filter((h) => Number(h.aggregate_id) === id).map((h) => h.host as string),
        metadata, createdAt: r.created_at, updatedAt: r.updated_at ?? null,
      };
    });
  }
}

function validName(field: string, v: string): void {
  if (!v.trim() || v.length > 255 || v !== v.trim() || /[\x00-\x1f]/.test(v)) {
    throw badRequest(`Invalid input for field/attribute ${field}. It must be 1-255 printable characters without leading or trailing spaces.`);
  }
  if (field === 'availability_zone' && v.includes(':')) throw badRequest("Invalid input for field/attribute availability_zone. ':' is not allowed in zone names.");
}
