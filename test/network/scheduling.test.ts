// Where new DHCP ports go: never to a registered host whose agent stopped heartbeating (it would
// never serve them), even if it sorts first; back to it once it is alive again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

const agentCall = (method: string, path: string, body?: unknown) => fetch(`${tc.url}/network/agent/v1${path}`, {
  method, headers: { authorization: `Bearer ${tc.cloud.compute.agentToken()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
  ...(body ? { body: JSON.stringify(body) } : {}),
});
const dhcpOn = async (host: string, networkId: string) => {
  const r = await (await agentCall('GET', `/hosts/${host}/state`)).json() as { state: { ports: Array<{ deviceOwner: string; networkId: string }> } };
  return r.state.ports.some((p) => p.deviceOwner === 'network:dhcp' && p.networkId === networkId);
};

test('a dead host takes no new DHCP ports; the live one does', async () => {
  assert.equal((await agentCall('PUT', '/hosts/aa-dead', { underlayIp: '172.16.252.1' })).status, 200);
  assert.equal((await agentCall('PUT', '/hosts/bb-alive', { underlayIp: '172.16.252.2' })).status, 200);
  // aa-dead's last heartbeat was 10 minutes ago.
  await tc.cloud.db.kysely.updateTable('network_agents').set({ heartbeat_at: new Date(Date.now() - 600_000).toISOString() })
    .where('host_id', '=', 'aa-dead').execute();
  const n = await tc.openstackJson(['network', 'create', 'sched-net']);
  await tc.openstackJson(['subnet', 'create', '--network', n.id, '--subnet-range', '10.84.0.0/24', 'sched-sub']);
  assert.equal(await dhcpOn('bb-alive', n.id), true, 'DHCP placed on the live host');
  const { token } = await issue(tc, 'admin', tc.adminPassword);
  const agents = (await api(tc.url, 'GET', '/network/v2.0/agents?host=aa-dead', { token })).body.agents as Array<{ alive: boolean }>;
  assert.equal(agents.length, 4);
  assert.ok(agents.every((a) => a.alive === false), 'and it is shown dead');
  // (Its poll is a heartbeat: asked last.)
  assert.equal(await dhcpOn('aa-dead', n.id), false);
});
