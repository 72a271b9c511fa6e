// What tempest.api.network found missing, each checked here: bulk create (all or nothing),
// /v2.0/agents (derived from the registered host agents), the admin quota listing, Neutron's
// wording for bad security group rule ports, deleting an auto-address IPv6 subnet that ports
// use, and an extensions list that claims only what is implemented.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let token: string;
let demoToken: string;
const net = (path: string) => `/network/v2.0${path}`;
const agentCall = (method: string, path: string, body?: unknown) => fetch(`${tc.url}/network/agent/v1${path}`, {
  method, headers: { authorization: `Bearer ${tc.cloud.compute.agentToken()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
  body: body ? JSON.stringify(body) : undefined,
});

before(async () => {
  tc = await startTestCloud();
  token = (await tc.openstackJson<{ id: string }>(['token', 'issue'])).id;
  demoToken = (await tc.openstackJson<{ id: string }>(['token', 'issue'], { as: 'demo' })).id;
});
after(async () => { await tc?.stop(); });

test('bulk create of networks, subnets and ports is all or nothing', async () => {
  const nets = await api(tc.url, 'POST', net('/networks'), { token: demoToken, body: { networks: [{ name: 'bulk-a' }, { name: 'bulk-b' }] } });
  assert.equal(nets.status, 201, nets.text);
  assert.deepEqual(nets.body.networks.map((n: { name: string }) => n.name), ['bulk-a', 'bulk-b']);
  const [a, b] = nets.body.networks.map((n: { id: string }) => n.id);
  const subs = await api(tc.url, 'POST', net('/subnets'), { token: demoToken, body: { subnets: [
    { network_id: a, cidr: '10.81.0.0/24', ip_version: 4 }, { network_id: b, cidr: '10.82.0.0/24', ip_version: 4 }] } });
  assert.equal(subs.status, 201, subs.text);
  assert.equal(subs.body.subnets.length, 2);

  // The second port asks for an address outside its subnet: nothing of the request remains.
  const before = (await api(tc.url, 'GET', net(`/ports?network_id=${a}`), { token: demoToken })).body.ports.length;
  const bad = await api(tc.url, 'POST', net('/ports'), { token: demoToken, body: { ports: [
    { network_id: a, name: 'p1' }, { network_id: a, name: 'p2', fixed_ips: [{ ip_address: '10.99.0.5' }] }] } });
  assert.equal(bad.status, 400, bad.text);
  assert.equal((await api(tc.url, 'GET', net(`/ports?network_id=${a}`), { token: demoToken })).body.ports.length, before);
  // Two ports asking for the same address in one request: the second is refused, the first undone.
  const dup = await api(tc.url, 'POST', net('/ports'), { token: demoToken, body: { ports: [
    { network_id: a, fixed_ips: [{ ip_address: '10.81.0.50' }] }, { network_id: a, fixed_ips: [{ ip_address: '10.81.0.50' }] }] } });
  assert.equal(dup.status, 409, dup.text);
  assert.equal((await api(tc.url, 'GET', net(`/ports?network_id=${a}`), { token: demoToken })).body.ports.length, before);

  const ports = await api(tc.url, 'POST', net('/ports'), { token: demoToken, body: { ports: [{ network_id: a }, { network_id: b }] } });
  assert.equal(ports.status, 201, ports.text);
  assert.deepEqual(ports.body.ports.map((p: { network_id: string }) => p.network_id), [a, b]);
  const listed = await tc.openstackJson<Array<{ ID: string }>>(['port', 'list', '--network', 'bulk-b'], { as: 'demo' });
  assert.ok(listed.some((p) => p.ID === ports.body.ports[1].id));

  // Neutron's integer attributes also take digit strings (convert_to_int); other types do not.
  const strNet = await api(tc.url, 'POST', net('/networks'), { token: demoToken, body: { network: { name: 'str-mtu', mtu: '1400' } } });
  assert.equal(strNet.status, 201, strNet.text);
  assert.equal(strNet.body.network.mtu, 1400);
  const strSub = await api(tc.url, 'POST', net('/subnets'), { token: demoToken, body: { subnet: { network_id: strNet.body.network.id, cidr: '10.85.0.0/24', ip_version: '4' } } });
  assert.equal(strSub.status, 201, strSub.text);
  assert.equal(strSub.body.subnet.ip_version, 4);
  assert.equal((await api(tc.url, 'POST', net('/networks'), { token: demoToken, body: { network: { mtu: [1400] } } })).status, 400);
  // Bad bodies: both forms, neither, an empty list, a wrongly typed item.
  for (const body of [{ network: {}, networks: [{}] }, {}, { networks: [] }, { networks: [{ name: ['x'] }] }]) {
    const r = await api(tc.url, 'POST', net('/networks'), { token: demoToken, body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
  }
  // Quotas count the earlier items of the same request.
  const project = (await tc.cloud.identity.findProject('demo'))!.id;
  const q = await api(tc.url, 'PUT', net(`/quotas/${project}`), { token, body: { quota: { network: 3 } } });
  assert.equal(q.status, 200, q.text);
  const over = await api(tc.url, 'POST', net('/networks'), { token: demoToken, body: { networks: [{ name: 'q1' }, { name: 'q2' }] } });
  assert.equal(over.status, 409, over.text);
  assert.equal(over.body.NeutronError.type, 'OverQuota');
  assert.equal((await api(tc.url, 'GET', net('/networks?name=q1'), { token: demoToken })).body.networks.length, 0);
  assert.equal((await api(tc.url, 'DELETE', net(`/quotas/${project}`), { token })).status, 204);
});

test('network agents: derived from registered hosts, admin only, admin_state_up steers DHCP placement', async () => {
  assert.equal((await agentCall('PUT', '/hosts/agent-a', { underlayIp: '172.16.253.1' })).status, 200);
  assert.equal((await agentCall('PUT', '/hosts/agent-b', { underlayIp: '172.16.253.2' })).status, 200);
  const list = await tc.openstackJson<Array<Record<string, unknown>>>(['network', 'agent', 'list']);
  const mine = list.filter((x) => String(x.Host).startsWith('agent-'));
  assert.equal(mine.length, 8, JSON.stringify(list));
  assert.deepEqual([...new Set(mine.map((x) => x['Agent Type']))].sort(), ['DHCP agent', 'L3 agent', 'Linux bridge agent', 'Metadata agent']);
  assert.ok(mine.every((x) => x.Alive === ':-)' || x.Alive === true), JSON.stringify(mine));
  const dhcpA = mine.find((x) => x.Host === 'agent-a' && x['Agent Type'] === 'DHCP agent')!.ID as string;

  // Non-admins see no agents and cannot read or change one.
  assert.deepEqual(await tc.openstackJson(['network', 'agent', 'list'], { as: 'demo' }), []);
  assert.equal((await api(tc.url, 'GET', net(`/agents/${dhcpA}`), { token: demoToken })).status, 404);
  assert.equal((await api(tc.url, 'PUT', net(`/agents/${dhcpA}`), { token: demoToken, body: { agent: { admin_state_up: false } } })).status, 404);
  assert.equal((await api(tc.url, 'PUT', net(`/agents/${dhcpA}`), { token, body: { agent: { host: 'x' } } })).status, 400);
  assert.equal((await api(tc.url, 'GET', net('/agents/00000000-0000-5000-8000-000000000000'), { token })).body.NeutronError.type, 'AgentNotFound');

  // An admin disables agent-a's DHCP agent: the next network's DHCP port goes to agent-b.
  const set = await tc.openstack(['network', 'agent', 'set', '--disable', '--description', 'maintenance', dhcpA]);
  assert.equal(set.code, 0, set.stderr);
  const shown = await tc.openstackJson(['network', 'agent', 'show', dhcpA]);
  assert.equal(shown.admin_state_up, false);
  assert.equal(shown.description, 'maintenance');
  assert.equal(shown.binary, 'neutron-dhcp-agent');
  const n = await tc.openstackJson(['network', 'create', 'agents-net']);
  await tc.openstackJson(['subnet', 'create', '--network', n.id, '--subnet-range', '10.83.0.0/24', 'agents-sub']);
  const state = await (await agentCall('GET', '/hosts/agent-b/state')).json() as { state: { ports: Array<{ deviceOwner: string; networkId: string }> } };
  assert.ok(state.state.ports.some((p) => p.deviceOwner === 'network:dhcp' && p.networkId === n.id), 'DHCP placed on agent-b');
  const dhcpB = (await tc.openstackJson<Array<Record<string, unknown>>>(['network', 'agent', 'list', '--host', 'agent-b', '--agent-type', 'dhcp']))[0]!;
  const b = await api(tc.url, 'GET', net(`/agents/${dhcpB.ID}`), { token });
  // Every DHCP network placed while agent-a's DHCP agent was down (this one, earlier tests') is on agent-b.
  assert.ok(b.body.agent.configurations.networks >= 1);
  assert.equal((await api(tc.url, 'GET', net(`/agents/${dhcpA}`), { token })).body.agent.configurations.networks, 0);
  assert.equal((await tc.openstack(['network', 'agent', 'set', '--enable', dhcpA])).code, 0);

  // No heartbeat for longer than agent_down_time: not alive.
  await tc.cloud.network.service.core.store.agentHeartbeat('agent-a', new Date(Date.now() - 120_000).toISOString());
  const dead = await api(tc.url, 'GET', net(`/agents/${dhcpA}`), { token });
  assert.equal(dead.body.agent.alive, false);
  // Its next state poll is a heartbeat again.
  await agentCall('GET', '/hosts/agent-a/state');
  assert.equal((await api(tc.url, 'GET', net(`/agents/${dhcpA}`), { token })).body.agent.alive, true);
});

test('admin quota listing includes projects that own nothing; extensions are truthful', async () => {
  const p = await tc.openstackJson(['project', 'create', 'quota-only']);
  const put = await api(tc.url, 'PUT', net(`/quotas/${p.id}`), { token, body: { quota: { network: 0, port: 0 } } });
  assert.equal(put.status, 200, put.text);
  const list = await api(tc.url, 'GET', net('/quotas'), { token });
  const entry = list.body.quotas.find((q: { project_id: string }) => q.project_id === p.id);
  assert.ok(entry, JSON.stringify(list.body));
  assert.equal(entry.network, 0);
  assert.equal((await api(tc.url, 'DELETE', net(`/quotas/${p.id}`), { token })).status, 204);
  const after = await api(tc.url, 'GET', net('/quotas'), { token });
  assert.ok(!after.body.quotas.some((q: { project_id: string }) => q.project_id === p.id), 'back to defaults: not listed');

  const ext = await tc.openstackJson<Array<{ Alias: string }>>(['extension', 'list', '--network']);
  const aliases = ext.map((e) => e.Alias);
  assert.ok(aliases.includes('agent'));
  assert.ok(!aliases.includes('stateful-security-group'), 'stateless groups are not enforced: not claimed');
  const sl = await api(tc.url, 'POST', net('/security-groups'), { token: demoToken, body: { security_group: { name: 'sl', stateful: false } } });
  assert.equal(sl.status, 400, sl.text);
});

test('security group rule ports: Neutron wording', async () => {
  const sg = (await api(tc.url, 'POST', net('/security-groups'), { token: demoToken, body: { security_group: { name: 'ports' } } })).body.security_group;
  const cases: Array<[string, number | null, number | null, string]> = [
    ['tcp', -16, 80, 'Invalid value for port -16'], ['tcp', 80, 79, 'port_range_min must be <= port_range_max'],
    ['tcp', 80, 65536, 'Invalid value for port 65536'], ['tcp', null, 6, 'port_range_min must be <= port_range_max'],
    ['icmp', 1, 256, 'Invalid value for ICMP code'], ['icmp', -1, 25, 'Invalid value'],
    ['icmp', null, 6, 'ICMP type (port-range-min) is missing'], ['icmp', 300, 1, 'Invalid value for ICMP type'],
  ];
  for (const [protocol, min, max, msg] of cases) {
    const r = await api(tc.url, 'POST', net('/security-group-rules'), { token: demoToken, body: { security_group_rule: {
      security_group_id: sg.id, direction: 'ingress', protocol, port_range_min: min, port_range_max: max } } });
    assert.equal(r.status, 400, r.text);
    assert.ok(r.body.NeutronError.message.includes(msg), `${protocol} ${min}:${max}: ${r.body.NeutronError.message}`);
  }
});

test('deleting a SLAAC subnet removes its addresses from the ports; the network stays in use', async () => {
  const n = await tc.openstackJson(['network', 'create', 'v6-net'], { as: 'demo' });
  const sub = await tc.openstackJson(['subnet', 'create', '--network', n.id, '--ip-version', '6', '--subnet-range', '2001:db8:83::/64',
    '--ipv6-ra-mode', 'slaac', '--ipv6-address-mode', 'slaac', 'v6-slaac'], { as: 'demo' });
  const v4 = await tc.openstackJson(['subnet', 'create', '--network', n.id, '--subnet-range', '10.84.0.0/24', 'v6-net-v4'], { as: 'demo' });
  const port = await tc.openstackJson(['port', 'create', '--network', n.id, 'v6-port'], { as: 'demo' });
  assert.ok(port.fixed_ips.some((f: { subnet_id: string }) => f.subnet_id === sub.id), JSON.stringify(port.fixed_ips));
  const del = await tc.openstack(['subnet', 'delete', sub.id], { as: 'demo' });
  assert.equal(del.code, 0, del.stderr);
  const after = await tc.openstackJson(['port', 'show', port.id], { as: 'demo' });
  assert.deepEqual(after.fixed_ips.map((f: { subnet_id: string }) => f.subnet_id), [v4.id]);
  const netDel = await api(tc.url, 'DELETE', net(`/networks/${n.id}`), { token: demoToken });
  assert.equal(netDel.status, 409);
  assert.match(netDel.body.NeutronError.message, /There are one or more ports still in use on the network/);
  // A stateful DHCPv6 subnet still refuses while a port holds one of its addresses.
  const st = await tc.openstackJson(['subnet', 'create', '--network', n.id, '--ip-version', '6', '--subnet-range', '2001:db8:84::/64',
    '--ipv6-ra-mode', 'dhcpv6-stateful', '--ipv6-address-mode', 'dhcpv6-stateful', 'v6-stateful'], { as: 'demo' });
  const p2 = await api(tc.url, 'POST', net('/ports'), { token: demoToken, body: { port: { network_id: n.id, fixed_ips: [{ subnet_id: st.id }] } } });
  assert.equal(p2.status, 201, p2.text);
  assert.equal((await api(tc.url, 'DELETE', net(`/subnets/${st.id}`), { token: demoToken })).body.NeutronError.type, 'SubnetInUse');
});
