// Data plane, one host: tenant networks, DHCP, security groups, anti-spoofing, idempotence and
// complete removal. Fake guests are namespaces (see helpers.ts). Runs as root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { LinuxDataplane } from '../../src/agent/dataplane/driver.js';
import { verifyRequester } from '../../src/agent/dataplane/metadata-contract.js';
import type { HostNetworkState, PortSpec, SecurityGroupSpec } from '../../src/agent/dataplane/model.js';
import { Fixture, emptyState, eventually, hostSnapshot, rootTaps, inNs, must, network, ping, pingEventually, port, rule, subnet, tcpConnect } from './helpers.js';

const fx = new Fixture('l2t');
const SECRET = 'l2-secret';
const dp = new LinuxDataplane({ prefix: fx.prefix, stateDir: join(fx.dir, 'state'), metadata: { socketPath: join(fx.dir, 'meta.sock'), secret: SECRET } });
let metadata: Server;
let rootBefore: Awaited<ReturnType<typeof hostSnapshot>>;

const netA = network();
const netB = network();
const subA = subnet(netA, '10.10.0.0/24', '10.10.0.1', { dnsNameservers: ['10.10.0.53'], hostRoutes: [{ destination: '10.99.0.0/16', nexthop: '10.10.0.254' }],
  isolatedMetadata: true });
const subB = subnet(netB, '10.10.0.0/24', '10.10.0.1'); // the same addresses as A: tenants may overlap
const ssh = rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22, remoteIpPrefix: '0.0.0.0/0' });
const icmp = rule('ingress', { protocol: 'icmp' });
const sg: SecurityGroupSpec = { id: 'c0ffee00-0000-4000-8000-000000000001', rules: [rule('egress'), ssh, icmp] };
const pa = port(netA, subA, '10.10.0.11', { securityGroupIds: [sg.id] });
const pb = port(netA, subA, '10.10.0.12', { securityGroupIds: [sg.id] });
const pc = port(netB, subB, '10.10.0.12', { securityGroupIds: [sg.id] });
const dhcpA = port(netA, subA, '10.10.0.2', { deviceOwner: 'network:dhcp', deviceId: 'dhcp' });
let a = '', b = '', c = '';

function state(over: Partial<HostNetworkState> = {}, ports: PortSpec[] = [pa, pb, pc, dhcpA]): HostNetworkState {
  // A tunnel endpoint but no underlay configured and no peers: a single host, no VXLAN device needed.
  return { ...emptyState(), underlayIp: '127.0.0.1', networks: [netA, netB], subnets: [subA, subB], ports, securityGroups: [sg], ...over };
}

before(async () => {
  rootBefore = await hostSnapshot();
  metadata = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ who: verifyRequester(req.headers, SECRET) }));
  });
  await new Promise<void>((r) => metadata.listen(join(fx.dir, 'meta.sock'), r));
  a = await fx.guest('a', pa, 1450, null);
  b = await fx.guest('b', pb, 1450, '10.10.0.12/24');
  c = await fx.guest('c', pc, 1450, '10.10.0.12/24');
});

after(async () => {
  try { await dp.purge(); } finally { metadata?.close(); await fx.cleanup(); }
});

test('converge plugs the guests, serves DHCP with exactly the fixed IP, and is a no-op the second time', async () => {
  const r = await dp.converge(state());
  assert.deepEqual(r.errors, []);
  assert.equal(r.ports[pa.id], 'ACTIVE');
  assert.equal(r.ports[pc.id], 'ACTIVE');
  const lease = await fx.dhcp(a);
  assert.ok(lease, 'a DHCP lease');
  assert.equal(lease.ip, '10.10.0.11');
  assert.equal(lease.router, '10.10.0.1');
  assert.equal(lease.mtu, '1450');
  assert.equal(lease.dns, '10.10.0.53');
  assert.match(lease.staticroutes, /10\.99\.0\.0\/16 10\.10\.0\.254/);
  assert.match(lease.staticroutes, /0\.0\.0\.0\/0 10\.10\.0\.1/);
  assert.match(lease.staticroutes, /169\.254\.169\.254\/32 10\.10\.0\.2/, 'isolated subnet: metadata via the DHCP port');
  await must('ip', ['-n', a, 'addr', 'add', '10.10.0.11/24', 'dev', 'eth0']);
  await must('ip', ['-n', a, 'route', 'add', '169.254.169.254/32', 'via', '10.10.0.2']);
  const meta = await eventually(async () => {
    const r = await inNs(a, 'curl', ['-s', '-m', '3', 'http://169.254.169.254/latest/meta-data/']);
    return r.code === 0 ? r.stdout : null;
  }, 25);
  assert.deepEqual(JSON.parse(meta ?? '{}').who, { ip: '10.10.0.11', networkId: netA.id }, 'metadata from the DHCP namespace, signed');
  const again = await dp.converge(state());
  assert.equal(again.changes, 0, 'second converge changes nothing');
  // The DHCP namespace holds the port's address; dnsmasq is static-only.
  const addrs = await must('ip', ['-n', `${fx.prefix}qdhcp-${netA.id}`, 'addr']);
  assert.match(addrs, /10\.10\.0\.2\/24/);
});

