// Compute API basics: version discovery and microversions, flavors (extra specs, private
// flavors), key pairs (import, RSA and Ed25519 generation), quotas and limits in unified limits.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';

let tc: TestCloud;
let admin: string;
let demo: string;
let demoProject: string;
const V = '/compute/v2.1';
before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
  const d = await issue(tc, 'demo', tc.demoPassword);
  demo = d.token;
  demoProject = d.body.token.project.id;
});
after(async () => { await tc?.stop(); });

test('version discovery and microversion negotiation', async () => {
  const root = await api(tc.url, 'GET', '/compute');
  assert.equal(root.status, 200);
  assert.equal(root.body.versions[0].id, 'v2.1');
  assert.equal(root.body.versions[0].min_version, '2.1');
  const v = await api(tc.url, 'GET', V);
  assert.equal(v.body.version.links[0].href, `${tc.url}/compute/v2.1/`);
  const max = v.body.version.version;

  const dflt = await api(tc.url, 'GET', `${V}/flavors`, { token: admin });
  assert.equal(dflt.headers.get('openstack-api-version'), 'compute 2.1');
  assert.equal(dflt.headers.get('x-openstack-nova-api-version'), '2.1');
  assert.match(dflt.headers.get('vary') ?? '', /OpenStack-API-Version/);
  assert.equal(dflt.headers.get('x-compute-request-id'), dflt.headers.get('x-openstack-request-id'));
  const latest = await api(tc.url, 'GET', `${V}/flavors`, { token: admin, headers: { 'OpenStack-API-Version': 'compute latest' } });
  assert.equal(latest.headers.get('openstack-api-version'), `compute ${max}`);
  const legacy = await api(tc.url, 'GET', `${V}/flavors`, { token: admin, headers: { 'X-OpenStack-Nova-API-Version': '2.55' } });
  assert.equal(legacy.headers.get('openstack-api-version'), 'compute 2.55');
  assert.ok('description' in legacy.body.flavors[0], '2.55 shows descriptions');
  assert.ok(!('description' in dflt.body.flavors[0]), '2.1 does not');
  const tooNew = await api(tc.url, 'GET', `${V}/flavors`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.999' } });
  assert.equal(tooNew.status, 406);
  assert.match(tooNew.body.computeFault.message, /not supported by the API. Minimum is 2.1 and maximum is/);
  const bad = await api(tc.url, 'GET', `${V}/flavors`, { token: admin, headers: { 'OpenStack-API-Version': 'compute two' } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.badRequest.message, /invalid format/);
  const noToken = await api(tc.url, 'GET', `${V}/flavors`);
  assert.equal(noToken.status, 401);
  assert.equal(noToken.body.unauthorized.code, 401);
  const missing = await api(tc.url, 'GET', `${V}/flavors/nope`, { token: admin });
  assert.equal(missing.status, 404);
  assert.match(missing.body.itemNotFound.message, /Flavor nope could not be found/);
});

test('flavors: defaults, create with properties, private access, delete (CLI)', async () => {
  const list = await tc.openstackJson<any[]>(['flavor', 'list']);
  const names = list.map((f) => f.Name);
  for (const n of ['m1.nano', 'm1.micro', 'm1.tiny', 'm1.small', 'm1.medium', 'm1.large', 'm1.xlarge']) assert.ok(names.includes(n), n);
  const nano = list.find((f) => f.Name === 'm1.nano');
  assert.equal(nano.VCPUs, 1);
  assert.ok(nano.RAM <= 256);

  const f = await tc.openstackJson(['flavor', 'create', '--ram', '96', '--disk', '1', '--vcpus', '1', '--private',
    '--property', 'hw:watchdog_action=reset', '--description', 'a private one', 'f.private']);
  assert.equal(f['os-flavor-access:is_public'], false);
  assert.deepEqual(f.properties, { 'hw:watchdog_action': 'reset' });
  assert.equal(f.description, 'a private one');

  // demo sees neither the private flavor nor its details, until access is granted
  const hidden = await tc.openstack(['flavor', 'show', f.id], { as: 'demo' });
  assert.notEqual(hidden.code, 0);
  const grant = await api(tc.url, 'POST', `${V}/flavors/${f.id}/action`, { token: admin, body: { addTenantAccess: { tenant: demoProject } } });
  assert.equal(grant.status, 200);
  assert.deepEqual(grant.body.flavor_access, [{ flavor_id: f.id, tenant_id: demoProject }]);
  const seen = await tc.openstackJson<any[]>(['flavor', 'list', '--all'], { as: 'demo' });
  assert.ok(seen.some((x) => x.ID === f.id));
  const twice = await api(tc.url, 'POST', `${V}/flavors/${f.id}/action`, { token: admin, body: { addTenantAccess: { tenant: demoProject } } });
  assert.equal(twice.status, 409);

  // demo cannot manage flavors
  const denied = await tc.openstack(['flavor', 'create', '--ram', '64', '--disk', '1', '--vcpus', '1', 'f.demo'], { as: 'demo' });
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /Policy doesn't allow os_compute_api:os-flavor-manage:create|HTTP 403/);

  await tc.openstack(['flavor', 'set', '--property', 'quota:cpu_shares=512', f.id]);
  const shown = await tc.openstackJson(['flavor', 'show', f.id]);
  assert.equal(shown.properties['quota:cpu_shares'], '512');
  const del = await tc.openstack(['flavor', 'delete', f.id]);
  assert.equal(del.code, 0, del.stderr);
  assert.equal((await api(tc.url, 'GET', `${V}/flavors/${f.id}`, { token: admin })).status, 404);
});

test('flavors: bad input is a 400, duplicates a 409', async () => {
  const cases: unknown[] = [
    { flavor: { name: 'x', ram: 0, vcpus: 1, disk: 1 } },
    { flavor: { name: 'x', ram: 64, vcpus: 'many', disk: 1 } },
    { flavor: { name: ' x', ram: 64, vcpus: 1, disk: 1 } },
    { flavor: { name: 'x', ram: 64, vcpus: 1, disk: 1, bogus: true } },
    { flavor: { name: 'x', ram: 64, vcpus: 1, disk: 1, id: 'bad/id' } },
    {},
  ];
  for (const body of cases) {
    const r = await api(tc.url, 'POST', `${V}/flavors`, { token: admin, body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.ok(r.body.badRequest.message, JSON.stringify(r.body));
  }
  const dup = await api(tc.url, 'POST', `${V}/flavors`, { token: admin, body: { flavor: { name: 'm1.nano', ram: 64, vcpus: 1, disk: 1 } } });
  assert.equal(dup.status, 409);
  assert.match(dup.body.conflictingRequest.message, /already exists/);
  const badMarker = await api(tc.url, 'GET', `${V}/flavors?marker=nope`, { token: admin });
  assert.equal(badMarker.status, 400);
  const page = await api(tc.url, 'GET', `${V}/flavors?limit=2&marker=1`, { token: admin });
  assert.deepEqual(page.body.flavors.map((x: any) => x.id), ['2', '3']);
});

test('keypairs: generate RSA (CLI), import, Ed25519 generation, per-user isolation', async () => {
  const dir = tc.dataDir;
  const priv = join(dir, 'k1.pem');
  const created = await tc.openstackJson(['keypair', 'create', '--private-key', priv, 'k1']);
  assert.match(created.fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  chmodSync(priv, 0o600);
  // ssh-keygen accepts the private key and derives the public key we stored
  const derived = execFileSync('ssh-keygen', ['-y', '-f', priv]).toString().trim().split(' ').slice(0, 2).join(' ');
  const shown = await api(tc.url, 'GET', `${V}/os-keypairs/k1`, { token: admin });
  assert.equal(shown.body.keypair.public_key.split(' ').slice(0, 2).join(' '), derived);

  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'imported', '-f', join(dir, 'imp')]);
  const imported = await tc.openstackJson(['keypair', 'create', '--public-key', join(dir, 'imp.pub'), 'k2']);
  const expected = execFileSync('ssh-keygen', ['-l', '-E', 'md5', '-f', join(dir, 'imp.pub')]).toString().split(' ')[1]!.replace(/^MD5:/, '');
  assert.equal(imported.fingerprint, expected);

  const ed = await api(tc.url, 'POST', `${V}/os-keypairs`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.10' },
    body: { keypair: { name: 'k3', type: 'ssh-ed25519' } } });
  assert.equal(ed.status, 201);
  assert.match(ed.body.keypair.public_key, /^ssh-ed25519 /);
  writeFileSync(join(dir, 'k3.pem'), ed.body.keypair.private_key, { mode: 0o600 });
  assert.equal(execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'k3.pem')]).toString().split(' ')[1], ed.body.keypair.public_key.split(' ')[1]);
  const again = await api(tc.url, 'GET', `${V}/os-keypairs/k3`, { token: admin });
  assert.ok(!('private_key' in again.body.keypair), 'the private key is never shown again');

  const listed = await tc.openstackJson<any[]>(['keypair', 'list']);
  assert.deepEqual(listed.map((k) => k.Name).sort(), ['k1', 'k2', 'k3']);
  assert.deepEqual(await tc.openstackJson<any[]>(['keypair', 'list'], { as: 'demo' }), []);
  assert.equal((await api(tc.url, 'GET', `${V}/os-keypairs/k1`, { token: demo })).status, 404);

  const dup = await api(tc.url, 'POST', `${V}/os-keypairs`, { token: admin, body: { keypair: { name: 'k1', public_key: readFileSync(join(dir, 'imp.pub'), 'utf8') } } });
  assert.equal(dup.status, 409);
  for (const body of [
    { keypair: { name: 'bad', public_key: 'ssh-rsa not-base64!' } },
    { keypair: { name: 'bad', public_key: 'ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ' } },
    { keypair: { name: 'bad/name' } },
    { keypair: { name: 'x', type: 'dsa' } },
  ]) {
    const r = await api(tc.url, 'POST', `${V}/os-keypairs`, { token: admin, headers: { 'OpenStack-API-Version': 'compute 2.2' }, body });
    assert.equal(r.status, 400, JSON.stringify(body));
  }
  const del = await tc.openstack(['keypair', 'delete', 'k2']);
  assert.equal(del.code, 0, del.stderr);
  assert.equal((await api(tc.url, 'GET', `${V}/os-keypairs/k2`, { token: admin })).status, 404);
});

