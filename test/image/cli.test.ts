// The image API through the real `openstack` CLI (openstacksdk), plus raw HTTP for bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import type { ImageModule } from '../../src/image/index.js';
import { filesIn, qcow2, rawFile, workDir } from './helpers.js';

let tc: TestCloud;
let mod: ImageModule;
let work: ReturnType<typeof workDir>;
let guest: string;
const ids: Record<string, string> = {};
const tokens: Record<string, string> = {};
const projects: Record<string, string> = {};

async function token(user: 'admin' | 'demo'): Promise<{ token: string; project: string }> {
  const password = user === 'admin' ? tc.adminPassword : tc.demoPassword;
  const r = await fetch(`${tc.url}/identity/v3/auth/tokens`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ auth: {
      identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
      scope: { project: { name: user, domain: { id: 'default' } } },
    } }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  const body = await r.json() as { token: { project: { id: string } } };
  return { token: r.headers.get('x-subject-token')!, project: body.token.project.id };
}
const md5 = (p: string) => createHash('md5').update(readFileSync(p)).digest('hex');

before(async () => {
  work = workDir();
  guest = qcow2(work.dir, 'guest.qcow2', '32M');
  tc = await startTestCloud({ image: { bootstrapImage: guest } });
  mod = tc.cloud.modules.find((m) => m.name === 'image') as ImageModule;
  for (const u of ['admin', 'demo'] as const) {
    const t = await token(u);
    tokens[u] = t.token;
    projects[u] = t.project;
  }
});
after(async () => {
  await tc?.stop();
  work?.cleanup();
});

test('bootstrap registered the test guest image, public, owned by admin', async () => {
  const list = await tc.openstackJson<any[]>(['image', 'list', '--long'], { as: 'demo' });
  const row = list.find((i) => i.Name === 'stratus-test');
  assert.ok(row, JSON.stringify(list));
  assert.equal(row.Status, 'active');
  assert.equal(row.Visibility, 'public');
  assert.equal(row.Checksum, md5(guest));
  assert.equal(row.Project, projects.admin);
  ids.guest = row.ID;
});

test('create --file, show, set/unset properties, save', async () => {
  const file = qcow2(work.dir, 'cli.qcow2', '48M');
  const created = await tc.openstackJson(['image', 'create', '--file', file, '--disk-format', 'qcow2',
    '--container-format', 'bare', '--property', 'os_distro=stratus', '--tag', 'cli', 'cli-image']);
  ids.cli = created.id;
  const shown = await tc.openstackJson(['image', 'show', 'cli-image']);
  assert.equal(shown.status, 'active');
  assert.equal(shown.checksum, md5(file));
  assert.equal(shown.size, readFileSync(file).length);
  assert.equal(shown.virtual_size, 48 * 1024 * 1024);
  assert.equal(shown.disk_format, 'qcow2');
  assert.equal(shown.properties.os_distro, 'stratus');
  assert.equal(shown.properties.os_hash_algo ?? shown.os_hash_algo, 'sha512');
  assert.deepEqual(shown.tags, ['cli']);

  let r = await tc.openstack(['image', 'set', '--property', 'color=blue', '--min-ram', '64', '--name', 'cli-image2', ids.cli]);
  assert.equal(r.code, 0, r.stderr);
  r = await tc.openstack(['image', 'unset', '--property', 'os_distro', ids.cli]);
  assert.equal(r.code, 0, r.stderr);
  const after = await tc.openstackJson(['image', 'show', ids.cli]);
  assert.equal(after.name, 'cli-image2');
  assert.equal(after.min_ram, 64);
  assert.equal(after.properties.color, 'blue');
  assert.equal(after.properties.os_distro, undefined);

  const out = join(work.dir, 'saved.qcow2');
  r = await tc.openstack(['image', 'save', '--file', out, ids.cli]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(md5(out), md5(file));
});

test('sharing: add project, accept as demo, then demo lists it', async () => {
  const r1 = await tc.openstack(['image', 'set', '--shared', ids.cli]);
  assert.equal(r1.code, 0, r1.stderr);
  const member = await tc.openstackJson(['image', 'add', 'project', ids.cli, projects.demo]);
  assert.equal(member.status, 'pending');
  const before = await tc.openstackJson<any[]>(['image', 'list'], { as: 'demo' });
  assert.ok(!before.some((i) => i.ID === ids.cli), 'pending shares are not listed');
  const r = await tc.openstack(['image', 'set', '--accept', ids.cli], { as: 'demo' });
  assert.equal(r.code, 0, r.stderr);
  const list = await tc.openstackJson<any[]>(['image', 'list'], { as: 'demo' });
  assert.ok(list.some((i) => i.ID === ids.cli), JSON.stringify(list));
  const members = await tc.openstackJson<any[]>(['image', 'member', 'list', ids.cli]);
  assert.equal(members[0]['Status'], 'accepted');
});

test('deactivate: data refused to non-admins until reactivated', async () => {
  let r = await tc.openstack(['image', 'set', '--deactivate', ids.cli]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await tc.openstackJson(['image', 'show', ids.cli])).status, 'deactivated');
  const dl = await api(tc.url, 'GET', `/image/v2/images/${ids.cli}/file`, { token: tokens.demo });
  assert.equal(dl.status, 403);
  assert.match(dl.body.message, /deactivated/);
  r = await tc.openstack(['image', 'set', '--activate', ids.cli]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await api(tc.url, 'GET', `/image/v2/images/${ids.cli}/file`, { token: tokens.demo })).status, 200);
});

