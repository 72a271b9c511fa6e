// Response shapes and input forms Tempest checks (docs/compute.md, "Tempest"): Nova's string
// booleans, integer key pair ids, hypervisor cpu_info per microversion, the network quotas and
// limits shown before 2.36, and the usage URL with an empty project id.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileImageSource } from '../../src/compute/images.js';
import { tailLines } from '../../src/compute/servers/operations.js';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';
import { fakeHost, type FakeHost } from './fake-agent.js';

let tc: TestCloud;
let admin: string;
let adminProject: string;
let host: FakeHost;
const V = '/compute/v2.1';
const mv = (v: string) => ({ 'OpenStack-API-Version': `compute ${v}` });
before(async () => {
  tc = await startTestCloud();
  const a = await issue(tc, 'admin', tc.adminPassword);
  admin = a.token;
  adminProject = a.body.token.project.id;
  const src = new FileImageSource();
  writeFileSync(join(tc.dataDir, 'shape.img'), Buffer.alloc(64 * 1024));
  src.add('img-shape', join(tc.dataDir, 'shape.img'));
  tc.cloud.compute.setImageSource(src);
  host = await fakeHost(tc, 'shape-host');
});
after(async () => {
  await host?.stop();
  await tc?.stop();
});

test('flavor create takes Nova string booleans and numeric strings; other strings are a 400', async () => {
  const mk = (name: string, isPublic: unknown) => api(tc.url, 'POST', `${V}/flavors`, { token: admin,
    body: { flavor: { name, ram: '64', vcpus: 1, disk: 0, 'os-flavor-access:is_public': isPublic } } });
  const priv = await mk('shape-private', 'False');
  assert.equal(priv.status, 200, JSON.stringify(priv.body));
  assert.equal(priv.body.flavor['os-flavor-access:is_public'], false);
  assert.equal(priv.body.flavor.ram, 64);
  const pub = await mk('shape-public', 'YES');
  assert.equal(pub.body.flavor['os-flavor-access:is_public'], true);
  const bad = await mk('shape-bad', 'maybe');
  assert.equal(bad.status, 400);
  // An integer id is taken as its string, as Nova does.
  const intId = await api(tc.url, 'POST', `${V}/flavors`, { token: admin, body: { flavor: { name: 'shape-int', ram: 64, vcpus: '1', disk: '0', id: 4242 } } });
  assert.equal(intId.status, 200, JSON.stringify(intId.body));
  assert.equal(intId.body.flavor.id, '4242');
  // The CLI reads the private flavor back.
  const shown = await tc.openstackJson(['flavor', 'show', 'shape-private']);
  assert.equal(shown['os-flavor-access:is_public'], false);
});

test('key pairs have integer ids (CLI create, then show at 2.1 and 2.10)', async () => {
  await tc.openstack(['keypair', 'create', 'shape-kp']);
  const one = await api(tc.url, 'GET', `${V}/os-keypairs/shape-kp`, { token: admin });
  assert.equal(one.status, 200);
  assert.ok(Number.isInteger(one.body.keypair.id), `id ${one.body.keypair.id} is an integer`);
  const two = await api(tc.url, 'POST', `${V}/os-keypairs`, { token: admin, body: { keypair: { name: 'shape-kp2' } } });
  const again = await api(tc.url, 'GET', `${V}/os-keypairs/shape-kp2`, { token: admin, headers: mv('2.10') });
  assert.ok(again.body.keypair.id > one.body.keypair.id);
  assert.equal(two.status, 200);
});

test('hypervisor cpu_info: a JSON string before 2.28, an object from 2.28', async () => {
  const old = await api(tc.url, 'GET', `${V}/os-hypervisors/detail`, { token: admin });
  const h = old.body.hypervisors.find((x: any) => x.hypervisor_hostname === 'shape-host');
  assert.equal(typeof h.cpu_info, 'string');
  assert.equal(JSON.parse(h.cpu_info).model, 'fake');
  const neu = await api(tc.url, 'GET', `${V}/os-hypervisors/detail`, { token: admin, headers: mv('2.53') });
  const h2 = neu.body.hypervisors.find((x: any) => x.hypervisor_hostname === 'shape-host');
  assert.deepEqual(h2.cpu_info, { model: 'fake', accelerator: 'TCG' });
});

