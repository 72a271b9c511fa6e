// 20 creates at once on one small host never overbook it: placement claims are atomic, the
// servers that do not fit end in ERROR with "No valid host", the others ACTIVE (simulated host).
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
let host: FakeHost | undefined;
const V = '/compute/v2.1';

before(async () => {
  tc = await startTestCloud();
  const t = await issue(tc, 'admin', tc.adminPassword);
  admin = t.token;
  const project = t.body.token.project.id;
  await api(tc.url, 'PUT', `${V}/os-quota-sets/${project}`, { token: admin, body: { quota_set: { instances: 40, cores: 80, ram: 100000 } } });
  const src = new FileImageSource();
  writeFileSync(join(tc.dataDir, 'img'), Buffer.alloc(4096));
  src.add('img-c', join(tc.dataDir, 'img'));
  tc.cloud.compute.setImageSource(src);
  // 1024 MiB of RAM: room for 5 m1.nano (192 MiB) servers, not 6.
  host = await fakeHost(tc, 'small', { vcpus: 2, memoryMb: 1024, diskGb: 40 });
});
after(async () => {
  await host?.stop();
  await tc?.stop();
});

test('20 concurrent creates on a host with room for 5: 5 ACTIVE, 15 ERROR "No valid host", never overbooked', async () => {
  const created = await Promise.all(Array.from({ length: 20 }, (_, i) => api(tc.url, 'POST', `${V}/servers`, {
    token: admin, body: { server: { name: `c-${i}`, imageRef: 'img-c', flavorRef: '42' } },
  })));
  assert.ok(created.every((r) => r.status === 202), created.map((r) => r.status).join(','));
  let servers: any[] = [];
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    servers = (await api(tc.url, 'GET', `${V}/servers/detail`, { token: admin })).body.servers;
    if (servers.length === 20 && servers.every((s) => s.status === 'ACTIVE' || s.status === 'ERROR')) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const active = servers.filter((s) => s.status === 'ACTIVE');
  const errors = servers.filter((s) => s.status === 'ERROR');
  assert.equal(active.length, 5, JSON.stringify(servers.map((s) => s.status)));
  assert.equal(errors.length, 15);
  for (const e of errors) assert.match(e.fault.message, /No valid host was found/);
  const node = await tc.cloud.compute.nova.hosts.get('small');
  const usage = await tc.cloud.placement.client.providerUsages(node.uuid);
  assert.equal(usage.MEMORY_MB, 5 * 192);
  assert.ok(usage.MEMORY_MB! <= 1024);
  const hv = await api(tc.url, 'GET', `${V}/os-hypervisors/detail`, { token: admin });
  assert.equal(hv.body.hypervisors[0].memory_mb_used, 5 * 192);
  // deleting the ERROR servers frees nothing on the host (they never held anything) and works
  for (const e of errors.slice(0, 3)) assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${e.id}`, { token: admin })).status, 204);
});
