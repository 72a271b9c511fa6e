// The network agent API (/network/agent/v1) and the host state it serves, without root: two
// registered hosts, a network whose DHCP lives on the first and a guest port on the second.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { projectCaller } from '../../src/network/service.js';
import type { HostNetworkDesired } from '../../src/netagent/protocol.js';

let tc: TestCloud;
let token = '';
const call = (method: string, path: string, body?: unknown, auth = true) => fetch(`${tc.url}/network/agent/v1${path}`, {
  method, headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
  body: body ? JSON.stringify(body) : undefined,
});

before(async () => {
  tc = await startTestCloud();
  token = tc.cloud.compute.agentToken();
});
after(async () => { await tc?.stop(); });

test('hosts register, long-poll their state by revision, report port status; bad input and no token are refused', async () => {
  assert.equal((await call('PUT', '/hosts/h1', { underlayIp: '172.16.255.1' }, false)).status, 401);
  assert.equal((await call('PUT', '/hosts/h1', { underlayIp: 'not-an-ip' })).status, 400);
  assert.equal((await call('PUT', '/hosts/h1', { underlayIp: '172.16.255.1' })).status, 200);
  assert.equal((await call('PUT', '/hosts/h2', { underlayIp: '172.16.255.2' })).status, 200);

  const first = await (await call('GET', '/hosts/h1/state')).json() as HostNetworkDesired;
  assert.equal(first.state.underlayIp, '172.16.255.1');
  assert.ok(first.state.networks.some((n) => n.external), 'the external network is carried by every agent host');
  // Nothing changed: the long poll waits its full time and returns the same revision.
  let t0 = Date.now();
  const same = await (await call('GET', `/hosts/h1/state?since=${first.revision}&wait=1`)).json() as HostNetworkDesired;
  assert.equal(same.revision, first.revision);
  assert.ok(Date.now() - t0 >= 900);

  // A change wakes the poll: a tenant network with DHCP (its port lands on h1, the first host).
  const project = (await tc.cloud.identity.findProject('demo'))!.id;
  const caller = projectCaller(project);
  const poll = call('GET', `/hosts/h1/state?since=${first.revision}&wait=30`);
  t0 = Date.now();
  const net = await tc.cloud.network.service.createNetwork(caller, { name: 'wired' });
  const sub = await tc.cloud.network.service.createSubnet(caller, { network_id: net.id, cidr: '10.77.0.0/24' });
  const vm = await tc.cloud.network.service.createServerPort({ projectId: project, serverId: crypto.randomUUID(), networkId: net.id, hostId: 'h2' });
  const woke = await (await poll).json() as HostNetworkDesired;
  assert.notEqual(woke.revision, first.revision);
  assert.ok(Date.now() - t0 < 20_000, 'woken by the change, not by the timeout');

  const h1 = await (await call('GET', '/hosts/h1/state')).json() as HostNetworkDesired;
  const dhcp = h1.state.ports.find((p) => p.deviceOwner === 'network:dhcp' && p.networkId === net.id);
  assert.ok(dhcp, 'the DHCP port is bound to h1');
  assert.deepEqual(h1.state.dhcpReservations.map((r) => [r.portId, r.macAddress, r.fixedIps[0]?.ipAddress]),
    [[vm.id, vm.mac_address, vm.fixed_ips[0].ip_address]], 'h1\'s dnsmasq pins the guest port on h2');
  assert.equal(h1.state.subnets.find((s) => s.id === sub.id)?.isolatedMetadata, true, 'no router: metadata from the DHCP namespace');
  assert.deepEqual(h1.state.vxlanPeers.map((p) => [p.hostId, p.underlayIp, p.networkIds]), [['h2', '172.16.255.2', [net.id]]]);
  const h2 = await (await call('GET', '/hosts/h2/state')).json() as HostNetworkDesired;
  assert.deepEqual(h2.state.ports.map((p) => p.id), [vm.id]);
  assert.deepEqual(h2.state.vxlanPeers.map((p) => p.hostId), ['h1']);

  // A router interface on the subnet: metadata then comes through the router.
  const router = await tc.cloud.network.service.createRouter(caller, { name: 'r' });
  await tc.cloud.network.service.addRouterInterface(caller, router.id, { subnet_id: sub.id });
  const h1b = await (await call('GET', '/hosts/h1/state')).json() as HostNetworkDesired;
  assert.equal(h1b.state.subnets.find((s) => s.id === sub.id)?.isolatedMetadata, false);
  assert.ok(h1b.state.routers.some((r) => r.id === router.id));

  // Port status from the agent: only ports bound to the reporting host change.
  assert.equal((await call('POST', '/hosts/h2/ports', { ports: { [vm.id]: 'ACTIVE' } })).status, 200);
  assert.equal((await tc.cloud.network.service.get('port', caller, vm.id)).status, 'ACTIVE');
  const r = await (await call('POST', '/hosts/h1/ports', { ports: { [vm.id]: 'DOWN' } })).json() as { changed: number };
  assert.equal(r.changed, 0, 'h1 cannot set the status of a port bound to h2');
  assert.equal((await call('POST', '/hosts/h2/ports', { ports: { [vm.id]: 'BROKEN' } })).status, 400);
  const secret = await (await call('GET', '/metadata-secret')).json() as { secret: string };
  assert.ok(secret.secret.length >= 32);
});
