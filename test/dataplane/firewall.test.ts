// The firewall, DHCP and router texts the data plane generates (pure functions; no root needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { antispoofText, conntrackZones, iptablesText, linkLocalOf, ruleLines } from '../../src/agent/dataplane/firewall.js';
import { dhcpPlans, dnsmasqSpec } from '../../src/agent/dataplane/dhcp.js';
import { routerPlan } from '../../src/agent/dataplane/router.js';
import { validateState } from '../../src/agent/dataplane/validate.js';
import { emptyState, network, port, rule, subnet } from './helpers.js';

test('security group rules become physdev chains: ports, ICMP, protocol numbers, remote groups, families', () => {
  assert.deepEqual(ruleLines(rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: '10.0.0.0/8' }), false),
    ['-s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j RETURN']);
  assert.deepEqual(ruleLines(rule('egress', { protocol: 'udp', portRangeMin: 1000, portRangeMax: 2000 }), false),
    ['-p udp -m udp --dport 1000:2000 -j RETURN']);
  assert.deepEqual(ruleLines(rule('ingress', { protocol: 'icmp', portRangeMin: 8, portRangeMax: 0 }), false),
    ['-p icmp -m icmp --icmp-type 8/0 -j RETURN']);
  assert.deepEqual(ruleLines(rule('ingress', { protocol: '6', portRangeMin: 80, portRangeMax: 80 }), false), ['-p 6 -m tcp --dport 80 -j RETURN']);
  assert.deepEqual(ruleLines(rule('ingress', { remoteGroupId: 'g', remoteGroupIps: ['10.1.0.5', '10.1.0.6', 'fd00::5'] }), false),
    ['-s 10.1.0.5 -j RETURN', '-s 10.1.0.6 -j RETURN']);
  assert.deepEqual(ruleLines(rule('ingress', { remoteGroupId: 'g', remoteGroupIps: [] }), false), [], 'empty group matches nothing');
  assert.deepEqual(ruleLines(rule('ingress', { ethertype: 'IPv6', protocol: 'icmp' }), true), ['-p ipv6-icmp -j RETURN']);
  assert.deepEqual(ruleLines(rule('ingress', { ethertype: 'IPv6' }), false), [], 'IPv6 rules stay out of iptables');
  assert.deepEqual(ruleLines(rule('ingress', { protocol: 'tcp; rm -rf /' }), false), [], 'odd protocol refused');
});

test('iptables text: one zone per network, chains per filtered port, trusted network ports unfiltered', () => {
  const n = network(), s = subnet(n, '10.0.0.0/24', '10.0.0.1');
  const g = port(n, s, '10.0.0.5', { securityGroupIds: ['sg'] });
  const off = port(n, s, '10.0.0.6', { portSecurityEnabled: false });
  const r = port(n, s, '10.0.0.1', { deviceOwner: 'network:router_interface' });
  const st = { ...emptyState(), networks: [n], subnets: [s], ports: [g, off, r],
    securityGroups: [{ id: 'sg', rules: [rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22 })] }] };
  const text = iptablesText(st, false);
  assert.match(text, new RegExp(`-A PREROUTING -i brq${n.id.slice(0, 11)} -j CT --zone ${conntrackZones([n.id]).get(n.id)}`));
  assert.match(text, new RegExp(`--physdev-out ${g.tapName} --physdev-is-bridged -j sg-i-${g.id.slice(0, 11)}`));
  assert.match(text, new RegExp(`-A sg-i-${g.id.slice(0, 11)} -p tcp -m tcp --dport 22 -j RETURN`));
  assert.doesNotMatch(text, new RegExp(off.tapName));
  assert.doesNotMatch(text, new RegExp(r.tapName));
  assert.match(text, /-A FORWARD -j ACCEPT\nCOMMIT\n$/);
  const as = antispoofText(st);
  assert.match(as, new RegExp(`ether saddr ${g.macAddress} ip saddr 10\\.0\\.0\\.5 accept`));
  assert.match(as, new RegExp(linkLocalOf(g.macAddress)));
  assert.equal(linkLocalOf('fa:16:3e:00:00:01'), 'fe80::f816:3eff:fe00:1');
  const zones = conntrackZones(['a', 'b', 'c']);
  assert.equal(new Set(zones.values()).size, 3, 'distinct zones');
});

