// Issue 6 end to end with real guests (TCG) on two hosts: two `stratus agent` processes (each its
// own data dir and namespace prefix) whose VXLAN endpoints sit on a shared underlay namespace
// (never the uplink). Tenant A has one guest on each host on one network: both take the fixed IPs
// the API assigned (DHCP and metadata from host 1, across the tunnel for host 2's guest) and reach
// each other at the network's MTU (1450). Tenant B's guest, on host 1 on a network with the same
// CIDR and security groups opened to everyone on both sides, reaches neither of A's guests (nor
// they it), while reaching its own DHCP server. After deleting, nothing remains on either host.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { cleanupAll, guestPids, testAgent, TEST_IMAGE, until, type TestAgent } from '../helpers/agent.js';
import { bootGuest, consoleOf, sh, stratus, type Guest } from '../helpers/guests.js';
import { parseGuestMarkers } from '../../src/agent/guest-image/markers.js';
import { tapNameFor } from '../../src/agent/dataplane/model.js';
import { readLayout } from '../../src/agent/netagent.js';

const tag = Math.random().toString(36).slice(2, 7);
const underlayNs = `stratus-t${tag}-underlay`;
let tc: TestCloud;
let h1: TestAgent;
let h2: TestAgent;
let rootRoutes = '';
const key = () => join(tc.dataDir, 'id_test');
const CIDR = '10.90.0.0/24';
const B_IP = '10.90.0.222';   // in both tenants' range; held by B's guest only

let netA = '';
let netB = '';
let projectB = '';
let fipId = '';
const guests: Guest[] = [];
const hostDir = (g: Guest) => (g.host === h1.host ? h1.dataDir : h2.dataDir);

before(async () => {
  rootRoutes = (await sh('ip', ['-4', 'route', 'show'])).stdout;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  const underlay = (ip: string) => ['--underlay-ip', ip, '--underlay-netns', underlayNs];
  // Routers and DHCP go to the first agent by host id: mh1.
  h1 = testAgent(tc, { host: `mh1-${tag}`, args: underlay('172.16.253.1') });
  h2 = testAgent(tc, { host: `mh2-${tag}`, dataDir: join(tc.dataDir, 'host2'), args: underlay('172.16.253.2') });
  await h1.start();
  await h2.start();
  await until('network agents', () => h1.log().includes('network agent registered') && h2.log().includes('network agent registered'), 60_000);
  await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key()]);
});

after(() => cleanupAll([h2, h1], tc));