test('quotas: quota set writes unified limits, quota show and limits show read them, key_pairs enforced', async () => {
  const set = await tc.openstack(['quota', 'set', '--instances', '3', '--cores', '7', '--key-pairs', '1', 'demo']);
  assert.equal(set.code, 0, set.stderr);
  const shown = await tc.openstackJson(['quota', 'show'], { as: 'demo' });
  assert.equal(shown.instances, 3);
  assert.equal(shown.cores, 7);
  assert.equal(shown.ram, 51200);
  // one truth: the identity unified limit carries the value
  const limit = await tc.cloud.identity.getLimit({ projectId: demoProject, serviceType: 'compute', resourceName: 'servers' });
  assert.equal(limit, 3);
  // the other door: identity's limit commands see (and change) the same value
  const limits = await tc.openstackJson<any[]>(['limit', 'list', '--project', 'demo']);
  assert.ok(limits.some((l) => l['Resource Name'] === 'servers' && l['Resource Limit'] === 3), JSON.stringify(limits));
  const lim = await tc.openstackJson<any[]>(['limits', 'show', '--absolute'], { as: 'demo' });
  assert.equal(lim.find((r) => r.Name === 'maxTotalInstances').Value, 3);
  assert.equal(lim.find((r) => r.Name === 'totalInstancesUsed').Value, 0);

  const detail = await api(tc.url, 'GET', `${V}/os-quota-sets/${demoProject}/detail`, { token: demo });
  assert.deepEqual(detail.body.quota_set.instances, { limit: 3, in_use: 0, reserved: 0 });
  const defaults = await api(tc.url, 'GET', `${V}/os-quota-sets/${demoProject}/defaults`, { token: demo });
  assert.equal(defaults.body.quota_set.instances, 10);
  // demo may not change quotas, nor read another project's
  const denied = await api(tc.url, 'PUT', `${V}/os-quota-sets/${demoProject}`, { token: demo, body: { quota_set: { instances: 100 } } });
  assert.equal(denied.status, 403);
  const adminProject = (await issue(tc, 'admin', tc.adminPassword)).body.token.project.id;
  assert.equal((await api(tc.url, 'GET', `${V}/os-quota-sets/${adminProject}`, { token: demo })).status, 403);
  for (const body of [{ quota_set: { instances: -2 } }, { quota_set: { instances: 'lots' } }, { quota_set: { bogus: 1 } }]) {
    assert.equal((await api(tc.url, 'PUT', `${V}/os-quota-sets/${demoProject}`, { token: admin, body })).status, 400, JSON.stringify(body));
  }
  assert.equal((await api(tc.url, 'PUT', `${V}/os-quota-sets/no-such-project`, { token: admin, body: { quota_set: { instances: 1 } } })).status, 400);

  // key_pairs = 1: the second key of the demo user is refused with a clear 403
  const first = await tc.openstack(['keypair', 'create', 'd1'], { as: 'demo' });
  assert.equal(first.code, 0, first.stderr);
  const second = await api(tc.url, 'POST', `${V}/os-keypairs`, { token: demo, body: { keypair: { name: 'd2' } } });
  assert.equal(second.status, 403);
  assert.match(second.body.forbidden.message, /Quota exceeded for key_pairs/);
});
