// os-migrateLive through the API with two in-process agents (the real reconcile loop over the
// fake driver: fast, no QEMU): the body per microversion, placement during and after a move, a
// controller (server reconciler) restarted mid-way, server-group rules, abort, records.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';
import { until } from '../helpers/agent.js';
import { FakeDriver } from '../../src/agent/hypervisor/fake/driver.js';
import { Reconciler } from '../../src/agent/reconcile.js';
import { FileImageSource } from '../../src/compute/images.js';

let tc: TestCloud;
let admin: string;
let work: string;
const V = '/compute/v2.1';
const IMG = 'img-lm-1';
const mv = (v: string) => ({ 'OpenStack-API-Version': `compute ${v}` });

interface Agent { host: string; driver: FakeDriver; paused: boolean; stop(): Promise<void> }
const agents: Agent[] = [];

/** A host whose agent runs the real reconcile loop over the fake driver, watching like a real one. */
async function agent(host: string, port: number): Promise<Agent> {
  const svc = tc.cloud.compute.service;
  await svc.registerHost(host, { hostname: host, vcpus: 4, memoryMb: 4096, diskGb: 50, cpuModel: 'fake', hypervisorType: 'fake',
    accelerator: 'TCG', hypervisorVersion: '7.2.0', agentVersion: 'test' });
  const driver = new FakeDriver();
  const r = new Reconciler({
    driver, stateDir: join(work, host, 'state'), snapshotDir: join(work, host, 'snap'), log: pino({ level: 'silent' }),
    ensureImage: async () => ({ path: '/nonexistent', format: 'qcow2' }), report: (o) => svc.report(host, o),
    maxAttempts: 1, retryDelayMs: 10, migrationListen: { host: '127.0.0.1', ports: [port, port + 1] },
  });
  let running = true;
  const a: Agent = { host, driver, paused: false, async stop() { running = false; r.stop(); await loop; } };
  const loop = (async () => {
    let since = -1;
    while (running) {
      try {
        const st = await svc.watch(host, since, 200);
        await svc.heartbeat(host, {});
        // A paused agent hears nothing (its next round fetches the desired state again).
        if (a.paused) { await new Promise((res) => setTimeout(res, 50)); continue; }
        since = st.revision;
        r.setDesired(st);
        await r.idle();
        await r.observe();
      } catch (e) {
        if (running) console.error(`agent ${host}:`, e);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  })();
  agents.push(a);
  return a;
}

const action = (id: string, body: unknown, v = '2.25') => api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { 'os-migrateLive': body }, headers: mv(v) });
const show = async (id: string) => (await api(tc.url, 'GET', `${V}/servers/${id}`, { token: admin, headers: mv('2.73') })).body.server;
const records = async (id: string) => (await api(tc.url, 'GET', `${V}/os-migrations?instance_uuid=${id}`, { token: admin, headers: mv('2.59') })).body.migrations as any[];
const allocHosts = async (consumer: string) => {
  const a = await tc.cloud.placement.client.getAllocations(consumer);
  const nodes = (await api(tc.url, 'GET', `${V}/os-hypervisors`, { token: admin, headers: mv('2.53') })).body.hypervisors as { id: string; hypervisor_hostname: string }[];
  return Object.keys(a.allocations).map((rp) => nodes.find((n) => n.id === rp)?.hypervisor_hostname).sort();
};

async function boot(name: string, extra: Record<string, unknown> = {}, hints?: Record<string, unknown>): Promise<string> {
  const r = await api(tc.url, 'POST', `${V}/servers`, { token: admin, headers: mv('2.37'),
    body: { server: { name, imageRef: IMG, flavorRef: '42', networks: 'none', ...extra }, ...(hints ? { 'os:scheduler_hints': hints } : {}) } });
  assert.equal(r.status, 202, r.text);
  const id = r.body.server.id as string;
  await until(`${name} ACTIVE`, async () => (await show(id)).status === 'ACTIVE', 30_000);
  return id;
}
const settled = (id: string) => until('migration over', async () => {
  const s = await show(id);
  return s.status !== 'MIGRATING' ? s : undefined;
}, 30_000);

