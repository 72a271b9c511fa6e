// Live migration of a server with a NIC, end to end: one cloud, two real host agents (own data
// dirs and namespace prefixes, VXLAN endpoints on a shared underlay namespace, as in
// test/e2e/network-multihost.test.ts), one real guest on a tenant network booted by the CLI on
// host one (which also serves the network's DHCP). Host two has no port on that network before
// the move. The guest is pinged from the DHCP namespace before and after
// `openstack server migrate --live-migration --wait`: same IP, reached across the tunnel; the
// port is bound to host two, and nothing of it (tap, firewall rules) is left on host one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { cleanupAll, TEST_IMAGE, testAgent, until, type TestAgent } from '../helpers/agent.js';
import { sh } from '../helpers/guests.js';
import { tapNameFor } from '../../src/agent/dataplane/model.js';
import { readLayout } from '../../src/agent/netagent.js';

const haveImage = existsSync(TEST_IMAGE);
const tag = Math.random().toString(36).slice(2, 7);
const underlayNs = `stratus-t${tag}-underlay`;
let tc: TestCloud;
let h1: TestAgent | undefined;
let h2: TestAgent | undefined;
let rootRoutes = '';

before(async () => {
  if (!haveImage) return;
  rootRoutes = (await sh('ip', ['-4', 'route', 'show'])).stdout;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  const underlay = (ip: string) => ['--underlay-ip', ip, '--underlay-netns', underlayNs];
  h1 = testAgent(tc, { host: 'ln-one', dataDir: join(tc.dataDir, 'hosts', 'ln-one'), args: underlay('172.16.252.1') });
  h2 = testAgent(tc, { host: 'ln-two', dataDir: join(tc.dataDir, 'hosts', 'ln-two'), args: [...underlay('172.16.252.2'), '--migration-ports', '49320-49330'] });
  // Only host one at first: the server boots there, and the network's DHCP goes there.
  await h1.start();
  await until('network agent one', () => h1!.log().includes('network agent registered'), 60_000);
});

after(() => cleanupAll([h2, h1], tc));

const inNs = (ns: string, cmd: string[]) => sh('ip', ['netns', 'exec', ns, ...cmd]);
const brLinks = async (h: TestAgent) => (await sh('ip', ['-n', `${readLayout(h.dataDir).prefix}br`, '-o', 'link', 'show'])).stdout;
const firewall = async (h: TestAgent) => {
  const br = `${readLayout(h.dataDir).prefix}br`;
  return (await inNs(br, ['iptables-save'])).stdout + (await inNs(br, ['nft', 'list', 'ruleset'])).stdout;
};

test('a server with a NIC moves live: same IP, reachable over the tunnel, port bound to the destination, nothing left on the source',
  { skip: !haveImage && `${TEST_IMAGE} missing`, timeout: 900_000 }, async () => {
    const net = await tc.openstackJson(['network', 'create', 'ln-net']);
    await tc.openstackJson(['subnet', 'create', '--network', 'ln-net', '--subnet-range', '10.91.0.0/24', 'ln-sub']);
    // ICMP from anywhere (the DHCP namespace is no member of the group).
    assert.equal((await tc.openstack(['security', 'group', 'rule', 'create', '--protocol', 'icmp', '--remote-ip', '0.0.0.0/0', 'default'])).code, 0);
    const s = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--network', 'ln-net', '--wait', 'nic-mover']);
    assert.equal(s.status, 'ACTIVE');
    assert.equal(s['OS-EXT-SRV-ATTR:host'], 'ln-one');
    const ports = await tc.openstackJson(['port', 'list', '--server', 'nic-mover']);
    assert.equal(ports.length, 1);
    const portId: string = ports[0].ID;
    const ip = /10\.91\.0\.\d+/.exec(JSON.stringify(ports[0]['Fixed IP Addresses']))![0];
    const tap = tapNameFor(portId);
    const bridge = `brq${net.id.slice(0, 11)}`;
    const dhcpNs = `${readLayout(h1!.dataDir).prefix}qdhcp-${net.id}`;
    const ping = async () => (await inNs(dhcpNs, ['ping', '-c', '1', '-W', '2', ip])).code === 0;
    await until(`guest ${ip} answers on ln-one`, ping, 300_000);

    await h2!.start();
    await until('host two registered', () => h2!.log().includes('registered with the controller') && h2!.log().includes('network agent registered'), 120_000);
    assert.doesNotMatch(await brLinks(h2!), new RegExp(bridge), 'host two carries no part of the network before the move');

    const r = await tc.openstack(['server', 'migrate', '--live-migration', '--wait', 'nic-mover']);
    assert.equal(r.code, 0, r.stderr);
    const moved = await tc.openstackJson(['server', 'show', 'nic-mover']);
    assert.equal(moved.status, 'ACTIVE');
    assert.equal(moved['OS-EXT-SRV-ATTR:host'], 'ln-two');
    assert.match(JSON.stringify(moved.addresses), new RegExp(ip.replace(/\./g, '\\.')), 'same address');

    // The port follows: bound to ln-two, no migration mark left, and ACTIVE (ln-two's report).
    const port = await until('port bound to ln-two and ACTIVE', async () => {
      const p = await tc.openstackJson(['port', 'show', portId]);
      return p.binding_host_id === 'ln-two' && p.status === 'ACTIVE' ? p : undefined;
    }, 120_000);
    assert.equal(port.binding_profile?.migrating_to, undefined, JSON.stringify(port.binding_profile));
    // Reached from ln-one's DHCP namespace: over the VXLAN tunnel built for the move.
    await until(`guest ${ip} answers on ln-two`, ping, 120_000);
    const links2 = await brLinks(h2!);
    assert.match(links2, new RegExp(`${tap}.*master ${bridge}`), 'the tap is plugged into the bridge on ln-two');
    assert.match(links2, /vxlan-\d+/);
    assert.match(await firewall(h2!), new RegExp(portId.slice(0, 11)), 'its security-group chains are on ln-two');
    // Nothing of it on ln-one (the DHCP port keeps the network there).
    let left = '';
    await until('nothing of the port left on ln-one', async () => {
      const l = await brLinks(h1!);
      const fw = await firewall(h1!);
      left = [l.includes(tap) ? `tap ${tap}` : '', fw.includes(portId.slice(0, 11)) ? 'firewall rules' : ''].filter(Boolean).join(', ');
      return !left;
    }, 90_000).catch((e) => { throw new Error(`${(e as Error).message}: ${left}`); });
    assert.equal((await sh('ip', ['-o', 'link', 'show'])).stdout.includes(tap), false, 'no tap in the root namespace');

    const del = await tc.openstack(['server', 'delete', '--wait', 'nic-mover']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await sh('ip', ['-4', 'route', 'show'])).stdout, rootRoutes, 'the root namespace routes are unchanged');
  });