test('tenant isolation: private images hidden, public ones not deletable by others', async () => {
  // (--file: without it the CLI would read image data from stdin.)
  const priv = await tc.openstackJson(['image', 'create', '--private', '--file', rawFile(work.dir, 'p.raw'),
    '--disk-format', 'raw', '--container-format', 'bare', 'admin-private']);
  const show = await tc.openstack(['image', 'show', priv.id], { as: 'demo' });
  assert.notEqual(show.code, 0);
  assert.match(show.stderr, /No Image found|Could not find|404/i);
  const list = await tc.openstackJson<any[]>(['image', 'list'], { as: 'demo' });
  assert.ok(!list.some((i) => i.ID === priv.id));
  const del = await tc.openstack(['image', 'delete', ids.guest], { as: 'demo' });
  assert.notEqual(del.code, 0);
  assert.equal((await api(tc.url, 'DELETE', `/image/v2/images/${ids.guest}`, { token: tokens.demo })).status, 403);
  const pub = await api(tc.url, 'POST', '/image/v2/images', { token: tokens.demo, body: { name: 'x', visibility: 'public' } });
  assert.equal(pub.status, 403, 'only admins publish public images');
  const r = await tc.openstack(['image', 'delete', priv.id, ids.cli]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await api(tc.url, 'GET', `/image/v2/images/${ids.cli}`, { token: tokens.admin })).status, 404);
});

test('create --import uses glance-direct (stage + import)', async () => {
  const file = qcow2(work.dir, 'imp.qcow2');
  const r = await tc.openstack(['image', 'create', '--import', '--file', file, '--disk-format', 'qcow2', '--container-format', 'bare', 'imported'], { as: 'demo' });
  assert.equal(r.code, 0, r.stderr);
  await mod.transfer.idle();
  const list = await api(tc.url, 'GET', '/image/v2/images?name=imported', { token: tokens.demo });
  assert.equal(list.body.images[0].status, 'active');
  assert.equal(list.body.images[0].checksum, md5(file));
  const info = await api(tc.url, 'GET', '/image/v2/info/import', { token: tokens.demo });
  assert.deepEqual(info.body['import-methods'].value, ['glance-direct', 'copy-image']);
});

