// The networking service's in-process interface: IPAM arithmetic and concurrency, the calls
// compute and the agent make, and the desired state of a host (src/agent/dataplane/model.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { systemCaller } from '../../src/network/core.js';
import { projectCaller, type NetworkService } from '../../src/network/service.js';
import { defaultPools, formatIp, normalizeIp, parseCidr, parseIp, validatePools, eui64 } from '../../src/network/ipam.js';

let tc: TestCloud;
let svc: NetworkService;
let project: string;

before(async () => {
  tc = await startTestCloud();
  svc = tc.cloud.network.service;
  project = (await tc.cloud.identity.findProject('demo'))!.id;
});
after(async () => { await tc?.stop(); });

const code = (e: unknown) => (e as { status?: number; extra?: { type?: string } });

test('ipam: parsing, canonical forms, pools', () => {
  assert.equal(normalizeIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(normalizeIp('2001:db8:0:1:0:0:0:0'), '2001:db8:0:1::');
  assert.equal(normalizeIp('::ffff:10.0.0.1'), '::ffff:a00:1');
  assert.equal(normalizeIp('10.0.0.256'), undefined);
  assert.equal(normalizeIp('010.0.0.1'), undefined);
  assert.equal(parseCidr('10.0.0.1/24'), undefined, 'host bits refused');
  const c = parseCidr('10.0.0.0/24')!;
  assert.deepEqual(defaultPools(c, parseIp('10.0.0.1')!.value), [{ start: '10.0.0.2', end: '10.0.0.254' }]);
  assert.deepEqual(defaultPools(c, parseIp('10.0.0.100')!.value),
    [{ start: '10.0.0.1', end: '10.0.0.99' }, { start: '10.0.0.101', end: '10.0.0.254' }]);
  assert.match(String(validatePools(c, [{ start: '10.0.0.5', end: '10.0.1.5' }])), /spans beyond/);
  assert.match(String(validatePools(c, [{ start: '10.0.0.5', end: '10.0.0.9' }, { start: '10.0.0.9', end: '10.0.0.12' }])), /overlapping/);
  assert.equal(formatIp(6, eui64(parseCidr('2001:db8::/64')!, 'fa:16:3e:00:00:01')), '2001:db8::f816:3eff:fe00:1');
});

test('concurrent port creation never hands out one address twice; exhaustion is a clean 409', async () => {
  const caller = projectCaller(project);
  const net = await svc.createNetwork(caller, { name: 'ipam-race' });
  // /29: .1 gateway, .2-.6 usable; DHCP off so the five addresses are all for ports.
  const sub = await svc.createSubnet(caller, { network_id: net.id, cidr: '10.9.0.0/29', enable_dhcp: false });
  const results = await Promise.allSettled(Array.from({ length: 7 }, () => svc.createPort(caller, { network_id: net.id })));
  const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<any>).value);
  const failed = results.filter((r) => r.status === 'rejected').map((r) => code((r as PromiseRejectedResult).reason));
  assert.equal(ok.length, 5);
  assert.deepEqual(ok.map((p) => p.fixed_ips[0].ip_address).sort(), ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
  assert.deepEqual(failed.map((f) => [f.status, f.extra?.type]), [[409, 'IpAddressGenerationFailure'], [409, 'IpAddressGenerationFailure']]);
  // Two racing requests for the same explicit address: exactly one wins.
  await svc.deletePort(caller, ok[0].id);
  const race = await Promise.allSettled([0, 1].map(() =>
    svc.createPort(caller, { network_id: net.id, fixed_ips: [{ subnet_id: sub.id, ip_address: ok[0].fixed_ips[0].ip_address }] })));
  assert.equal(race.filter((r) => r.status === 'fulfilled').length, 1);
  const loser = race.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.equal(code(loser.reason).extra?.type, 'IpAddressAlreadyAllocated');
});

test('concurrent tenant networks get distinct VXLAN segments', async () => {
  const caller = projectCaller(project);
  const nets = await Promise.all(Array.from({ length: 6 }, (_, i) => svc.createNetwork(caller, { name: `seg-${i}` })));
  const vnis = nets.map((n) => n['provider:segmentation_id']);
  assert.equal(new Set(vnis).size, 6);
  for (const n of nets) {
    assert.equal(n.mtu, 1450);
    await svc.deleteNetwork(caller, n.id);
  }
});

