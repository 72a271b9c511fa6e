// The image service in-process: storage, inspection, checksums, quotas, patching, visibility,
// import and recovery. Callers are made-up AuthContexts; identity is only asked for limits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import type { ImageModule } from '../../src/image/index.js';
import { ImageService } from '../../src/image/service.js';
import { ImageTransfer } from '../../src/image/transfer.js';
import { ApiError } from '../../src/core/errors.js';
import { caller, filesIn, qcow2, rawFile, workDir } from './helpers.js';

let tc: TestCloud;
let mod: ImageModule;
let work: ReturnType<typeof workDir>;
const admin = caller('p-admin', ['admin', 'member', 'reader']);
const alice = caller('p-alice', ['member', 'reader']);
const bob = caller('p-bob', ['member', 'reader']);

const status = async (p: Promise<unknown>): Promise<number> => {
  try {
    await p;
    return 0;
  } catch (e) {
    if (e instanceof ApiError) return e.status;
    throw e;
  }
};
const md5 = (path: string) => createHash('md5').update(readFileSync(path)).digest('hex');
const storeDir = () => mod.config.stores[0]!.path!;

before(async () => {
  work = workDir();
  tc = await startTestCloud({
    image: {
      stores: [{ id: 'local' }, { id: 'backup', path: join(work.dir, 'backup-store') }],
      importConvertTo: 'qcow2',
    },
  });
  mod = tc.cloud.modules.find((m) => m.name === 'image') as ImageModule;
});
after(async () => {
  await tc?.stop();
  work?.cleanup();
});

test('upload streams, hashes and inspects; download with ranges', async () => {
  const file = qcow2(work.dir, 'a.qcow2', '64M');
  const img = await mod.createImage(alice, { name: 'a', disk_format: 'qcow2', container_format: 'bare' });
  assert.equal(img.status, 'queued');
  assert.equal(img.owner, 'p-alice');
  const done = await mod.uploadImageData(img.id, alice, { path: file });
  assert.equal(done.status, 'active');
  assert.equal(done.checksum, md5(file));
  assert.equal(done.osHashAlgo, 'sha512');
  assert.equal(done.osHashValue, createHash('sha512').update(readFileSync(file)).digest('hex'));
  assert.equal(done.size, readFileSync(file).length);
  assert.equal(done.virtualSize, 64 * 1024 * 1024);
  assert.deepEqual(done.stores, ['local']);

  const data = await mod.openImageData(img.id, alice);
  const chunks: Buffer[] = [];
  for await (const c of data.stream) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), readFileSync(file));
  const part = await mod.openImageData(img.id, 'system', { start: 4, end: 11 });
  const bytes: Buffer[] = [];
  for await (const c of part.stream) bytes.push(c as Buffer);
  assert.deepEqual(Buffer.concat(bytes), readFileSync(file).subarray(4, 12));
  assert.equal(part.length, 8);

  // A second upload into an active image is a conflict.
  assert.equal(await status(mod.uploadImageData(img.id, alice, { path: file })), 409);
});

