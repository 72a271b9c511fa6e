// Compute ↔ network through the real `openstack` CLI, on a simulated host (no guest boots here;
// test/e2e/network.test.ts boots real ones): `server create --network` and `networks: auto`
// create and bind ports, addresses come from the ports (floating IPs included), and delete
// releases the ports.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';
import { fakeHost, type FakeHost } from '../compute/fake-agent.js';

let tc: TestCloud;
let host: FakeHost;
const as = { as: 'demo' as const };

before(async () => {
  tc = await startTestCloud();
  host = await fakeHost(tc, 'fake-net-1');
});
after(async () => {
  await host?.stop();
  await tc?.stop();
});

test('server create --network / auto make bound ports; add/remove security group; interface attach/detach; addresses from ports and floating IPs; delete releases ports', async () => {
  const img = join(tc.dataDir, 'tiny.img');
  writeFileSync(img, Buffer.alloc(64 * 1024));
  await tc.openstackJson(['image', 'create', '--file', img, '--disk-format', 'raw', '--container-format', 'bare', 'tiny'], as);
  const net = await tc.openstackJson(['network', 'create', 'net-s'], as);
  await tc.openstackJson(['subnet', 'create', '--network', 'net-s', '--subnet-range', '10.81.0.0/24', 'sub-s'], as);
  await tc.openstack(['router', 'create', 'rs'], as);
  await tc.openstack(['router', 'set', '--external-gateway', 'public', 'rs'], as);
  await tc.openstack(['router', 'add', 'subnet', 'rs', 'sub-s'], as);

  const s1 = await tc.openstackJson(['server', 'create', '--image', 'tiny', '--flavor', '42', '--network', 'net-s', '--wait', 's1'], as);
  assert.equal(s1.status, 'ACTIVE');
  const ports = await tc.openstackJson(['port', 'list', '--server', s1.id, '--long'], as);
  assert.equal(ports.length, 1);
  const port = await tc.openstackJson(['port', 'show', ports[0].ID]);
  assert.equal(port.binding_host_id, 'fake-net-1', 'bound to the scheduled host');
  assert.equal(port.device_owner, 'compute:nova');
  assert.equal(port.network_id, net.id);
  const ip = port.fixed_ips[0].ip_address;
  const shown = await tc.openstackJson(['server', 'show', 's1'], as);
  assert.match(JSON.stringify(shown.addresses), new RegExp(ip.replace(/\./g, '\\.')));
  // The agent's desired state carries the NIC with the port's MAC and tap name.
  const inst = await tc.cloud.compute.service.getInstance(s1.id);
  assert.deepEqual(inst?.nics.map((n) => [n.id, n.mac, n.tap]), [[port.id, port.mac_address, `tap${port.id.slice(0, 11)}`]]);

  // Security groups on the server's ports (compute actions addSecurityGroup / removeSecurityGroup).
  const web = await tc.openstackJson(['security', 'group', 'create', 'web'], as);
  assert.equal((await tc.openstack(['server', 'add', 'security', 'group', 's1', 'web'], as)).code, 0);
  assert.ok((await tc.openstackJson(['port', 'show', port.id], as)).security_group_ids.includes(web.id));
  // The server shows them too (Nova's `security_groups`, names of its ports' groups), in show and detail.
  const demoToken = (await issue(tc, 'demo', tc.demoPassword)).token;
  const sgNames = async (path: string) => {
    const b = (await api(tc.url, 'GET', `/compute/v2.1${path}`, { token: demoToken })).body;
    const server = b.server ?? (b.servers as Array<{ id: string }>).find((x) => x.id === s1.id);
    return (server.security_groups as Array<{ name: string }>).map((g) => g.name);
  };
  assert.deepEqual(await sgNames(`/servers/${s1.id}`), ['default', 'web']);
  assert.deepEqual(await sgNames('/servers/detail'), ['default', 'web']);
  assert.equal((await tc.openstack(['server', 'remove', 'security', 'group', 's1', 'web'], as)).code, 0);
  assert.ok(!(await tc.openstackJson(['port', 'show', port.id], as)).security_group_ids.includes(web.id));
  assert.deepEqual(await sgNames(`/servers/${s1.id}`), ['default']);

  // Floating IP through the CLI (it goes through the network API by the server's port).
  const fip = (await tc.openstackJson(['floating', 'ip', 'create', 'public'], as)).floating_ip_address;
  assert.equal((await tc.openstack(['server', 'add', 'floating', 'ip', 's1', fip], as)).code, 0);
  assert.match(JSON.stringify((await tc.openstackJson(['server', 'show', 's1'], as)).addresses), new RegExp(fip.replace(/\./g, '\\.')));
  assert.equal((await tc.openstack(['server', 'remove', 'floating', 'ip', 's1', fip], as)).code, 0);

  // os-interface: attach a NIC on the network (a new bound port, added to the guest's NICs), then detach it.
  assert.equal((await tc.openstack(['server', 'add', 'network', 's1', 'net-s'], as)).code, 0);
  const two = await tc.openstackJson(['port', 'list', '--server', s1.id], as);
  assert.equal(two.length, 2);
  const added = two.find((p: { ID: string }) => p.ID !== port.id).ID;
  assert.deepEqual((await tc.cloud.compute.service.getInstance(s1.id))?.nics.map((n) => n.id).sort(), [port.id, added].sort());
  assert.equal((await tc.openstack(['server', 'remove', 'port', 's1', added], as)).code, 0);
  assert.deepEqual((await tc.openstackJson(['port', 'list', '--server', s1.id], as)).map((p: { ID: string }) => p.ID), [port.id]);
  assert.deepEqual((await tc.cloud.compute.service.getInstance(s1.id))?.nics.map((n) => n.id), [port.id]);

  // networks "auto" (what the CLI sends without --network): the project's only network.
  const s2 = await tc.openstackJson(['server', 'create', '--image', 'tiny', '--flavor', '42', '--wait', 's2'], as);
  assert.equal((await tc.openstackJson(['port', 'list', '--server', s2.id], as)).length, 1);

  // Bad input: a network that does not exist is a 400 at create, nothing made.
  const demo = await issue(tc, 'demo', tc.demoPassword);
  const imageId = (await tc.openstackJson(['image', 'show', 'tiny'], as)).id;
  const bad = await api(tc.url, 'POST', '/compute/v2.1/servers', { token: demo.token, headers: { 'OpenStack-API-Version': 'compute 2.73' },
    body: { server: { name: 'bad', imageRef: imageId, flavorRef: '42', networks: [{ uuid: '00000000-0000-4000-8000-000000000000' }] } } });
  assert.equal(bad.status, 400);
  assert.match(JSON.stringify(bad.body), /Network 00000000-0000-4000-8000-000000000000 could not be found/);

  assert.equal((await tc.openstack(['server', 'delete', '--wait', 's1', 's2'], as)).code, 0);
  const left = await tc.openstackJson(['port', 'list', '--network', 'net-s', '--device-owner', 'compute:nova'], as);
  assert.deepEqual(left, [], 'server delete released its ports');
});
