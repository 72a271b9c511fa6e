// Data plane with a real guest: QEMU (TCG) runs in the root namespace and creates its tap with
// the port's name, as the agent's QEMU driver does; converge() moves it into the bridge
// namespace. The test image takes its DHCP lease, reads its SSH key from the metadata proxy and
// is then reached over SSH through its floating IP from the provider namespace. Runs as root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LinuxDataplane } from '../../src/agent/dataplane/driver.js';
import type { HostNetworkState, SecurityGroupSpec } from '../../src/agent/dataplane/model.js';
import { verifyRequester } from '../../src/agent/dataplane/metadata-contract.js';
import { GUEST_LOGIN_USER, guestImage, parseGuestMarkers } from '../../src/agent/guest-image/markers.js';
import { Fixture, emptyState, eventually, inNs, must, network, ping, port, rule, sh, subnet } from './helpers.js';

const fx = new Fixture('qmt');
const SECRET = 'qemu-test-secret';
const providerNs = `${fx.prefix}provider`;
const dp = new LinuxDataplane({
  prefix: fx.prefix, stateDir: join(fx.dir, 'state'),
  physicalNetworks: { public: { netns: providerNs, bridge: 'br-public', addresses: ['203.0.113.1/24'] } },
  metadata: { socketPath: join(fx.dir, 'metadata.sock'), secret: SECRET },
});
let metadata: Server;
let qemu: ChildProcess | undefined;
const key = join(fx.dir, 'id_ed25519');
const consoleLog = join(fx.dir, 'console.log');

const ext = network({ segmentationType: 'flat', segmentationId: null, physicalNetwork: 'public', mtu: 1500, external: true });
const extSub = subnet(ext, '203.0.113.0/24', '203.0.113.1', { enableDhcp: false });
const net = network();
const sub = subnet(net, '10.60.0.0/24', '10.60.0.1');
const ssh = rule('ingress', { protocol: 'tcp', portRangeMin: 22, portRangeMax: 22 });
const sg: SecurityGroupSpec = { id: 'c0ffee00-0000-4000-8000-000000000003', rules: [rule('egress'), ssh] };
const routerId = 'bbbb0000-0000-4000-8000-00000000000b';
const gwPort = port(ext, extSub, '203.0.113.20', { deviceOwner: 'network:router_gateway', deviceId: routerId });
const rif = port(net, sub, '10.60.0.1', { deviceOwner: 'network:router_interface', deviceId: routerId });
const dhcpPort = port(net, sub, '10.60.0.2', { deviceOwner: 'network:dhcp', deviceId: 'dhcp' });
const vm = port(net, sub, '10.60.0.11', { securityGroupIds: [sg.id] });
const fip = { id: 'f2f2f2f2-0000-4000-8000-000000000001', floatingIpAddress: '203.0.113.61', floatingNetworkId: ext.id, routerId,
  portId: vm.id, fixedIpAddress: '10.60.0.11' };
function state(over: Partial<HostNetworkState> = {}): HostNetworkState {
  return { ...emptyState(), networks: [ext, net], subnets: [extSub, sub], ports: [gwPort, rif, dhcpPort, vm], securityGroups: [sg],
    routers: [{ id: routerId, gateway: { portId: gwPort.id, enableSnat: true }, interfaces: [{ portId: rif.id, subnetId: sub.id }], routes: [] }],
    floatingIps: [fip], ...over };
}

const sshArgs = () => ['netns', 'exec', providerNs, 'ssh', '-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
  '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=3', `${GUEST_LOGIN_USER}@${fip.floatingIpAddress}`];

before(async () => {
  try { guestImage(); } catch { await must('scripts/build-guest-image.sh', []); }
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  // The controller side: verify the proxy's signature, answer for the port holding that address.
  metadata = createServer((req, res) => {
    const who = verifyRequester(req.headers, SECRET);
    if (!who || who.routerId !== routerId || who.ip !== vm.fixedIps[0].ipAddress) { res.writeHead(403).end(); return; }
    if (req.url === '/openstack/latest/meta_data.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ uuid: vm.deviceId, name: 'dp-guest', hostname: 'dp-guest', public_keys: { k: pub } }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => metadata.listen(join(fx.dir, 'metadata.sock'), r));
  await dp.converge(state());
  const overlay = join(fx.dir, 'disk.qcow2');
  await must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', guestImage().path, '-F', 'qcow2', overlay]);
  qemu = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-cpu', 'max', '-m', '256', '-display', 'none', '-serial', `file:${consoleLog}`,
    '-drive', `file=${overlay},if=virtio`, '-netdev', `tap,id=n0,ifname=${vm.tapName},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=n0,mac=${vm.macAddress},host_mtu=${net.mtu}`], { stdio: 'ignore' });
});

after(async () => {
  try {
    if (qemu?.pid) { qemu.kill('SIGKILL'); await new Promise((r) => qemu!.once('exit', r)); }
    await dp.purge();
  } finally { metadata?.close(); await fx.cleanup(); }
});

test('a QEMU guest: its tap is moved into the bridge namespace, it gets its fixed IP, its key from metadata, SSH via the floating IP', async () => {
  // The agent converges right after starting QEMU: the tap appears in the root namespace and is moved.
  const plugged = await eventually(async () => ((await dp.converge(state())).ports[vm.id] === 'ACTIVE' ? true : null), 50, 100);
  assert.ok(plugged, 'tap plugged');
  assert.equal((await sh('ip', ['link', 'show', vm.tapName])).code !== 0, true, 'no tap left in the root namespace');
  const markers = await eventually(async () => {
    const m = parseGuestMarkers(existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '');
    return m.sshReady ? m : null;
  }, 120, 500);
  assert.ok(markers, 'guest booted with SSH');
  assert.equal(markers.nets[0]?.ip, '10.60.0.11/24', 'the fixed IP from DHCP');
  assert.equal(markers.metadataSource, 'metadata-service');
  assert.equal(markers.hostname, 'dp-guest');
  fx.serve(providerNs, 8000, '$SOCAT_PEERADDR');
  let last = '';
  const out = await eventually(async () => {
    const r = await sh('ip', [...sshArgs(), 'hostname; nc -w 3 203.0.113.1 8000 </dev/null'], 20_000);
    last = r.stderr;
    return r.code === 0 && r.stdout.includes('203.') ? r.stdout : null;
  }, 5, 1000);
  assert.match(out ?? '', /dp-guest/, `ssh: ${last}`);
  assert.match(out ?? '', /203\.0\.113\.61/, 'the guest reaches the external network, leaving with its floating IP');
  assert.equal(await ping(providerNs, fip.floatingIpAddress), false, 'no ICMP rule: no ping');
  // Security groups: removing SSH cuts it; adding ICMP allows ping.
  await dp.converge(state({ securityGroups: [{ ...sg, rules: [sg.rules[0], rule('ingress', { protocol: 'icmp' })] }] }));
  assert.notEqual((await sh('ip', [...sshArgs(), 'true'], 20_000)).code, 0, 'SSH cut');
  assert.ok(await eventually(async () => ((await ping(providerNs, fip.floatingIpAddress)) ? true : null), 5), 'ping allowed');
  const inGuest = await inNs(`${fx.prefix}br`, 'bridge', ['link', 'show', 'dev', vm.tapName]);
  assert.match(inGuest.stdout, new RegExp(`master brq${net.id.slice(0, 11)}`));
});
