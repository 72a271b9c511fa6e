// The networking API through the real `openstack` CLI (admin): networks, subnets, ports,
// routers, floating IPs, security groups; plus version discovery and list paging over HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let token: string;
const net = (path: string) => `/network/v2.0${path}`;

before(async () => {
  tc = await startTestCloud();
  token = (await tc.openstackJson<{ id: string }>(['token', 'issue'])).id;
});
after(async () => { await tc?.stop(); });

test('version discovery, resources and extensions', async () => {
  const root = await api(tc.url, 'GET', '/network');
  assert.equal(root.status, 200);
  assert.equal(root.body.versions[0].id, 'v2.0');
  assert.equal(root.body.versions[0].links[0].href, `${tc.url}/network/v2.0/`);
  const idx = await api(tc.url, 'GET', '/network/v2.0', { token });
  assert.ok(idx.body.resources.some((r: { collection: string }) => r.collection === 'networks'));
  const ext = await api(tc.url, 'GET', net('/extensions'), { token });
  const aliases = ext.body.extensions.map((e: { alias: string }) => e.alias);
  for (const a of ['router', 'external-net', 'security-group', 'quotas', 'rbac-policies', 'binding', 'extraroute']) assert.ok(aliases.includes(a), a);
  assert.equal((await api(tc.url, 'GET', net('/extensions/router'), { token })).body.extension.alias, 'router');
  const missing = await api(tc.url, 'GET', net('/extensions/subnet_allocation'), { token });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.NeutronError.type, 'ExtensionNotFound');
  assert.equal((await api(tc.url, 'GET', net('/networks'))).status, 401);
  const catalog = await tc.openstackJson<Array<{ Type: string; Endpoints: Array<{ url: string }> }>>(['catalog', 'list']);
  assert.equal(catalog.find((c) => c.Type === 'network')!.Endpoints[0]!.url, `${tc.url}/network`);
});

test('bootstrap: the shared external network public', async () => {
  const pub = await tc.openstackJson(['network', 'show', 'public']);
  assert.equal(pub['router:external'], true);
  assert.equal(pub.shared, true);
  assert.equal(pub['provider:network_type'], 'flat');
  assert.equal(pub['provider:physical_network'], 'physnet-public');
  const sub = await tc.openstackJson(['subnet', 'show', pub.subnets[0]]);
  assert.equal(sub.cidr, '203.0.113.0/24');
  assert.equal(sub.gateway_ip, '203.0.113.1');
  assert.equal(sub.enable_dhcp, false);
  assert.deepEqual(sub.allocation_pools, [{ start: '203.0.113.10', end: '203.0.113.250' }]);
});

