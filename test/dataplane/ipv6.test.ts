// Data plane, IPv6: a router advertises a SLAAC subnet, guests configure the address the API
// computed from their MAC (EUI-64), reach each other and the router; anti-spoofing and security
// groups apply to IPv6 too. Fake guests are namespaces (see helpers.ts). Runs as root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LinuxDataplane } from '../../src/agent/dataplane/driver.js';
import type { HostNetworkState, PortSpec, SecurityGroupSpec } from '../../src/agent/dataplane/model.js';
import { Fixture, emptyState, eventually, inNs, must, network, port, rule, subnet } from './helpers.js';

const fx = new Fixture('v6t');
const dp = new LinuxDataplane({ prefix: fx.prefix, stateDir: join(fx.dir, 'state') });
const net = network();
const v4 = subnet(net, '10.70.0.0/24', '10.70.0.1', { enableDhcp: false });
const v6 = subnet(net, 'fd00:70::/64', 'fd00:70::1', { ipVersion: 6, enableDhcp: false, ipv6RaMode: 'slaac', ipv6AddressMode: 'slaac' });
const sg: SecurityGroupSpec = { id: 'c0ffee00-0000-4000-8000-000000000006', rules: [
  rule('egress', { ethertype: 'IPv6' }), rule('egress'), rule('ingress', { ethertype: 'IPv6', protocol: 'icmp' })] };
const routerId = 'cccc0000-0000-4000-8000-00000000000c';

/** The SLAAC (EUI-64) address of a MAC in fd00:70::/64, as the API computes it. */
function slaac(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] ^= 2;
  const w = [(b[0] << 8) | b[1], (b[2] << 8) | 0xff, (0xfe << 8) | b[3], (b[4] << 8) | b[5]];
  return `fd00:70::${w.map((x) => x.toString(16)).join(':')}`;
}
function v6port(ip4: string, over: Partial<PortSpec> = {}): PortSpec {
  const p = port(net, v4, ip4, over);
  return { ...p, fixedIps: [...p.fixedIps, { subnetId: v6.id, ipAddress: slaac(p.macAddress) }] };
}
const rif = port(net, v4, '10.70.0.1', { deviceOwner: 'network:router_interface', deviceId: routerId });
rif.fixedIps.push({ subnetId: v6.id, ipAddress: 'fd00:70::1' });
const pa = v6port('10.70.0.11', { securityGroupIds: [sg.id] });
const pb = v6port('10.70.0.12', { securityGroupIds: [sg.id] });
let a = '', b = '';

const state = (): HostNetworkState => ({ ...emptyState(), networks: [net], subnets: [v4, v6], ports: [rif, pa, pb], securityGroups: [sg],
  routers: [{ id: routerId, gateway: null, interfaces: [{ portId: rif.id, subnetId: v4.id }, { portId: rif.id, subnetId: v6.id }], routes: [] }] });

before(async () => {
  a = await fx.guest('a', pa, 1450, '10.70.0.11/24');
  b = await fx.guest('b', pb, 1450, '10.70.0.12/24');
});
after(async () => { try { await dp.purge(); } finally { await fx.cleanup(); } });

test('SLAAC from the router, IPv6 between guests and to the router, anti-spoofing', async () => {
  const r = await dp.converge(state());
  assert.deepEqual(r.errors, []);
  const addr = await eventually(async () => {
    const out = await must('ip', ['-n', a, '-6', 'addr', 'show', 'dev', 'eth0']);
    return out.includes(slaac(pa.macAddress)) ? out : null;
  }, 40, 250);
  assert.ok(addr, 'a configured its SLAAC address from the router advertisement');
  await eventually(async () => ((await must('ip', ['-n', b, '-6', 'addr'])).includes(slaac(pb.macAddress)) ? true : null), 40, 250);
  const ping6 = (ns: string, ip: string, from?: string) => inNs(ns, 'ping', ['-6', '-c', '1', '-W', '1', ...(from ? ['-I', from] : []), ip]);
  assert.ok(await eventually(async () => ((await ping6(a, slaac(pb.macAddress))).code === 0 ? true : null), 10), 'a pings b over IPv6');
  assert.ok(await eventually(async () => ((await ping6(a, 'fd00:70::1')).code === 0 ? true : null), 10), 'a pings the router');
  const route = await must('ip', ['-n', a, '-6', 'route', 'show', 'default']);
  assert.match(route, /via fe80::/, 'default route from the advertisement');
  // A spoofed IPv6 source is dropped at the bridge.
  await must('ip', ['-n', a, '-6', 'addr', 'add', 'fd00:70::bad/64', 'dev', 'eth0', 'nodad']);
  assert.notEqual((await ping6(a, slaac(pb.macAddress), 'fd00:70::bad')).code, 0, 'spoofed IPv6 source dropped');
  // Without the ICMPv6 ingress rule, b no longer answers.
  await dp.converge({ ...state(), securityGroups: [{ ...sg, rules: sg.rules.slice(0, 2) }] });
  assert.notEqual((await ping6(a, slaac(pb.macAddress))).code, 0, 'ICMPv6 ingress rule removed');
  assert.equal((await dp.converge({ ...state(), securityGroups: [{ ...sg, rules: sg.rules.slice(0, 2) }] })).changes, 0, 'idempotent');
});
