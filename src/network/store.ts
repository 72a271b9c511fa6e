// Persistence of the networking service: resources as JSON documents with indexed key columns,
// plus the IPAM, segment and security-group binding tables. Only this file touches network_*.
import type { Kysely, Transaction } from 'kysely';
import { fromJson, isUniqueViolation, toDbBool, toJson, type Database } from '../core/db.js';

export type Kind = 'network' | 'subnet' | 'port' | 'router' | 'floatingip' | 'security_group' |
  'security_group_rule' | 'rbac_policy';

/** An API resource as stored: its attributes (id, project_id, name, ... as the API shows them). */
export type Doc = Record<string, any> & { id: string; project_id: string };

interface KindInfo {
  table: string;
  /** column -> attribute it copies (booleans stored 0/1). */
  cols: Record<string, string>;
  bools?: string[];
}

export const KINDS: Record<Kind, KindInfo> = {
  network: { table: 'network_networks', cols: { shared: 'shared', router_external: 'router:external' }, bools: ['shared', 'router_external'] },
  subnet: { table: 'network_subnets', cols: { network_id: 'network_id', cidr: 'cidr', ip_version: 'ip_version' } },
  port: {
    table: 'network_ports',
    cols: { network_id: 'network_id', mac_address: 'mac_address', device_id: 'device_id', device_owner: 'device_owner', host_id: 'binding:host_id',
      // Live migration: the destination host also plugs the port (binding:profile.migrating_to, as Neutron shows it).
      migrating_to: '_migrating_to' },
  },
  router: { table: 'network_routers', cols: {} },
  floatingip: {
    table: 'network_floatingips',
    cols: { floating_network_id: 'floating_network_id', floating_ip_address: 'floating_ip_address', port_id: 'port_id', router_id: 'router_id' },
  },
  security_group: { table: 'network_security_groups', cols: {} },
  security_group_rule: { table: 'network_sg_rules', cols: { security_group_id: 'security_group_id', remote_group_id: 'remote_group_id' } },
  rbac_policy: {
    table: 'network_rbac_policies',
    cols: { object_type: 'object_type', object_id: 'object_id', action: 'action', target_tenant: 'target_tenant' },
  },
};

export interface IpAllocation {
  network_id: string;
  ip_address: string;
  subnet_id: string;
  port_id: string;
}

export interface Segment {
  network_id: string;
  network_type: string;
  physical_network: string;
  segmentation_id: number;
}

type Exec = Kysely<any> | Transaction<any>;

export class NetworkStore {
  /** A write in this transaction may change some host's data plane: bump the revision at commit. */
  private dirty = false;

  constructor(
    private readonly db: Exec, readonly engine: Database['engine'],
    /** Called after a committed change bumped the revision (wakes this process's long polls at once). */
    private readonly onChange: () => void = () => {},
  ) {}

  get inTransaction(): boolean {
    return this.db.isTransaction;
  }

  /** Runs `fn` in one transaction; nested calls reuse the outer one. */
  async tx<T>(fn: (s: NetworkStore) => Promise<T>): Promise<T> {
    if (this.db.isTransaction) return fn(this);
    let changed = false;
    const out = await (this.db as Kysely<any>).transaction().execute(async (trx) => {
      const s = new NetworkStore(trx, this.engine);
      const r = await fn(s);
      // Last statement of the transaction: the one shared row is locked only until the commit,
      // and a transaction holding it never waits for another lock (no deadlock on PostgreSQL).
      if (s.dirty) await s.bumpRevision();
      changed = s.dirty;
      return r;
    });
    if (changed) this.onChange();
    return out;
  }

  /** Records that host state may have changed (at commit inside a transaction, at once outside). */
  private async changed(): Promise<void> {
    if (this.db.isTransaction) this.dirty = true;
    else {
      await this.bumpRevision();
      this.onChange();
    }
  }

  private async bumpRevision(): Promise<void> {
    await this.db.updateTable('network_revision').set((eb) => ({ revision: eb('revision', '+', 1) })).where('id', '=', 1).execute();
  }

  /** The network revision: changes whenever anything a host's desired data plane is computed from changed. */
  async revision(): Promise<number> {
    const r = await this.db.selectFrom('network_revision').select('revision').where('id', '=', 1).executeTakeFirst();
    return Number(r?.revision ?? 0);
  }