test('before 2.36 quota sets and limits include the network quotas, read from the network service', async () => {
  const q = await api(tc.url, 'GET', `${V}/os-quota-sets/${adminProject}`, { token: admin });
  for (const k of ['floating_ips', 'fixed_ips', 'security_groups', 'security_group_rules']) assert.equal(typeof q.body.quota_set[k], 'number', k);
  // Neutron's own quota door shows what the compute door writes, and the reverse.
  // Quota values may be digit strings (tempest sends them so).
  const asText = await api(tc.url, 'PUT', `${V}/os-quota-sets/${adminProject}`, { token: admin, body: { quota_set: { ram: '5120' } } });
  assert.equal(asText.status, 200, JSON.stringify(asText.body));
  assert.equal(asText.body.quota_set.ram, 5120);
  const set = await api(tc.url, 'PUT', `${V}/os-quota-sets/${adminProject}`, { token: admin, body: { quota_set: { floating_ips: 7 } } });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.equal(set.body.quota_set.floating_ips, 7);
  const nq = await api(tc.url, 'GET', `/network/v2.0/quotas/${adminProject}`, { token: admin });
  assert.equal(nq.body.quota.floatingip, 7);
  await tc.openstack(['quota', 'set', '--secgroups', '9', adminProject]);
  const lim = await api(tc.url, 'GET', `${V}/limits`, { token: admin });
  assert.equal(lim.body.limits.absolute.maxSecurityGroups, 9);
  assert.equal(lim.body.limits.absolute.maxTotalFloatingIps, 7);
  assert.equal(typeof lim.body.limits.absolute.totalSecurityGroupsUsed, 'number');
  // From 2.36 they are gone, and cannot be set.
  const q36 = await api(tc.url, 'GET', `${V}/os-quota-sets/${adminProject}`, { token: admin, headers: mv('2.36') });
  assert.ok(!('floating_ips' in q36.body.quota_set));
  const lim36 = await api(tc.url, 'GET', `${V}/limits`, { token: admin, headers: mv('2.36') });
  assert.ok(!('maxSecurityGroups' in lim36.body.limits.absolute));
  const set36 = await api(tc.url, 'PUT', `${V}/os-quota-sets/${adminProject}`, { token: admin, headers: mv('2.36'), body: { quota_set: { floating_ips: 3 } } });
  assert.equal(set36.status, 400);
  // DELETE resets compute's limits but leaves the network service's own.
  await api(tc.url, 'DELETE', `${V}/os-quota-sets/${adminProject}`, { token: admin });
  const after = await api(tc.url, 'GET', `${V}/os-quota-sets/${adminProject}`, { token: admin });
  assert.equal(after.body.quota_set.floating_ips, 7);
});

test('usage of an empty project id is a 404, not the list', async () => {
  const r = await api(tc.url, 'GET', `${V}/os-simple-tenant-usage/?start=2026-01-01T00:00:00`, { token: admin });
  assert.equal(r.status, 404);
  const list = await api(tc.url, 'GET', `${V}/os-simple-tenant-usage?start=2026-01-01T00:00:00`, { token: admin });
  assert.equal(list.status, 200);
});

