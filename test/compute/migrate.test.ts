// Cold migration and resize between two real hosts: one cloud, two real agents (each its own data
// dir), the test guest under QEMU, driven by the real openstack CLI. The disk really moves: the
// source agent uploads it through the controller, the destination downloads it and boots it (the
// console shows the boot marker again there); confirm removes the source copy, revert brings the
// server back to the source's original disk. Five TCG boots in all.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { cleanupAll, guestPids, TEST_IMAGE, testAgent, until, type TestAgent } from '../helpers/agent.js';

let tc: TestCloud;
const agents: TestAgent[] = [];
const haveImage = existsSync(TEST_IMAGE);
const skip = !haveImage && `${TEST_IMAGE} missing`;

before(async () => {
  if (!haveImage) return;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  // Two hosts on one machine: each agent its own data dir.
  agents.push(testAgent(tc, { host: 'mig-a', dataDir: join(tc.dataDir, 'ha') }), testAgent(tc, { host: 'mig-b', dataDir: join(tc.dataDir, 'hb') }));
  await Promise.all(agents.map((a) => a.start()));
});
after(() => cleanupAll(agents, tc));

const agentOf = (host: string) => agents.find((a) => a.host === host)!;
const other = (host: string) => agents.find((a) => a.host !== host)!;
const instDir = (a: TestAgent, id: string) => join(a.dataDir, 'agent', 'instances', id);
const consoleOf = (a: TestAgent, id: string) => { try { return readFileSync(join(instDir(a, id), 'console.log'), 'utf8'); } catch { return ''; } };
// Booted far enough to heed the ACPI power button (acpid runs before the first marker).
const booted = (a: TestAgent, id: string) => until(`guest ${id} booted on ${a.host}`, () => /STRATUS-GUEST: metadata/.test(consoleOf(a, id)), 240_000)
  .catch((e: Error) => { throw new Error(`${e.message}; console: ${consoleOf(a, id).slice(-1500)}`); });
const show = (id: string) => tc.openstackJson(['server', 'show', id]);