test('bad data is refused with a 4xx and leaves nothing stored', async () => {
  const before = filesIn(storeDir()).length;
  const cases: { name: string; file: string; disk: string; props?: Record<string, string>; want: RegExp }[] = [
    { name: 'raw-as-qcow2', file: rawFile(work.dir, 'r.bin'), disk: 'qcow2', want: /does not match disk_format 'qcow2'/ },
    { name: 'qcow2-as-raw', file: qcow2(work.dir, 'q.qcow2'), disk: 'raw', want: /the data is qcow2/ },
    { name: 'backing', file: qcow2(work.dir, 'b.qcow2', '16M', ['-b', '/etc/passwd', '-F', 'raw']), disk: 'qcow2', want: /backing file/ },
    { name: 'data-file', file: qcow2(work.dir, 'd.qcow2', '16M', ['-o', `data_file=${join(work.dir, 'd.raw')}`]), disk: 'qcow2', want: /data file/ },
    { name: 'checksum', file: qcow2(work.dir, 'c.qcow2'), disk: 'qcow2', props: { 'owner_specified.openstack.md5': '0'.repeat(32) }, want: /Checksum verification failed/ },
  ];
  for (const c of cases) {
    const img = await mod.createImage(alice, { name: c.name, disk_format: c.disk, container_format: 'bare', properties: c.props });
    await assert.rejects(mod.uploadImageData(img.id, alice, { path: c.file }), (e: ApiError) => {
      assert.equal(e.status, 400, `${c.name}: ${e.message}`);
      assert.match(e.message, c.want);
      return true;
    });
    const after = await mod.getImage(img.id, alice);
    assert.equal(after.status, 'queued', c.name);
    assert.equal(after.size, null, c.name);
  }
  assert.equal(filesIn(storeDir()).length, before, 'no file left in the store, temporary or not');

  // A client that goes away mid-upload: nothing stored either.
  const img = await mod.createImage(alice, { name: 'cut', disk_format: 'raw', container_format: 'bare' });
  const src = new Readable({ read() {} });
  src.push(Buffer.alloc(1024 * 1024));
  setTimeout(() => src.destroy(new Error('aborted')), 50);
  assert.equal(await status(mod.transfer.upload(alice, img.id, src, { size: 10 * 1024 * 1024 })), 400);
  assert.equal((await mod.getImage(img.id, alice)).status, 'queued');
  assert.equal(filesIn(storeDir()).length, before);
});

test('quotas: image count, total size, uploading count', async () => {
  const limits: Record<string, number> = { image_count_total: 2, image_size_total: 1, image_count_uploading: 5 };
  const identity = { ...mod.service.deps.identity, getLimit: async (q: { resourceName: string }) => limits[q.resourceName] };
  const svc = new ImageService({ ...mod.service.deps, identity });
  const transfer = new ImageTransfer(svc);
  const carol = caller('p-carol', ['member', 'reader']);
  const one = await svc.create(carol, { name: 'q1', disk_format: 'raw', container_format: 'bare' });
  await svc.create(carol, { name: 'q2', disk_format: 'raw', container_format: 'bare' });
  await assert.rejects(svc.create(carol, { name: 'q3' }), (e: ApiError) => e.status === 413 && /image_count_total/.test(e.message));
  // 1 MiB allowed: 2 MiB fails while streaming (no Content-Length given), and nothing stays.
  const big = rawFile(work.dir, 'big.bin', 2 * 1024 * 1024);
  await assert.rejects(transfer.upload(carol, one.id, createReadStream(big)), (e: ApiError) => e.status === 413 && /image_size_total/.test(e.message));
  assert.equal((await svc.store.get(one.id))!.status, 'queued');
  // Declared up front: refused before a byte is read.
  await assert.rejects(transfer.upload(carol, one.id, createReadStream(big), { size: 2 * 1024 * 1024 }), (e: ApiError) => e.status === 413);
  limits.image_count_uploading = 0;
  await assert.rejects(transfer.upload(carol, one.id, createReadStream(big)), (e: ApiError) => e.status === 413 && /image_count_uploading/.test(e.message));
});

test('JSON-patch: properties, read-only attributes, missing properties, publicize', async () => {
  const img = await mod.createImage(alice, { name: 'p', properties: { color: 'red' } });
  const u = await mod.service.update(alice, img.id, [
    { op: 'add', path: '/size_hint', value: 'big' }, { op: 'replace', path: '/color', value: 'blue' },
    { op: 'replace', path: '/name', value: 'p2' }, { op: 'add', path: '/tags/-', value: 't1' },
    { op: 'replace', path: '/min_ram', value: 512 },
  ]);
  assert.deepEqual(u.properties, { color: 'blue', size_hint: 'big' });
  assert.equal(u.name, 'p2');
  assert.deepEqual(u.tags, ['t1']);
  assert.equal(u.minRam, 512);
  const r = await mod.service.update(alice, img.id, [{ op: 'remove', path: '/color' }]);
  assert.deepEqual(r.properties, { size_hint: 'big' });
  assert.equal(await status(mod.service.update(alice, img.id, [{ op: 'replace', path: '/status', value: 'active' }])), 403);
  assert.equal(await status(mod.service.update(alice, img.id, [{ op: 'remove', path: '/nothere' }])), 409);
  assert.equal(await status(mod.service.update(alice, img.id, [{ op: 'replace', path: '/min_ram', value: -1 }])), 400);
  assert.equal(await status(mod.service.update(alice, img.id, [{ op: 'add', path: '/x', value: 5 }])), 400);
  assert.equal(await status(mod.service.update(alice, img.id, [{ op: 'replace', path: '/visibility', value: 'public' }])), 403);
  assert.equal((await mod.service.update(admin, img.id, [{ op: 'replace', path: '/visibility', value: 'public' }])).visibility, 'public');
  assert.equal((await mod.getImage(img.id, alice)).name, 'p2');
});

