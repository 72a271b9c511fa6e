// Data plane: routers (SNAT, floating IPs), the provider namespace, the metadata proxy and
// VXLAN between two agents on one machine (each with its own namespaces, tunnels over a
// shared underlay namespace). Fake guests are namespaces (see helpers.ts). Runs as root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { LinuxDataplane, type DataplaneConfig } from '../../src/agent/dataplane/driver.js';
import type { HostNetworkState, SecurityGroupSpec } from '../../src/agent/dataplane/model.js';
import { verifyRequester } from '../../src/agent/dataplane/metadata-contract.js';
import { Fixture, sh, emptyState, eventually, hostSnapshot, rootTaps, inNs, must, network, ping, pingEventually, port, rule, subnet, tcpConnect } from './helpers.js';

const fx = new Fixture('rtt');
const SECRET = 'metadata-test-secret';
const providerNs = `${fx.prefix}provider`;
const underlayNs = `${fx.prefix}underlay`;
const common: DataplaneConfig = {
  physicalNetworks: { public: { netns: providerNs, bridge: 'br-public', addresses: ['203.0.113.1/24'] } },
  underlay: { netns: underlayNs, bridge: 'br-underlay', prefixLen: 24 },
  metadata: { socketPath: join(fx.dir, 'metadata.sock'), secret: SECRET },
};
const h1 = new LinuxDataplane({ ...common, prefix: fx.prefix, stateDir: join(fx.dir, 'h1') });
const h2 = new LinuxDataplane({ ...common, prefix: `${fx.prefix}h2-`, stateDir: join(fx.dir, 'h2') });
let rootBefore: Awaited<ReturnType<typeof hostSnapshot>>;
let metadata: Server;

const ext = network({ segmentationType: 'flat', segmentationId: null, physicalNetwork: 'public', mtu: 1500, external: true });
const extSub = subnet(ext, '203.0.113.0/24', '203.0.113.1', { enableDhcp: false });
const net = network();
const sub = subnet(net, '10.30.0.0/24', '10.30.0.1');
const sg: SecurityGroupSpec = { id: 'c0ffee00-0000-4000-8000-000000000002', rules: [rule('egress'),
  rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22 }), rule('ingress', { protocol: 'icmp' })] };
const routerId = 'aaaa0000-0000-4000-8000-00000000000a';
const gwPort = port(ext, extSub, '203.0.113.10', { deviceOwner: 'network:router_gateway', deviceId: routerId });
const rif = port(net, sub, '10.30.0.1', { deviceOwner: 'network:router_interface', deviceId: routerId });
const dhcpPort = port(net, sub, '10.30.0.2', { deviceOwner: 'network:dhcp', deviceId: 'dhcp' });
const g1p = port(net, sub, '10.30.0.11', { securityGroupIds: [sg.id] });
const g2p = port(net, sub, '10.30.0.12', { securityGroupIds: [sg.id] });
const g3p = port(net, sub, '10.30.0.13', { securityGroupIds: [sg.id] });
const fip = { id: 'f1f1f1f1-0000-4000-8000-000000000001', floatingIpAddress: '203.0.113.57', floatingNetworkId: ext.id, routerId,
  portId: g1p.id, fixedIpAddress: '10.30.0.11' };
let g1 = '', g2 = '', g3 = '';

const peers = [{ hostId: 'h1', underlayIp: '172.16.255.1', networkIds: [net.id] }, { hostId: 'h2', underlayIp: '172.16.255.2', networkIds: [net.id] }];
function state1(over: Partial<HostNetworkState> = {}): HostNetworkState {
  return { ...emptyState(), hostId: 'h1', underlayIp: '172.16.255.1', vxlanPeers: peers, networks: [ext, net], subnets: [extSub, sub],
    ports: [gwPort, rif, dhcpPort, g1p, g2p], securityGroups: [sg],
    routers: [{ id: routerId, gateway: { portId: gwPort.id, enableSnat: true }, interfaces: [{ portId: rif.id, subnetId: sub.id }], routes: [] }],
    floatingIps: [fip], dhcpReservations: [{ portId: g3p.id, networkId: net.id, macAddress: g3p.macAddress, fixedIps: g3p.fixedIps }], ...over };
}
const state2: HostNetworkState = { ...emptyState(), hostId: 'h2', underlayIp: '172.16.255.2', vxlanPeers: peers, networks: [net],
  subnets: [sub], ports: [g3p], securityGroups: [sg] };