test('compute interface and host desired state', async () => {
  const caller = projectCaller(project);
  const net = await svc.createNetwork(caller, { name: 'hs-net' });
  const sub = await svc.createSubnet(caller, { network_id: net.id, cidr: '10.20.0.0/24', dns_nameservers: ['198.51.100.53'] });
  const router = await svc.createRouter(caller, { name: 'hs-router' });
  const pub = (await svc.list('network', systemCaller)).find((n) => n.name === 'public')!;
  await svc.updateRouter(caller, router.id, { external_gateway_info: { network_id: pub.id } });
  await svc.addRouterInterface(caller, router.id, { subnet_id: sub.id });
  await svc.registerHost('host-a', '127.0.0.1');
  await svc.registerHost('host-b', '127.0.0.2');

  const web = await svc.createSecurityGroup(caller, { name: 'web' });
  await svc.createSecurityGroupRule(caller, { security_group_id: web.id, direction: 'ingress', protocol: 'tcp', port_range_min: 80 });
  const p1 = await svc.createServerPort({ projectId: project, serverId: 'srv-1', networkId: net.id, securityGroups: ['default', 'web'] });
  const p2 = await svc.createServerPort({ projectId: project, serverId: 'srv-2', networkId: net.id, fixedIp: '10.20.0.50' });
  assert.equal(p2.fixed_ips[0].ip_address, '10.20.0.50');
  assert.equal(p1.status, 'DOWN');
  await svc.bindPort(p1.id, 'host-a');
  await svc.bindPort(p2.id, 'host-b');
  const fip = await svc.allocateFloatingIp(project);
  await svc.associateFloatingIp(project, fip.floating_ip_address, p1.id);

  const a = await svc.hostNetworkState('host-a');
  assert.equal(a.underlayIp, '127.0.0.1');
  assert.deepEqual(a.networks.map((n) => n.id).sort(), [net.id, pub.id].sort());
  const tenant = a.networks.find((n) => n.id === net.id)!;
  assert.equal(tenant.segmentationType, 'vxlan');
  assert.equal(tenant.mtu, 1450);
  assert.equal(a.networks.find((n) => n.id === pub.id)!.physicalNetwork, 'physnet-public');
  const owners = a.ports.map((p) => p.deviceOwner).sort();
  assert.deepEqual(owners, ['compute:nova', 'network:dhcp', 'network:router_gateway', 'network:router_interface']);
  const guest = a.ports.find((p) => p.id === p1.id)!;
  assert.equal(guest.tapName, `tap${p1.id}`.slice(0, 14));
  assert.equal(guest.securityGroupIds.length, 2);
  const def = a.securityGroups.find((g) => g.id !== web.id)!;
  const fromGroup = def.rules.find((r) => r.direction === 'ingress' && r.ethertype === 'IPv4')!;
  // Resolved cloud-wide: both members (on two hosts), plus the earlier test's ports of the same group.
  for (const ip of [p1.fixed_ips[0].ip_address, '10.20.0.50', '10.9.0.3']) assert.ok(fromGroup.remoteGroupIps!.includes(ip), ip);
  assert.equal(a.securityGroups.find((g) => g.id === web.id)!.rules.find((r) => r.protocol === 'tcp')!.portRangeMax, 80);
  assert.equal(a.routers.length, 1);
  assert.equal(a.routers[0]!.gateway?.enableSnat, true);
  assert.equal(a.routers[0]!.interfaces[0]!.subnetId, sub.id);
  assert.deepEqual(a.floatingIps.map((f) => [f.floatingIpAddress, f.fixedIpAddress, f.routerId]),
    [[fip.floating_ip_address, p1.fixed_ips[0].ip_address, router.id]]);
  assert.deepEqual(a.vxlanPeers, [{ hostId: 'host-b', underlayIp: '127.0.0.2', networkIds: [net.id] }]);
  assert.equal(a.subnets.find((s) => s.id === sub.id)!.dnsNameservers[0], '198.51.100.53');

  const b = await svc.hostNetworkState('host-b');
  assert.deepEqual(b.ports.map((p) => p.id), [p2.id]);
  assert.equal(b.routers.length, 0);
  assert.deepEqual(b.vxlanPeers.map((p) => p.hostId), ['host-a']);

  // The agent's report flips the status of its own ports only.
  assert.equal(await svc.reportPortStatus('host-a', { [p1.id]: 'ACTIVE', [p2.id]: 'ACTIVE' }), 1);
  assert.equal((await svc.get('port', systemCaller, p1.id)).status, 'ACTIVE');
  assert.equal((await svc.get('port', systemCaller, p2.id)).status, 'DOWN');

  // Releasing: unbinding drops the port from the host; deleting unlinks the floating IP.
  await svc.unbindPort(p2.id);
  assert.equal((await svc.hostNetworkState('host-b')).ports.length, 0);
  await svc.deleteServerPort(p1.id);
  const after1 = await svc.get('floatingip', systemCaller, fip.id);
  assert.equal(after1.port_id, null);
  assert.equal((await svc.hostNetworkState('host-a')).floatingIps.length, 0);
});
