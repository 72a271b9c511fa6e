// The live-migration steps between the compute service and two agents' reconcile loops, with
// the fake driver (fast, no QEMU): the phases, the desired states each host sees, aborts,
// failures, a controller that forgets everything in memory mid-way, and deletion mid-move.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { FakeDriver } from '../../src/agent/hypervisor/fake/driver.js';
import { Reconciler } from '../../src/agent/reconcile.js';
import type { ComputeService } from '../../src/compute/service.js';

let tc: TestCloud;
let svc: ComputeService;
let work: string;
const reg = (hostname: string) => ({
  hostname, vcpus: 4, memoryMb: 8192, diskGb: 100, cpuModel: 'test', hypervisorType: 'fake' as const,
  accelerator: 'TCG' as const, hypervisorVersion: '0', agentVersion: '0.1.0',
});

function makeAgent(host: string, port: number) {
  const driver = new FakeDriver();
  const r = new Reconciler({
    driver, stateDir: join(work, host, 'state'), snapshotDir: join(work, host, 'snapshots'), log: pino({ level: 'silent' }),
    ensureImage: async () => ({ path: '/nonexistent/base.qcow2', format: 'qcow2' }),
    report: (obs) => svc.report(host, obs), maxAttempts: 1, retryDelayMs: 10,
    migrationListen: { host: '127.0.0.1', ports: [port, port + 1] },
  });
  let rev = -1;
  const sync = async () => {
    const state = await svc.watch(host, rev, 0);
    rev = state.revision;
    r.setDesired(state);
    await r.idle();
  };
  return { host, driver, r, sync };
}

let A: ReturnType<typeof makeAgent>;
let B: ReturnType<typeof makeAgent>;
const both = async (n = 4) => { for (let k = 0; k < n; k++) { await A.sync(); await B.sync(); } };

before(async () => {
  tc = await startTestCloud();
  svc = tc.cloud.compute.service;
  work = mkdtempSync(join(tmpdir(), 'stratus-livemig-steps-'));
  await svc.registerHost('lm-a', reg('lm-a'));
  await svc.registerHost('lm-b', reg('lm-b'));
  A = makeAgent('lm-a', 50100);
  B = makeAgent('lm-b', 50200);
});