test('two hosts over VXLAN: API fixed IPs, ping across at MTU 1450; another tenant on the same CIDR reaches neither guest', async () => {
  const as = { as: 'demo' as const };
  const demo = (await tc.cloud.identity.findProject('demo'))!;
  const imageId = (await tc.openstackJson(['image', 'show', 'stratus-test'])).id;
  const publicKey = readFileSync(`${key()}.pub`, 'utf8').trim();

  netA = (await tc.openstackJson(['network', 'create', 'net-a'], as)).id;
  await tc.openstackJson(['subnet', 'create', '--network', 'net-a', '--subnet-range', CIDR, 'sub-a'], as);
  await tc.openstackJson(['router', 'create', 'r1'], as);
  assert.equal((await tc.openstack(['router', 'set', '--external-gateway', 'public', 'r1'], as)).code, 0);
  assert.equal((await tc.openstack(['router', 'add', 'subnet', 'r1', 'sub-a'], as)).code, 0);
  // Open to everyone (not only group members): what keeps B out must be the network, not the firewall.
  for (const proto of [['--protocol', 'icmp'], ['--protocol', 'tcp', '--dst-port', '22']]) {
    assert.equal((await tc.openstack(['security', 'group', 'rule', 'create', ...proto, '--remote-ip', '0.0.0.0/0', 'default'], as)).code, 0);
  }
  const boot = (name: string, projectId: string, networkId: string, host: string, extra: { userData?: string; fixedIp?: string } = {}) =>
    bootGuest(tc, { name, projectId, networkId, host, imageId, publicKey, ...extra });
  const [a1, a2] = await Promise.all([boot('a1', demo.id, netA, h1.host), boot('a2', demo.id, netA, h2.host)]);
  guests.push(a1!, a2!);

  // Tenant B: its own project and network, same CIDR, no router (metadata from its DHCP namespace).
  projectB = (await tc.openstackJson(['project', 'create', `tenant-b-${tag}`])).id;
  netB = (await tc.openstackJson(['network', 'create', '--project', projectB, 'net-b'])).id;
  await tc.openstackJson(['subnet', 'create', '--project', projectB, '--network', netB, '--subnet-range', CIDR, 'sub-b']);

  for (const g of [a1!, a2!]) {
    const m = await until(`guest ${g.id} on ${g.host} SSH ready`, () => { const m = parseGuestMarkers(consoleOf(hostDir(g), g.id)); return m.sshReady ? m : null; }, 300_000);
    assert.equal(m.nets[0]?.ip, `${g.ip}/24`, `${g.host}: the fixed IP the API assigned`);
    assert.equal(m.metadataSource, 'metadata-service', `${g.host}: metadata through the router (on mh1)`);
  }
  await until('both agents reported their port ACTIVE', async () => {
    const ports = await tc.openstackJson(['port', 'list', '--network', 'net-a', '--device-owner', 'compute:nova'], as);
    return ports.length === 2 && ports.every((p: { Status: string }) => p.Status === 'ACTIVE');
  }, 60_000);

  // B's guest probes A's addresses from its console once booted (A is up and open by then).
  const probe = `#!/bin/sh
dhcp=$(ip route | awk '$1 == "169.254.169.254" { print $3 }')
for t in ${a1!.ip} ${a2!.ip} $dhcp; do
  if ping -c 2 -W 2 $t >/dev/null 2>&1; then echo "ISO-PING $t yes"; else echo "ISO-PING $t no"; fi
done
for t in ${a1!.ip} ${a2!.ip}; do
  b=$(timeout 8 nc -w 3 $t 22 </dev/null 2>/dev/null | head -c 7)
  echo "ISO-TCP $t \${b:-none}"
done
echo ISO-DONE
`;
  const b1 = await boot('b1', projectB, netB, h1.host, { fixedIp: B_IP, userData: probe });
  guests.push(b1);
  // B's default group opened too, so that A failing to reach B is the network's doing.
  const sgB = (await tc.openstackJson(['security', 'group', 'list', '--project', projectB]))[0].ID;
  assert.equal((await tc.openstack(['security', 'group', 'rule', 'create', '--protocol', 'icmp', '--remote-ip', '0.0.0.0/0', sgB])).code, 0);

  const fip = await tc.cloud.network.service.allocateFloatingIp(demo.id);
  fipId = fip.id;
  await tc.cloud.network.service.associateFloatingIp(demo.id, fip.id, a1!.portId);
  const script = `cat /sys/class/net/eth0/mtu | sed 's/^/MTU=/'
ping -c 3 -W 3 ${a2!.ip} >/dev/null && echo PING-A2-OK
ping -c 2 -W 3 -s 1422 ${a2!.ip} >/dev/null && echo FULL-MTU-OK
ip link set eth0 mtu 1451 2>/dev/null || echo MTU-CAPPED
b=$(timeout 8 nc -w 3 ${a2!.ip} 22 </dev/null | head -c 7); echo "TCP-A2 $b"
ping -c 2 -W 2 ${B_IP} >/dev/null && echo PING-B-OK || echo PING-B-NO`;
  let last = '';
  const out = await until('ssh to a1 via its floating IP', async () => {
    const r = await stratus(['ssh', '--data-dir', tc.dataDir, '-i', key(), `root@${a1!.id}`, '--', script], 60_000);
    last = r.stdout + r.stderr;
    return r.code === 0 && r.stdout.includes('PING-B-') ? r.stdout : null;
  }, 180_000).catch((e) => { throw new Error(`${(e as Error).message}; last: ${last}`); });
  assert.match(out, /^MTU=1450$/m, 'the guest NIC has the network MTU');
  assert.match(out, /PING-A2-OK/, 'a1 (mh1) pings a2 (mh2) over VXLAN');
  assert.match(out, /FULL-MTU-OK/, 'a full 1450-byte packet crosses the tunnel');
  assert.match(out, /MTU-CAPPED/, 'the guest cannot raise its MTU past 1450 (virtio host_mtu)');
  assert.match(out, /TCP-A2 SSH-2\.0/, 'TCP across hosts');
  assert.match(out, /PING-B-NO/, 'a1 does not reach B\'s guest (same address range, other network)');

  const iso = await until('b1\'s probe results', () => { const c = consoleOf(h1.dataDir, b1.id); return c.includes('ISO-DONE') ? c : null; }, 300_000);
  assert.match(iso, new RegExp(`ISO-PING ${a1!.ip.replace(/\./g, '\\.')} no`), 'B cannot ping A\'s guest on its own host');
  assert.match(iso, new RegExp(`ISO-PING ${a2!.ip.replace(/\./g, '\\.')} no`), 'B cannot ping A\'s guest on the other host');
  assert.match(iso, /ISO-PING 10\.90\.0\.\d+ yes/, 'B reaches its own DHCP server (its network works)');
  assert.match(iso, new RegExp(`ISO-TCP ${a1!.ip.replace(/\./g, '\\.')} none`), 'no TCP to A\'s guest');
  assert.match(iso, new RegExp(`ISO-TCP ${a2!.ip.replace(/\./g, '\\.')} none`));
  assert.equal(parseGuestMarkers(consoleOf(h1.dataDir, b1.id)).nets[0]?.ip, `${B_IP}/24`);
});

