// Multi-tenancy through the CLI (demo vs admin): default security group, private networks,
// RBAC sharing, quotas in unified limits; and bad input over raw HTTP (clean 4xx, nothing half-made).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let admin: string;
let demo: string;
let demoProject: string;
const net = (path: string) => `/network/v2.0${path}`;

before(async () => {
  tc = await startTestCloud();
  admin = (await tc.openstackJson<{ id: string }>(['token', 'issue'])).id;
  demo = (await tc.openstackJson<{ id: string }>(['token', 'issue'], { as: 'demo' })).id;
  demoProject = (await tc.cloud.identity.findProject('demo'))!.id;
});
after(async () => { await tc?.stop(); });

async function mk(token: string, path: string, body: unknown): Promise<any> {
  const r = await api(tc.url, 'POST', net(path), { token, body });
  assert.equal(r.status, 201, `${path}: ${r.text}`);
  return Object.values(r.body)[0];
}

test('default security group of a project: egress anywhere, ingress from the group', async () => {
  const rules = await tc.openstackJson<any[]>(['security', 'group', 'rule', 'list', 'default'], { as: 'demo' });
  const sg = (await tc.openstackJson<any[]>(['security', 'group', 'list'], { as: 'demo' })).find((g) => g.Name === 'default');
  const shape = rules.map((r) => `${r.Direction}/${r.Ethertype}/${r['IP Protocol'] ?? 'any'}/${r['Remote Security Group'] ?? '-'}`).sort();
  assert.deepEqual(shape, [
    'egress/IPv4/any/-', 'egress/IPv6/any/-', `ingress/IPv4/any/${sg.ID}`, `ingress/IPv6/any/${sg.ID}`,
  ]);
  const del = await api(tc.url, 'DELETE', net(`/security-groups/${sg.ID}`), { token: demo });
  assert.equal(del.status, 409);
});

test('private networks are invisible to other projects; RBAC shares one with demo', async () => {
  const priv = await tc.openstackJson(['network', 'create', 'adm-priv']);
  await tc.openstackJson(['subnet', 'create', '--network', 'adm-priv', '--subnet-range', '10.3.0.0/24', 'adm-priv-sub']);
  const hidden = await tc.openstack(['network', 'show', 'adm-priv'], { as: 'demo' });
  assert.notEqual(hidden.code, 0);
  const demoList = await tc.openstackJson<any[]>(['network', 'list'], { as: 'demo' });
  assert.deepEqual(demoList.map((n) => n.Name), ['public']);
  for (const [method, body] of [['PUT', { network: { name: 'x' } }], ['DELETE', undefined]] as const) {
    const r = await api(tc.url, method, net(`/networks/${priv.id}`), { token: demo, body });
    assert.equal(r.status, 404);
    assert.equal(r.body.NeutronError.type, 'NetworkNotFound');
  }
  // demo cannot touch the shared public network either.
  const pub = (await api(tc.url, 'GET', net('/networks?name=public'), { token: demo })).body.networks[0];
  assert.equal((await api(tc.url, 'PUT', net(`/networks/${pub.id}`), { token: demo, body: { network: { name: 'mine' } } })).status, 403);
  assert.equal(pub['provider:network_type'], undefined, 'provider attributes are admin-only');

  // `network rbac create --target-project` resolves the project through identity's /v3/projects;
  // the CLI is used when identity serves it, the API otherwise.
  const viaCli = await tc.openstack(['network', 'rbac', 'create', '--type', 'network', '--action', 'access_as_shared',
    '--target-project', 'demo', 'adm-priv', '-f', 'json']);
  const rbac = viaCli.code === 0 ? JSON.parse(viaCli.stdout)
    : await mk(admin, '/rbac-policies', { rbac_policy: { object_type: 'network', object_id: priv.id, action: 'access_as_shared', target_tenant: demoProject } });
  if (viaCli.code !== 0) assert.match(viaCli.stderr, /No (project|domain) with a name or ID/);
  assert.equal(rbac.target_project_id ?? rbac.target_tenant, demoProject);
  assert.equal((await tc.openstackJson<any[]>(['network', 'rbac', 'list'])).length, 1);
  const seen = await tc.openstackJson(['network', 'show', 'adm-priv'], { as: 'demo' });
  assert.equal(seen.shared, true);
  const port = await mk(demo, '/ports', { port: { network_id: priv.id } });
  assert.equal(port.project_id, demoProject);
  // The share cannot be revoked while demo uses it.
  const busy = await tc.openstack(['network', 'rbac', 'delete', rbac.id]);
  assert.match(busy.stderr, /cannot be removed because other objects depend on it/);
  assert.equal((await api(tc.url, 'DELETE', net(`/ports/${port.id}`), { token: demo })).status, 204);
  assert.equal((await tc.openstack(['network', 'rbac', 'delete', rbac.id])).code, 0);
  assert.equal((await api(tc.url, 'GET', net(`/networks/${priv.id}`), { token: demo })).status, 404);
  assert.equal((await tc.openstack(['network', 'delete', 'adm-priv'])).code, 0);
});