test('DHCP: static ranges, hosts for every port of the network (other hosts too), options', () => {
  const n = network(), s = subnet(n, '10.0.0.0/24', null, { dnsNameservers: ['9.9.9.9'] });
  const d = port(n, s, '10.0.0.2', { deviceOwner: 'network:dhcp' });
  const g = port(n, s, '10.0.0.5');
  const st = { ...emptyState(), networks: [n], subnets: [s], ports: [d, g],
    dhcpReservations: [{ portId: 'remote-port', networkId: n.id, macAddress: 'fa:16:3e:aa:bb:cc', fixedIps: [{ subnetId: s.id, ipAddress: '10.0.0.9' }] }] };
  const [plan] = dhcpPlans(st);
  assert.deepEqual(plan.hosts.trim().split('\n').sort(), [`${g.macAddress},host-10-0-0-5,10.0.0.5`, 'fa:16:3e:aa:bb:cc,host-10-0-0-9,10.0.0.9'].sort());
  assert.match(plan.opts, /option:router\n/, 'no gateway: an empty router option');
  assert.match(plan.opts, /option:dns-server,9\.9\.9\.9/);
  const spec = dnsmasqSpec(plan, 'ns', 'ns-x', '/d');
  assert.ok(spec.args.includes(`--dhcp-range=set:subnet-${s.id},10.0.0.0,static,255.255.255.0,86400s`));
  assert.ok(spec.args.includes('--port=0'));
  assert.equal(dhcpPlans({ ...st, subnets: [{ ...s, enableDhcp: false }] }).length, 0, 'no DHCP subnet: no dnsmasq');
});

test('router NAT: floating IPs, SNAT only when enabled, hairpin; validation drops bad items', () => {
  const ext = network({ segmentationType: 'flat', segmentationId: null, physicalNetwork: 'public', mtu: 1500 });
  const es = subnet(ext, '203.0.113.0/24', '203.0.113.1');
  const n = network(), s = subnet(n, '10.0.0.0/24', '10.0.0.1');
  const gw = port(ext, es, '203.0.113.10', { deviceOwner: 'network:router_gateway' });
  const itf = port(n, s, '10.0.0.1', { deviceOwner: 'network:router_interface' });
  const router = { id: 'abcd0001', gateway: { portId: gw.id, enableSnat: false }, interfaces: [{ portId: itf.id, subnetId: s.id }], routes: [] };
  const st = { ...emptyState(), networks: [ext, n], subnets: [es, s], ports: [gw, itf], routers: [router],
    floatingIps: [{ id: 'f', floatingIpAddress: '203.0.113.50', floatingNetworkId: ext.id, routerId: 'abcd0001', portId: 'p', fixedIpAddress: '10.0.0.5' }] };
  const errors: string[] = [];
  const plan = routerPlan(st, router, errors)!;
  assert.deepEqual(errors, []);
  assert.match(plan.iptables, /-A PREROUTING -d 203\.0\.113\.50\/32 -j DNAT --to-destination 10\.0\.0\.5/);
  assert.match(plan.iptables, /-s 10\.0\.0\.5\/32 -o qg-\S+ -j SNAT --to-source 203\.0\.113\.50/);
  assert.doesNotMatch(plan.iptables, /SNAT --to-source 203\.0\.113\.10/, 'enable_snat false');
  assert.match(plan.iptables, /--ctstate DNAT -j MASQUERADE/);
  assert.deepEqual(plan.routes, [{ dst: '0.0.0.0/0', gateway: '203.0.113.1' }]);
  assert.deepEqual(plan.legs.find((l) => l.dev.startsWith('qg-'))!.addresses, ['203.0.113.10/24', '203.0.113.50/32']);
  const bad: string[] = [];
  const v = validateState({ ...st, ports: [...st.ports, { ...itf, id: 'abc1', tapName: 'tapabc1', macAddress: 'nope' }],
    networks: [...st.networks, { ...n, id: 'bad id' }] }, bad);
  assert.equal(v.ports.length, 2);
  assert.equal(v.networks.length, 2);
  assert.equal(bad.length, 2);
});
