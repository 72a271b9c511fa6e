// Operator views of compute hosts: os-services (disable, force down), hypervisors, aggregates
// with availability zones, and server groups. Hosts are simulated agents (fake-agent.ts).
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
before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
  demo = (await issue(tc, 'demo', tc.demoPassword)).token;
  const src = new FileImageSource();
  writeFileSync(join(tc.dataDir, 'img'), Buffer.alloc(4096));
  src.add('img-h', join(tc.dataDir, 'img'));
  tc.cloud.compute.setImageSource(src);
  hosts.push(await fakeHost(tc, 'cmp-a', { vcpus: 4, memoryMb: 8192, diskGb: 100 }));
  hosts.push(await fakeHost(tc, 'cmp-b', { vcpus: 8, memoryMb: 16384, diskGb: 200 }));
});
after(async () => {
  for (const h of hosts) await h.stop();
  await tc?.stop();
});

test('hypervisors: list, show, statistics (CLI, default microversion) and 2.53+ shapes', async () => {
  const list = await tc.openstackJson<any[]>(['hypervisor', 'list']);
  assert.deepEqual(list.map((h) => h['Hypervisor Hostname']).sort(), ['cmp-a', 'cmp-b']);
  const show = await tc.openstackJson(['hypervisor', 'show', 'cmp-b']);
  assert.equal(show.vcpus, 8);
  assert.equal(show.memory_mb, 16384);
  assert.equal(show.state, 'up');
  const stats = await tc.openstackJson(['hypervisor', 'stats', 'show']);
  assert.equal(stats.count, 2);
  assert.equal(stats.vcpus, 12);
  assert.equal(stats.memory_mb, 24576);
  const modern = await api(tc.url, 'GET', `${V}/os-hypervisors/detail`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.88' } });
  assert.match(modern.body.hypervisors[0].id, /^[0-9a-f-]{36}$/);
  assert.ok(!('vcpus' in modern.body.hypervisors[0]), '2.88 drops the resource fields');
  const gone = await api(tc.url, 'GET', `${V}/os-hypervisors/statistics`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.88' } });
  assert.equal(gone.status, 404);
  assert.equal((await api(tc.url, 'GET', `${V}/os-hypervisors`, { token: demo })).status, 403);
});

test('compute services: list, disable with a reason, enable, force down', async () => {
  const list = await tc.openstackJson<any[]>(['compute', 'service', 'list']);
  assert.equal(list.length, 2);
  assert.ok(list.every((s) => s.Binary === 'nova-compute' && s.State === 'up' && s.Status === 'enabled'));
  const dis = await tc.openstack(['compute', 'service', 'set', '--disable', '--disable-reason', 'maintenance', 'cmp-a', 'nova-compute']);
  assert.equal(dis.code, 0, dis.stderr);
  const after1 = await tc.openstackJson<any[]>(['compute', 'service', 'list', '--long']);
  const a = after1.find((s) => s.Host === 'cmp-a');
  assert.equal(a.Status, 'disabled');
  assert.equal(a['Disabled Reason'], 'maintenance');
  const down = await tc.openstack(['compute', 'service', 'set', '--down', 'cmp-a', 'nova-compute']);
  assert.equal(down.code, 0, down.stderr);
  const zones = await api(tc.url, 'GET', `${V}/os-hypervisors/detail`, { token: admin });
  assert.equal(zones.body.hypervisors.find((h: any) => h.hypervisor_hostname === 'cmp-a').state, 'down');
  assert.equal((await tc.openstack(['compute', 'service', 'set', '--enable', '--up', 'cmp-a', 'nova-compute'])).code, 0);
  const back = (await tc.openstackJson<any[]>(['compute', 'service', 'list'])).find((s) => s.Host === 'cmp-a');
  assert.equal(back.Status, 'enabled');
  assert.equal(back.State, 'up');
  const bad = await api(tc.url, 'PUT', `${V}/os-services/disable`, { token: admin, body: { host: 'nope', binary: 'nova-compute' } });
  assert.equal(bad.status, 404);
});

test('aggregates with an availability zone; availability zone list', async () => {
  const agg = await tc.openstackJson(['aggregate', 'create', '--zone', 'zone-b', 'fast']);
  assert.equal(agg.availability_zone, 'zone-b');
  assert.equal((await tc.openstack(['aggregate', 'add', 'host', 'fast', 'cmp-b'])).code, 0);
  assert.equal((await tc.openstack(['aggregate', 'set', '--property', 'ssd=true', 'fast'])).code, 0);
  const shown = await tc.openstackJson(['aggregate', 'show', 'fast']);
  assert.deepEqual(shown.hosts, ['cmp-b']);
  assert.equal(shown.properties.ssd, 'true');
  const zones = await tc.openstackJson<any[]>(['availability', 'zone', 'list', '--compute']);
  assert.deepEqual(zones.map((z) => z['Zone Name']).sort(), ['nova', 'zone-b']);
  // demo lists zones too, but may not manage aggregates
  const demoZones = await api(tc.url, 'GET', `${V}/os-availability-zone`, { token: demo });
  assert.equal(demoZones.body.availabilityZoneInfo.length, 2);
  assert.equal((await api(tc.url, 'GET', `${V}/os-aggregates`, { token: demo })).status, 403);
  // a host cannot be in two zones; an aggregate with hosts cannot be deleted; unknown hosts are 404
  const other = await tc.openstackJson(['aggregate', 'create', '--zone', 'zone-c', 'other']);
  const clash = await api(tc.url, 'POST', `${V}/os-aggregates/${other.id}/action`, { token: admin, body: { add_host: { host: 'cmp-b' } } });
  assert.equal(clash.status, 409);
  assert.equal((await api(tc.url, 'POST', `${V}/os-aggregates/${other.id}/action`, { token: admin, body: { add_host: { host: 'ghost' } } })).status, 404);
  assert.equal((await api(tc.url, 'DELETE', `${V}/os-aggregates/${agg.id}`, { token: admin })).status, 400);
  assert.equal((await api(tc.url, 'POST', `${V}/os-aggregates`, { token: admin, body: { aggregate: { name: 'fast' } } })).status, 409);
  assert.equal((await api(tc.url, 'POST', `${V}/os-aggregates`, { token: admin, body: { aggregate: { name: '' } } })).status, 400);
  assert.equal((await tc.openstack(['aggregate', 'delete', 'other'])).code, 0);
});

test('server groups: create with each policy, list per project, quota, bad input', async () => {
  const g = await tc.openstackJson(['server', 'group', 'create', '--policy', 'anti-affinity', 'spread'], { as: 'demo' });
  assert.equal(g.policy, 'anti-affinity');
  const soft = await api(tc.url, 'POST', `${V}/os-server-groups`, { token: demo, headers: { 'OpenStack-API-Version': 'compute 2.64' },
    body: { server_group: { name: 'limited', policy: 'anti-affinity', rules: { max_server_per_host: 2 } } } });
  assert.equal(soft.status, 200);
  assert.deepEqual(soft.body.server_group.rules, { max_server_per_host: 2 });
  const old = await api(tc.url, 'POST', `${V}/os-server-groups`, { token: demo, body: { server_group: { name: 'old', policies: ['affinity'] } } });
  assert.deepEqual(old.body.server_group.policies, ['affinity']);
  const mine = await tc.openstackJson<any[]>(['server', 'group', 'list'], { as: 'demo' });
  assert.equal(mine.length, 3);
  assert.equal((await tc.openstackJson<any[]>(['server', 'group', 'list'])).length, 0, 'admin sees its own project only');
  assert.equal((await tc.openstackJson<any[]>(['server', 'group', 'list', '--all-projects'])).length, 3);
  for (const body of [
    { server_group: { name: 'x', policy: 'sometimes' } },
    { server_group: { name: 'x', policy: 'affinity', rules: { max_server_per_host: 2 } } },
    { server_group: { name: 'x', policies: ['affinity'] } },
  ]) {
    const r = await api(tc.url, 'POST', `${V}/os-server-groups`, { token: demo, headers: { 'OpenStack-API-Version': 'compute 2.64' }, body });
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  const demoProject = (await issue(tc, 'demo', tc.demoPassword)).body.token.project.id;
  await api(tc.url, 'PUT', `${V}/os-quota-sets/${demoProject}`, { token: admin, body: { quota_set: { server_groups: 3 } } });
  const over = await api(tc.url, 'POST', `${V}/os-server-groups`, { token: demo, body: { server_group: { name: 'one-too-many', policies: ['affinity'] } } });
  assert.equal(over.status, 403);
  assert.match(over.body.forbidden.message, /Quota exceeded for server_groups/);
  assert.equal((await tc.openstack(['server', 'group', 'delete', 'spread'], { as: 'demo' })).code, 0);
});

async function settle(token: string, id: string): Promise<any> {
  for (let i = 0; i < 100; i++) {
    const r = await api(tc.url, 'GET', `${V}/servers/${id}`, { token });
    if (r.body.server.status === 'ACTIVE' || r.body.server.status === 'ERROR') return r.body.server;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`server ${id} did not settle`);
}

test('scheduling: a server asked into a zone lands on that zone\'s host; anti-affinity with more members than hosts fails cleanly', async () => {
  const inZone = await api(tc.url, 'POST', `${V}/servers`, { token: admin, body: { server: { name: 'zoned', imageRef: 'img-h', flavorRef: '42', availability_zone: 'zone-b' } } });
  assert.equal(inZone.status, 202, inZone.text);
  const z = await settle(admin, inZone.body.server.id);
  assert.equal(z.status, 'ACTIVE');
  assert.equal(z['OS-EXT-SRV-ATTR:host'], 'cmp-b');
  assert.equal(z['OS-EXT-AZ:availability_zone'], 'zone-b');

  const g = await api(tc.url, 'POST', `${V}/os-server-groups`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.64' },
    body: { server_group: { name: 'apart', policy: 'anti-affinity' } } });
  const ids: string[] = [];
  for (const n of [1, 2, 3]) {
    const r = await api(tc.url, 'POST', `${V}/servers`, { token: admin, body: { server: { name: `apart-${n}`, imageRef: 'img-h', flavorRef: '42' }, 'os:scheduler_hints': { group: g.body.server_group.id } } });
    assert.equal(r.status, 202, r.text);
    ids.push(r.body.server.id);
    await settle(admin, r.body.server.id); // one after the other: each sees where the others went
  }
  const done = await Promise.all(ids.map((id) => settle(admin, id)));
  const active = done.filter((s) => s.status === 'ACTIVE');
  assert.equal(active.length, 2);
  assert.notEqual(active[0]['OS-EXT-SRV-ATTR:host'], active[1]['OS-EXT-SRV-ATTR:host']);
  const failed = done.find((s) => s.status === 'ERROR');
  assert.match(failed.fault.message, /No valid host was found.*ServerGroupFilter/);
  const members = await api(tc.url, 'GET', `${V}/os-server-groups/${g.body.server_group.id}`, { token: admin });
  assert.equal(members.body.server_group.members.length, 3);
  const show = await tc.openstackJson(['server', 'group', 'show', 'apart']);
  assert.equal(show.members.length ?? show.Members?.length, 3);
});