test('visibility and members', async () => {
  const priv = await mod.createImage(alice, { name: 'priv', visibility: 'private' });
  const shared = await mod.createImage(alice, { name: 'shared', visibility: 'shared' });
  const pub = await mod.createImage(admin, { name: 'pub', visibility: 'public' });
  const comm = await mod.createImage(alice, { name: 'comm', visibility: 'community' });
  assert.equal(await status(mod.getImage(priv.id, bob)), 404);
  assert.equal(await status(mod.service.delete(bob, pub.id)), 403);
  assert.equal(await status(mod.service.update(bob, pub.id, [{ op: 'replace', path: '/name', value: 'x' }])), 403);
  const names = async (c = bob, q = {}) => (await mod.service.list(c, { sort: [{ key: 'name', dir: 'asc' }], limit: 100, ...q })).map((i) => i.name);
  assert.ok((await names()).includes('pub'));
  assert.ok(!(await names()).includes('priv'));
  assert.ok(!(await names()).includes('comm'), 'community images of others are not in the default list');
  assert.ok((await names(bob, { visibility: 'community' })).includes('comm'));

  assert.equal(await status(mod.service.addMember(alice, priv.id, 'p-bob')), 403);
  assert.equal(await status(mod.service.addMember(bob, shared.id, 'p-bob')), 404);
  await mod.service.addMember(alice, shared.id, 'p-bob');
  assert.equal(await status(mod.service.addMember(alice, shared.id, 'p-bob')), 409);
  assert.ok(!(await names()).includes('shared'), 'pending: not listed');
  assert.ok((await names(bob, { memberStatus: 'pending' })).includes('shared'));
  assert.equal(await status(mod.service.updateMember(alice, shared.id, 'p-bob', 'accepted')), 403, 'only the member accepts');
  await mod.service.updateMember(bob, shared.id, 'p-bob', 'accepted');
  assert.ok((await names()).includes('shared'));
  assert.equal((await mod.service.listMembers(bob, shared.id)).length, 1);
  await mod.service.deleteMember(alice, shared.id, 'p-bob');
  assert.equal(await status(mod.getImage(shared.id, bob)), 404);
});

test('deactivate, protected, delete removes the data', async () => {
  const file = qcow2(work.dir, 'dp.qcow2');
  const img = await mod.createImage(admin, { name: 'dp', disk_format: 'qcow2', container_format: 'bare', visibility: 'public', protected: true });
  await mod.uploadImageData(img.id, admin, { path: file });
  await mod.service.setActive(admin, img.id, false);
  assert.equal((await mod.getImage(img.id, bob)).status, 'deactivated');
  assert.equal(await status(mod.openImageData(img.id, bob)), 403);
  (await mod.openImageData(img.id, admin)).stream.destroy();
  await mod.service.setActive(admin, img.id, true);
  (await mod.openImageData(img.id, bob)).stream.destroy();
  assert.equal(await status(mod.deleteImage(img.id, admin)), 403, 'protected');
  await mod.service.update(admin, img.id, [{ op: 'replace', path: '/protected', value: false }]);
  assert.ok(filesIn(storeDir()).includes(img.id));
  await mod.deleteImage(img.id, admin);
  assert.ok(!filesIn(storeDir()).includes(img.id));
  assert.equal(await status(mod.getImage(img.id, admin)), 404);
});

