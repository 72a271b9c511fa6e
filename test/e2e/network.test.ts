// Issue 6 end to end with real guests (TCG), all inside namespaces: the networking API (real
// `openstack` CLI) → the network service's desired host state → a real `stratus agent` (long poll,
// converge, port status, metadata relay) → guests that take the API's fixed IPs by DHCP, read their
// key and user data from the metadata service, reach each other, the external network through
// SNAT, and are reached by `stratus ssh` via a floating IP. One server is made with the real
// `openstack server create --network`; the other through compute's in-process desired-state
// interface with a port from the network service (what the servers API does underneath).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { guestPids, testAgent, TEST_IMAGE, until, type TestAgent } from '../helpers/agent.js';
import { bootGuest, consoleOf as consoleIn, sh, stratus, type Guest } from '../helpers/guests.js';
import { parseGuestMarkers } from '../../src/agent/guest-image/markers.js';
import { tapNameFor } from '../../src/agent/dataplane/model.js';
import { signRequester } from '../../src/agent/dataplane/metadata-contract.js';
import { readLayout } from '../../src/agent/netagent.js';

let tc: TestCloud;
let agent: TestAgent;
let socat: ChildProcess | undefined;
let rootRoutes = '';
const key = () => join(tc.dataDir, 'id_test');

const sshGuest = (server: string, cmd: string) =>
  stratus(['ssh', '--data-dir', tc.dataDir, '-i', key(), server, '--', cmd], 40_000);
const consoleOf = (id: string) => consoleIn(tc.dataDir, id);
const guests: Guest[] = [];
let routerId = '';
let netId = '';
let gatewayIp = '';
let fip = '';
let imageId = '';
let sshRuleId = '';

const boot = (name: string, projectId: string, userData: string) => bootGuest(tc, {
  name, projectId, networkId: netId, host: agent.host, imageId, userData, publicKey: readFileSync(`${key()}.pub`, 'utf8').trim(),
});

before(async () => {
  rootRoutes = (await sh('ip', ['-4', 'route', 'show'])).stdout;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  agent = testAgent(tc);
  await agent.start();
  await until('network agent', () => agent.log().includes('network agent registered'), 60_000);
  await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key()]);
  imageId = (await tc.openstackJson(['image', 'show', 'stratus-test'])).id;
  // Something on the external network that tells who connected (seen after SNAT).
  const provider = readLayout(tc.dataDir).providerNetns;
  await until('provider namespace', async () => (await sh('ip', ['-n', provider, 'addr', 'show'])).stdout.includes('203.0.113.1/24'), 60_000);
  socat = spawn('ip', ['netns', 'exec', provider, 'socat', 'TCP-LISTEN:8000,fork,reuseaddr', 'SYSTEM:echo PEER=$SOCAT_PEERADDR'], { stdio: 'ignore' });
  await until('external echo server', async () => (await sh('ip', ['netns', 'exec', provider, 'ss', '-ltn'])).stdout.includes(':8000'), 30_000);
});

after(async () => {
  try {
    if (socat?.pid) socat.kill('SIGKILL');
    await agent?.cleanup();
  } finally {
    await tc?.stop();
  }
});