test('a port added later gets its lease from the running dnsmasq (reloaded, not restarted)', async () => {
  const pidFile = join(dp.stateDir, `dhcp-${netA.id}`, 'pid');
  const pid = readFileSync(pidFile, 'utf8');
  const pd = port(netA, subA, '10.10.0.14', { securityGroupIds: [sg.id] });
  const d = await fx.guest('d', pd, 1450, null);
  const r = await dp.converge(state({}, [pa, pb, pc, dhcpA, pd]));
  assert.deepEqual(r.errors, []);
  assert.equal(r.ports[pd.id], 'ACTIVE');
  assert.equal(readFileSync(pidFile, 'utf8'), pid, 'same dnsmasq');
  const lease = await fx.dhcp(d);
  assert.equal(lease?.ip, '10.10.0.14', readFileSync(join(dp.stateDir, `dhcp-${netA.id}`, 'log'), 'utf8').split('\n').filter((l) => /read|DISCOVER|no address|ignor/.test(l)).join('\n'));
  // A MAC with no reservation gets nothing: there is no dynamic range.
  await must('ip', ['-n', d, 'link', 'set', 'eth0', 'address', 'fa:16:3e:77:77:77']);
  const pd2 = { ...pd, macAddress: 'fa:16:3e:77:77:77' };
  await dp.converge(state({ dhcpReservations: [] }, [pa, pb, pc, dhcpA, { ...pd2, fixedIps: [] }]));
  assert.equal(await fx.dhcp(d), null, 'no lease for a port without a fixed IP');
  await dp.converge(state());
});

test('guests on one network reach each other; a guest on another network (same addresses) cannot', async () => {
  assert.ok(await pingEventually(a, '10.10.0.12'), 'a pings b');
  assert.ok(await ping(b, '10.10.0.11'), 'b pings a');
  // c has b's address, on network B: it must not reach a, and a's pings to .12 are answered by b only.
  assert.equal(await ping(c, '10.10.0.11', 2), false, 'c (network B) does not reach a (network A)');
  const neigh = await must('ip', ['-n', a, 'neigh', 'show', '10.10.0.12']);
  assert.match(neigh, new RegExp(pb.macAddress), 'a resolved .12 to b, not c');
  // Bridged traffic goes through conntrack in a zone per network (overlapping tenants never share entries).
  const raw = await must('ip', ['netns', 'exec', dp.names.bridgeNs, 'iptables-save', '-c', '-t', 'raw']);
  const line = raw.split('\n').find((l) => l.includes(`-i brq${netA.id.slice(0, 11)}`));
  assert.ok(line && !line.startsWith('[0:0]'), `zone rule of network A counts packets: ${line}`);
});

test('security groups: removing the SSH rule cuts SSH; removing and re-adding ICMP toggles ping', async () => {
  fx.serve(b, 22, 'hello-from-b');
  const got = await eventually(() => tcpConnect(a, '10.10.0.12', 22));
  assert.match(got ?? '', /hello-from-b/);
  // An established session too: an echo server on b, a client on a that stays connected.
  fx.serveEcho(b, 2222);
  const sg2 = { ...sg, rules: [...sg.rules, rule('ingress', { protocol: 'tcp', portRangeMin: 2222, portRangeMax: 2222 })] };
  await dp.converge(state({ securityGroups: [sg2] }));
  const session = await eventually(() => fx.session(a, '10.10.0.12', 2222));
  assert.ok(session, 'session open');
  assert.equal(await session.say('one'), 'one');
  const noSsh = { ...sg, rules: sg.rules.filter((r) => r.id !== ssh.id && r.id !== icmp.id) };
  const r = await dp.converge(state({ securityGroups: [noSsh] }));
  assert.deepEqual(r.errors, []);
  assert.equal(await session.say('two'), null, 'the established session is cut too');
  session.close();
  assert.equal(await tcpConnect(a, '10.10.0.12', 22), null, 'SSH cut');
  assert.equal(await ping(a, '10.10.0.12'), false, 'ping cut');
  // The rules live in the bridge namespace's iptables, per port.
  const save = await must('ip', ['netns', 'exec', dp.names.bridgeNs, 'iptables-save']);
  assert.match(save, new RegExp(`sg-i-${pb.id.slice(0, 11)}`));
  assert.doesNotMatch(save, /--dport 22/);
  await dp.converge(state({ securityGroups: [{ ...noSsh, rules: [...noSsh.rules, icmp] }] }));
  assert.ok(await pingEventually(a, '10.10.0.12', 3), 'ICMP allowed again');
  assert.equal(await tcpConnect(a, '10.10.0.12', 22), null, 'SSH still cut');
  await dp.converge(state());
  assert.match((await eventually(() => tcpConnect(a, '10.10.0.12', 22))) ?? '', /hello-from-b/, 'SSH back');
});

