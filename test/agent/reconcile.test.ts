// The reconcile loop and the controller's compute service with the fake driver (fast, no QEMU),
// and the agent HTTP API's edges (token, bad input, image download).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { FakeDriver } from '../../src/agent/hypervisor/fake/driver.js';
import { Reconciler } from '../../src/agent/reconcile.js';
import { FileImageSource } from '../../src/compute/images.js';
import type { ComputeService } from '../../src/compute/service.js';

let tc: TestCloud;
let svc: ComputeService;
let work: string;
const HOST = 'fake-host';
const registration = {
  hostname: HOST, vcpus: 4, memoryMb: 8192, diskGb: 100, cpuModel: 'test', hypervisorType: 'fake' as const,
  accelerator: 'TCG' as const, hypervisorVersion: '0', agentVersion: '0.1.0',
};

function makeAgent(driver = new FakeDriver(), opts: { maxAttempts?: number } = {}) {
  const r = new Reconciler({
    driver, stateDir: join(work, 'state'), snapshotDir: join(work, 'snapshots'), log: pino({ level: 'silent' }),
    ensureImage: async () => ({ path: '/nonexistent/base.qcow2', format: 'qcow2' }),
    report: (obs) => svc.report(HOST, obs), maxAttempts: opts.maxAttempts ?? 1, retryDelayMs: 10,
  });
  let rev = -1;
  /** One watch round: fetch the desired state, converge, report. */
  const sync = async () => {
    const state = await svc.watch(HOST, rev, 0);
    rev = state.revision;
    r.setDesired(state);
    await r.idle();
  };
  return { driver, r, sync };
}

before(async () => {
  tc = await startTestCloud();
  svc = tc.cloud.compute.service;
  work = mkdtempSync(join(tmpdir(), 'stratus-reconcile-'));
  await svc.registerHost(HOST, registration);
});

