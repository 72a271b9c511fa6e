// os-instance-actions: what was asked of a server (create, stop, resize, ...) and the events of
// carrying it out, with their results. Written by the API (action) and the reconciler (events).
import type { Kysely, Transaction } from 'kysely';
import { nowIso, uuid } from '../../core/ids.js';

export interface InstanceAction {
  id: string;
  serverId: string;
  action: string;
  requestId: string;
  projectId: string;
  userId: string;
  message: string | null;
  startTime: string;
  finishTime: string | null;
  updatedAt: string;
}

export interface ActionEvent {
  event: string;
  host: string | null;
  result: string | null;
  details: string | null;
  startTime: string;
  finishTime: string | null;
}

type Db = Kysely<any> | Transaction<any>;

export class ActionLog {
  constructor(private readonly db: Kysely<any>) {}

  async start(a: { serverId: string; action: string; requestId: string; projectId: string; userId: string }, tx: Db = this.db): Promise<string> {
    const id = uuid();
    const now = nowIso();
    await tx.insertInto('compute_instance_actions').values({
      id, server_id: a.serverId, action: a.action, request_id: a.requestId, project_id: a.projectId,
      user_id: a.userId, message: null, start_time: now, finish_time: null, updated_at: now,
    }).execute();
    return id;
  }

  /** Records one step; `result` is 'Success' or 'Error' when it is over. */
  async event(actionId: string, e: { event: string; host?: string | null; result?: 'Success' | 'Error'; details?: string }, tx: Db = this.db): Promise<void> {
    const now = nowIso();
    const open = await tx.selectFrom('compute_instance_action_events').select('id').where('action_id', '=', actionId)
      .where('event', '=', e.event).where('finish_time', 'is', null).executeTakeFirst();
    if (open && e.result) {
      await tx.updateTable('compute_instance_action_events')
        .set({ result: e.result, finish_time: now, details: e.details ?? null, host: e.host ?? null }).where('id', '=', open.id).execute();
    } else if (!open) {
      await tx.insertInto('compute_instance_action_events').values({
        id: uuid(), action_id: actionId, event: e.event, host: e.host ?? null, result: e.result ?? null,
        details: e.details ?? null, start_time: now, finish_time: e.result ? now : null,
      }).execute();
    }
    await tx.updateTable('compute_instance_actions').set({ updated_at: now }).where('id', '=', actionId).execute();
  }

  async finish(actionId: string, message: string | null = null, tx: Db = this.db): Promise<void> {
    const now = nowIso();
    await tx.updateTable('compute_instance_actions').set({ finish_time: now, updated_at: now, message })
      .where('id', '=', actionId).where('finish_time', 'is', null).execute();
  }

  async list(serverId: string, opts: { limit?: number; marker?: string; changesSince?: string; changesBefore?: string } = {}): Promise<InstanceAction[]> {
    let q = this.db.selectFrom('compute_instance_actions').selectAll().where('server_id', '=', serverId)
      .orderBy('start_time', 'desc').orderBy('id', 'desc');
    if (opts.changesSince) q = q.where('updated_at', '>=', opts.changesSince);
    if (opts.changesBefore) q = q.where('updated_at', '<=', opts.changesBefore);
    let rows = (await q.execute()).map(toAction);
    if (opts.marker) {
      const i = rows.findIndex((r) => r.requestId === opts.marker);
      if (i < 0) return Promise.reject(Object.assign(new Error(`Marker ${opts.marker} could not be found.`), { marker: true }));
      rows = rows.slice(i + 1);
    }
    return opts.limit !== undefined ? rows.slice(0, opts.limit) : rows;
  }

  async byRequest(serverId: string, requestId: string): Promise<{ action: InstanceAction; events: ActionEvent[] } | undefined> {
    const r = await this.db.selectFrom('compute_instance_actions').selectAll().where('server_id', '=', serverId)
      .where('request_id', '=', requestId).executeTakeFirst();
    if (!r) return undefined;
    const ev = await this.db.selectFrom('compute_instance_action_events').selectAll().where('action_id', '=', r.id)
      .orderBy('start_time').execute();
    return {
      action: toAction(r),
      events: ev.map((e) => ({ event: e.event, host: e.host ?? null, result: e.result ?? null, details: e.details ?? null,
        startTime: e.start_time, finishTime: e.finish_time ?? null })),
    };
  }
}

function toAction(r: Record<string, any>): InstanceAction {
  return {
    id: r.id, serverId: r.server_id, action: r.action, requestId: r.request_id, projectId: r.project_id,
    userId: r.user_id, message: r.message ?? null, startTime: r.start_time, finishTime: r.finish_time ?? null,
    updatedAt: r.updated_at,
  };
}

/** Open (unfinished) actions of a server and their open events. */
export async function openActions(db: Kysely<any>, serverId: string): Promise<{ id: string; action: string }[]> {
  const rows = await db.selectFrom('compute_instance_actions').select(['id', 'action']).where('server_id', '=', serverId)
    .where('finish_time', 'is', null).execute();
  return rows.map((r) => ({ id: r.id as string, action: r.action as string }));
}

/** Closes every open event of an action with `result`, then the action. */
export async function closeAction(db: Kysely<any>, actionId: string, result: 'Success' | 'Error', details?: string): Promise<void> {
  const now = nowIso();
  await db.updateTable('compute_instance_action_events').set({ result, finish_time: now, details: details ?? null })
    .where('action_id', '=', actionId).where('finish_time', 'is', null).execute();
  await db.updateTable('compute_instance_actions').set({ finish_time: now, updated_at: now, message: result === 'Error' ? (details ?? 'Error') : null })
    .where('id', '=', actionId).execute();
}