test('bad input over HTTP: each a clear 4xx, nothing half-stored', async () => {
  const t = tokens.demo;
  const mk = async (body: Record<string, unknown>) => {
    const r = await api(tc.url, 'POST', '/image/v2/images', { token: t, body });
    assert.equal(r.status, 201, r.text);
    assert.ok(r.headers.get('openstack-image-import-methods')?.includes('glance-direct'));
    return r.body.id as string;
  };
  const put = (id: string, data: Buffer, headers: Record<string, string> = {}) => api(tc.url, 'PUT', `/image/v2/images/${id}/file`,
    { token: t, rawBody: data, headers: { 'Content-Type': 'application/octet-stream', ...headers } });
  const storeDir = mod.config.stores[0]!.path!;
  const filesBefore = filesIn(storeDir).length;

  const id = await mk({ name: 'bad', disk_format: 'qcow2', container_format: 'bare' });
  const rawData = readFileSync(rawFile(work.dir, 'x.raw'));
  let r = await put(id, rawData);
  assert.equal(r.status, 400);
  assert.match(r.body.message, /does not match disk_format 'qcow2'/);
  assert.equal(r.body.code, '400 Bad Request');
  const q = readFileSync(qcow2(work.dir, 'ok.qcow2'));
  r = await put(id, q, { 'Content-MD5': '0'.repeat(32) });
  assert.equal(r.status, 400);
  assert.match(r.body.message, /Checksum verification failed/);
  r = await put(id, readFileSync(qcow2(work.dir, 'bk.qcow2', '8M', ['-b', '/etc/shadow', '-F', 'raw'])));
  assert.equal(r.status, 400);
  assert.match(r.body.message, /backing file/);
  r = await api(tc.url, 'PUT', `/image/v2/images/${id}/file`, { token: t, rawBody: q, headers: { 'Content-Type': 'text/plain' } });
  assert.equal(r.status, 415);
  assert.equal((await api(tc.url, 'GET', `/image/v2/images/${id}`, { token: t })).body.status, 'queued');
  assert.equal(filesIn(storeDir).length, filesBefore);

  // Malformed patches.
  const patch = (body: string, type = 'application/openstack-images-v2.1-json-patch') =>
    api(tc.url, 'PATCH', `/image/v2/images/${id}`, { token: t, rawBody: body, headers: { 'Content-Type': type } });
  assert.equal((await patch('{not json')).status, 400);
  assert.equal((await patch('{"op":"add"}')).status, 400);
  assert.equal((await patch('[{"op":"move","path":"/name","value":"x"}]')).status, 400);
  assert.equal((await patch('[{"op":"add","path":"/name"}]')).status, 400);
  assert.equal((await patch('[{"op":"replace","path":"/name","value":"x"}]', 'application/json')).status, 415);
  assert.equal((await patch('[{"op":"replace","path":"/checksum","value":"x"}]')).status, 403);
  assert.equal((await api(tc.url, 'GET', `/image/v2/images/${id}`, { token: t })).body.name, 'bad');

  // Over quota: image count (413 at create) and total size (413 while streaming).
  await tc.cloud.identity.setProjectLimit({ projectId: projects.demo, serviceType: 'image', resourceName: 'image_size_total', value: 0 });
  r = await put(id, q);
  assert.equal(r.status, 413);
  assert.match(r.body.message, /image_size_total/);
  await tc.cloud.identity.setProjectLimit({ projectId: projects.demo, serviceType: 'image', resourceName: 'image_count_total', value: 1 });
  r = await api(tc.url, 'POST', '/image/v2/images', { token: t, body: { name: 'one-too-many' } });
  assert.equal(r.status, 413);
  assert.match(r.body.message, /image_count_total/);
  assert.equal(filesIn(storeDir).length, filesBefore);
  const usage = await api(tc.url, 'GET', '/image/v2/info/usage', { token: t });
  assert.equal(usage.body.usage.image_count_total.limit, 1);
});

test('list filters, sorting and next links; ranges; schemas', async () => {
  const t = tokens.admin;
  for (const n of ['l1', 'l2', 'l3']) await api(tc.url, 'POST', '/image/v2/images', { token: t, body: { name: n, tags: ['paged'], min_disk: 1 } });
  let r = await api(tc.url, 'GET', '/image/v2/images?tag=paged&sort=name:asc&limit=2', { token: t });
  assert.deepEqual(r.body.images.map((i: any) => i.name), ['l1', 'l2']);
  assert.match(r.body.next, /^\/v2\/images\?.*marker=/);
  r = await api(tc.url, 'GET', `/image${r.body.next}`, { token: t });
  assert.deepEqual(r.body.images.map((i: any) => i.name), ['l3']);
  assert.equal(r.body.next, undefined);
  assert.equal((await api(tc.url, 'GET', '/image/v2/images?sort_key=nope', { token: t })).status, 400);
  assert.equal((await api(tc.url, 'GET', '/image/v2/images?marker=00000000-0000-0000-0000-000000000000', { token: t })).status, 400);

  const whole = readFileSync(guest);
  const part = await fetch(`${tc.url}/image/v2/images/${ids.guest}/file`, { headers: { 'X-Auth-Token': t, Range: 'bytes=10-19' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 10-19/${whole.length}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(10, 20));
  const full = await fetch(`${tc.url}/image/v2/images/${ids.guest}/file`, { headers: { 'X-Auth-Token': t } });
  assert.equal(full.headers.get('content-md5'), md5(guest));
  await full.arrayBuffer();
  const bad = await api(tc.url, 'GET', `/image/v2/images/${ids.guest}/file`, { token: t, headers: { Range: `bytes=${whole.length}-` } });
  assert.equal(bad.status, 416);
  for (const s of ['image', 'images', 'member', 'members']) {
    assert.equal((await api(tc.url, 'GET', `/image/v2/schemas/${s}`, { token: t })).body.name, s);
  }
  assert.ok(existsSync(mod.config.stores[0]!.path!));
});