test('quotas live in unified limits and are enforced', async () => {
  // openstackclient 6 builds compute and volume clients for `quota set/show` and resolves the
  // project through identity's /v3/projects: when all of that is served the CLI path runs;
  // otherwise the Neutron quota API (what the CLI calls for --networks) is used directly.
  const set = await tc.openstack(['quota', 'set', '--networks', '2', 'demo']);
  try {
    if (set.code === 0) {
      const show = await tc.openstackJson(['quota', 'show', 'demo']);
      assert.equal(show.networks, 2);
      const list = await tc.openstackJson<any[]>(['quota', 'list', '--network', '--detail', '--project', 'demo']);
      assert.equal(list.find((r) => r.Resource === 'networks').Limit, 2);
    } else {
      assert.match(set.stderr, /endpoint for (compute|volume)|No (project|domain) with a name or ID/);
      const r = await api(tc.url, 'PUT', net(`/quotas/${demoProject}`), { token: admin, body: { quota: { network: 2 } } });
      assert.equal(r.status, 200);
      assert.equal(r.body.quota.network, 2);
    }
    assert.equal(await tc.cloud.identity.getLimit({ projectId: demoProject, serviceType: 'network', resourceName: 'network' }), 2);
    assert.equal((await api(tc.url, 'PUT', net(`/quotas/${demoProject}`), { token: demo, body: { quota: { network: 50 } } })).status, 403);
    await tc.openstackJson(['network', 'create', 'q1'], { as: 'demo' });
    await tc.openstackJson(['network', 'create', 'q2'], { as: 'demo' });
    const over = await tc.openstack(['network', 'create', 'q3'], { as: 'demo' });
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /Quota exceeded for resources: \['network'\]/);
    assert.equal((await api(tc.url, 'GET', net('/networks?name=q3'), { token: demo })).body.networks.length, 0);
    const details = await api(tc.url, 'GET', net(`/quotas/${demoProject}/details`), { token: demo });
    assert.deepEqual(details.body.quota.network, { limit: 2, used: 2, reserved: 0 });
  } finally {
    assert.equal((await api(tc.url, 'DELETE', net(`/quotas/${demoProject}`), { token: admin })).status, 204);
  }
  assert.equal((await api(tc.url, 'GET', net(`/quotas/${demoProject}`), { token: demo })).body.quota.network, 100);
  for (const name of ['q1', 'q2']) {
    const id = (await api(tc.url, 'GET', net(`/networks?name=${name}`), { token: demo })).body.networks[0].id;
    assert.equal((await api(tc.url, 'DELETE', net(`/networks/${id}`), { token: demo })).status, 204);
  }
});

