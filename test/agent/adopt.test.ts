// Crash safety: the agent is killed with SIGKILL while two guests run; the restarted agent adopts
// them (same QEMU pids) and applies what was asked meanwhile. A guest that died while the agent
// was down is reported as shut off, files intact. `stratus down`/`up` semantics for guests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { guestPids, serveTestImage, testAgent, TEST_IMAGE_ID, until, type TestAgent } from '../helpers/agent.js';
import { QmpClient } from '../../src/agent/hypervisor/qemu/qmp.js';
import { isGuestProcess } from '../../src/agent/hypervisor/qemu/process.js';
import { shutdownGuests } from '../../src/agent/main.js';
import type { ComputeService } from '../../src/compute/service.js';
import type { InstanceRecord } from '../../src/compute/store.js';

let tc: TestCloud;
let agent: TestAgent;
let svc: ComputeService;
let a: string;
let b: string;

const dirOf = (i: string) => join(tc.dataDir, 'agent', 'instances', i);
const consoleText = (i: string) => { try { return readFileSync(join(dirOf(i), 'console.log'), 'utf8'); } catch { return ''; } };

function settled(i: string, power: string, ms = 180_000): Promise<InstanceRecord> {
  return svc.waitFor(i, (r) => !!r && r.observedGeneration >= r.generation && !r.task && !r.busy && r.powerState === power, ms)
    .then((r) => r!);
}

async function qmpStatus(i: string): Promise<string> {
  return until('QMP query-status', async () => {
    const c = await QmpClient.connect(join(dirOf(i), 'qmp.sock'), 3000);
    try { return (await c.execute<{ status: string }>('query-status')).status; } finally { c.close(); }
  }, 30_000);
}

before(async () => {
  tc = await startTestCloud();
  svc = tc.cloud.compute.service;
  serveTestImage(tc);
  agent = testAgent(tc);
  await agent.start();
});

after(async () => {
  await agent?.cleanup();
  await tc?.stop();
});

test('agent kill -9 with two guests running: both adopted, same pids', async () => {
  const mk = (name: string) => svc.createInstance({ projectId: 'p1', name, imageId: TEST_IMAGE_ID, vcpus: 1, ramMb: 256, diskGb: 0, host: agent.host });
  a = (await mk('guest-a')).id;
  b = (await mk('guest-b')).id;
  const [ra, rb] = await Promise.all([settled(a, 'running'), settled(b, 'running')]);
  await until('both guests at init', () => consoleText(a).includes('STRATUS-GUEST: init') && consoleText(b).includes('STRATUS-GUEST: init'), 180_000);

  await agent.kill9();
  assert.ok(isGuestProcess(ra.pid!, a) && isGuestProcess(rb.pid!, b), 'guests survive the agent');
  // Asked while the agent is down: applied after it comes back.
  await svc.pause(a);

  const logBefore = agent.log().length;
  await agent.start();
  const pa = await settled(a, 'paused');
  const pb = await settled(b, 'running');
  assert.equal(pa.pid, ra.pid, 'guest A adopted, not restarted');
  assert.equal(pb.pid, rb.pid, 'guest B adopted, not restarted');
  const log = agent.log().slice(logBefore);
  assert.match(log, new RegExp(`"instance":"${a}","pid":${ra.pid}[^\\n]*adopted running guest`));
  assert.match(log, new RegExp(`"instance":"${b}","pid":${rb.pid}[^\\n]*adopted running guest`));
  assert.equal(await qmpStatus(a), 'paused');
  assert.equal(await qmpStatus(b), 'running');
  await svc.unpause(a);
  await settled(a, 'running');
});

test('a guest that died while the agent was down is reported shut off, files intact', async () => {
  const ra = (await svc.getInstance(a))!;
  const rb = (await svc.getInstance(b))!;
  await agent.kill9();
  process.kill(rb.pid!, 'SIGKILL');
  await until('guest B gone', () => !isGuestProcess(rb.pid!, b), 10_000);
  await agent.start();
  const sb = await svc.waitFor(b, (r) => !!r && r.powerState === 'shutdown' && r.desiredPower === 'shutoff' && r.observedGeneration >= r.generation, 60_000);
  assert.equal(sb!.lastEvent, 'stopped-unexpectedly');
  for (const f of ['disk.qcow2', 'spec.json', 'console.log']) assert.ok(existsSync(join(dirOf(b), f)), `${f} kept`);
  // The agent does not restart it on its own, and guest A was never touched.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal((await svc.getInstance(b))!.powerState, 'shutdown');
  const sa = await settled(a, 'running');
  assert.equal(sa.pid, ra.pid);
});

test('stratus down powers guests off cleanly; the next start brings back the ones meant to run', async () => {
  const ra = (await svc.getInstance(a))!;
  await agent.stop(); // SIGTERM: the agent leaves guests alone
  assert.ok(isGuestProcess(ra.pid!, a), 'SIGTERM to the agent leaves guests running');
  const off = Buffer.byteLength(consoleText(a));
  const r = await shutdownGuests(tc.dataDir, { timeoutSec: 60 });
  assert.deepEqual(r.stopped, [a]);
  assert.deepEqual(guestPids(tc.dataDir), []);
  assert.match(Buffer.from(consoleText(a)).subarray(off).toString(), /STRATUS-GUEST: shutdown/, 'clean ACPI shutdown');
  await agent.start();
  const back = (await svc.waitFor(a, (i) => !!i && i.powerState === 'running' && !!i.pid && i.pid !== ra.pid && !i.busy, 180_000))!;
  assert.ok(isGuestProcess(back.pid!, a));
  assert.equal(back.desiredPower, 'running');
  assert.equal((await svc.getInstance(b))!.powerState, 'shutdown', 'B stays off: it was off before down');
});

test('deleting both leaves nothing behind', async () => {
  await svc.deleteInstance(a);
  await svc.deleteInstance(b);
  await svc.waitFor(a, (i) => i === undefined, 60_000);
  await svc.waitFor(b, (i) => i === undefined, 60_000);
  assert.deepEqual(guestPids(tc.dataDir), []);
  assert.ok(!existsSync(dirOf(a)) && !existsSync(dirOf(b)));
});
