// Servers end to end on simulated hosts (fake-agent.ts): build to ACTIVE through the scheduler
// and placement, list/show/update, power actions, lock, metadata, tags, resize + confirm/revert,
// rebuild, instance actions, delete; project isolation, quotas and bad input.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileImageSource } from '../../src/compute/images.js';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';
import { fakeHost, type FakeHost } from './fake-agent.js';

let tc: TestCloud;
let admin: string;
let demo: string;
let demoProject: string;
const hosts: FakeHost[] = [];
const V = '/compute/v2.1';
const IMG = 'img-fake-1';
const IMG2 = 'img-fake-2';

before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
  const d = await issue(tc, 'demo', tc.demoPassword);
  demo = d.token;
  demoProject = d.body.token.project.id;
  const src = new FileImageSource();
  for (const id of [IMG, IMG2]) {
    const path = join(tc.dataDir, `${id}.img`);
    writeFileSync(path, Buffer.alloc(64 * 1024));
    src.add(id, path);
  }
  tc.cloud.compute.setImageSource(src);
  hosts.push(await fakeHost(tc, 'fake-1', { vcpus: 4, memoryMb: 4096, diskGb: 50 }));
});
after(async () => {
  for (const h of hosts) await h.stop();
  await tc?.stop();
});

async function create(token: string, server: Record<string, unknown>, headers: Record<string, string> = {}) {
  return api(tc.url, 'POST', `${V}/servers`, { token, headers, body: { server: { imageRef: IMG, flavorRef: '42', ...server } } });
}

async function waitStatus(token: string, id: string, want: string | string[], timeoutMs = 20_000) {
  const wanted = Array.isArray(want) ? want : [want];
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    const r = await api(tc.url, 'GET', `${V}/servers/${id}`, { token, headers: { 'OpenStack-API-Version': 'compute 2.73' } });
    last = r.body?.server ?? r.status;
    if (r.status === 404 && wanted.includes('DELETED')) return last;
    if (r.status === 200 && wanted.includes(r.body.server.status) && !r.body.server['OS-EXT-STS:task_state']) return r.body.server;
    await new Promise((res) => setTimeout(res, 150));
  }
  throw new Error(`server ${id} never reached ${wanted}: ${JSON.stringify(last)}`);
}