test('after deleting guests and networks nothing of them remains on either host', async () => {
  assert.equal(guests.length, 3, 'guests from the first test');
  const as = { as: 'demo' as const };
  for (const g of guests) {
    await tc.cloud.compute.service.deleteInstance(g.id);
    await tc.cloud.network.service.deleteServerPort(g.portId);
  }
  await until('guests gone', () => guestPids(h1.dataDir).length === 0 && guestPids(h2.dataDir).length === 0, 120_000);
  assert.equal((await tc.openstack(['floating', 'ip', 'delete', fipId], as)).code, 0);
  assert.equal((await tc.openstack(['router', 'remove', 'subnet', 'r1', 'sub-a'], as)).code, 0);
  assert.equal((await tc.openstack(['router', 'delete', 'r1'], as)).code, 0);
  assert.equal((await tc.openstack(['network', 'delete', 'net-a'], as)).code, 0);
  assert.equal((await tc.openstack(['network', 'delete', netB])).code, 0);

  const leftovers = async (agent: TestAgent) => {
    const layout = readLayout(agent.dataDir);
    const br = `${layout.prefix}br`;
    const ns = (await sh('ip', ['netns', 'list'])).stdout;
    const rootLinks = (await sh('ip', ['-o', 'link', 'show'])).stdout;
    const brLinks = (await sh('ip', ['-n', br, '-o', 'link', 'show'])).stdout;
    const fw = (await sh('ip', ['netns', 'exec', br, 'iptables-save'])).stdout + (await sh('ip', ['netns', 'exec', br, 'nft', 'list', 'ruleset'])).stdout;
    const found: string[] = [];
    if (ns.includes(`${layout.prefix}qrouter-`) || ns.includes(`${layout.prefix}qdhcp-`)) found.push(`${agent.host} namespaces: ${ns}`);
    if (/vxlan-\d+/.test(brLinks)) found.push(`${agent.host}: a VXLAN device`);
    for (const net of [netA, netB]) if (brLinks.includes(`brq${net.slice(0, 11)}`)) found.push(`${agent.host}: bridge of ${net}`);
    for (const g of guests) {
      const tap = tapNameFor(g.portId);
      if (rootLinks.includes(tap) || brLinks.includes(tap)) found.push(`${agent.host}: tap ${tap}`);
      if (fw.includes(g.portId.slice(0, 11))) found.push(`${agent.host}: firewall rules of ${g.portId}`);
    }
    const procs = (await sh('ps', ['-eo', 'args'])).stdout.split('\n').filter((l) => l.includes(layout.stateDir));
    if (procs.length) found.push(`${agent.host} processes: ${procs.join('; ')}`);
    return found;
  };
  let last: string[] = [];
  await until('nothing left on either host', async () => { last = [...await leftovers(h1), ...await leftovers(h2)]; return last.length === 0; }, 90_000)
    .catch((e) => { throw new Error(`${(e as Error).message}: ${last.join(' | ')}`); });
  assert.equal((await sh('ip', ['-4', 'route', 'show'])).stdout, rootRoutes, 'the root namespace routes are unchanged');

  const prefixes = [readLayout(h1.dataDir).prefix, readLayout(h2.dataDir).prefix];
  await h2.cleanup();
  await h1.cleanup();
  const ns = (await sh('ip', ['netns', 'list'])).stdout;
  for (const p of prefixes) assert.ok(!ns.includes(p), `no namespace of ${p} left: ${ns}`);
  assert.ok(!ns.includes(underlayNs), 'the shared underlay namespace is gone with the last agent');
});
