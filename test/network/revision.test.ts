// The network revision behind the agents' long polls: a counter in the database bumped by every
// change host states depend on, so an unchanged state costs one read instead of a recomputation,
// changes made through another controller copy still wake the polls, and a restarted
// controller or agent agrees on the state's revision.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { NetworkService, projectCaller } from '../../src/network/service.js';
import { HostStateCache } from '../../src/netagent/revision.js';
import type { HostNetworkDesired } from '../../src/netagent/protocol.js';

let tc: TestCloud;
let token = '';
const state = async (path: string): Promise<HostNetworkDesired> => {
  const r = await fetch(`${tc.url}/network/agent/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  return await r.json() as HostNetworkDesired;
};
const register = (host: string, underlayIp: string) => fetch(`${tc.url}/network/agent/v1/hosts/${host}`, {
  method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ underlayIp }),
});

before(async () => {
  tc = await startTestCloud();
  token = tc.cloud.compute.agentToken();
});
after(async () => { await tc?.stop(); });

test('the revision moves with host-state changes only, and unchanged polls do not recompute', async () => {
  const svc = tc.cloud.network.service;
  const project = (await tc.cloud.identity.findProject('demo'))!.id;
  const caller = projectCaller(project);
  assert.equal((await register('rv1', '172.16.254.1')).status, 200);
  const r0 = await svc.stateRevision();
  assert.equal((await register('rv1', '172.16.254.1')).status, 200);
  assert.equal(await svc.stateRevision(), r0, 'a re-registration with the same endpoint (heartbeat) changes nothing');

  const net = await svc.createNetwork(caller, { name: 'rev' });
  const r1 = await svc.stateRevision();
  assert.ok(r1 > r0, 'a new network moves the revision');
  await svc.createSubnet(caller, { network_id: net.id, cidr: '10.78.0.0/24' });
  const vm = await svc.createServerPort({ projectId: project, serverId: crypto.randomUUID(), networkId: net.id, hostId: 'rv1' });
  const first = await state('/hosts/rv1/state');
  assert.ok(first.state.ports.some((p) => p.id === vm.id));

  // Port status is no part of the host state: reporting it does not move the revision.
  const r2 = await svc.stateRevision();
  await svc.reportPortStatus('rv1', { [vm.id]: 'ACTIVE' });
  assert.equal((await svc.get('port', caller, vm.id)).status, 'ACTIVE');
  assert.equal(await svc.stateRevision(), r2);

  // Unchanged: polls (long and short) are answered from the cache, no recomputation.
  const computed = tc.cloud.netagent.computedStates;
  const same = await state(`/hosts/rv1/state?since=${first.revision}&wait=2`);
  assert.equal(same.revision, first.revision);
  for (let i = 0; i < 5; i++) assert.equal((await state('/hosts/rv1/state')).revision, first.revision);
  assert.equal(tc.cloud.netagent.computedStates, computed, 'no host state computed while nothing changed');

  // A change through this process wakes the poll at once.
  let t0 = Date.now();
  const poll = state(`/hosts/rv1/state?since=${first.revision}&wait=30`);
  await new Promise((r) => setTimeout(r, 200));
  await svc.updatePort(caller, vm.id, { allowed_address_pairs: [{ ip_address: '10.78.0.200' }] });
  const woke = await poll;
  assert.notEqual(woke.revision, first.revision);
  assert.deepEqual(woke.state.ports.find((p) => p.id === vm.id)?.allowedAddressPairs.map((a) => a.ipAddress), ['10.78.0.200']);
  assert.ok(Date.now() - t0 < 5000, `woken by the change (${Date.now() - t0} ms)`);

  // A change through another controller copy (its own service on the same database) is seen by
  // the shared revision watch within about a second.
  const other = new NetworkService(tc.cloud.db, tc.cloud.identity, tc.cloud.log);
  t0 = Date.now();
  const poll2 = state(`/hosts/rv1/state?since=${woke.revision}&wait=30`);
  await new Promise((r) => setTimeout(r, 200));
  await other.updatePort(caller, vm.id, { allowed_address_pairs: [] });
  const woke2 = await poll2;
  assert.notEqual(woke2.revision, woke.revision);
  assert.deepEqual(woke2.state.ports.find((p) => p.id === vm.id)?.allowedAddressPairs, []);
  assert.ok(Date.now() - t0 < 8000, `woken by the other copy's change (${Date.now() - t0} ms)`);

  // A restarted controller (fresh cache, revision from the database) computes the same revision,
  // so a waiting agent does not reconverge for nothing; a restarted agent (no `since`) gets it all.
  const fresh = new HostStateCache(other);
  const again = await fresh.desired('rv1');
  fresh.close();
  assert.equal(again.revision, woke2.revision);
  assert.equal(again.networkRevision, await svc.stateRevision());
  const restarted = await state('/hosts/rv1/state?since=&wait=5');
  assert.equal(restarted.revision, woke2.revision);
  assert.ok(restarted.state.ports.some((p) => p.id === vm.id));
});