test('create → ACTIVE on a host; list, show (admin attributes), update, project isolation', async () => {
  const r = await create(admin, { name: 'web-1', metadata: { role: 'web' } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.server.id;
  assert.match(r.headers.get('location') ?? '', new RegExp(`/servers/${id}$`));
  const s = await waitStatus(admin, id, 'ACTIVE');
  assert.equal(s['OS-EXT-SRV-ATTR:host'], 'fake-1');
  assert.equal(s['OS-EXT-STS:vm_state'], 'active');
  assert.equal(s['OS-EXT-STS:power_state'], 1);
  assert.equal(s.flavor.original_name, 'm1.nano');
  assert.equal(s['OS-EXT-AZ:availability_zone'], 'nova');
  assert.ok(s['OS-SRV-USG:launched_at']);

  const list = await tc.openstackJson<any[]>(['server', 'list', '--no-name-lookup']);
  assert.deepEqual(list.map((x) => x.Name), ['web-1']);
  assert.equal(list[0].Status, 'ACTIVE');
  const shown = await tc.openstackJson(['server', 'show', 'web-1']);
  assert.equal(shown['OS-EXT-SRV-ATTR:host'], 'fake-1');
  assert.equal(shown.status, 'ACTIVE');
  assert.equal((await tc.openstack(['server', 'set', '--name', 'web-one', '--property', 'tier=front', id])).code, 0);
  const again = await tc.openstackJson(['server', 'show', id]);
  assert.equal(again.name, 'web-one');
  assert.match(JSON.stringify(again.properties), /tier/);

  // demo sees nothing of admin's servers and cannot act on them
  assert.deepEqual(await tc.openstackJson<any[]>(['server', 'list', '--no-name-lookup'], { as: 'demo' }), []);
  assert.equal((await api(tc.url, 'GET', `${V}/servers/${id}`, { token: demo })).status, 404);
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: demo, body: { 'os-stop': null } })).status, 404);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${id}`, { token: demo })).status, 404);
  const demoView = await api(tc.url, 'GET', `${V}/servers/detail?all_tenants=1`, { token: demo });
  assert.equal(demoView.status, 403);
  const adminAll = await api(tc.url, 'GET', `${V}/servers/detail?all_tenants=1&name=^web`, { token: admin });
  assert.equal(adminAll.body.servers.length, 1);

  // usage per project over a period (os-simple-tenant-usage), through the CLI
  const usage = await tc.openstackJson<any[]>(['usage', 'list']);
  assert.equal(usage.length, 1);
  assert.equal(usage[0].Servers.length, 1);
  assert.ok(usage[0]['CPU Hours'] < 0.1, 'a server a few seconds old used minutes, not hours');
  const mine = await tc.openstackJson(['usage', 'show']);
  assert.equal(mine.Servers.length ?? mine.Servers, 1);
  assert.equal((await api(tc.url, 'GET', `${V}/os-simple-tenant-usage`, { token: demo })).status, 403);
});

test('power actions, lock, tags, instance actions (CLI)', async () => {
  const id = (await create(admin, { name: 'pwr' })).body.server.id;
  await waitStatus(admin, id, 'ACTIVE');
  assert.equal((await tc.openstack(['server', 'stop', id])).code, 0);
  await waitStatus(admin, id, 'SHUTOFF');
  const conflict = await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { 'os-stop': null } });
  assert.equal(conflict.status, 409);
  assert.equal((await tc.openstack(['server', 'start', id])).code, 0);
  await waitStatus(admin, id, 'ACTIVE');
  assert.equal((await tc.openstack(['server', 'pause', id])).code, 0);
  await waitStatus(admin, id, 'PAUSED');
  assert.equal((await tc.openstack(['server', 'unpause', id])).code, 0);
  await waitStatus(admin, id, 'ACTIVE');
  assert.equal((await tc.openstack(['server', 'suspend', id])).code, 0);
  await waitStatus(admin, id, 'SUSPENDED');
  assert.equal((await tc.openstack(['server', 'resume', id])).code, 0);
  await waitStatus(admin, id, 'ACTIVE');
  assert.equal((await tc.openstack(['server', 'reboot', '--hard', id])).code, 0);
  await waitStatus(admin, id, 'ACTIVE');

  // lock: the owner's other users cannot act; unlock restores
  assert.equal((await tc.openstack(['server', 'lock', id])).code, 0);
  const locked = await api(tc.url, 'GET', `${V}/servers/${id}`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.9' } });
  assert.equal(locked.body.server.locked, true);
  assert.equal((await tc.openstack(['server', 'unlock', id])).code, 0);

  const tags = await api(tc.url, 'PUT', `${V}/servers/${id}/tags`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.26' }, body: { tags: ['blue', 'db'] } });
  assert.deepEqual(tags.body.tags, ['blue', 'db']);
  const byTag = await api(tc.url, 'GET', `${V}/servers?tags=db`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.26' } });
  assert.deepEqual(byTag.body.servers.map((x: any) => x.id), [id]);

  const events = await tc.openstackJson<any[]>(['server', 'event', 'list', id]);
  const actions = events.map((e) => e.Action);
  for (const a of ['create', 'stop', 'start', 'pause', 'unpause', 'suspend', 'resume', 'reboot', 'lock', 'unlock']) assert.ok(actions.includes(a), `${a} in ${actions}`);
  const createReq = events.find((e) => e.Action === 'create')['Request ID'];
  const detail = await tc.openstackJson(['server', 'event', 'show', id, createReq]);
  assert.ok(JSON.stringify(detail.events).includes('compute_build_and_run_instance'));
  assert.ok(JSON.stringify(detail.events).includes('Success'));
});

test('resize + confirm, resize + revert, rebuild, delete', async () => {
  const id = (await create(admin, { name: 'rsz' })).body.server.id;
  await waitStatus(admin, id, 'ACTIVE');
  assert.equal((await tc.openstack(['server', 'resize', '--flavor', 'm1.micro', id])).code, 0);
  const v = await waitStatus(admin, id, 'VERIFY_RESIZE');
  assert.equal(v.flavor.original_name, 'm1.micro');
  assert.equal((await tc.openstack(['server', 'resize', 'confirm', id])).code, 0);
  await waitStatus(admin, id, 'ACTIVE');
  const inst = await tc.cloud.compute.service.getInstance(id);
  assert.equal(inst!.ramMb, 256);

  assert.equal((await tc.openstack(['server', 'resize', '--flavor', 'm1.small', id])).code, 0);
  await waitStatus(admin, id, 'VERIFY_RESIZE');
  assert.equal((await tc.openstack(['server', 'resize', 'revert', id])).code, 0);
  const reverted = await waitStatus(admin, id, 'ACTIVE');
  assert.equal(reverted.flavor.original_name, 'm1.micro');
  assert.equal((await tc.cloud.compute.service.getInstance(id))!.ramMb, 256);

  const rb = await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { rebuild: { imageRef: IMG2, name: 'rebuilt' } } });
  assert.equal(rb.status, 202, rb.text);
  const after = await waitStatus(admin, id, 'ACTIVE');
  assert.equal(after.image.id, IMG2);
  assert.equal(after.name, 'rebuilt');

  const del = await tc.openstack(['server', 'delete', '--wait', id]);
  assert.equal(del.code, 0, del.stderr);
  assert.equal((await api(tc.url, 'GET', `${V}/servers/${id}`, { token: admin })).status, 404);
  assert.equal(await tc.cloud.compute.service.getInstance(id), undefined, 'the guest is gone from its host');
  const alloc = await tc.cloud.placement.client.getAllocations(id);
  assert.deepEqual(alloc.allocations, {}, 'placement released');
  const deleted = await api(tc.url, 'GET', `${V}/servers/detail?deleted=true`, { token: admin });
  assert.ok(deleted.body.servers.some((x: any) => x.id === id && x.status === 'DELETED'));
});

test('quota: over-quota create is a 403 with a clear message; bad input is 400', async () => {
  await api(tc.url, 'PUT', `${V}/os-quota-sets/${demoProject}`, { token: admin, body: { quota_set: { instances: 1 } } });
  const first = await create(demo, { name: 'demo-1' });
  assert.equal(first.status, 202, first.text);
  const second = await create(demo, { name: 'demo-2' });
  assert.equal(second.status, 403);
  assert.match(second.body.forbidden.message, /Quota exceeded for instances: Requested 1, but already used 1 of 1 instances/);
  await waitStatus(demo, first.body.server.id, 'ACTIVE');

  const cases: [Record<string, unknown>, RegExp][] = [
    [{ flavorRef: 'nope' }, /Flavor nope could not be found/],
    [{ imageRef: 'no-such-image' }, /Image no-such-image could not be found/],
    [{ key_name: 'nokey' }, /Invalid key_name/],
    [{ user_data: '***not base64***' }, /base64/],
    [{ availability_zone: 'atlantis' }, /availability zone is not available/],
    [{ name: '' }, /name/],
    [{ bogus: 1 }, /bogus/],
    [{ min_count: 3, max_count: 2 }, /min_count/],
  ];
  for (const [body, re] of cases) {
    const r = await create(admin, { name: 'bad', ...body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.match(r.body.badRequest.message, re);
  }
  const v37 = await create(admin, { name: 'bad' }, { 'OpenStack-API-Version': 'compute 2.37' });
  assert.equal(v37.status, 400);
  assert.match(v37.body.badRequest.message, /networks/);
  const none = await create(admin, { name: 'no-nic', networks: 'none' }, { 'OpenStack-API-Version': 'compute 2.37' });
  assert.equal(none.status, 202, none.text);
  const unknownAction = await api(tc.url, 'POST', `${V}/servers/${none.body.server.id}/action`, { token: admin, body: { fly: {} } });
  assert.equal(unknownAction.status, 400);
});

test('a build recorded while no reconciler runs (a controller that died) is resumed by the next one', async () => {
  const rec = tc.cloud.compute.nova.reconciler;
  await rec.stop();
  const r = await create(admin, { name: 'orphaned-build' });
  assert.equal(r.status, 202);
  await new Promise((res) => setTimeout(res, 500));
  const waiting = await api(tc.url, 'GET', `${V}/servers/${r.body.server.id}`, { token: admin });
  assert.equal(waiting.body.server.status, 'BUILD');
  assert.equal(waiting.body.server['OS-EXT-SRV-ATTR:host'], null);
  rec.start(); // its first sweep finds the unfinished build
  const s = await waitStatus(admin, r.body.server.id, 'ACTIVE');
  assert.equal(s['OS-EXT-SRV-ATTR:host'], 'fake-1');
});
