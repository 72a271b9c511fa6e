// Migration records and their read APIs on a simulated host (fake-agent.ts): resizes are
// recorded (finished → confirmed / reverting → reverted), os-migrations filters and pages them
// (2.59) and shows owners (2.80), /servers/{id}/migrations lists live migrations in progress
// (2.23+); admins only; bad input is a 400.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileImageSource } from '../../src/compute/images.js';
import { MigrationService } from '../../src/compute/migrations/service.js';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';
import { fakeHost, type FakeHost } from './fake-agent.js';

let tc: TestCloud;
let admin: string;
let demo: string;
const hosts: FakeHost[] = [];
const V = '/compute/v2.1';
const IMG = 'img-fake-mig';
const mv = (v: string) => ({ 'OpenStack-API-Version': `compute ${v}` });

before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
  demo = (await issue(tc, 'demo', tc.demoPassword)).token;
  const src = new FileImageSource();
  const path = join(tc.dataDir, `${IMG}.img`);
  writeFileSync(path, Buffer.alloc(64 * 1024));
  src.add(IMG, path);
  tc.cloud.compute.setImageSource(src);
  hosts.push(await fakeHost(tc, 'fake-m1', { vcpus: 4, memoryMb: 4096, diskGb: 50 }));
});
after(async () => {
  for (const h of hosts) await h.stop();
  await tc?.stop();
});

async function waitStatus(id: string, want: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    const r = await api(tc.url, 'GET', `${V}/servers/${id}`, { token: admin });
    last = r.body?.server;
    if (r.status === 200 && last.status === want && !last['OS-EXT-STS:task_state']) return last;
    await new Promise((res) => setTimeout(res, 150));
  }
  throw new Error(`server ${id} never reached ${want}: ${JSON.stringify(last)}`);
}

