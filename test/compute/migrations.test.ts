// Migration records and their read APIs on a simulated host (fake-agent.ts): resizes are
// recorded (finished → confirmed / reverting → reverted), os-migrations filters and pages them
// (2.59) and shows owners (2.80), /servers/{id}/migrations lists live migrations in progress
// (2.23+); admins only; bad input is a 400.
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