before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
  work = mkdtempSync(join(tmpdir(), 'stratus-lm-api-'));
  const src = new FileImageSource();
  const path = join(work, 'img');
  writeFileSync(path, Buffer.alloc(64 * 1024));
  src.add(IMG, path);
  tc.cloud.compute.setImageSource(src);
  await agent('lmf-a', 50300);
});
after(async () => {
  for (const a of agents) await a.stop();
  await tc?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the request body follows the microversion', async () => {
  const id = await boot('body');
  const cases: [unknown, string, RegExp][] = [
    [{ block_migration: 'auto' }, '2.25', /'host' is a required property/],
    [{ host: null }, '2.25', /'block_migration' is a required property/],
    [{ host: null, block_migration: 'auto' }, '2.1', /block_migration must be a boolean/],
    [{ host: null, block_migration: false }, '2.1', /'disk_over_commit' is a required property/],
    [{ host: null, block_migration: 'auto', disk_over_commit: false }, '2.25', /disk_over_commit' was unexpected/],
    [{ host: null, block_migration: 'auto', force: true }, '2.68', /force' was unexpected/],
    [{ host: 7, block_migration: 'auto' }, '2.25', /host must be a host name or null/],
  ];
  for (const [body, v, re] of cases) {
    const r = await action(id, body, v);
    assert.equal(r.status, 400, `${JSON.stringify(body)} @${v}: ${r.text}`);
    assert.match(r.body.badRequest.message, re);
  }
  // Only one host so far: nowhere to go.
  const none = await action(id, { host: null, block_migration: false, disk_over_commit: false }, '2.1');
  assert.equal(none.status, 400);
  assert.match(none.body.badRequest.message, /no other compute host/);
  await agent('lmf-b', 50400);
  for (const [host, re] of [['nope', /could not be found/], ['lmf-a', /current host/]] as const) {
    const r = await action(id, { host, block_migration: 'auto' }, '2.30');
    assert.equal(r.status, 400);
    assert.match(r.body.badRequest.message, re);
  }
  // A stopped server does not move live.
  assert.equal((await api(tc.url, 'POST', `${V}/servers/${id}/action`, { token: admin, body: { 'os-stop': null } })).status, 202);
  await until('SHUTOFF', async () => (await show(id)).status === 'SHUTOFF', 30_000);
  assert.equal((await action(id, { host: null, block_migration: 'auto' })).status, 409);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${id}`, { token: admin })).status, 204);
});

test('a move: the source is held under the migration until done, then only the destination is claimed', async () => {
  const id = await boot('placed', { availability_zone: 'nova' });
  assert.deepEqual(await allocHosts(id), ['lmf-a']);
  const b = agents.find((x) => x.host === 'lmf-b')!;
  b.paused = true; // the destination does not prepare yet: the move waits there
  assert.equal((await action(id, { host: null, block_migration: 'auto' })).status, 202);
  assert.equal((await show(id)).status, 'MIGRATING');
  const m = await until('destination claimed', async () => { const r = (await records(id))[0]; return r?.status === 'preparing' ? r : undefined; }, 30_000)
    .catch(async (e) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(await records(id))} ${JSON.stringify((await tc.cloud.compute.nova.servers.store.get(id))?.task)}`); });
  assert.equal(m.dest_compute, 'lmf-b');
  assert.deepEqual(await allocHosts(id), ['lmf-b'], 'the server holds the destination');
  assert.deepEqual(await allocHosts(m.uuid), ['lmf-a'], 'the migration holds the source');
  const listed = (await api(tc.url, 'GET', `${V}/servers/${id}/migrations`, { token: admin, headers: mv('2.80') })).body.migrations;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].status, 'preparing');
  const force = (v: string) => api(tc.url, 'POST', `${V}/servers/${id}/migrations/${listed[0].id}/action`, { token: admin, body: { force_complete: null }, headers: mv(v) });
  assert.equal((await force('2.22')).status, 400, 'nothing to force before memory is being copied');
  // The destination prepares; the source holds on (it would copy memory now): force it to complete.
  const a = agents.find((x) => x.host === 'lmf-a')!;
  a.paused = true;
  b.paused = false;
  await until('copying', async () => (await records(id))[0].status === 'running', 30_000);
  assert.equal((await force('2.21')).status, 404, 'force_complete needs 2.22');
  assert.equal((await force('2.22')).status, 202);
  a.paused = false;
  const s = await settled(id);
  assert.equal(s.status, 'ACTIVE');
  assert.equal(s['OS-EXT-SRV-ATTR:host'], 'lmf-b');
  assert.equal(s['OS-EXT-AZ:availability_zone'], 'nova');
  const done = (await records(id))[0];
  assert.equal(done.status, 'completed');
  assert.deepEqual(await allocHosts(id), ['lmf-b']);
  assert.deepEqual(await allocHosts(done.uuid), []);
  assert.equal((await api(tc.url, 'GET', `${V}/servers/${id}/migrations`, { token: admin, headers: mv('2.23') })).body.migrations.length, 0);
  await until('source leftovers gone', () => !agents[0]!.driver.guests.has(id), 10_000);
  assert.ok(a.driver.calls.includes(`forceComplete ${id}`), 'the source paused the guest to finish');
  // It arrived paused and was resumed: the server is meant to run.
  await until('running on lmf-b', () => agents[1]!.driver.guests.get(id)?.state === 'running', 10_000);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${id}`, { token: admin })).status, 204);
});

test('a controller restart in the middle resumes the move: nothing lost, nothing leaked', async () => {
  const id = await boot('restart');
  const rec = tc.cloud.compute.nova.reconciler;
  await rec.stop(); // the controller "dies" right after accepting the request
  assert.equal((await action(id, { host: 'lmf-b', block_migration: 'auto' }, '2.30')).status, 202);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await records(id))[0].status, 'queued', 'nothing happened while it was down');
  const a = agents.find((x) => x.host === 'lmf-a')!;
  a.paused = true; // the source will not act on the target yet
  rec.start(); // the sweep finds the unfinished task
  await until('handed to the agents', async () => (await tc.cloud.compute.service.moves.get(id))?.phase === 'migrating', 30_000);
  await rec.stop(); // dies again, mid-migration
  a.paused = false;
  await until('switched over while the controller was down', async () => (await tc.cloud.compute.service.moves.get(id))?.phase === 'done', 30_000);
  rec.start();
  const s = await settled(id);
  assert.equal(s['OS-EXT-SRV-ATTR:host'], 'lmf-b');
  const m = (await records(id))[0];
  assert.equal(m.status, 'completed');
  assert.deepEqual(await allocHosts(id), ['lmf-b']);
  assert.deepEqual(await allocHosts(m.uuid), []);
  assert.ok(!a.driver.guests.has(id), 'no copy left on the source');
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${id}`, { token: admin })).status, 204);
});