test('two guests on a tenant network: API fixed IPs by DHCP, ping each other, SNAT, floating IP SSH with the metadata key, user data, security groups', async () => {
  const demo = (await tc.cloud.identity.findProject('demo'))!;
  const as = { as: 'demo' as const };
  netId = (await tc.openstackJson(['network', 'create', 'net-a'], as)).id;
  await tc.openstackJson(['subnet', 'create', '--network', 'net-a', '--subnet-range', '10.70.0.0/24', 'sub-a'], as);
  const router = await tc.openstackJson(['router', 'create', 'r1'], as);
  routerId = router.id;
  assert.equal((await tc.openstack(['router', 'set', '--external-gateway', 'public', 'r1'], as)).code, 0);
  assert.equal((await tc.openstack(['router', 'add', 'subnet', 'r1', 'sub-a'], as)).code, 0);
  const gw = await tc.openstackJson(['router', 'show', 'r1'], as);
  gatewayIp = gw.external_gateway_info.external_fixed_ips[0].ip_address;
  sshRuleId = (await tc.openstackJson(['security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '22', 'default'], as)).id;

  // a through the Nova API (the real CLI): its port is made and bound by the build.
  const ud = join(tc.dataDir, 'ud-a.sh');
  writeFileSync(ud, '#!/bin/sh\necho wiring-marker > /tmp/ud-marker\n');
  assert.equal((await tc.openstack(['keypair', 'create', '--public-key', `${key()}.pub`, 'k'], as)).code, 0);
  const created = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--network', 'net-a',
    '--key-name', 'k', '--user-data', ud, '--wait', 'guest-a'], as);
  assert.equal(created.status, 'ACTIVE');
  const aPort = (await tc.openstackJson(['port', 'list', '--server', created.id], as))[0];
  const a: Guest = { id: created.id, portId: aPort.ID, ip: aPort['Fixed IP Addresses'][0].ip_address, host: agent.host };
  assert.match(JSON.stringify((await tc.openstackJson(['server', 'show', 'guest-a'], as)).addresses), new RegExp(a.ip.replace(/\./g, '\\.')));
  // b has no floating IP: what it fetches from the external network shows the router's SNAT address.
  const b = await boot('guest-b', demo.id, '#!/bin/sh\necho "SNAT-SEEN $(nc -w 3 203.0.113.1 8000 </dev/null)"\n');
  guests.push(a, b);

  for (const g of guests) {
    const m = await until(`guest ${g.id} SSH ready`, () => { const m = parseGuestMarkers(consoleOf(g.id)); return m.sshReady ? m : null; }, 300_000);
    assert.equal(m.nets[0]?.ip, `${g.ip}/24`, 'the fixed IP the API assigned');
    assert.equal(m.metadataSource, 'metadata-service', 'metadata came from 169.254.169.254 through the router');
    assert.equal(m.keys.length > 0, true, 'the key from metadata was installed');
  }
  const ports = await tc.openstackJson(['port', 'list', '--device-id', a.id], as);
  assert.equal(ports[0].Status, 'ACTIVE', 'the agent reported the port ACTIVE');

  const f = await tc.openstackJson(['floating', 'ip', 'create', 'public'], as);
  fip = f.floating_ip_address;
  assert.equal((await tc.openstack(['floating', 'ip', 'set', '--port', a.portId, fip], as)).code, 0);

  let last = '';
  const out = await until('ssh via the floating IP', async () => {
    const r = await sshGuest(a.id, `hostname; cat /tmp/ud-marker; ping -c 1 -W 3 ${b.ip} >/dev/null && echo PING-B-OK; nc -w 3 203.0.113.1 8000 </dev/null; ` +
      `wget -q -O - --header 'X-Forwarded-For: ${b.ip}' --header 'X-Stratus-Metadata-Signature: 00' http://169.254.169.254/openstack/latest/meta_data.json`);
    last = r.stdout + r.stderr;
    return r.code === 0 && r.stdout.includes('PEER=') ? r.stdout : null;
  }, 120_000).catch((e) => { throw new Error(`${(e as Error).message}; last: ${last}`); });
  assert.match(out, /guest-a/);
  assert.match(out, /wiring-marker/, 'user data ran at boot');
  assert.match(out, /PING-B-OK/, 'a pings b on the tenant network');
  assert.match(out, new RegExp(`PEER=${fip.replace(/\./g, '\\.')}`), 'a reaches the external network leaving with its floating IP');
  assert.ok(out.includes(`"uuid": "${a.id}"`) || out.includes(`"uuid":"${a.id}"`), 'forged headers from a guest are dropped: it reads its own metadata');
  assert.ok(!out.includes(b.id), 'never the other guest\'s');
  const bSnat = await until('b\'s user data result', () => /SNAT-SEEN PEER=([\d.]+)/.exec(consoleOf(b.id)), 60_000);
  assert.equal(bSnat[1], gatewayIp, 'b leaves through the router\'s SNAT address');

  // Interface attach: a second NIC hot-plugged (QMP) into the running guest gets its own lease.
  assert.equal((await tc.openstack(['server', 'add', 'network', 'guest-a', 'net-a'], as)).code, 0);
  const second = (await tc.openstackJson(['port', 'list', '--server', a.id], as)).find((p: { ID: string }) => p.ID !== a.portId);
  const ip2 = second['Fixed IP Addresses'][0].ip_address;
  const nic2 = await until('hot-plugged NIC lease', () => parseGuestMarkers(consoleOf(a.id)).nets.find((n) => n.ip === `${ip2}/24`), 90_000);
  assert.equal(nic2.mac, second['MAC Address']);
  assert.equal((await tc.openstack(['server', 'remove', 'port', 'guest-a', second.ID], as)).code, 0);
  await until('detached port gone', async () => (await tc.openstackJson(['port', 'list', '--server', a.id], as)).length === 1, 60_000);

  // Security groups: no ICMP rule yet; removing the SSH rule cuts SSH; adding ICMP allows ping.
  assert.notEqual((await stratus(['exec-external', '--data-dir', tc.dataDir, '--', 'ping', '-c', '1', '-W', '2', fip])).code, 0, 'no ICMP rule: no ping');
  assert.equal((await tc.openstack(['security', 'group', 'rule', 'delete', sshRuleId], as)).code, 0);
  await until('SSH cut', async () => (await sshGuest(a.id, 'true')).code !== 0, 60_000);
  assert.equal((await tc.openstack(['security', 'group', 'rule', 'create', '--protocol', 'icmp', 'default'], as)).code, 0);
  await until('ping allowed', async () => (await stratus(['exec-external', '--data-dir', tc.dataDir, '--', 'ping', '-c', '1', '-W', '2', fip])).code === 0, 60_000);
});

test('metadata: only a proxy holding the secret can say who asks', async () => {
  const [a, b] = guests;
  assert.ok(a && b, 'guests from the first test');
  const sock = join(tc.dataDir, 'agent', 'metadata.sock');
  const get = (path: string, headers: Record<string, string>) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const r = request({ socketPath: sock, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on('error', reject);
    r.end();
  });
  const path = '/openstack/latest/meta_data.json';
  // A forged (unsigned / wrongly signed) request is refused, even on the host's own socket.
  assert.equal((await get(path, { 'x-forwarded-for': b.ip, 'x-stratus-router-id': routerId })).status, 403);
  assert.equal((await get(path, signRequester({ ip: b.ip, routerId }, 'not-the-secret'))).status, 403);
  // Signed by the real secret: the router + address resolve to b's port, so b's metadata.
  const secret = readFileSync(join(tc.dataDir, 'metadata-secret'), 'utf8').trim();
  const ok = await get(path, signRequester({ ip: b.ip, routerId }, secret));
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).uuid, b.id);
  const ec2 = await get('/latest/meta-data/local-ipv4', signRequester({ ip: a.ip, routerId }, secret));
  assert.equal(ec2.body, a.ip);
  const net = await get('/openstack/latest/network_data.json', signRequester({ ip: a.ip, networkId: netId }, secret));
  assert.equal(JSON.parse(net.body).links[0].vif_id, a.portId);
  // An address nobody holds on that router's subnets: nothing.
  assert.equal((await get(path, signRequester({ ip: '10.70.0.250', routerId }, secret))).status, 404);
  // Straight to the controller without the agent token: refused.
  const r = await fetch(`${tc.url}/network/agent/v1/metadata${path}`, { headers: signRequester({ ip: b.ip, routerId }, secret) });
  assert.equal(r.status, 401);
});