test('bad input: clean 4xx in Neutron form, nothing half-created', async () => {
  const n = await mk(demo, '/networks', { network: { name: 'bad-input' } });
  const expect = async (method: string, path: string, body: unknown, status: number, re: RegExp, type?: string) => {
    const r = await api(tc.url, method, net(path), { token: demo, body });
    assert.equal(r.status, status, `${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.match(r.body.NeutronError.message, re);
    if (type) assert.equal(r.body.NeutronError.type, type);
  };
  await expect('POST', '/subnets', { subnet: { network_id: n.id, cidr: '10.4.0.0/33', ip_version: 4 } }, 400, /not a valid IP subnet/);
  await expect('POST', '/subnets', { subnet: { network_id: n.id, cidr: '10.4.0.1/24', ip_version: 4 } }, 400, /10\.4\.0\.0\/24' is recommended/);
  await expect('POST', '/subnets', { subnet: { network_id: n.id, cidr: 'banana', ip_version: 4 } }, 400, /not a valid IP subnet/);
  await expect('POST', '/subnets', { subnet: { network_id: n.id, cidr: '10.4.0.0/24', ip_version: 6 } }, 400, /does not match ip_version/);
  const sub = await mk(demo, '/subnets', { subnet: { network_id: n.id, cidr: '10.4.0.0/24', ip_version: 4 } });
  await expect('POST', '/subnets', { subnet: { network_id: n.id, cidr: '10.4.0.128/25', ip_version: 4 } }, 400, /overlaps with another subnet/);
  await expect('POST', '/subnets', { subnet: { network_id: n.id, cidr: '10.5.0.0/24', allocation_pools: [{ start: '10.5.0.10', end: '10.6.0.1' }] } },
    400, /spans beyond/);
  await expect('POST', '/ports', { port: { network_id: n.id, fixed_ips: [{ ip_address: '10.9.9.9' }] } }, 400, /not a valid IP for any of the subnets/);
  await expect('POST', '/ports', { port: { network_id: n.id, fixed_ips: [{ subnet_id: sub.id, ip_address: '10.4.1.5' }] } }, 400,
    /not a valid IP for the specified subnet/);
  await expect('POST', '/ports', { port: { network_id: n.id, bogus: 1 } }, 400, /bogus/);
  await expect('POST', '/ports', { port: { network_id: n.id, mac_address: 'zz:16:3e:00:00:01' } }, 400, /not a valid MAC/);
  const p = await mk(demo, '/ports', { port: { network_id: n.id, fixed_ips: [{ ip_address: '10.4.0.10' }] } });
  // Second address taken: the whole port is refused, and its first address is not left allocated.
  await expect('POST', '/ports', { port: { network_id: n.id, fixed_ips: [{ ip_address: '10.4.0.11' }, { ip_address: '10.4.0.10' }] } },
    409, /10\.4\.0\.10 already allocated/, 'IpAddressAlreadyAllocated');
  const again = await mk(demo, '/ports', { port: { network_id: n.id, fixed_ips: [{ ip_address: '10.4.0.11' }] } });
  assert.equal(again.fixed_ips[0].ip_address, '10.4.0.11');
  const ports = (await api(tc.url, 'GET', net(`/ports?network_id=${n.id}&device_owner=`), { token: demo })).body.ports;
  assert.equal(ports.length, 2);
  await expect('DELETE', `/networks/${n.id}`, undefined, 409, /ports still in use/, 'NetworkInUse');
  await expect('DELETE', `/subnets/${sub.id}`, undefined, 409, /One or more ports have an IP allocation/, 'SubnetInUse');
  await expect('POST', '/floatingips', { floatingip: { floating_network_id: n.id } }, 400, /not a valid external network/);
  await expect('POST', '/networks', { network: { name: 'x', 'provider:network_type': 'flat' } }, 403, /disallowed by policy/);
  await expect('POST', '/networks', { network: { name: 'x', shared: true } }, 403, /disallowed by policy/);
  const sg = (await api(tc.url, 'GET', net('/security-groups?name=default'), { token: demo })).body.security_groups[0];
  await expect('POST', '/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp',
    port_range_min: 90, port_range_max: 80 } }, 400, /port_range_min must be <= port_range_max/);
  await expect('POST', '/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress',
    ethertype: 'IPv6', remote_ip_prefix: '10.0.0.0/8' } }, 400, /Conflicting value ethertype/);
  await expect('POST', '/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'sideways' } }, 400, /valid directions/);
  await expect('GET', '/ports/does-not-exist', undefined, 404, /could not be found/, 'PortNotFound');
  const malformed = await api(tc.url, 'POST', net('/networks'), { token: demo, rawBody: '{"network":', headers: { 'Content-Type': 'application/json' } });
  assert.equal(malformed.status, 400);
  for (const id of [p.id, again.id]) assert.equal((await api(tc.url, 'DELETE', net(`/ports/${id}`), { token: demo })).status, 204);
  assert.equal((await api(tc.url, 'DELETE', net(`/networks/${n.id}`), { token: demo })).status, 204);
});