// Known issue: on PostgreSQL an abort during `preparing` is sometimes overtaken and the move
// completes (about one run in two); under investigation, see docs/compute.md "Live migration".
const PG_ABORT_RACE = process.env.STRATUS_TEST_DATABASE ? 'known abort race on PostgreSQL (docs/compute.md, Live migration)' : false;

test('server-group anti-affinity keeps a member off the other member\'s host; an abort puts everything back', { skip: PG_ABORT_RACE }, async () => {
  const g = await api(tc.url, 'POST', `${V}/os-server-groups`, { token: admin, headers: mv('2.64'), body: { server_group: { name: 'apart', policy: 'anti-affinity' } } });
  assert.equal(g.status, 200, g.text);
  const one = await boot('apart-1', {}, { group: g.body.server_group.id });
  const two = await boot('apart-2', {}, { group: g.body.server_group.id });
  const hostOf = async (id: string) => (await show(id))['OS-EXT-SRV-ATTR:host'];
  assert.notEqual(await hostOf(one), await hostOf(two));
  assert.equal((await action(one, { host: null, block_migration: 'auto' })).status, 202);
  const s = await settled(one);
  assert.equal(s.status, 'ACTIVE');
  const m = (await records(one))[0];
  assert.equal(m.status, 'error');
  assert.deepEqual(await allocHosts(one), [await hostOf(one)], 'the server holds its own host again');
  assert.deepEqual(await allocHosts(m.uuid), []);
  const actions = (await api(tc.url, 'GET', `${V}/servers/${one}/os-instance-actions`, { token: admin })).body.instanceActions;
  assert.match(actions.find((x: { action: string }) => x.action === 'live-migration').message, /No valid host/);

  // Abort: apart-2 is alone in no group's way once apart-1 is gone.
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${one}`, { token: admin })).status, 204);
  await until('apart-1 gone', async () => (await api(tc.url, 'GET', `${V}/servers/${one}`, { token: admin })).status === 404, 30_000);
  const from = await hostOf(two);
  const dest = agents.find((x) => x.host !== from)!;
  dest.paused = true;
  assert.equal((await action(two, { host: null, block_migration: 'auto' })).status, 202);
  const running = await until('listed', async () => (await api(tc.url, 'GET', `${V}/servers/${two}/migrations`, { token: admin, headers: mv('2.24') })).body.migrations[0], 30_000);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${two}/migrations/${running.id}`, { token: admin, headers: mv('2.23') })).status, 404, 'abort needs 2.24');
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${two}/migrations/999999`, { token: admin, headers: mv('2.24') })).status, 404);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${two}/migrations/${running.id}`, { token: admin, headers: mv('2.24') })).status, 202);
  dest.paused = false;
  const back = await settled(two);
  assert.equal(back['OS-EXT-SRV-ATTR:host'], from);
  const c = (await records(two))[0];
  assert.equal(c.status, 'cancelled');
  assert.deepEqual(await allocHosts(two), [from]);
  assert.deepEqual(await allocHosts(c.uuid), []);
  await until('no copy on the destination', () => !dest.driver.guests.has(two), 10_000);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${two}/migrations/${running.id}`, { token: admin, headers: mv('2.24') })).status, 400, 'nothing left to abort');

  // Aborted before the controller even looked at it: nothing moved, the server keeps its claim.
  const rec = tc.cloud.compute.nova.reconciler;
  await rec.stop();
  assert.equal((await action(two, { host: null, block_migration: 'auto' })).status, 202);
  const queued = (await api(tc.url, 'GET', `${V}/servers/${two}/migrations`, { token: admin, headers: mv('2.24') })).body.migrations[0];
  assert.equal(queued.status, 'queued');
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${two}/migrations/${queued.id}`, { token: admin, headers: mv('2.24') })).status, 202);
  rec.start();
  assert.equal((await settled(two))['OS-EXT-SRV-ATTR:host'], from);
  assert.equal((await records(two))[0].status, 'cancelled');
  assert.deepEqual(await allocHosts(two), [from]);
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${two}`, { token: admin })).status, 204);
});

test('a server with a port: the destination plumbs it while the move runs, the binding follows at the switch-over, an abort drops it', async () => {
  const net = tc.cloud.network.service;
  for (const [h, ip] of [['lmf-a', '172.16.251.1'], ['lmf-b', '172.16.251.2']] as const) await net.registerHost(h, ip);
  const n = await api(tc.url, 'POST', '/network/v2.0/networks', { token: admin, body: { network: { name: 'lm-net' } } });
  assert.equal(n.status, 201, n.text);
  const sub = await api(tc.url, 'POST', '/network/v2.0/subnets', { token: admin, body: { subnet: { network_id: n.body.network.id, cidr: '10.92.0.0/24', ip_version: 4 } } });
  assert.equal(sub.status, 201, sub.text);
  const id = await boot('wired', { networks: [{ uuid: n.body.network.id }] });
  const port = async () => (await api(tc.url, 'GET', `/network/v2.0/ports?device_id=${id}`, { token: admin })).body.ports[0];
  const from = (await show(id))['OS-EXT-SRV-ATTR:host'] as string;
  const to = from === 'lmf-a' ? 'lmf-b' : 'lmf-a';
  const dest = agents.find((x) => x.host === to)!;
  const p0 = await port();
  assert.equal(p0['binding:host_id'], from);
  const inState = async (h: string) => (await net.hostNetworkState(h)).ports.some((p) => p.id === p0.id);
  const peersOf = async (h: string) => (await net.hostNetworkState(h)).vxlanPeers.map((x) => x.hostId);
  assert.equal(await inState(to), false);

  // While the destination prepares, the port is on both hosts (the tunnel between them too).
  const go = async () => assert.equal((await action(id, { host: to, block_migration: 'auto' }, '2.30')).status, 202);
  const marked = async () => { const p = await port(); return p['binding:profile']?.migrating_to === to ? p : undefined; };
  dest.paused = true;
  await go();
  const p1 = await until('port marked as migrating', marked, 30_000);
  assert.equal(p1['binding:host_id'], from, 'still bound to the source');
  assert.ok(await inState(to), 'the destination plugs it');
  assert.ok(await inState(from), 'the source keeps it');
  assert.ok((await peersOf(from)).includes(to), 'the source floods to the destination');
  assert.ok((await peersOf(to)).includes(from));

  // Abort: the mark goes, the destination drops the port.
  const running = (await api(tc.url, 'GET', `${V}/servers/${id}/migrations`, { token: admin, headers: mv('2.24') })).body.migrations[0];
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${id}/migrations/${running.id}`, { token: admin, headers: mv('2.24') })).status, 202);
  dest.paused = false;
  assert.equal((await settled(id))['OS-EXT-SRV-ATTR:host'], from);
  assert.equal((await records(id))[0].status, 'cancelled');
  const p2 = await port();
  assert.equal(p2['binding:host_id'], from);
  assert.equal(p2['binding:profile']?.migrating_to, undefined, JSON.stringify(p2['binding:profile']));
  assert.equal(await inState(to), false);

  // For real: bound to the destination after the switch-over, gone from the source's state.
  await go();
  const s = await settled(id);
  assert.equal(s['OS-EXT-SRV-ATTR:host'], to);
  assert.equal((await records(id))[0].status, 'completed');
  const p3 = await port();
  assert.equal(p3['binding:host_id'], to);
  assert.equal(p3['binding:profile']?.migrating_to, undefined);
  assert.deepEqual(p3.fixed_ips, p0.fixed_ips, 'same address');
  assert.equal(p3.mac_address, p0.mac_address);
  assert.ok(await inState(to));
  assert.equal(await inState(from), false, 'the source unplugs it');
  assert.equal((await api(tc.url, 'DELETE', `${V}/servers/${id}`, { token: admin })).status, 204);
});