after(async () => {
  await tc?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function running(name: string) {
  const i = await svc.createInstance({ projectId: 'p', name, imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 1, host: 'lm-a' });
  await A.sync();
  assert.equal((await svc.getInstance(i.id))!.powerState, 'running');
  return i.id;
}

test('a move goes through prepare, migrate, switch-over and clean-up on both hosts', async () => {
  const id = await running('mover');
  const m = await svc.moves.start(id, { migrationId: 'mig-1', dest: 'lm-b' });
  assert.equal(m.phase, 'preparing');
  // The destination sees a copy to prepare; the source nothing new yet.
  const seen = await svc.watch('lm-b', -1, 0);
  assert.deepEqual(seen.instances.find((d) => d.id === id)?.migration, { id: 'mig-1', role: 'destination', phase: 'prepare' });
  await B.sync();
  let mv = (await svc.moves.get(id))!;
  assert.equal(mv.phase, 'migrating');
  assert.match(mv.target!.uri, /^fake:127\.0\.0\.1:50200/);
  assert.equal(B.driver.guests.get(id)?.state, 'paused', 'waiting for the guest');
  const src = (await svc.watch('lm-a', -1, 0)).instances.find((d) => d.id === id)!;
  assert.equal(src.migration?.role, 'source');

  await A.sync(); // migrates; reports completed → switch-over
  mv = (await svc.moves.get(id))!;
  assert.equal(mv.phase, 'finishing');
  assert.equal((await svc.getInstance(id))!.host, 'lm-b');
  // Source now sees a tombstone; destination the finish step.
  assert.equal((await svc.watch('lm-a', -1, 0)).instances.find((d) => d.id === id)?.deleted, true);
  await both(3);
  mv = (await svc.moves.get(id))!;
  assert.equal(mv.phase, 'done');
  assert.ok(mv.sourceDone && mv.destDone);
  assert.equal(A.driver.guests.has(id), false, 'source leftovers removed');
  assert.equal(B.driver.guests.get(id)?.state, 'running');
  const i = (await svc.getInstance(id))!;
  assert.equal(i.host, 'lm-b');
  assert.equal(i.powerState, 'running');
  assert.equal(i.observedGeneration, i.generation);
  assert.equal(i.taskState, null);
  // No more migration steps in anyone's desired state.
  for (const h of ['lm-a', 'lm-b']) for (const d of (await svc.watch(h, -1, 0)).instances) assert.equal(d.migration, undefined);
  // And it moves back the same way (the guest that arrived on B can leave it again).
  await svc.moves.start(id, { migrationId: 'mig-2', dest: 'lm-a' });
  await both(5);
  assert.equal((await svc.moves.get(id))!.phase, 'done');
  assert.equal((await svc.getInstance(id))!.host, 'lm-a');
  await svc.deleteInstance(id);
  await both(2);
});

test('force_complete: the source pauses the guest, the destination resumes it', async () => {
  const id = await running('forced');
  await svc.moves.start(id, { migrationId: 'mig-fc', dest: 'lm-b' });
  await assert.rejects(svc.moves.forceComplete(id), /not copying memory/);
  await B.sync();
  await svc.moves.forceComplete(id);
  assert.equal((await svc.watch('lm-a', -1, 0)).instances.find((d) => d.id === id)?.migration?.role, 'source');
  assert.deepEqual(((await svc.watch('lm-a', -1, 0)).instances.find((d) => d.id === id)?.migration as { forceComplete?: boolean }).forceComplete, true);
  await both(4);
  assert.ok(A.driver.calls.includes(`forceComplete ${id}`));
  assert.equal((await svc.moves.get(id))!.phase, 'done');
  assert.equal(B.driver.guests.get(id)?.state, 'running', 'resumed on arrival: the instance is meant to run');
  assert.equal((await svc.getInstance(id))!.powerState, 'running');
  await svc.deleteInstance(id);
  await both(2);
});

test('rules: same host, unknown host, a stopped guest, a second move', async () => {
  const id = await running('rules');
  await assert.rejects(svc.moves.start(id, { migrationId: 'x', dest: 'lm-a' }), /already on host/);
  await assert.rejects(svc.moves.start(id, { migrationId: 'x', dest: 'nope' }), /could not be found/);
  await svc.moves.start(id, { migrationId: 'mig-r', dest: 'lm-b' });
  await assert.rejects(svc.moves.start(id, { migrationId: 'y', dest: 'lm-b' }), /already being migrated/);
  await svc.moves.abort(id);
  assert.equal((await svc.moves.get(id))!.phase, 'aborted');
  await both(2);
  await svc.stop(id);
  await A.sync();
  await assert.rejects(svc.moves.start(id, { migrationId: 'z', dest: 'lm-b' }), /shutoff/);
  await svc.deleteInstance(id);
  await both(2);
});

test('abort after the source got the target: the guest stays, the destination copy goes', async () => {
  const id = await running('abort');
  await svc.moves.start(id, { migrationId: 'mig-a', dest: 'lm-b' });
  await B.sync();
  assert.equal((await svc.moves.get(id))!.phase, 'migrating');
  await svc.moves.abort(id); // before the source acted on it
  assert.equal((await svc.watch('lm-a', -1, 0)).instances.find((d) => d.id === id)?.migration?.role, 'source');
  await both(3);
  const mv = (await svc.moves.get(id))!;
  assert.equal(mv.phase, 'aborted');
  assert.equal(mv.destDone, true);
  assert.equal(B.driver.guests.has(id), false, 'destination copy removed');
  assert.ok(A.driver.calls.includes(`abortOutgoing ${id}`));
  const i = (await svc.getInstance(id))!;
  assert.equal(i.host, 'lm-a');
  assert.equal(i.powerState, 'running');
  await assert.rejects(svc.moves.abort(id), /not being live-migrated/);
  await svc.deleteInstance(id);
  await both(2);
});

test('a destination that cannot prepare fails the move; the source keeps the guest', async () => {
  const id = await running('failprep');
  B.driver.failNext.set('prepareIncoming', 'no room for it');
  await svc.moves.start(id, { migrationId: 'mig-f', dest: 'lm-b' });
  await both(3);
  const mv = (await svc.moves.get(id))!;
  assert.equal(mv.phase, 'failed');
  assert.match(mv.error!, /no room for it/);
  assert.equal(mv.destDone, true);
  assert.equal((await svc.getInstance(id))!.host, 'lm-a');
  assert.equal(A.driver.guests.get(id)?.state, 'running');
  await svc.deleteInstance(id);
  await both(2);
});

test('deleting the instance mid-move removes the copy on the destination too', async () => {
  const id = await running('delmid');
  await svc.moves.start(id, { migrationId: 'mig-d', dest: 'lm-b' });
  await B.sync();
  assert.ok(B.driver.guests.has(id));
  await svc.deleteInstance(id);
  await both(3);
  assert.equal(await svc.getInstance(id), undefined);
  assert.equal(A.driver.guests.has(id), false);
  assert.equal(B.driver.guests.has(id), false);
  for (const h of ['lm-a', 'lm-b']) assert.ok(!(await svc.watch(h, -1, 0)).instances.some((d) => d.id === id));
});
