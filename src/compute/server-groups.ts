// Server groups: a policy (affinity, anti-affinity and their soft variants) the scheduler
// applies to the group's members. Counted per project (server_groups) and per group
// (server_group_members) against quotas.
import type { Kysely, Transaction } from 'kysely';
import { badRequest, forbidden, notFound } from '../core/errors.js';
import { fromJson, toJson } from '../core/db.js';
import { nowIso, uuid } from '../core/ids.js';
import type { QuotaService } from './quotas.js';

export const GROUP_POLICIES = ['affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity'] as const;
export type GroupPolicy = typeof GROUP_POLICIES[number];

export interface ServerGroup {
  id: string;
  name: string;
  projectId: string;
  userId: string;
  policy: GroupPolicy;
  rules: { max_server_per_host?: number };
  members: string[];
  createdAt: string;
}

export class ServerGroupService {
  constructor(private readonly db: Kysely<any>, private readonly quotas: QuotaService) {
    quotas.addCounter(async (db, projectId) => {
      const r = await db.selectFrom('compute_server_groups').select((eb) => eb.fn.countAll().as('n'))
        .where('project_id', '=', projectId).executeTakeFirst();
      return { server_groups: Number(r?.n ?? 0) };
    });
  }

  async create(input: { name: string; projectId: string; userId: string; policy: string; rules?: Record<string, unknown> }): Promise<ServerGroup> {
    if (!input.name.trim() || input.name.length > 255) throw badRequest('Invalid input for field/attribute name. It must be 1-255 characters.');
    if (!(GROUP_POLICIES as readonly string[]).includes(input.policy)) {
      throw badRequest(`Invalid input for field/attribute policy. Value '${input.policy}' is not one of ${GROUP_POLICIES.join(', ')}.`);
    }
    const rules: ServerGroup['rules'] = {};
    for (const [k, v] of Object.entries(input.rules ?? {})) {
      if (k !== 'max_server_per_host') throw badRequest(`Invalid input for field/attribute rules. Unknown rule '${k}'.`);
      if (input.policy !== 'anti-affinity') throw badRequest('Only the anti-affinity policy supports rules.');
      const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
      if (!Number.isInteger(n) || (n as number) < 1) throw badRequest('Invalid input for field/attribute max_server_per_host. Value must be an integer >= 1.');
      rules.max_server_per_host = n as number;
    }
    const g: ServerGroup = {
      id: uuid(), name: input.name, projectId: input.projectId, userId: input.userId,
      policy: input.policy as GroupPolicy, rules, members: [], createdAt: nowIso(),
    };
    await this.quotas.consume(input.projectId, { server_groups: 1 }, async (tx) => {
      await tx.insertInto('compute_server_groups').values({
        id: g.id, name: g.name, project_id: g.projectId, user_id: g.userId, policy: g.policy, rules: toJson(g.rules), created_at: g.createdAt,
      }).execute();
    });
    return g;
  }

  async list(opts: { projectId?: string; limit?: number; offset?: number }): Promise<ServerGroup[]> {
    let q = this.db.selectFrom('compute_server_groups').selectAll().orderBy('created_at').orderBy('id');
    if (opts.projectId !== undefined) q = q.where('project_id', '=', opts.projectId);
    if (opts.limit !== undefined) q = q.limit(opts.limit);
    if (opts.offset) q = (opts.limit === undefined ? q.limit(2 ** 31 - 1) : q).offset(opts.offset);
    return this.hydrate(await q.execute());
  }

  async get(id: string, db: Kysely<any> = this.db): Promise<ServerGroup> {
    const r = await db.selectFrom('compute_server_groups').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw notFound(`Server group ${id} could not be found.`);
    return (await this.hydrate([r], db))[0]!;
  }

  async delete(id: string): Promise<void> {
    const r = await this.db.deleteFrom('compute_server_groups').where('id', '=', id).executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound(`Server group ${id} could not be found.`);
  }

  /** Adds a server to a group inside the caller's transaction, enforcing server_group_members. */
  async addMember(tx: Transaction<any>, groupId: string, instanceId: string, limit: number): Promise<void> {
    const g = await this.get(groupId, tx);
    if (limit >= 0 && g.members.length + 1 > limit) {
      throw forbidden(`Quota exceeded for server_group_members: Requested 1, but already used ${g.members.length} of ${limit} server_group_members`);
    }
    await tx.insertInto('compute_server_group_members').values({ group_id: groupId, instance_id: instanceId }).execute();
  }

  async removeMember(instanceId: string, db: Kysely<any> = this.db): Promise<void> {
    await db.deleteFrom('compute_server_group_members').where('instance_id', '=', instanceId).execute();
  }

  /** The groups a server belongs to (Nova allows one). */
  async groupsOf(instanceId: string, db: Kysely<any> = this.db): Promise<ServerGroup[]> {
    const rows = await db.selectFrom('compute_server_groups').selectAll()
      .where('id', 'in', db.selectFrom('compute_server_group_members').select('group_id').where('instance_id', '=', instanceId))
      .execute();
    return this.hydrate(rows, db);
  }

  /** Server id → ids of the groups it belongs to, for many servers at once (list views). */
  async groupIdsOf(instanceIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < instanceIds.length; i += 500) {
      const rows = await this.db.selectFrom('compute_server_group_members').select(['instance_id', 'group_id'])
        .where('instance_id', 'in', instanceIds.slice(i, i + 500)).execute();
      for (const r of rows) out.set(r.instance_id as string, [...(out.get(r.instance_id as string) ?? []), r.group_id as string]);
    }
    return out;
  }

  private async hydrate(rows: Record<string, any>[], db: Kysely<any> = this.db): Promise<ServerGroup[]> {
    if (!rows.length) return [];
    const members = await db.selectFrom('compute_server_group_members').selectAll()
      .where('group_id', 'in', rows.map((r) => r.id)).execute();
    return rows.map((r) => ({
      id: r.id, name: r.name, projectId: r.project_id, userId: r.user_id, policy: r.policy,
      rules: fromJson(r.rules, {}), members: members.filter((m) => m.group_id === r.id).map((m) => m.instance_id as string),
      createdAt: r.created_at,
    }));
  }
}