test('resizes are recorded; os-migrations filters, pages and shows them to admins', async () => {
  const r = await api(tc.url, 'POST', `${V}/servers`, { token: admin, body: { server: { name: 'mig-rec', imageRef: IMG, flavorRef: '42' } } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.server.id;
  await waitStatus(id, 'ACTIVE');

  assert.equal((await tc.openstack(['server', 'resize', '--flavor', 'm1.micro', id])).code, 0);
  await waitStatus(id, 'VERIFY_RESIZE');
  let list = await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}`, { token: admin, headers: mv('2.80') });
  assert.equal(list.status, 200, list.text);
  assert.equal(list.body.migrations.length, 1);
  const m1 = list.body.migrations[0];
  assert.equal(m1.status, 'finished');
  assert.equal(m1.migration_type, 'resize');
  assert.equal(m1.source_compute, 'fake-m1');
  assert.equal(m1.dest_compute, 'fake-m1');
  assert.equal(m1.old_instance_type_id, '42');
  assert.equal(m1.new_instance_type_id, '84');
  assert.match(m1.uuid, /^[0-9a-f-]{36}$/);
  assert.equal(typeof m1.id, 'number');
  assert.ok(m1.user_id && m1.project_id);
  assert.equal(m1.links, undefined, 'only live migrations in progress are linked');
  assert.equal((await tc.openstack(['server', 'resize', 'confirm', id])).code, 0);
  await waitStatus(id, 'ACTIVE');

  assert.equal((await tc.openstack(['server', 'resize', '--flavor', 'm1.small', id])).code, 0);
  await waitStatus(id, 'VERIFY_RESIZE');
  assert.equal((await tc.openstack(['server', 'resize', 'revert', id])).code, 0);
  await waitStatus(id, 'ACTIVE');

  // The real CLI (2.80 with --os-compute-api-version): newest first.
  const cli = await tc.openstackJson(['--os-compute-api-version', '2.80', 'server', 'migration', 'list', '--server', id]);
  assert.deepEqual(cli.map((m: any) => m.Status), ['reverted', 'confirmed']);
  assert.deepEqual(cli.map((m: any) => m.Type), ['resize', 'resize']);

  // Filters and shapes by microversion.
  const old = await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}`, { token: admin });
  assert.equal(old.body.migrations.length, 2);
  assert.equal(old.body.migrations[0].migration_type, undefined, 'migration_type from 2.23');
  assert.equal(old.body.migrations[0].uuid, undefined, 'uuid from 2.59');
  const byStatus = await api(tc.url, 'GET', `${V}/os-migrations?status=confirmed&instance_uuid=${id}`, { token: admin, headers: mv('2.59') });
  assert.deepEqual(byStatus.body.migrations.map((m: any) => m.status), ['confirmed']);
  assert.equal(byStatus.body.migrations[0].user_id, undefined, 'owners from 2.80');
  const byType = await api(tc.url, 'GET', `${V}/os-migrations?migration_type=live-migration`, { token: admin, headers: mv('2.59') });
  assert.deepEqual(byType.body.migrations, []);
  const byHost = await api(tc.url, 'GET', `${V}/os-migrations?host=nowhere`, { token: admin, headers: mv('2.59') });
  assert.deepEqual(byHost.body.migrations, []);

  // Paging (2.59): limit, marker, next link.
  const p1 = await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&limit=1`, { token: admin, headers: mv('2.59') });
  assert.equal(p1.body.migrations.length, 1);
  assert.equal(p1.body.migrations[0].status, 'reverted');
  assert.match(p1.body.migrations_links[0].href, /marker=/);
  const p2 = await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&limit=1&marker=${p1.body.migrations[0].uuid}`, { token: admin, headers: mv('2.59') });
  assert.equal(p2.body.migrations[0].status, 'confirmed');
  const since = await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&changes-since=${encodeURIComponent(p1.body.migrations[0].updated_at)}`, { token: admin, headers: mv('2.59') });
  assert.ok(since.body.migrations.some((m: any) => m.status === 'reverted'));

  // Bad input.
  for (const q of ['limit=-1', 'marker=00000000-0000-0000-0000-000000000000', 'changes-since=yesterday', 'migration_type=teleport']) {
    const bad = await api(tc.url, 'GET', `${V}/os-migrations?${q}`, { token: admin, headers: mv('2.59') });
    assert.equal(bad.status, 400, `${q}: ${bad.text}`);
  }
  // Admins only.
  assert.equal((await api(tc.url, 'GET', `${V}/os-migrations`, { token: demo })).status, 403);

  // /servers/{id}/migrations: live migrations in progress (none here), 2.23+.
  const sm = await api(tc.url, 'GET', `${V}/servers/${id}/migrations`, { token: admin, headers: mv('2.80') });
  assert.equal(sm.status, 200, sm.text);
  assert.deepEqual(sm.body.migrations, []);
  assert.equal((await api(tc.url, 'GET', `${V}/servers/${id}/migrations`, { token: admin })).status, 404, 'before 2.23');
  const one = await api(tc.url, 'GET', `${V}/servers/${id}/migrations/${m1.id}`, { token: admin, headers: mv('2.80') });
  assert.equal(one.status, 404, 'a finished resize is not an in-progress live migration');
  assert.equal((await api(tc.url, 'GET', `${V}/servers/${id}/migrations`, { token: demo, headers: mv('2.80') })).status, 403);
  assert.equal((await api(tc.url, 'GET', `${V}/servers/nope/migrations`, { token: admin, headers: mv('2.80') })).status, 404);
});

// Moves between two simulated hosts: the agent protocol, placement and records, without guests
// (real guests and disks move in migrate.test.ts).
test('cold migrate, resize elsewhere, confirm/revert, rollback and refusals between two hosts', async () => {
  const pl = tc.cloud.placement.client;
  const svc = tc.cloud.compute.service;
  const r = await api(tc.url, 'POST', `${V}/servers`, { token: admin, body: { server: { name: 'mover', imageRef: IMG, flavorRef: '42' } } });
  const id = r.body.server.id;
  await waitStatus(id, 'ACTIVE');
  const hostOf = async () => (await api(tc.url, 'GET', `${V}/servers/${id}`, { token: admin })).body.server['OS-EXT-SRV-ATTR:host'];
  const source = await hostOf();

  // Only one host: a clear 400, nothing changes.
  const lone = await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { migrate: null } });
  assert.equal(lone.status, 400, lone.text);
  assert.match(lone.body.badRequest.message, /No valid host/);
  assert.equal((await waitStatus(id, 'ACTIVE'))['OS-EXT-SRV-ATTR:host'], source);
  assert.deepEqual(Object.keys((await pl.getAllocations(id)).allocations).length, 1);

  hosts.push(await fakeHost(tc, 'fake-m2', { vcpus: 4, memoryMb: 4096, diskGb: 50 }));
  // Demo cannot migrate; a host before 2.56 or an unknown one is refused.
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: demo, body: { migrate: null } })).status, 404, 'not even visible to demo');
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { migrate: { host: 'fake-m2' } } })).status, 400, 'host needs 2.56');
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, headers: mv('2.56'), body: { migrate: { host: 'nowhere' } } })).status, 400);
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, headers: mv('2.56'), body: { migrate: { host: source } } })).status, 400);

  // Migrate → VERIFY_RESIZE on the other host; the source allocation is held by the migration.
  const mig = await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, headers: mv('2.56'), body: { migrate: { host: 'fake-m2' } } });
  assert.equal(mig.status, 202, mig.text);
  const moved = await waitStatus(id, 'VERIFY_RESIZE');
  assert.equal(moved['OS-EXT-SRV-ATTR:host'], 'fake-m2');
  let [m] = (await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&migration_type=migration`, { token: admin, headers: mv('2.59') })).body.migrations;
  assert.equal(m.status, 'finished');
  assert.equal(m.source_compute, source);
  assert.equal(m.dest_compute, 'fake-m2');
  const provider = async (consumer: string) => Object.keys((await pl.getAllocations(consumer)).allocations);
  const uuidOf = async (name: string) => (await tc.cloud.compute.nova.hosts.find(name))!.uuid;
  assert.deepEqual(await provider(m.uuid), [await uuidOf(source)], 'the migration holds the source');
  assert.deepEqual(await provider(id), [await uuidOf('fake-m2')], 'the server holds the destination');
  const inst = await svc.getInstance(id);
  assert.equal(inst!.host, 'fake-m2');
  assert.equal(inst!.peer?.host, source, 'the source copy is kept until confirm');
  assert.equal(inst!.diskSource, null, 'transfer finished');
  assert.equal(svc.transfers.has(m.uuid), false, 'staged disk removed');

  assert.equal((await tc.openstack(['server', 'resize', 'confirm', id])).code, 0);
  await waitStatus(id, 'ACTIVE');
  m = (await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&migration_type=migration`, { token: admin, headers: mv('2.59') })).body.migrations[0];
  assert.equal(m.status, 'confirmed');
  assert.deepEqual(await provider(m.uuid), [], 'confirm released the source');
  assert.equal((await svc.getInstance(id))!.peer, null, 'source copy deleted');

  // Resize prefers the other host; revert brings it back with the old flavor and allocation.
  assert.equal((await tc.openstack(['server', 'resize', '--flavor', 'm1.micro', id])).code, 0);
  const rs = await waitStatus(id, 'VERIFY_RESIZE');
  assert.equal(rs['OS-EXT-SRV-ATTR:host'], source);
  assert.equal((await svc.getInstance(id))!.ramMb, 256);
  assert.equal((await tc.openstack(['server', 'resize', 'revert', id])).code, 0);
  const back = await waitStatus(id, 'ACTIVE');
  assert.equal(back['OS-EXT-SRV-ATTR:host'], 'fake-m2');
  assert.equal(back.flavor.id, '42');
  const after = await svc.getInstance(id);
  assert.equal(after!.ramMb, 192);
  assert.equal(after!.peer, null);
  const rm = (await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&migration_type=resize`, { token: admin, headers: mv('2.59') })).body.migrations[0];
  assert.equal(rm.status, 'reverted');
  assert.deepEqual(await provider(rm.uuid), []);
  const alloc = (await pl.getAllocations(id)).allocations;
  assert.deepEqual(Object.keys(alloc), [await uuidOf('fake-m2')]);
  assert.equal(Object.values(alloc)[0]!.resources.MEMORY_MB, 192);

  // The destination fails to spawn: rolled back to the source, ACTIVE, migration error, nothing leaked.
  hosts[0]!.failSpawns = true;
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { migrate: null } })).status, 202);
  const failed = await until(async () => {
    const x = (await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&migration_type=migration`, { token: admin, headers: mv('2.59') })).body.migrations[0];
    return x.status === 'error' ? x : undefined;
  });
  hosts[0]!.failSpawns = false;
  const rolled = await waitStatus(id, 'ACTIVE');
  assert.equal(rolled['OS-EXT-SRV-ATTR:host'], 'fake-m2');
  assert.deepEqual(await provider(failed.uuid), []);
  assert.deepEqual(await provider(id), [await uuidOf('fake-m2')]);
  assert.equal((await svc.getInstance(id))!.peer, null, 'the failed copy is deleted');
  assert.equal(svc.transfers.has(failed.uuid), false);
  const actions = await tc.openstackJson(['server', 'event', 'list', id]);
  assert.ok(actions.some((a: any) => a.Action === 'migrate'));

  // A project member cannot migrate their own server (admin policy): 403 through the real CLI.
  const mine = await api(tc.url, 'POST', `${V}/servers`, { token: demo, body: { server: { name: 'demo-mover', imageRef: IMG, flavorRef: '42' } } });
  assert.equal(mine.status, 202, mine.text);
  await waitStatus(mine.body.server.id, 'ACTIVE');
  const denied = await tc.openstack(['server', 'migrate', mine.body.server.id], { as: 'demo' });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /403|not allowed|[Pp]olicy/);
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${mine.body.server.id}/action`, { token: demo, body: { migrate: null } })).status, 403);
  assert.equal((await tc.openstack(['server', 'delete', '--wait', mine.body.server.id], { as: 'demo' })).code, 0);

  // Delete while waiting for confirm: both copies and both allocations go.
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { migrate: null } })).status, 202);
  await waitStatus(id, 'VERIFY_RESIZE');
  const last = (await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}&limit=1`, { token: admin, headers: mv('2.59') })).body.migrations[0];
  assert.equal((await tc.openstack(['server', 'delete', '--wait', id])).code, 0);
  assert.equal(await svc.getInstance(id), undefined);
  assert.deepEqual(await provider(id), []);
  assert.deepEqual(await provider(last.uuid), []);
});

async function until<T>(fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 150));
  }
}

test('agent API for moved disks and snapshots: token, unexpected uploads, nothing staged', async () => {
  const base = `${tc.url}/compute/agent/v1/hosts/fake-m1`;
  const token = tc.cloud.compute.agentToken();
  const put = (path: string, auth = token) => fetch(`${base}${path}`, {
    method: 'PUT', body: Buffer.from('not a disk'),
    headers: { 'Content-Type': 'application/octet-stream', ...(auth ? { Authorization: `Bearer ${auth}` } : {}) },
  });
  const mid = '11111111-2222-3333-4444-555555555555';
  assert.equal((await put(`/instances/x/disk?migration=${mid}`, '')).status, 401);
  assert.equal((await put(`/instances/x/disk?migration=${mid}`)).status, 409, 'no export expected');
  assert.equal((await put('/instances/x/disk?migration=nope')).status, 400);
  assert.equal((await put(`/snapshots/${mid}`)).status, 409, 'no snapshot expected');
  const get = await fetch(`${base}/instances/x/disk`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(get.status, 404);
  assert.equal(tc.cloud.compute.service.transfers.has(mid), false);
});

test('a cancelled migration stays cancelled: a late progress update cannot revive it', async () => {
  const svc = new MigrationService(tc.cloud.db.kysely);
  const m = await svc.create({ instanceUuid: '00000000-0000-4000-8000-00000000c0de', migrationType: 'live-migration', status: 'queued',
    sourceCompute: 'x', oldFlavorId: '1', newFlavorId: '1', projectId: 'p', userId: 'u' });
  assert.equal((await svc.update(m.uuid, { status: 'cancelled', error: 'aborted by request' }))?.status, 'cancelled');
  // A reconciler that read the record before the abort mirrors the agents' progress.
  const after = await svc.update(m.uuid, { status: 'preparing', memoryTotalBytes: 5 });
  assert.equal(after?.status, 'cancelled');
  assert.equal((await svc.update(m.uuid, { status: 'error' }))?.status, 'error', 'finished statuses still apply');
});
