// Multi-step server operations, one step per reconciler pass, each step's progress recorded in
// the server's `task` so a controller restart resumes it: cold resize and its revert (on the
// same host: stop → new size → start), rebuild (guest replaced from a new image on its host),
// and snapshots (agent writes the disk image, the image service takes it).
import { rm } from 'node:fs/promises';
import { nowIso } from '../../core/ids.js';
import { closeAction } from './actions.js';
import type { ReconcilerDeps } from './reconciler.js';
import type { InstanceLike, ImageLookup } from './ports.js';
import type { ServerRecord } from './store.js';
import { moveStep } from './moves.js';

const settled = (i: InstanceLike) => i.observedGeneration >= i.generation && !i.busy && !i.task && !i.taskState;

/** Ends the server's task: clears it, records a fault on error, closes its instance action. */
export async function endTask(d: Pick<ReconcilerDeps, 'store'>, s: ServerRecord, result: 'Success' | 'Error', details?: string): Promise<void> {
  const t = s.task;
  const actionId = t && 'actionId' in t ? t.actionId : undefined;
  s.task = null;
  s.taskState = null;
  if (result === 'Error') s.fault = { code: 500, message: details ?? 'Error', created: nowIso() };
  s.updatedAt = nowIso();
  await d.store.update(s);
  if (actionId) await closeAction(d.store.db, actionId, result, details);
}

export async function taskStep(d: ReconcilerDeps & { images?: () => ImageLookup }, s: ServerRecord, inst: InstanceLike | undefined, _kick: () => void): Promise<void> {
  const t = s.task!;
  const save = async () => { s.updatedAt = nowIso(); await d.store.update(s); };
  const finish = async (result: 'Success' | 'Error', details?: string) => {
    if ((t.type === 'resize' || t.type === 'revert') && t.migrationId) {
      await d.migrations.update(t.migrationId, { status: result === 'Error' ? 'error' : t.type === 'resize' ? 'finished' : 'reverted', ...(result === 'Error' ? { error: details ?? 'Error' } : {}) });
    }
    await endTask(d, s, result, details);
  };
  if (t.type === 'move' || t.type === 'confirm-move' || t.type === 'revert-move') return moveStep(d, s, inst);

  if (t.type === 'resize' || t.type === 'revert') {
    if (!inst) return finish('Error', 'the server has no guest on its host');
    if (inst.fault && inst.observedGeneration >= inst.generation) {
      s.vmState = 'active';
      return finish('Error', `${t.type} failed: ${inst.fault.message}`);
    }
    const target = t.type === 'resize' ? t.newFlavor : t.oldFlavor;
    if (t.step === 'stopping') {
      if (inst.desiredPower !== 'shutoff') { if (!inst.task) await d.instances.stop(s.id); return; }
      if (!settled(inst) || inst.powerState !== 'shutdown') return;
      await d.instances.resize(s.id, { vcpus: target.vcpus, ramMb: target.ram, ...(t.type === 'resize' ? { diskGb: target.disk } : {}) });
      t.step = 'resizing';
      s.taskState = t.type === 'resize' ? 'resize_migrating' : 'resize_reverting';
      if (t.type === 'resize' && t.migrationId) await d.migrations.update(t.migrationId, { status: 'migrating' });
      return save();
    }
    if (!settled(inst)) return;
    if (t.step === 'resizing') {
      if (t.wasRunning) {
        await d.instances.start(s.id);
        t.step = 'starting';
        s.taskState = t.type === 'resize' ? 'resize_finish' : 'resize_reverting';
        return save();
      }
    } else if (inst.powerState !== 'running') {
      return;
    }
    s.vmState = t.type === 'resize' ? 'resized' : 'active';
    d.log.info({ server: s.id, flavor: target.name }, `${t.type} done`);
    return finish('Success');
  }

  if (t.type === 'rebuild') {
    if (t.step === 'deleting') {
      if (inst) { if (!inst.deleted) await d.instances.deleteInstance(s.id); return; }
      s.imageId = t.imageId;
      await d.instances.createInstance({
        id: s.id, projectId: s.projectId, userId: s.userId, name: s.name, imageId: t.imageId, host: s.host!,
        vcpus: s.flavor.vcpus, ramMb: s.flavor.ram, diskGb: s.flavor.disk, hostname: s.hostname, metadata: s.metadata,
        keys: s.keyName && s.keyData ? [{ name: s.keyName, publicKey: s.keyData }] : [], power: t.power,
        ...(s.userData ? { userData: Buffer.from(s.userData, 'base64').toString('utf8') } : {}),
      });
      t.step = 'creating';
      s.taskState = 'rebuild_spawning';
      return save();
    }
    if (!inst) return;
    if (inst.fault && inst.powerState !== 'running' && inst.observedGeneration < inst.generation) {
      s.vmState = 'error';
      return finish('Error', `rebuild failed: ${inst.fault.message}`);
    }
    const want = t.power === 'running' ? 'running' : 'shutdown';
    if (!settled(inst) || inst.powerState !== want) return;
    s.vmState = 'active';
    s.launchedAt = nowIso();
    return finish('Success');
  }

  if (t.type === 'snapshot') {
    const r = inst?.lastTaskResult as { taskId?: string; ok?: boolean; error?: string; result?: { path?: string; uploaded?: boolean } } | null | undefined;
    if (!inst || !r || r.taskId !== t.agentTaskId) {
      if (!inst) return finish('Error', 'the server has no guest on its host');
      return;
    }
    // The agent streamed it into the image service itself (PUT .../snapshots/{image}).
    if (r.ok && r.result?.uploaded) return finish('Success');
    const images = d.images?.();
    if (!r.ok || !r.result?.path || !images?.uploadImageData) {
      return finish('Error', `snapshot failed: ${r.error ?? 'no image service to upload to'}`);
    }
    t.step = 'uploading';
    s.taskState = 'image_uploading';
    await save();
    try {
      await images.uploadImageData(t.imageId, 'system', { path: r.result.path });
      // The image service keeps its own copy; the host's file is no longer needed.
      await rm(r.result.path, { force: true }).catch(() => undefined);
    } catch (e) {
      return finish('Error', `snapshot upload failed: ${(e as Error).message}`);
    }
    return finish('Success');
  }
}
