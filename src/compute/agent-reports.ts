// An agent's observations of its guests applied to their records (POST .../observed): power
// state, task results and faults; the steps of moves between hosts (live: instance-moves.ts,
// cold: moves.ts); deletions confirmed by the host. One transaction per instance, row locked.
import type { Logger } from 'pino';
import { nowIso } from '../core/ids.js';
import type { ObservedInstance } from './agent-protocol.js';
import type { InstanceMoves } from './moves.js';
import type { LiveMoves } from './instance-moves.js';
import type { ComputeStore, InstanceRecord } from './store.js';

export interface ReportDeps { store: ComputeStore; moves: LiveMoves; coldMoves: InstanceMoves; log: Logger }

export interface AppliedReport {
  /** The instance as recorded now (undefined: nothing of it changed). */
  rec?: InstanceRecord;
  /** Its row is gone (the host confirmed the deletion). */
  removed: boolean;
  /** Its own host's revision was bumped (the agent has something new to do). */
  bumped: boolean;
  /** Other hosts whose revision was bumped (a move's next step). */
  wake: string[];
}

/** A guest that stopped on its own (crash, poweroff inside) stays stopped, as in Nova. */
export async function applyReport(d: ReportDeps, host: string, o: ObservedInstance): Promise<AppliedReport> {
  let removed = false;
  let bumped = false;
  const wake: string[] = [];
  const rec = await d.store.db.transaction().execute(async (tx) => {
    await d.moves.lock(tx, o.id);
    const i = await d.store.getInstanceForUpdate(o.id, tx);
    const move = await d.moves.observe(tx, host, o, i);
    if (move) {
      wake.push(...move.bump);
      for (const h of new Set(move.bump)) await d.store.bumpRevision(h, tx);
      if (move.instance) { move.instance.updatedAt = nowIso(); await d.store.updateInstance(move.instance, tx); }
      if (move.consumed) return move.instance;
    }
    if (!i) return undefined;
    if (i.host !== host) {
      // The copy a cold move left on this host.
      if (i.peer?.host !== host || !d.coldMoves.applyPeerReport(i, o)) return undefined;
      i.updatedAt = nowIso();
      await d.store.updateInstance(i, tx);
      return i;
    }
    if (o.powerState === 'deleted') {
      if (!i.deleted) return undefined; // a stale report from before a re-create cannot delete
      if (i.peer) {
        // Deleted here, still to be deleted on the peer's host: that report removes the row.
        i.host = i.peer.host;
        i.generation = i.peer.generation;
        i.peer = null;
        i.updatedAt = nowIso();
        await d.store.updateInstance(i, tx);
        await d.store.bumpRevision(i.host, tx);
        bumped = true;
        return i;
      }
      await d.store.removeInstance(i.id, tx);
      removed = true;
      return i;
    }
    const now = nowIso();
    i.powerState = o.powerState;
    i.pid = o.pid ?? null;
    i.diskBytes = o.diskBytes ?? i.diskBytes;
    i.busy = !!o.busy;
    i.observedGeneration = Math.max(i.observedGeneration, o.observedGeneration);
    i.observedAt = now;
    if (o.fault !== undefined) i.fault = o.fault;
    if (o.event) i.lastEvent = o.event;
    if (o.taskResult && i.task?.id === o.taskResult.taskId) {
      i.lastTaskResult = { ...o.taskResult, type: i.task.type };
      i.task = null;
    }
    if (i.observedGeneration >= i.generation && !i.task) i.taskState = null;
    // A failed request (fault) is not drift: the user sees the fault and asks again.
    const settled = i.observedGeneration >= i.generation && !o.busy && !i.deleted && !i.fault;
    if (settled && (o.powerState === 'shutdown' || o.powerState === 'crashed') && i.desiredPower !== 'shutoff') {
      d.log.warn({ instance: i.id, host, powerState: o.powerState }, 'guest stopped on its own; recording it as shut off');
      i.desiredPower = 'shutoff';
      i.generation += 1;
      i.lastEvent = o.powerState === 'crashed' ? 'crashed' : 'stopped-unexpectedly';
      i.taskState = 'powering-off';
      bumped = true;
    }
    i.updatedAt = now;
    await d.store.updateInstance(i, tx);
    if (bumped) await d.store.bumpRevision(host, tx);
    return i;
  });
  return { rec, removed, bumped, wake };
}
