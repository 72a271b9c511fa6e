// Questions only a host can answer (console output, VNC address), carried over the agent's watch:
// the controller stores the call and bumps the host's revision; the agent answers with
// POST /compute/agent/v1/hosts/{host}/calls/{id}. Stored in the database, so any controller copy
// can ask and any copy can receive the answer.
import type { EventEmitter } from 'node:events';
import type { Kysely } from 'kysely';
import { ApiError } from '../core/errors.js';
import { fromJson, toJson } from '../core/db.js';
import { nowIso, uuid } from '../core/ids.js';
import type { AgentCall, CallResult } from './agent-protocol.js';
import type { ComputeStore } from './store.js';

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
export type AgentCallRequest = DistributiveOmit<AgentCall, 'id'>;

export class AgentCalls {
  constructor(private readonly db: Kysely<any>, private readonly store: ComputeStore, private readonly events: EventEmitter) {}

  /** Asks `host`'s agent; rejects with 504 when it does not answer in time, 409 when it fails. */
  async ask(host: string, req: AgentCallRequest, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const call = { ...req, id: uuid() } as AgentCall;
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('compute_agent_calls').values({ id: call.id, host, call: toJson(call), result: null, created_at: nowIso() }).execute();
      await this.store.bumpRevision(host, tx);
    });
    this.events.emit(`host:${host}`);
    try {
      const res = await this.waitResult(call.id, timeoutMs);
      if (!res) throw new ApiError(504, `The compute host ${host} did not answer within ${Math.round(timeoutMs / 1000)} s.`);
      if (!res.ok) throw new ApiError(409, res.error ?? 'the compute host could not answer');
      return res.result ?? {};
    } finally {
      await this.db.deleteFrom('compute_agent_calls').where('id', '=', call.id).execute();
    }
  }

  async pending(host: string): Promise<AgentCall[]> {
    const rows = await this.db.selectFrom('compute_agent_calls').select(['call']).where('host', '=', host)
      .where('result', 'is', null).orderBy('created_at').execute();
    return rows.map((r) => fromJson<AgentCall>(r.call, undefined as never)).filter(Boolean);
  }

  /** Records an agent's answer; false when the call is unknown (already timed out). */
  async complete(host: string, id: string, result: CallResult): Promise<boolean> {
    const r = await this.db.updateTable('compute_agent_calls').set({ result: toJson(result) })
      .where('id', '=', id).where('host', '=', host).executeTakeFirst();
    this.events.emit(`call:${id}`);
    return Number(r.numUpdatedRows) > 0;
  }

  private async waitResult(id: string, timeoutMs: number): Promise<CallResult | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await this.db.selectFrom('compute_agent_calls').select(['result']).where('id', '=', id).executeTakeFirst();
      if (row?.result) return fromJson<CallResult | undefined>(row.result, undefined);
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      // Woken by an answer received here; re-read every 500 ms for answers received by another controller.
      await new Promise<void>((resolve) => {
        const done = () => { clearTimeout(t); this.events.off(`call:${id}`, done); resolve(); };
        const t = setTimeout(done, Math.min(500, left));
        this.events.on(`call:${id}`, done);
      });
    }
  }
}