test('anti-spoofing: a guest cannot send from another IP or MAC, unless an allowed address pair says so', async () => {
  await must('ip', ['-n', b, 'addr', 'add', '10.10.0.99/24', 'dev', 'eth0']);
  assert.equal((await inNs(b, 'ping', ['-c', '1', '-W', '1', '-I', '10.10.0.99', '10.10.0.11'])).code !== 0, true, 'spoofed source dropped');
  assert.ok(await ping(b, '10.10.0.11'), 'own address still works');
  // A pair's CIDR overlapping the port's own address is fine.
  const pb2 = { ...pb, allowedAddressPairs: [{ ipAddress: '10.10.0.96/30' }, { ipAddress: '10.10.0.0/24' }] };
  assert.deepEqual((await dp.converge(state({}, [pa, pb2, pc, dhcpA]))).errors, []);
  let ok = false;
  for (let i = 0; i < 5 && !ok; i++) ok = (await inNs(b, 'ping', ['-c', '1', '-W', '1', '-I', '10.10.0.99', '10.10.0.11'])).code === 0;
  assert.ok(ok, 'allowed address pair may be used');
  await dp.converge(state());
  // A changed MAC is dropped at the bridge port.
  await must('ip', ['-n', b, 'link', 'set', 'eth0', 'address', 'fa:16:3e:99:99:99']);
  await must('ip', ['-n', a, 'neigh', 'flush', 'all']);
  assert.equal(await ping(b, '10.10.0.11', 2), false, 'spoofed MAC dropped');
  await must('ip', ['-n', b, 'link', 'set', 'eth0', 'address', pb.macAddress]);
  assert.ok(await pingEventually(b, '10.10.0.11', 5), 'own MAC works again');
});

test('malformed input is refused item by item, the rest still applies', async () => {
  const bad = { ...pb, macAddress: 'fa:16:3e:zz:00:01' };
  const badNet = { ...network(), id: '../../etc' };
  const r = await dp.converge(state({ networks: [netA, netB, badNet] }, [pa, bad, pc, dhcpA]));
  assert.equal(r.errors.length, 2, r.errors.join('; '));
  assert.match(r.errors.join(' '), /bad MAC/);
  assert.match(r.errors.join(' '), /bad id/);
  assert.equal(r.ports[pa.id], 'ACTIVE');
  assert.equal(r.ports[pb.id], 'DOWN');
  assert.ok((await hostSnapshot()).netns.every((n) => !n.includes('etc')));
  await dp.converge(state());
});

test('a port removed from the state is unplugged; an empty state removes everything, root untouched', async () => {
  const r = await dp.converge(state({}, [pa, pc, dhcpA]));
  assert.equal(r.ports[pb.id], undefined);
  assert.equal(await ping(a, '10.10.0.12'), false, 'b is gone from the network');
  const dnsmasqDir = join(dp.stateDir, `dhcp-${netA.id}`);
  const dnsmasqPid = Number(readFileSync(join(dnsmasqDir, 'pid'), 'utf8'));
  assert.doesNotMatch(readFileSync(join(dnsmasqDir, 'hosts'), 'utf8'), new RegExp(pb.macAddress));
  const empty = await dp.converge(emptyState());
  assert.deepEqual(empty.errors, []);
  const now = await hostSnapshot();
  assert.deepEqual(now.netns.filter((n) => dp.names.ownsNs(n)), [], 'no Stratus namespace left');
  assert.deepEqual(await rootTaps([pa, pb, pc].map((p) => p.tapName)), [], 'no tap left in the root namespace');
  assert.equal(now.route, rootBefore.route, 'root routes unchanged');
  assert.equal(now.ruleset, rootBefore.ruleset, 'root ruleset unchanged');
  assert.equal(readdirSync('/proc').includes(String(dnsmasqPid)), false, 'dnsmasq ended');
  const ours = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dp.stateDir); } catch { return false; }
  });
  assert.deepEqual(ours, [], 'no process of ours left');
  assert.equal((await dp.converge(emptyState())).changes, 0, 'empty twice: no-op');
});