test('glance-direct import converts raw to qcow2; copy-image to a second store', async () => {
  const raw = join(work.dir, 'disk.raw');
  writeFileSync(raw, Buffer.alloc(4 * 1024 * 1024, 7));
  const img = await mod.createImage(alice, { name: 'imp', disk_format: 'raw', container_format: 'bare' });
  await mod.transfer.stage(alice, img.id, createReadStream(raw));
  const staged = await mod.getImage(img.id, alice);
  assert.equal(staged.status, 'uploading');
  assert.equal(staged.stagedSize, 4 * 1024 * 1024);
  assert.equal(await status(mod.transfer.import(alice, img.id, { method: 'web-download' })), 400);
  await mod.transfer.import(alice, img.id, { method: 'glance-direct' });
  await mod.transfer.idle();
  const done = await mod.getImage(img.id, alice);
  assert.equal(done.status, 'active');
  assert.equal(done.diskFormat, 'qcow2', 'converted as configured');
  assert.equal(done.virtualSize, 4 * 1024 * 1024);
  assert.ok(filesIn(mod.config.stagingDir).length === 0, 'staging emptied');

  assert.equal(await status(mod.transfer.import(alice, img.id, { method: 'copy-image', stores: ['backup'] })), 403, 'admin only');
  await mod.transfer.import(admin, img.id, { method: 'copy-image', stores: ['backup'] });
  await mod.transfer.idle();
  const copied = await mod.getImage(img.id, alice);
  assert.deepEqual(copied.stores, ['local', 'backup']);
  assert.equal(copied.properties.os_glance_importing_to_stores, undefined);
  assert.equal(md5(join(work.dir, 'backup-store', img.id)), done.checksum);
  assert.equal(await status(mod.transfer.import(admin, img.id, { method: 'copy-image', stores: ['backup'] })), 409);

  // Staged data that is not what disk_format says is refused at import time.
  const bad = await mod.createImage(alice, { name: 'imp-bad', disk_format: 'qcow2', container_format: 'bare' });
  await mod.transfer.stage(alice, bad.id, createReadStream(raw));
  assert.equal(await status(mod.transfer.import(alice, bad.id, { method: 'glance-direct' })), 400);
});

test('paging with markers over several sort keys', async () => {
  const carol = caller('p-pager', ['member', 'reader']);
  for (const n of ['e', 'b', 'd', 'a', 'c', 'b']) await mod.createImage(carol, { name: `pg-${n}`, visibility: 'private', min_ram: n.charCodeAt(0) % 2 });
  const q = { owner: 'p-pager', sort: [{ key: 'min_ram' as const, dir: 'asc' as const }, { key: 'name' as const, dir: 'desc' as const }], limit: 2 };
  const all = await mod.service.list(carol, { ...q, limit: 100 });
  const seen: string[] = [];
  let marker;
  for (;;) {
    const page = await mod.service.list(carol, { ...q, marker });
    seen.push(...page.map((i) => i.id));
    if (page.length < 2) break;
    marker = page.at(-1);
  }
  assert.deepEqual(seen, all.map((i) => i.id));
  assert.deepEqual(all.map((i) => i.name), ['pg-d', 'pg-b', 'pg-b', 'pg-e', 'pg-c', 'pg-a']);
});

test('recovery after a crash: interrupted uploads back to queued, orphans removed', async () => {
  const img = await mod.createImage(alice, { name: 'crash', disk_format: 'raw', container_format: 'bare' });
  await mod.service.store.update(img.id, { status: 'saving' }, { updatedAt: new Date().toISOString() });
  await mkdir(join(storeDir(), '.tmp'), { recursive: true });
  writeFileSync(join(storeDir(), '.tmp', `${img.id}.abc`), 'partial');
  writeFileSync(join(storeDir(), '11111111-2222-3333-4444-555555555555'), 'orphan');
  await mod.transfer.recover();
  assert.equal((await mod.getImage(img.id, alice)).status, 'queued');
  const files = filesIn(storeDir());
  assert.ok(!files.includes(`${img.id}.abc`));
  assert.ok(!files.includes('11111111-2222-3333-4444-555555555555'));
});