before(async () => {
  rootBefore = await hostSnapshot();
  // The controller side of the metadata contract: verify the signature, echo who asked.
  metadata = createServer((req, res) => {
    const who = verifyRequester(req.headers, SECRET);
    res.writeHead(who ? 200 : 403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ who, path: req.url }));
  });
  await new Promise<void>((r) => metadata.listen(common.metadata!.socketPath, r));
  g1 = await fx.guest('g1', g1p, 1450, '10.30.0.11/24', '10.30.0.1');
  g2 = await fx.guest('g2', g2p, 1450, '10.30.0.12/24', '10.30.0.1');
  g3 = await fx.guest('g3', g3p, 1450, null);
});

after(async () => {
  try { await h2.purge(); await h1.purge(); } finally { metadata?.close(); await fx.cleanup(); }
});

test('router: SNAT to the provider network, floating IP reachable from the provider namespace', async () => {
  const r = await h1.converge(state1());
  assert.deepEqual(r.errors, []);
  assert.equal(r.ports[g1p.id], 'ACTIVE');
  assert.ok(await pingEventually(g2, '203.0.113.1'), 'guest reaches the provider gateway through the router');
  fx.serve(providerNs, 8000, '$SOCAT_PEERADDR');
  const seen = await eventually(() => tcpConnect(g2, '203.0.113.1', 8000));
  assert.equal(seen?.trim(), '203.0.113.10', 'SNAT behind the router gateway address');
  assert.equal((await tcpConnect(g1, '203.0.113.1', 8000))?.trim(), '203.0.113.57', 'a guest with a floating IP leaves with it');
  assert.ok(await pingEventually(providerNs, '203.0.113.57'), 'floating IP answers ping from the provider namespace');
  fx.serve(g1, 22, 'ssh-on-g1');
  assert.match((await eventually(() => tcpConnect(providerNs, '203.0.113.57', 22))) ?? '', /ssh-on-g1/, 'TCP to the floating IP reaches the guest');
  assert.equal(await ping(providerNs, '10.30.0.12'), false, 'tenant addresses are not routed from outside');
  assert.match((await eventually(() => tcpConnect(g2, '203.0.113.57', 22))) ?? '', /ssh-on-g1/, 'hairpin: a guest reaches another through its floating IP');
  assert.equal((await h1.converge(state1())).changes, 0, 'idempotent');
  // An agent restart: a new driver on the same state directory adopts everything as it is.
  const restarted = new LinuxDataplane({ ...common, prefix: fx.prefix, stateDir: join(fx.dir, 'h1') });
  assert.equal((await restarted.converge(state1())).changes, 0, 'adopted without changes');
});

test('metadata: 169.254.169.254 answers through the router, signed, and forged headers do not help', async () => {
  // The proxy (a node process started by converge) may still be starting.
  const out = await eventually(async () => {
    const r = await inNs(g1, 'curl', ['-s', '-m', '5', '-H', 'X-Stratus-Router-Id: forged', '-H', 'X-Forwarded-For: 10.30.0.12',
      'http://169.254.169.254/openstack/latest/meta_data.json']);
    return r.code === 0 ? r.stdout : null;
  }, 25);
  assert.ok(out, 'metadata answers');
  const body = JSON.parse(out);
  assert.deepEqual(body.who, { ip: '10.30.0.11', routerId });
  assert.equal(body.path, '/openstack/latest/meta_data.json');
  assert.equal(verifyRequester({ 'x-forwarded-for': '10.30.0.11', 'x-stratus-router-id': routerId, 'x-stratus-metadata-signature': 'x' }, SECRET), null);
});

test('VXLAN: a guest on a second agent joins the network over the underlay (DHCP, ping, router)', async () => {
  const r2 = await h2.converge(state2);
  assert.deepEqual(r2.errors, []);
  assert.equal(r2.ports[g3p.id], 'ACTIVE');
  const lease = await fx.dhcp(g3);
  assert.equal(lease?.ip, '10.30.0.13', 'DHCP across the tunnel gives the fixed IP');
  await must('ip', ['-n', g3, 'addr', 'add', '10.30.0.13/24', 'dev', 'eth0']);
  assert.ok(await pingEventually(g3, '10.30.0.11'), 'g3 (agent 2) pings g1 (agent 1)');
  await must('ip', ['-n', g3, 'route', 'add', 'default', 'via', '10.30.0.1']);
  assert.ok(await pingEventually(g3, '203.0.113.1'), 'g3 reaches the external network through the router on agent 1');
  // Full-size frames fit: MTU 1450 inside, 1500 on the underlay.
  assert.equal((await inNs(g3, 'ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', '1422', '10.30.0.11'])).code, 0, '1450-byte packets cross');
  assert.equal((await h2.converge(state2)).changes, 0, 'idempotent');
});

