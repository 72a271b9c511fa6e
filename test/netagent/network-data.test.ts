// network_data.json (config drive and metadata service) for a server's ports: DHCP subnets say
// so; a subnet without DHCP carries the static configuration (address, netmask, default and host
// routes, DNS), since the guest has no other way to learn it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { projectCaller } from '../../src/network/service.js';
import { networkDataOf } from '../../src/netagent/network-data.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

test('network_data.json: static entries for subnets without DHCP, dhcp types otherwise', async () => {
  const svc = tc.cloud.network.service;
  const project = (await tc.cloud.identity.findProject('demo'))!.id;
  const caller = projectCaller(project);
  const net = await svc.createNetwork(caller, { name: 'nd-net' });
  const staticSub = await svc.createSubnet(caller, {
    network_id: net.id, ip_version: 4, cidr: '10.91.0.0/24', gateway_ip: '10.91.0.1', enable_dhcp: false,
    dns_nameservers: ['10.91.0.53'], host_routes: [{ destination: '172.31.0.0/16', nexthop: '10.91.0.254' }],
  });
  const net2 = await svc.createNetwork(caller, { name: 'nd-net2' });
  await svc.createSubnet(caller, { network_id: net2.id, ip_version: 4, cidr: '10.92.0.0/24' });
  await svc.createSubnet(caller, { network_id: net2.id, ip_version: 6, cidr: 'fd00:92::/64', ipv6_address_mode: 'slaac', ipv6_ra_mode: 'slaac' });

  const serverId = randomUUID();
  const p1 = await svc.createServerPort({ projectId: project, serverId, networkId: net.id });
  const p2 = await svc.createServerPort({ projectId: project, serverId, networkId: net2.id });
  const nd = await networkDataOf(tc.cloud.network, serverId) as {
    links: { id: string; vif_id: string }[];
    networks: Record<string, unknown>[];
    services: { type: string; address: string }[];
  };
  assert.deepEqual(nd.links.map((l) => l.vif_id).sort(), [p1.id, p2.id].sort());

  const st = nd.networks.filter((n) => n.network_id === net.id);
  assert.equal(st.length, 1);
  assert.deepEqual(st[0], {
    id: st[0]!.id, link: `tap${p1.id.slice(0, 11)}`, network_id: net.id, ip_address: p1.fixed_ips[0].ip_address,
    type: 'ipv4', netmask: '255.255.255.0',
    routes: [
      { network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.91.0.1' },
      { network: '172.31.0.0', netmask: '255.255.0.0', gateway: '10.91.0.254' },
    ],
    services: [{ type: 'dns', address: '10.91.0.53' }],
  });
  assert.equal(p1.fixed_ips[0].subnet_id, staticSub.id);

  const dyn = nd.networks.filter((n) => n.network_id === net2.id).map((n) => n.type).sort();
  assert.deepEqual(dyn, ['ipv4_dhcp', 'ipv6_slaac']);
  assert.deepEqual(nd.services, [{ type: 'dns', address: '10.91.0.53' }]);
});
