// bench/compute (b) and (c) at a small size, so the bench cannot rot, and the behaviours its
// figures rest on: a servers page holds at most Nova's max_limit (1000) with a next link that
// reaches the rest, and every scheduler decision is a real claim in placement.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { adminToken, fillServers, heartbeatAll, listLatency, registerHosts, scheduleDecisions, type Caller } from '../../bench/compute-parts.js';

let tc: TestCloud;
let who: Caller;

before(async () => {
  tc = await startTestCloud();
  who = await adminToken(tc.url, tc.adminPassword);
});

after(async () => { await tc?.stop(); });

test('bench (c): decisions against simulated hosts claim in placement, sequentially and concurrently', async () => {
  const reg = await registerHosts(tc.cloud, 12, 'bsim');
  assert.equal(reg.names.length, 12);
  await heartbeatAll(tc.cloud, reg.names);
  const seq = await scheduleDecisions(tc.cloud, who, 12, 1, 'sequential');
  const conc = await scheduleDecisions(tc.cloud, who, 12, 4, 'concurrent');
  // Spread by free RAM: one at a time, each decision lands on a host with the most room left.
  assert.equal(seq.distinctHosts, 12);
  assert.ok(conc.distinctHosts >= 1);
  for (const consumer of [...seq.consumers, ...conc.consumers]) {
    const a = await tc.cloud.placement.client.getAllocations(consumer);
    const res = Object.values(a.allocations).map((x) => x.resources);
    assert.deepEqual(res, [{ VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 }]);
  }
});

test('bench (b): GET /servers/detail pages at max_limit 1000 and the next link reaches the rest', async () => {
  const hosts = (await tc.cloud.compute.service.listHosts()).map((h) => h.name);
  await fillServers(tc.cloud, who, 0, 1005, hosts);
  const figs = await listLatency(tc.url, who, 1005, { iterations: 1, queries: ['', '?limit=1000', '?limit=5000', '?limit=10'], microversions: ['2.1', '2.73'] });
  const by = (q: string, mv: string) => figs.find((f) => f.query === q && f.microversion === mv)!;
  for (const mv of ['2.1', '2.73']) {
    for (const q of ['(no limit)', '?limit=1000', '?limit=5000']) {
      assert.equal(by(q, mv).returned, 1000, `${q} @${mv}`);
      assert.equal(by(q, mv).next, true, `${q} @${mv}`);
    }
    assert.equal(by('?limit=10', mv).returned, 10);
  }
  // Following the links visits every server once, newest first.
  const seen = new Set<string>();
  let url: string | undefined = `${tc.url}/compute/v2.1/servers/detail`;
  let pages = 0;
  while (url) {
    const r: Response = await fetch(url, { headers: { 'X-Auth-Token': who.token, 'OpenStack-API-Version': 'compute 2.73' } });
    assert.equal(r.status, 200);
    const body = await r.json() as { servers: { id: string; status: string; 'OS-EXT-SRV-ATTR:host': string; host_status: string }[]; servers_links?: { href: string }[] };
    for (const s of body.servers) {
      assert.ok(!seen.has(s.id));
      seen.add(s.id);
      assert.equal(s.status, 'ACTIVE');
      assert.ok(hosts.includes(s['OS-EXT-SRV-ATTR:host']));
      assert.equal(s.host_status, 'UP');
    }
    url = body.servers_links?.[0]?.href;
    pages++;
  }
  assert.equal(pages, 2);
  assert.equal(seen.size, 1005);
  // Filters still apply across pages: tags (every 10th bench server) and status.
  const tagged = await fetch(`${tc.url}/compute/v2.1/servers?tags=tagged`, { headers: { 'X-Auth-Token': who.token, 'OpenStack-API-Version': 'compute 2.26' } });
  assert.equal(((await tagged.json()) as { servers: unknown[] }).servers.length, 101);
  const shutoff = await fetch(`${tc.url}/compute/v2.1/servers?status=SHUTOFF`, { headers: { 'X-Auth-Token': who.token } });
  assert.deepEqual(((await shutoff.json()) as { servers: unknown[] }).servers, []);
});