async function kernelHasVlan(): Promise<boolean> {
  const ns = `${fx.prefix}vlanprobe`;
  await must('ip', ['netns', 'add', ns]);
  try {
    await must('ip', ['-n', ns, 'link', 'add', 'p0', 'type', 'dummy']).catch(() => undefined);
    return (await sh('ip', ['-n', ns, 'link', 'add', 'link', 'p0', 'name', 'p0.5', 'type', 'vlan', 'id', '5'])).code === 0;
  } finally { await sh('ip', ['netns', 'del', ns]); }
}

test('VLAN provider network across both agents, port security off', async () => {
  const vlan = network({ segmentationType: 'vlan', segmentationId: 100, physicalNetwork: 'public', mtu: 1500 });
  const vsub = subnet(vlan, '10.40.0.0/24', null, { enableDhcp: false });
  const v1p = port(vlan, vsub, '10.40.0.11', { portSecurityEnabled: false });
  const v2p = port(vlan, vsub, '10.40.0.12', { portSecurityEnabled: false });
  const v1 = await fx.guest('v1', v1p, 1500, '10.40.0.11/24');
  const v2 = await fx.guest('v2', v2p, 1500, '10.40.0.12/24');
  const s1 = state1();
  const r1 = await h1.converge({ ...s1, networks: [...s1.networks, vlan], subnets: [...s1.subnets, vsub], ports: [...s1.ports, v1p] });
  const r2 = await h2.converge({ ...state2, networks: [...state2.networks, vlan], subnets: [...state2.subnets, vsub], ports: [...state2.ports, v2p] });
  if (await kernelHasVlan()) {
    assert.deepEqual([...r1.errors, ...r2.errors], []);
    assert.ok(await pingEventually(v1, '10.40.0.12'), 'v1 (agent 1) pings v2 (agent 2) over VLAN 100');
    // Tagged on the provider wire: the untagged flat network does not see it.
    assert.equal(await ping(providerNs, '10.40.0.12'), false);
  } else {
    // This kernel has no 802.1Q: the network is refused with a clear reason and the rest keeps working.
    assert.match(r1.errors.join(' '), /VLAN networks need 802\.1Q support/);
    assert.equal(await ping(v1, '10.40.0.12'), false);
    assert.ok(await pingEventually(providerNs, '203.0.113.57', 3), 'the rest of the state still applied');
  }
  await h1.converge(state1());
  await h2.converge(state2);
  assert.equal(await ping(v2, '10.40.0.11', 2), false, 'unplugged with its network');
  assert.ok(await pingEventually(g3, '10.30.0.11', 3), 'the VXLAN network is unaffected');
});

test('disassociating the floating IP removes its NAT; empty states remove everything', async () => {
  await h1.converge(state1({ floatingIps: [] }));
  assert.equal(await ping(providerNs, '203.0.113.57', 2), false, 'floating IP gone');
  const nat = await must('ip', ['netns', 'exec', h1.names.routerNs(routerId), 'iptables-save', '-t', 'nat']);
  assert.doesNotMatch(nat, /203\.0\.113\.57/);
  assert.match(nat, /SNAT --to-source 203\.0\.113\.10/);
  await h2.converge(emptyState());
  assert.equal(await ping(g1, '10.30.0.13'), false, 'g3 gone with agent 2');
  assert.deepEqual((await h1.converge(emptyState())).errors, []);
  const now = await hostSnapshot();
  assert.deepEqual(now.netns.filter((n) => n.startsWith(fx.prefix) && !n.startsWith(`${fx.prefix}vm-`)), [], 'no namespace left (shared ones included)');
  assert.deepEqual(await rootTaps([g1p, g2p, g3p].map((p) => p.tapName)), [], 'no tap left in the root namespace');
  assert.equal(now.route, rootBefore.route, 'root routes unchanged');
  assert.equal(now.ruleset, rootBefore.ruleset, 'root ruleset unchanged');
});