test('servers: accessIPv6 stored canonical, ip/ip6 filters match addresses, limit=0 is an empty page', async () => {
  await tc.openstack(['network', 'create', 'shape-net']);
  await tc.openstack(['subnet', 'create', '--network', 'shape-net', '--subnet-range', '10.55.0.0/24', 'shape-sub']);
  const r = await api(tc.url, 'POST', `${V}/servers`, { token: admin, body: { server: {
    name: 'shape-vm', imageRef: 'img-shape', flavorRef: '42', networks: [{ uuid: (await tc.openstackJson(['network', 'show', 'shape-net'])).id }],
    accessIPv6: '0000:0000:0000:0000:0000:babe:220.12.22.2' } } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.server.id;
  let addr = '';
  for (let i = 0; i < 200 && !addr; i++) {
    const s = await api(tc.url, 'GET', `${V}/servers/${id}`, { token: admin });
    assert.equal(s.body.server.accessIPv6, '::babe:dc0c:1602');
    addr = (s.body.server.addresses['shape-net'] ?? [])[0]?.addr ?? '';
    if (!addr) await new Promise((res) => setTimeout(res, 100));
  }
  assert.match(addr, /^10\.55\.0\./);
  const byIp = await api(tc.url, 'GET', `${V}/servers?ip=${encodeURIComponent(addr.replace(/\./g, '\\.'))}`, { token: admin });
  assert.deepEqual(byIp.body.servers.map((x: any) => x.id), [id]);
  const miss = await api(tc.url, 'GET', `${V}/servers?ip=10\\.99\\.`, { token: admin });
  assert.deepEqual(miss.body.servers, []);
  const ip6 = await api(tc.url, 'GET', `${V}/servers?ip6=${encodeURIComponent('10.55')}`, { token: admin });
  assert.deepEqual(ip6.body.servers, []);
  const zero = await api(tc.url, 'GET', `${V}/servers?limit=0`, { token: admin });
  assert.equal(zero.status, 200);
  assert.deepEqual(zero.body.servers, []);
  const upd = await api(tc.url, 'PUT', `${V}/servers/${id}`, { token: admin, body: { server: { accessIPv6: '2001:0db8:0000:0000:0000:0000:0000:0001' } } });
  assert.equal(upd.body.server.accessIPv6, '2001:db8::1');
  assert.deepEqual(upd.body.server.addresses['shape-net'], [{ addr, version: 4 }], 'before 2.75 no OS-EXT-IPS attributes');
  const bad = await api(tc.url, 'PUT', `${V}/servers/${id}`, { token: admin, body: { server: { accessIPv6: 'not-an-ip' } } });
  assert.equal(bad.status, 400);
  await tc.openstack(['server', 'delete', '--wait', id]);
  await tc.openstack(['network', 'delete', 'shape-net']);
});

test('console output tails as Nova does: at most N pieces when split on newlines', () => {
  assert.equal(tailLines('a\nb\nc\nd\n', 3), 'c\nd\n');
  assert.equal(tailLines('a\nb\nc\nd', 3), 'b\nc\nd');
  assert.equal(tailLines('a\nb\nc\nd\n', 3).split('\n').length, 3);
  assert.equal(tailLines('only', 5), 'only');
  assert.equal(tailLines('a\nb', 0), '');
});

test('a locked server refuses its owner (409) until unlocked; update and rebuild answer the short view before 2.75', async () => {
  const demo = (await issue(tc, 'demo', tc.demoPassword)).token;
  const h237 = mv('2.37');
  const r = await api(tc.url, 'POST', `${V}/servers`, { token: demo, headers: h237, body: { server: { name: 'lock-vm', imageRef: 'img-shape', flavorRef: '42', networks: 'none' } } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const id = r.body.server.id;
  const action = (body: unknown, token = demo) => api(tc.url, 'POST', `${V}/servers/${id}/action`, { token, body });
  let status = '';
  for (let i = 0; i < 200 && status !== 'ACTIVE'; i++) {
    status = (await api(tc.url, 'GET', `${V}/servers/${id}`, { token: demo })).body.server.status;
    if (status !== 'ACTIVE') await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(status, 'ACTIVE');
  assert.equal((await action({ lock: null })).status, 202);
  const refused = await action({ 'os-stop': null });
  assert.equal(refused.status, 409, 'the owner who locked it cannot stop it either');
  assert.equal((await api(tc.url, 'PUT', `${V}/servers/${id}`, { token: demo, body: { server: { name: 'x' } } })).status, 409);
  assert.equal((await action({ unlock: null })).status, 202);

  const upd = await api(tc.url, 'PUT', `${V}/servers/${id}`, { token: demo, body: { server: { name: 'lock-vm-2' } } });
  assert.equal(upd.status, 200);
  assert.equal(upd.body.server.name, 'lock-vm-2');
  for (const k of ['OS-EXT-STS:vm_state', 'key_name', 'config_drive', 'OS-EXT-AZ:availability_zone']) assert.ok(!(k in upd.body.server), k);
  assert.deepEqual(upd.body.server.addresses, {});
  const upd75 = await api(tc.url, 'PUT', `${V}/servers/${id}`, { token: demo, headers: mv('2.75'), body: { server: { name: 'lock-vm-3' } } });
  assert.ok('OS-EXT-STS:vm_state' in upd75.body.server);
  const rb = await action({ rebuild: { imageRef: 'img-shape' } });
  assert.equal(rb.status, 202, JSON.stringify(rb.body));
  assert.ok(!('OS-EXT-STS:task_state' in rb.body.server));
  assert.equal(rb.body.server.id, id);
  await tc.openstack(['server', 'delete', '--wait', id]);
});

test('os-quota-class-sets/default updates the registered (default) limits, one truth with the identity door', async () => {
  const put = await api(tc.url, 'PUT', `${V}/os-quota-class-sets/default`, { token: admin, body: { quota_class_set: { instances: 12, cores: '30' } } });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.equal(put.body.quota_class_set.instances, 12);
  assert.equal(put.body.quota_class_set.cores, 30);
  const reg = await tc.openstackJson<any[]>(['registered', 'limit', 'list', '--service', 'compute', '--resource-name', 'servers']);
  assert.equal(reg[0]['Default Limit'], 12);
  const defaults = await api(tc.url, 'GET', `${V}/os-quota-sets/${adminProject}/defaults`, { token: admin });
  assert.equal(defaults.body.quota_set.instances, 12);
  assert.equal((await api(tc.url, 'PUT', `${V}/os-quota-class-sets/gold`, { token: admin, body: { quota_class_set: { instances: 1 } } })).status, 400);
  const demo = (await issue(tc, 'demo', tc.demoPassword)).token;
  assert.equal((await api(tc.url, 'PUT', `${V}/os-quota-class-sets/default`, { token: demo, body: { quota_class_set: { instances: 99 } } })).status, 403);
  await api(tc.url, 'PUT', `${V}/os-quota-class-sets/default`, { token: admin, body: { quota_class_set: { instances: 10, cores: 20 } } });
});

test('os-tenant-networks and os-networks (before 2.36): networks the project may use, all for admins; 404 from 2.36', async () => {
  const net = await tc.openstackJson(['network', 'create', 'proxy-net']);
  await tc.openstack(['subnet', 'create', '--network', 'proxy-net', '--subnet-range', '10.56.0.0/24', 'proxy-sub']);
  const demo = (await issue(tc, 'demo', tc.demoPassword)).token;
  const mine = await api(tc.url, 'GET', `${V}/os-tenant-networks`, { token: admin });
  assert.deepEqual(mine.body.networks.find((n: any) => n.id === net.id), { id: net.id, label: 'proxy-net', cidr: '10.56.0.0/24' });
  const one = await api(tc.url, 'GET', `${V}/os-tenant-networks/${net.id}`, { token: admin });
  assert.equal(one.body.network.label, 'proxy-net');
  // demo does not see admin's private network, and may not use the admin-only proxy
  const theirs = await api(tc.url, 'GET', `${V}/os-tenant-networks`, { token: demo });
  assert.ok(!theirs.body.networks.some((n: any) => n.id === net.id));
  assert.equal((await api(tc.url, 'GET', `${V}/os-tenant-networks/${net.id}`, { token: demo })).status, 404);
  assert.equal((await api(tc.url, 'GET', `${V}/os-networks`, { token: demo })).status, 403);
  const all = await api(tc.url, 'GET', `${V}/os-networks/${net.id}`, { token: admin });
  assert.equal(all.body.network.cidr, '10.56.0.0/24');
  assert.equal((await api(tc.url, 'GET', `${V}/os-tenant-networks`, { token: admin, headers: mv('2.36') })).status, 404);
  await tc.openstack(['network', 'delete', 'proxy-net']);
});