test('network, subnet and port lifecycle', async () => {
  const n = await tc.openstackJson(['network', 'create', '--description', 'first', 'net1']);
  assert.equal(n.mtu, 1450);
  assert.equal(n['provider:network_type'], 'vxlan');
  assert.equal(n.status, 'ACTIVE');
  assert.equal((await tc.openstack(['network', 'set', '--name', 'net1b', n.id])).code, 0);
  assert.equal((await tc.openstackJson(['network', 'show', n.id])).name, 'net1b');

  const s = await tc.openstackJson(['subnet', 'create', '--network', n.id, '--subnet-range', '10.1.0.0/24',
    '--allocation-pool', 'start=10.1.0.100,end=10.1.0.200', '--dns-nameserver', '198.51.100.53',
    '--host-route', 'destination=10.99.0.0/16,gateway=10.1.0.254', 'sub1']);
  assert.equal(s.gateway_ip, '10.1.0.1');
  assert.deepEqual(s.allocation_pools, [{ start: '10.1.0.100', end: '10.1.0.200' }]);
  assert.deepEqual(s.dns_nameservers, ['198.51.100.53']);
  assert.deepEqual(s.host_routes, [{ destination: '10.99.0.0/16', nexthop: '10.1.0.254' }]);
  const s6 = await tc.openstackJson(['subnet', 'create', '--network', n.id, '--ip-version', '6', '--subnet-range', '2001:db8:1::/64',
    '--ipv6-ra-mode', 'slaac', '--ipv6-address-mode', 'slaac', 'sub6']);
  assert.equal(s6.gateway_ip, '2001:db8:1::1');

  const p = await tc.openstackJson(['port', 'create', '--network', n.id, '--fixed-ip', `subnet=${s.id},ip-address=10.1.0.20`,
    '--allowed-address', 'ip-address=10.1.0.250', 'port1']);
  assert.match(p.mac_address, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
  assert.equal(p.status, 'DOWN');
  const ips = p.fixed_ips.map((f: { ip_address: string }) => f.ip_address);
  assert.ok(ips.includes('10.1.0.20'));
  assert.ok(ips.some((ip: string) => ip.startsWith('2001:db8:1:0:f816:3eff:fe')), 'SLAAC address from the MAC');
  assert.equal(p.security_group_ids.length, 1);
  const auto = await tc.openstackJson(['port', 'create', '--network', n.id, 'port2']);
  const v4 = auto.fixed_ips.find((f: { ip_address: string }) => f.ip_address.startsWith('10.1.'));
  // .100 went to the network's DHCP port.
  assert.equal(v4.ip_address, '10.1.0.101');
  const found = await tc.openstackJson(['port', 'list', '--fixed-ip', 'ip-address=10.1.0.20']);
  assert.deepEqual(found.map((x: { ID: string }) => x.ID), [p.id]);
  const set = await tc.openstack(['port', 'set', '--name', 'port1b', '--no-security-group', '--disable-port-security', '--no-allowed-address', p.id]);
  assert.equal(set.code, 0, set.stderr);
  const p2 = await tc.openstackJson(['port', 'show', p.id]);
  assert.equal(p2.port_security_enabled, false);
  assert.deepEqual(p2.security_group_ids, []);

  const inUse = await tc.openstack(['network', 'delete', n.id]);
  assert.notEqual(inUse.code, 0);
  assert.match(inUse.stderr, /ports still in use/);
  assert.equal((await tc.openstack(['port', 'delete', p.id, auto.id])).code, 0);
  assert.equal((await tc.openstack(['network', 'delete', n.id])).code, 0);
  const gone = await api(tc.url, 'GET', net(`/subnets/${s.id}`), { token });
  assert.equal(gone.status, 404);
  assert.equal(gone.body.NeutronError.type, 'SubnetNotFound');
});

test('router with gateway, interface, routes and a floating IP', async () => {
  const n = await tc.openstackJson(['network', 'create', 'rnet']);
  const s = await tc.openstackJson(['subnet', 'create', '--network', 'rnet', '--subnet-range', '10.2.0.0/24', 'rsub']);
  const r = await tc.openstackJson(['router', 'create', 'r1']);
  assert.equal((await tc.openstack(['router', 'set', '--external-gateway', 'public', 'r1'])).code, 0);
  assert.equal((await tc.openstack(['router', 'add', 'subnet', 'r1', 'rsub'])).code, 0);
  assert.equal((await tc.openstack(['router', 'set', '--route', 'destination=10.50.0.0/24,gateway=10.2.0.9', 'r1'])).code, 0);
  const shown = await tc.openstackJson(['router', 'show', r.id]);
  const gw = typeof shown.external_gateway_info === 'string' ? JSON.parse(shown.external_gateway_info) : shown.external_gateway_info;
  assert.equal(gw.enable_snat, true);
  assert.match(gw.external_fixed_ips[0].ip_address, /^203\.0\.113\./);
  assert.deepEqual(shown.routes, [{ destination: '10.50.0.0/24', nexthop: '10.2.0.9' }]);
  const ifaces = await tc.openstackJson(['port', 'list', '--router', r.id, '--device-owner', 'network:router_interface']);
  assert.equal(ifaces[0]['Fixed IP Addresses'][0].ip_address, '10.2.0.1');

  const vm = await tc.openstackJson(['port', 'create', '--network', 'rnet', 'vm-port']);
  const fip = await tc.openstackJson(['floating', 'ip', 'create', 'public']);
  assert.match(fip.floating_ip_address, /^203\.0\.113\./);
  assert.equal(fip.status, 'DOWN');
  assert.equal((await tc.openstack(['floating', 'ip', 'set', '--port', vm.id, fip.floating_ip_address])).code, 0);
  const assoc = await tc.openstackJson(['floating', 'ip', 'show', fip.id]);
  assert.equal(assoc.port_id, vm.id);
  assert.equal(assoc.router_id, r.id);
  assert.equal(assoc.fixed_ip_address, vm.fixed_ips[0].ip_address);
  // The router interface is what makes the port reachable: it cannot go while the FIP needs it.
  const busy = await tc.openstack(['router', 'remove', 'subnet', 'r1', 'rsub']);
  assert.match(busy.stderr, /required by one or more floating IPs/);
  assert.equal((await tc.openstack(['floating', 'ip', 'unset', '--port', fip.id])).code, 0);
  assert.equal((await tc.openstackJson(['floating', 'ip', 'show', fip.id])).port_id, null);
  assert.equal((await tc.openstack(['floating', 'ip', 'delete', fip.id])).code, 0);
  assert.equal((await tc.openstack(['router', 'unset', '--route', 'destination=10.50.0.0/24,gateway=10.2.0.9', 'r1'])).code, 0);
  assert.equal((await tc.openstack(['router', 'remove', 'subnet', 'r1', 'rsub'])).code, 0);
  assert.equal((await tc.openstack(['router', 'unset', '--external-gateway', 'r1'])).code, 0);
  assert.equal((await tc.openstack(['router', 'delete', 'r1'])).code, 0);
  assert.equal((await tc.openstack(['port', 'delete', vm.id])).code, 0);
  assert.equal((await tc.openstack(['network', 'delete', n.id])).code, 0);
  void s;
});

test('security groups and rules', async () => {
  const sg = await tc.openstackJson(['security', 'group', 'create', '--description', 'web tier', 'web']);
  assert.equal(sg.stateful, true);
  const egress = sg.rules.filter((r: { direction: string }) => r.direction === 'egress');
  assert.equal(egress.length, 2, 'a new group allows all egress (v4 and v6)');
  const rule = await tc.openstackJson(['security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '80:81',
    '--remote-ip', '198.51.100.0/24', 'web']);
  assert.equal(rule.port_range_min, 80);
  assert.equal(rule.port_range_max, 81);
  assert.equal(rule.remote_ip_prefix, '198.51.100.0/24');
  const icmp = await tc.openstackJson(['security', 'group', 'rule', 'create', '--protocol', 'icmp', '--remote-group', 'web', 'web']);
  assert.equal(icmp.remote_group_id, sg.id);
  const dup = await tc.openstack(['security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '80:81',
    '--remote-ip', '198.51.100.0/24', 'web']);
  assert.match(dup.stderr, /already exists/);
  const rules = await tc.openstackJson(['security', 'group', 'rule', 'list', 'web']);
  assert.equal(rules.length, 4);
  assert.equal((await tc.openstack(['security', 'group', 'rule', 'delete', rule.id])).code, 0);
  assert.equal((await tc.openstack(['security', 'group', 'set', '--name', 'web2', 'web'])).code, 0);
  assert.equal((await tc.openstack(['security', 'group', 'delete', 'web2'])).code, 0);
});

test('lists: filters, sorting, fields and paging with links', async () => {
  const ids: string[] = [];
  for (const name of ['pg-a', 'pg-b', 'pg-c']) {
    const r = await api(tc.url, 'POST', net('/networks'), { token, body: { network: { name, description: 'paging' } } });
    assert.equal(r.status, 201);
    ids.push(r.body.network.id);
  }
  const sorted = await api(tc.url, 'GET', net('/networks?description=paging&sort_key=name&sort_dir=desc&fields=name&fields=id'), { token });
  assert.deepEqual(sorted.body.networks.map((x: { name: string }) => x.name), ['pg-c', 'pg-b', 'pg-a']);
  assert.deepEqual(Object.keys(sorted.body.networks[0]).sort(), ['id', 'name']);
  const seen: string[] = [];
  let next: string | undefined = `${tc.url}${net('/networks?description=paging&sort_key=name&limit=2')}`;
  while (next) {
    const page = await api(next, 'GET', '', { token });
    seen.push(...page.body.networks.map((x: { name: string }) => x.name));
    assert.ok(Array.isArray(page.body.networks_links));
    next = page.body.networks_links.find((l: { rel: string }) => l.rel === 'next')?.href;
  }
  assert.deepEqual(seen, ['pg-a', 'pg-b', 'pg-c']);
  const bad = await api(tc.url, 'GET', net('/networks?no_such_attr=1'), { token });
  assert.equal(bad.status, 400);
  const byName = await tc.openstackJson(['network', 'list', '--name', 'pg-b']);
  assert.deepEqual(byName.map((x: { ID: string }) => x.ID), [ids[1]]);
  const external = await tc.openstackJson(['network', 'list', '--external']);
  assert.deepEqual(external.map((x: { Name: string }) => x.Name), ['public']);
  for (const id of ids) assert.equal((await api(tc.url, 'DELETE', net(`/networks/${id}`), { token })).status, 204);
});

test('body-less DELETE with Content-Type: application/json (tempest, keystoneauth) is not an empty JSON body', async () => {
  const n = await api(tc.url, 'POST', net('/networks'), { token, body: { network: { name: 'ct-delete' } } });
  assert.equal(n.status, 201);
  const del = await api(tc.url, 'DELETE', net(`/networks/${n.body.network.id}`),
    { token, headers: { 'Content-Type': 'application/json' } });
  assert.equal(del.status, 204, del.text);
  // ... while a route that needs a body still refuses an empty one with a 400.
  const empty = await api(tc.url, 'POST', net('/networks'), { token, headers: { 'Content-Type': 'application/json' } });
  assert.equal(empty.status, 400, empty.text);
  assert.equal(empty.body.NeutronError.type, 'HTTPBadRequest');
});

test('tempest regressions: gateway set at router create persists; quotas details.json; external network delete takes idle floating IPs', async () => {
  const pub = (await api(tc.url, 'GET', net('/networks?name=public'), { token })).body.networks[0];
  const r = await api(tc.url, 'POST', net('/routers'), { token, body: { router: { name: 'gw-at-create', external_gateway_info: { network_id: pub.id } } } });
  assert.equal(r.status, 201, r.text);
  const shown = await api(tc.url, 'GET', net(`/routers/${r.body.router.id}`), { token });
  assert.equal(shown.body.router.external_gateway_info?.network_id, pub.id);
  assert.equal(shown.body.router.external_gateway_info?.enable_snat, true);
  assert.equal((await api(tc.url, 'DELETE', net(`/routers/${r.body.router.id}`), { token })).status, 204);

  const project = shown.body.router.project_id;
  const details = await api(tc.url, 'GET', net(`/quotas/${project}/details.json`), { token });
  assert.equal(details.status, 200, details.text);
  assert.equal(typeof details.body.quota.network.limit, 'number');

  const ext = await api(tc.url, 'POST', net('/networks'), { token, body: { network: { name: 'ext-del', 'router:external': true } } });
  assert.equal(ext.status, 201, ext.text);
  const extId = ext.body.network.id;
  const sub = await api(tc.url, 'POST', net('/subnets'), { token, body: { subnet: { network_id: extId, cidr: '198.51.100.0/28', ip_version: 4 } } });
  assert.equal(sub.status, 201, sub.text);
  const fip = await api(tc.url, 'POST', net('/floatingips'), { token, body: { floatingip: { floating_network_id: extId } } });
  assert.equal(fip.status, 201, fip.text);
  const del = await api(tc.url, 'DELETE', net(`/networks/${extId}`), { token });
  assert.equal(del.status, 204, del.text);
  assert.equal((await api(tc.url, 'GET', net(`/floatingips/${fip.body.floatingip.id}`), { token })).status, 404);
});