test('migrate --wait moves a server to the other host; resize to the other host + confirm; resize + revert returns to the source', { skip }, async () => {
  const flavor = await tc.openstack(['flavor', 'create', '--vcpus', '1', '--ram', '320', '--disk', '1', 'mig.bigger']);
  assert.equal(flavor.code, 0, flavor.stderr);
  const s = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--wait', 'mover']);
  assert.equal(s.status, 'ACTIVE');
  const id = s.id as string;
  const a = agentOf(s['OS-EXT-SRV-ATTR:host']);
  const b = other(a.host);
  await booted(a, id);

  // Cold migrate (admin): VERIFY_RESIZE on the other host, booted from the moved disk.
  const mig = await tc.openstack(['server', 'migrate', '--wait', id]);
  assert.equal(mig.code, 0, mig.stderr);
  let v = await show(id);
  assert.equal(v.status, 'VERIFY_RESIZE');
  assert.equal(v['OS-EXT-SRV-ATTR:host'], b.host);
  await booted(b, id);
  assert.equal(guestPids(b.dataDir).length, 1, 'QEMU runs on the destination');
  assert.deepEqual(guestPids(a.dataDir), [], 'no QEMU left on the source');
  assert.ok(existsSync(join(instDir(a, id), 'disk.qcow2')), 'the source disk is kept until confirm');
  const moved = JSON.parse(execQemuImgInfo(join(instDir(b, id), 'disk.qcow2')));
  assert.equal(moved['backing-filename'], undefined, 'the moved disk is self-contained');
  assert.equal((await tc.openstack(['server', 'resize', 'confirm', id])).code, 0);
  await until('source copy deleted', () => !existsSync(instDir(a, id)), 120_000);
  v = await show(id);
  assert.equal(v.status, 'ACTIVE');
  assert.equal(v['OS-EXT-SRV-ATTR:host'], b.host);
  assert.deepEqual(readdirSync(join(tc.dataDir, 'compute', 'transfers')), [], 'no staged disk left on the controller');

  const list = await tc.openstackJson(['server', 'migration', 'list', '--server', id]);
  assert.equal(list.length, 1);
  assert.equal(list[0]['Source Compute'], a.host);
  assert.equal(list[0]['Dest Compute'], b.host);
  assert.equal(list[0].Status, 'confirmed');

  // Resize goes to the other host (back to a) when it fits; confirm.
  const rs = await tc.openstack(['server', 'resize', '--flavor', 'mig.bigger', '--wait', id]);
  assert.equal(rs.code, 0, rs.stderr);
  v = await show(id);
  assert.equal(v.status, 'VERIFY_RESIZE');
  assert.equal(v['OS-EXT-SRV-ATTR:host'], a.host);
  assert.match(readFileSync(`/proc/${guestPids(a.dataDir)[0]}/cmdline`, 'utf8').replace(/\0/g, ' '), / -m 320/);
  await booted(a, id);
  assert.equal((await tc.openstack(['server', 'resize', 'confirm', id])).code, 0);
  await until('b copy deleted', () => !existsSync(instDir(b, id)), 120_000);

  // A second resize, then revert: back on a with its original disk (same file), the b copy gone.
  const disk = statSync(join(instDir(a, id), 'disk.qcow2'));
  const up = await tc.openstack(['server', 'resize', '--flavor', 'm1.micro', '--wait', id]);
  assert.equal(up.code, 0, up.stderr);
  assert.equal((await show(id))['OS-EXT-SRV-ATTR:host'], b.host);
  await booted(b, id);
  assert.equal((await tc.openstack(['server', 'resize', 'revert', id])).code, 0);
  await until('reverted', async () => (await show(id)).status === 'ACTIVE', 180_000);
  v = await show(id);
  assert.equal(v['OS-EXT-SRV-ATTR:host'], a.host);
  assert.match(JSON.stringify(v.flavor), /mig\.bigger/, 'the flavor from before the resize');
  await until('b copy deleted after revert', () => !existsSync(instDir(b, id)) && guestPids(b.dataDir).length === 0, 120_000);
  assert.equal(statSync(join(instDir(a, id), 'disk.qcow2')).ino, disk.ino, 'the original disk, not a copy');
  assert.equal(guestPids(a.dataDir).length, 1);
  const statuses = (await tc.openstackJson(['server', 'migration', 'list', '--server', id])).map((m: any) => m.Status);
  assert.deepEqual(statuses, ['reverted', 'confirmed', 'confirmed'], 'newest first');

  // A snapshot from an agent with its own data dir is streamed through the agent API into the
  // image service (PUT .../snapshots/{image}), not left for the controller to read from disk.
  const img = await tc.openstackJson(['server', 'image', 'create', '--wait', '--name', 'moved-snap', id]);
  assert.equal((await tc.openstackJson(['image', 'show', img.id])).status, 'active');
  assert.match(a.log(), /snapshot uploaded/);
  assert.deepEqual(readdirSync(join(a.dataDir, 'agent', 'snapshots')), []);

  // No other usable host: a clear error, the server untouched.
  assert.equal((await tc.openstack(['compute', 'service', 'set', '--disable', b.host, 'nova-compute'])).code, 0);
  const none = await tc.openstack(['server', 'migrate', id]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /No valid host/);
  v = await show(id);
  assert.equal(v.status, 'ACTIVE');
  assert.equal(v['OS-EXT-SRV-ATTR:host'], a.host);

  const del = await tc.openstack(['server', 'delete', '--wait', id]);
  assert.equal(del.code, 0, del.stderr);
  for (const x of agents) assert.deepEqual(guestPids(x.dataDir), []);
});

function execQemuImgInfo(path: string): string {
  return execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' });
}
