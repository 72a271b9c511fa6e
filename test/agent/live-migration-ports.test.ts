// The destination of a live migration says `prepared` only once the data plane plugged the
// guest's ports (MigrationSteps.portsPlugged); when they are not plugged, the step fails and the
// copy started for it is removed (the guest stays on the source).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeDriver } from '../../src/agent/hypervisor/fake/driver.js';
import { MigrationSteps } from '../../src/agent/live-migration.js';
import type { DesiredInstance } from '../../src/compute/agent-protocol.js';

const log = pino({ level: 'silent' });
const nic = { id: 'port-1', mac: 'fa:16:3e:00:00:01', tap: 'tapport-1', mtu: 1450 };
const desired = (id: string, nics = [nic]): DesiredInstance => ({
  id, name: id, projectId: 'p', generation: 1, power: 'running', deleted: false, flavor: { vcpus: 1, ramMb: 64, diskGb: 1 },
  imageId: 'img', configDrive: { metaData: {} }, nics, migration: { id: `m-${id}`, role: 'destination', phase: 'prepare' },
});
const spec = (d: DesiredInstance) => ({ id: d.id, name: d.name, vcpus: 1, ramMb: 64, diskGb: 1, nics: d.nics });

function steps(driver: FakeDriver, portsPlugged: (ids: string[]) => Promise<void>) {
  return new MigrationSteps({
    driver, log, portsPlugged, listen: { host: '127.0.0.1', ports: [50500, 50510] },
    ensureImage: async () => ({ path: '/nonexistent', format: 'qcow2' }), progress: () => undefined,
  });
}

test('prepared only after the ports are plugged', async () => {
  const driver = new FakeDriver();
  let release!: () => void;
  const asked: string[][] = [];
  const s = steps(driver, (ids) => { asked.push(ids); return new Promise<void>((r) => { release = r; }); });
  const d = desired('g1');
  let done = false;
  const out = s.step(d, spec(d), undefined, log).then((o) => { done = true; return o; });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(asked, [['port-1']]);
  assert.ok(driver.calls.includes('prepareIncoming g1'), 'QEMU (its taps) comes first');
  assert.equal(done, false, 'not prepared while the taps are not plugged');
  release();
  const o = await out;
  assert.equal(o.state.state, 'prepared');
  assert.ok(o.state.target);
});

test('ports never plugged: the step fails and the copy goes; no NIC: nothing to wait for', async () => {
  const driver = new FakeDriver();
  let asked = 0;
  const s = steps(driver, async () => { asked++; throw new Error('the data plane did not plug port(s) port-1 within 120 s'); });
  const d = desired('g2');
  const o = await s.step(d, spec(d), undefined, log);
  assert.equal(o.state.state, 'failed');
  assert.match(o.state.error ?? '', /did not plug port/);
  assert.ok(driver.calls.includes('destroy g2'));
  const bare = desired('g3', []);
  assert.equal((await s.step(bare, spec(bare), undefined, log)).state.state, 'prepared');
  assert.equal(asked, 1);
});