test('agent restart converges (stale namespace removed); server and network delete leave nothing on the host', async () => {
  const layout = readLayout(tc.dataDir);
  await agent.stop();
  const stale = `${layout.prefix}qrouter-${crypto.randomUUID()}`;
  await sh('ip', ['netns', 'add', stale]);
  await agent.start();
  await until('stale namespace removed', async () => !(await sh('ip', ['netns', 'list'])).stdout.includes(stale), 60_000);

  const as = { as: 'demo' as const };
  // a through the API (its ports are released by the delete), b as it was made.
  assert.equal((await tc.openstack(['server', 'delete', '--wait', 'guest-a'], as)).code, 0);
  assert.deepEqual(await tc.openstackJson(['port', 'list', '--device-id', guests[0]!.id], as), [], 'server delete released its port');
  await tc.cloud.compute.service.deleteInstance(guests[1]!.id);
  await tc.cloud.network.service.deleteServerPort(guests[1]!.portId);
  await until('guests gone', () => guestPids(tc.dataDir).length === 0, 120_000);
  assert.equal((await tc.openstack(['floating', 'ip', 'delete', fip], as)).code, 0);
  assert.equal((await tc.openstack(['router', 'remove', 'subnet', 'r1', 'sub-a'], as)).code, 0);
  assert.equal((await tc.openstack(['router', 'delete', 'r1'], as)).code, 0);
  assert.equal((await tc.openstack(['network', 'delete', 'net-a'], as)).code, 0);

  const br = `${layout.prefix}br`;
  const leftovers = async () => {
    const ns = (await sh('ip', ['netns', 'list'])).stdout;
    const rootLinks = (await sh('ip', ['-o', 'link', 'show'])).stdout;
    const brLinks = (await sh('ip', ['-n', br, '-o', 'link', 'show'])).stdout;
    const ipt = (await sh('ip', ['netns', 'exec', br, 'iptables-save'])).stdout;
    const nft = (await sh('ip', ['netns', 'exec', br, 'nft', 'list', 'ruleset'])).stdout;
    const found: string[] = [];
    if (ns.includes(`${layout.prefix}qrouter-`) || ns.includes(`${layout.prefix}qdhcp-`)) found.push(`namespaces: ${ns}`);
    for (const g of guests) {
      const tap = tapNameFor(g.portId);
      if (rootLinks.includes(tap) || brLinks.includes(tap)) found.push(`tap ${tap}`);
      if (ipt.includes(g.portId.slice(0, 11)) || nft.includes(g.portId.slice(0, 11))) found.push(`firewall rules of ${g.portId}`);
    }
    if (brLinks.includes(`brq${netId.slice(0, 11)}`)) found.push('bridge of net-a');
    const procs = (await sh('ps', ['-eo', 'args'])).stdout.split('\n').filter((l) => l.includes(layout.stateDir) || l.includes(routerId));
    if (procs.length) found.push(`processes: ${procs.join('; ')}`);
    return found;
  };
  let last: string[] = [];
  await until('nothing left of the servers and the network', async () => { last = await leftovers(); return last.length === 0; }, 60_000)
    .catch((e) => { throw new Error(`${(e as Error).message}: ${last.join(' | ')}`); });
  assert.equal((await sh('ip', ['-4', 'route', 'show'])).stdout, rootRoutes, 'the root namespace routes are unchanged');

  // `down --purge` equivalent for this agent: converge to empty removes its namespaces, the provider one included.
  await agent.cleanup();
  const ns = (await sh('ip', ['netns', 'list'])).stdout;
  assert.ok(!ns.includes(layout.prefix), `no namespace of ours left: ${ns}`);
});