  private row(kind: Kind, doc: Doc): Record<string, unknown> {
    const info = KINDS[kind];
    const r: Record<string, unknown> = {
      id: doc.id, project_id: doc.project_id ?? '', name: doc.name ?? '', data: toJson(doc),
      created_at: doc.created_at ?? new Date().toISOString(),
    };
    for (const [col, attr] of Object.entries(info.cols)) {
      const v = doc[attr];
      r[col] = info.bools?.includes(col) ? toDbBool(v) : v ?? null;
    }
    return r;
  }

  async insert(kind: Kind, doc: Doc): Promise<void> {
    await this.db.insertInto(KINDS[kind].table).values(this.row(kind, doc)).execute();
    await this.changed();
  }

  /** `hostState: false` for changes no host's data plane depends on (a port's status). */
  async update(kind: Kind, doc: Doc, o: { hostState?: boolean } = {}): Promise<void> {
    const { id, ...rest } = this.row(kind, doc);
    await this.db.updateTable(KINDS[kind].table).set(rest).where('id', '=', id).execute();
    if (o.hostState !== false) await this.changed();
  }

  async delete(kind: Kind, id: string): Promise<number> {
    const r = await this.db.deleteFrom(KINDS[kind].table).where('id', '=', id).executeTakeFirst();
    const n = Number(r.numDeletedRows);
    if (n) await this.changed();
    return n;
  }

  async get(kind: Kind, id: string): Promise<Doc | undefined> {
    const r = await this.db.selectFrom(KINDS[kind].table).select('data').where('id', '=', id).executeTakeFirst();
    return r ? fromJson<Doc>(r.data, undefined as never) : undefined;
  }