after(async () => {
  await tc?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('spawn, converge actions, and no repeated work for an unchanged desired state', async () => {
  const { driver, sync } = makeAgent();
  const i = await svc.createInstance({ projectId: 'p', name: 'one', imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 1, host: HOST,
    keys: [{ name: 'k', publicKey: 'ssh-ed25519 AAAA test' }] });
  await sync();
  let rec = (await svc.getInstance(i.id))!;
  assert.equal(rec.powerState, 'running');
  assert.equal(rec.observedGeneration, rec.generation);
  assert.equal(rec.taskState, null);
  const cd = driver.guests.get(i.id)!.configDrive!;
  assert.deepEqual((cd.metaData as { public_keys: unknown }).public_keys, { k: 'ssh-ed25519 AAAA test' });
  assert.equal((cd.metaData as { uuid: string }).uuid, i.id);

  const calls = driver.calls.length;
  await sync(); // same revision: nothing to do
  assert.equal(driver.calls.length, calls);

  await svc.pause(i.id);
  await sync();
  assert.equal((await svc.getInstance(i.id))!.powerState, 'paused');
  await svc.suspend(i.id);
  await sync();
  assert.equal((await svc.getInstance(i.id))!.powerState, 'suspended');
  await svc.stop(i.id);
  await sync();
  rec = (await svc.getInstance(i.id))!;
  assert.equal(rec.powerState, 'shutdown');
  assert.deepEqual(driver.calls.slice(calls), [`pause ${i.id}`, `suspend ${i.id}`, `powerOff ${i.id}`]);

  // A second agent on the same state dir (a restart) redoes nothing.
  const again = makeAgent(driver);
  const before = driver.calls.length;
  await again.sync();
  assert.equal(driver.calls.length, before);

  await svc.resize(i.id, { vcpus: 2, ramMb: 256 });
  await svc.start(i.id);
  await sync();
  assert.equal(driver.guests.get(i.id)!.spec.vcpus, 2);
  assert.equal((await svc.getInstance(i.id))!.powerState, 'running');
  await svc.deleteInstance(i.id);
  await sync();
  assert.equal(await svc.getInstance(i.id), undefined);
  assert.equal(driver.guests.has(i.id), false);
});

test('the report at the end of a converge is final: not busy, so ACTIVE needs no observe() tick', async () => {
  const { r, sync } = makeAgent();
  const i = await svc.createInstance({ projectId: 'p', name: 'settled', imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 0, host: HOST });
  await sync(); // converge and its own report only: no observe() pass
  let rec = (await svc.getInstance(i.id))!;
  assert.equal(rec.powerState, 'running');
  assert.equal(rec.busy, false);
  await svc.pause(i.id);
  await sync();
  rec = (await svc.getInstance(i.id))!;
  assert.equal(rec.powerState, 'paused');
  assert.equal(rec.busy, false);
  assert.equal(rec.observedGeneration, rec.generation);
  await r.observe();
  await svc.deleteInstance(i.id);
  await sync();
});

test('a guest that stops on its own is recorded as shut off, not restarted', async () => {
  const { driver, r, sync } = makeAgent();
  const i = await svc.createInstance({ projectId: 'p', name: 'drift', imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 0, host: HOST });
  await sync();
  driver.crash(i.id);
  await r.observe();
  const rec = (await svc.getInstance(i.id))!;
  assert.equal(rec.desiredPower, 'shutoff');
  assert.equal(rec.lastEvent, 'stopped-unexpectedly');
  const n = driver.calls.length;
  await sync();
  assert.deepEqual(driver.calls.slice(n).filter((c) => c.startsWith('powerOn')), []);
  assert.equal((await svc.getInstance(i.id))!.observedGeneration, rec.generation);
  await svc.deleteInstance(i.id);
  await sync();
});

test('a failing step is reported as a fault; the next request clears it', async () => {
  const { driver, sync } = makeAgent();
  const i = await svc.createInstance({ projectId: 'p', name: 'faulty', imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 0, host: HOST, power: 'shutoff' });
  await sync();
  driver.failNext.set('powerOn', 'no space left on device');
  await svc.start(i.id);
  await sync();
  let rec = (await svc.getInstance(i.id))!;
  assert.match(rec.fault?.message ?? '', /no space left/);
  // The stopped guest is not "drift" while the fault stands: desired stays what the user asked.
  await svc.reboot(i.id, 'hard');
  await sync();
  rec = (await svc.getInstance(i.id))!;
  assert.equal(rec.fault, null);
  assert.equal(rec.powerState, 'running');
  assert.equal((rec.lastTaskResult as { ok: boolean }).ok, true);
  await svc.deleteInstance(i.id);
  await sync();
});

test('state rules: conflicting actions are refused with 409-style errors', async () => {
  const i = await svc.createInstance({ projectId: 'p', name: 'rules', imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 0, host: HOST });
  await assert.rejects(svc.unpause(i.id), /Cannot 'unpause'/);
  await assert.rejects(svc.resize(i.id, { vcpus: 2, ramMb: 128 }), /Cannot 'resize'/);
  await svc.snapshot(i.id, { name: 's' });
  await assert.rejects(svc.stop(i.id), /task_state image_snapshot/);
  await assert.rejects(svc.createInstance({ projectId: 'p', name: 'x', imageId: 'img', vcpus: 0, ramMb: 128, diskGb: 0, host: HOST }), /vcpus/);
  await assert.rejects(svc.createInstance({ projectId: 'p', name: 'x', imageId: 'img', vcpus: 1, ramMb: 128, diskGb: 0, host: 'nope' }), /unknown compute host/);
  await svc.deleteInstance(i.id);
  const { sync } = makeAgent();
  await sync();
  assert.equal(await svc.getInstance(i.id), undefined);
});

test('watch: long poll returns at once on a change, holds otherwise', async () => {
  const { revision } = await svc.watch(HOST, -1, 0);
  let t = Date.now();
  const held = await svc.watch(HOST, revision, 1500);
  assert.equal(held.revision, revision);
  assert.ok(Date.now() - t >= 1400, 'held until the timeout');
  t = Date.now();
  const waiting = svc.watch(HOST, revision, 20_000);
  setTimeout(() => void svc.createInstance({ projectId: 'p', name: 'w', imageId: 'img', vcpus: 1, ramMb: 64, diskGb: 0, host: HOST }), 200);
  const changed = await waiting;
  assert.ok(changed.revision > revision);
  assert.ok(Date.now() - t < 2000, 'woken by the change');
  const w = changed.instances.find((x) => x.name === 'w')!;
  await svc.deleteInstance(w.id);
  await makeAgent().sync();
});

test('agent API: token required, bad input refused, images streamed with their checksum', async () => {
  const token = readFileSync(join(tc.dataDir, 'agent-token'), 'utf8').trim();
  const auth = { Authorization: `Bearer ${token}` };
  const base = `${tc.url}/compute/agent/v1`;
  assert.equal((await api(base, 'PUT', `/hosts/${HOST}`, { body: registration })).status, 401);
  assert.equal((await api(base, 'PUT', `/hosts/${HOST}`, { body: registration, headers: { Authorization: 'Bearer wrong' } })).status, 401);
  const bad = await api(base, 'PUT', `/hosts/${HOST}`, { body: { ...registration, vcpus: 'many' }, headers: auth });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /vcpus/);
  assert.equal((await api(base, 'PUT', '/hosts/bad%20name', { body: registration, headers: auth })).status, 400);
  assert.equal((await api(base, 'POST', '/hosts/unknown-host/heartbeat', { body: {}, headers: auth })).status, 404);
  assert.equal((await api(base, 'POST', `/hosts/${HOST}/observed`, { body: { instances: [{ id: 'x', powerState: 'on fire', observedGeneration: 0 }] }, headers: auth })).status, 400);
  assert.equal((await api(base, 'GET', `/hosts/${HOST}/desired?since=0&wait=999`, { headers: auth })).status, 400);
  const ok = await api(base, 'GET', `/hosts/${HOST}/desired`, { headers: auth });
  assert.equal(ok.status, 200);
  assert.equal(typeof ok.body.revision, 'number');

  const file = join(work, 'img.qcow2');
  writeFileSync(file, Buffer.alloc(100_000, 7));
  const src = new FileImageSource();
  src.add('img-1', file);
  tc.cloud.compute.setImageSource(src);
  const r = await fetch(`${base}/images/img-1`, { headers: auth });
  assert.equal(r.status, 200);
  const bytes = Buffer.from(await r.arrayBuffer());
  assert.equal(bytes.length, 100_000);
  assert.equal(r.headers.get('x-image-sha256'), createHash('sha256').update(bytes).digest('hex'));
  assert.equal((await api(base, 'GET', '/images/nope', { headers: auth })).status, 404);
});