  /** Documents whose key columns equal the given values (a value list means "one of"). */
  async find(kind: Kind, where: Record<string, string | number | boolean | string[] | null> = {}): Promise<Doc[]> {
    const info = KINDS[kind];
    let q = this.db.selectFrom(info.table).select('data');
    for (const [col, v] of Object.entries(where)) {
      if (Array.isArray(v)) {
        if (v.length === 0) return [];
        q = q.where(col, 'in', v);
      } else if (v === null) q = q.where(col, 'is', null);
      else q = q.where(col, '=', typeof v === 'boolean' ? toDbBool(v) : v);
    }
    const rows = await q.orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => fromJson<Doc>(r.data, undefined as never));
  }

  async count(kind: Kind, where: Record<string, string | number>): Promise<number> {
    let q = this.db.selectFrom(KINDS[kind].table).select((eb) => eb.fn.countAll().as('n'));
    for (const [col, v] of Object.entries(where)) q = q.where(col, '=', v);
    const r = await q.executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  // ---- IPAM ----

  /** Records an address as used; false when another port holds it already. */
  async allocateIp(a: IpAllocation): Promise<boolean> {
    try {
      if (this.engine === 'postgres') {
        // A unique violation would abort the whole transaction on PostgreSQL: ask politely instead.
        const r = await this.db.insertInto('network_ip_allocations').values(a)
          .onConflict((oc) => oc.columns(['network_id', 'ip_address']).doNothing()).executeTakeFirst();
        return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
      }
      await this.db.insertInto('network_ip_allocations').values(a).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async releaseIps(portId: string, ips?: string[]): Promise<void> {
    let q = this.db.deleteFrom('network_ip_allocations').where('port_id', '=', portId);
    if (ips) {
      if (!ips.length) return;
      q = q.where('ip_address', 'in', ips);
    }
    await q.execute();
  }

  async usedIps(where: { network_id?: string; subnet_id?: string }): Promise<IpAllocation[]> {
    let q = this.db.selectFrom('network_ip_allocations').selectAll();
    if (where.network_id) q = q.where('network_id', '=', where.network_id);
    if (where.subnet_id) q = q.where('subnet_id', '=', where.subnet_id);
    return (await q.execute()) as IpAllocation[];
  }

  // ---- segments ----

  async segment(networkId: string): Promise<Segment | undefined> {
    return (await this.db.selectFrom('network_segments').selectAll().where('network_id', '=', networkId)
      .executeTakeFirst()) as Segment | undefined;
  }

  async segmentsOf(networkIds: string[]): Promise<Segment[]> {
    if (!networkIds.length) return [];
    return (await this.db.selectFrom('network_segments').selectAll().where('network_id', 'in', networkIds).execute()) as Segment[];
  }

  async usedSegmentIds(type: string, physnet: string): Promise<Set<number>> {
    const rows = await this.db.selectFrom('network_segments').select('segmentation_id')
      .where('network_type', '=', type).where('physical_network', '=', physnet).execute();
    return new Set(rows.map((r) => Number(r.segmentation_id)));
  }

  /** False when the segment is taken (by another network). */
  async insertSegment(s: Segment): Promise<boolean> {
    const q = this.db.insertInto('network_segments').values(s);
    try {
      if (this.engine === 'postgres') {
        const r = await q.onConflict((oc) => oc.doNothing()).executeTakeFirst();
        return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
      }
      await q.execute();
      await this.changed();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async deleteSegment(networkId: string): Promise<void> {
    await this.db.deleteFrom('network_segments').where('network_id', '=', networkId).execute();
    await this.changed();
  }

  // ---- port <-> security group bindings ----

  async setPortSecurityGroups(portId: string, sgIds: string[]): Promise<void> {
    await this.db.deleteFrom('network_port_sgs').where('port_id', '=', portId).execute();
    if (sgIds.length) {
      await this.db.insertInto('network_port_sgs')
        .values([...new Set(sgIds)].map((security_group_id) => ({ port_id: portId, security_group_id }))).execute();
    }
    await this.changed();
  }

  async portsUsingSecurityGroup(sgId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('network_port_sgs').select('port_id').where('security_group_id', '=', sgId).execute();
    return rows.map((r) => String(r.port_id));
  }

  async portIdsInGroups(sgIds: string[]): Promise<Array<{ port_id: string; security_group_id: string }>> {
    if (!sgIds.length) return [];
    return (await this.db.selectFrom('network_port_sgs').selectAll().where('security_group_id', 'in', sgIds)
      .execute()) as Array<{ port_id: string; security_group_id: string }>;
  }

  // ---- default security groups ----

  async defaultSecurityGroupId(projectId: string): Promise<string | undefined> {
    const r = await this.db.selectFrom('network_default_sgs').select('security_group_id')
      .where('project_id', '=', projectId).executeTakeFirst();
    return r ? String(r.security_group_id) : undefined;
  }

  async claimDefaultSecurityGroup(projectId: string, sgId: string): Promise<boolean> {
    const q = this.db.insertInto('network_default_sgs').values({ project_id: projectId, security_group_id: sgId });
    try {
      if (this.engine === 'postgres') {
        const r = await q.onConflict((oc) => oc.column('project_id').doNothing()).executeTakeFirst();
        return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
      }
      await q.execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async upsertAgent(a: { host_id: string; underlay_ip: string | null; heartbeat_at: string }): Promise<void> {
    const before = await this.db.selectFrom('network_agents').select('underlay_ip').where('host_id', '=', a.host_id).executeTakeFirst();
    await this.db.insertInto('network_agents').values({ ...a, registered_at: a.heartbeat_at })
      .onConflict((oc) => oc.column('host_id').doUpdateSet({ underlay_ip: a.underlay_ip, heartbeat_at: a.heartbeat_at }))
      .execute();
    // A new host or a moved VXLAN endpoint changes placement and peers; a heartbeat alone does not.
    if (!before || before.underlay_ip !== a.underlay_ip) await this.changed();
  }

  async agents(): Promise<AgentRow[]> {
    return (await this.db.selectFrom('network_agents').selectAll().orderBy('host_id').execute()) as never;
  }

  /** The host's agent is alive: no revision bump (nothing any data plane depends on). */
  async agentHeartbeat(hostId: string, at: string): Promise<void> {
    await this.db.updateTable('network_agents').set({ heartbeat_at: at }).where('host_id', '=', hostId).execute();
  }

  async agentSettings(): Promise<Map<string, { admin_state_up: boolean; description: string }>> {
    const rows = await this.db.selectFrom('network_agent_settings').selectAll().execute();
    return new Map(rows.map((r) => [String(r.id), { admin_state_up: Boolean(Number(r.admin_state_up)), description: String(r.description) }]));
  }

  /** Scheduling honours admin_state_up: bumps the revision so unplaced routers and DHCP get placed. */
  async setAgentSettings(id: string, v: { admin_state_up: boolean; description: string }): Promise<void> {
    const row = { admin_state_up: toDbBool(v.admin_state_up), description: v.description };
    await this.db.insertInto('network_agent_settings').values({ id, ...row })
      .onConflict((oc) => oc.column('id').doUpdateSet(row)).execute();
    await this.changed();
  }

  async releaseDefaultSecurityGroup(projectId: string): Promise<void> {
    await this.db.deleteFrom('network_default_sgs').where('project_id', '=', projectId).execute();
  }
}

export interface AgentRow { host_id: string; underlay_ip: string | null; heartbeat_at: string; registered_at: string | null }

