// bench/network: guest-to-guest TCP throughput through the Stratus data plane with REAL guests
// (the test image under QEMU, started with the agent's own command line), against two plain
// namespaces joined by a veth (the baseline), measured with the same tool in the same run.
//   node dist/bench/network.js [--seconds N] [--rounds R] [--no-iperf] [--json]
// Tool: busybox `nc` fed by `dd if=/dev/zero` (the guest image has busybox and no iperf3; the
// baseline runs the host's busybox, the very binary the image carries). Each figure is the
// median of R transfers sized to last ~N seconds, the kinds interleaved so that noise from the
// 2-core machine hits them alike. Real guests: two on one host (bridge, br_netfilter +
// iptables security groups, nft anti-spoofing, virtio-net/tap) and one on a second agent's data
// plane (the same plus VXLAN over the underlay namespace).
// Under TCG (no KVM here) the guests' emulated CPU, not the data plane, bounds their figures:
// the output says which accelerator ran. Extra lines (unless --no-iperf): iperf3 between
// namespace "fake guests" plugged into the same data plane, against iperf3 on the veth — what
// the data plane itself costs without the emulator in the way.
// Needs root, QEMU, iperf3 and the test image. Everything is under the "stratus-bench-" prefix
// (namespaces) or a temporary directory, and removed at the end, even on failure.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { LinuxDataplane } from '../src/agent/dataplane/driver.js';
import { tapNameFor, type HostNetworkState, type NetworkSpec, type PortSpec, type SubnetSpec } from '../src/agent/dataplane/model.js';
import { QemuDriver } from '../src/agent/hypervisor/qemu/driver.js';
import { chooseAccelerator } from '../src/agent/hypervisor/qemu/accel.js';
import { guestImage, parseGuestMarkers } from '../src/agent/guest-image/markers.js';
import { createLogger } from '../src/core/log.js';
import { inGuest, inNamespace, iperf, ncTransfer, sh, type Place } from './net-transfer.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || dflt : dflt);
const seconds = flag('--seconds', 3);
const rounds = flag('--rounds', 3);
const withIperf = !args.includes('--no-iperf');
const asJson = args.includes('--json');
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const PREFIX = 'stratus-bench-';
const ns = (n: string) => `${PREFIX}${n}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fakeGuest(name: string, p: PortSpec, cidr: string): Promise<string> {
  const n = ns(`vm-${name}`);
  await sh('ip', ['netns', 'add', n]);
  await sh('ip', ['link', 'add', p.tapName, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
  await sh('ip', ['-n', n, 'link', 'set', 'eth0', 'address', p.macAddress, 'mtu', '1450', 'up']);
  await sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  await sh('ip', ['-n', n, 'addr', 'add', cidr, 'dev', 'eth0']);
  return n;
}

/** Removes every namespace of ours (and the processes in them) left by this or an aborted run. */
async function sweep(): Promise<void> {
  const out = (await sh('ip', ['-j', 'netns', 'list'])).trim();
  for (const { name } of out ? (JSON.parse(out) as { name: string }[]) : []) {
    if (!name.startsWith(PREFIX)) continue;
    for (const pid of (await sh('ip', ['netns', 'pids', name]).catch(() => '')).split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    await sh('ip', ['netns', 'del', name]).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-net-'));
  chmodSync(dir, 0o755);
  const log = createLogger('silent');
  const underlay = { netns: ns('underlay'), bridge: 'br-underlay', prefixLen: 24 };
  const h1 = new LinuxDataplane({ prefix: ns('h1-'), stateDir: join(dir, 'h1'), underlay });
  const h2 = new LinuxDataplane({ prefix: ns('h2-'), stateDir: join(dir, 'h2'), underlay });
  const image = guestImage().path;
  const accel = await chooseAccelerator({ mode: 'auto', probeImage: image, log });
  const qemu = new QemuDriver({ instancesDir: join(dir, 'instances'), accel: accel.accel, log, cgroups: false });
  const vms: string[] = [];
  const load0 = loadavg()[0]!;
  const runs: Record<string, number[]> = {};
  const add = (k: string, v: number) => { (runs[k] ??= []).push(v); };
  // Guests, data planes, namespaces, files: removed at the end, on failure, and on ^C / SIGTERM.
  let cleaning: Promise<void> | undefined;
  let interrupted = false;
  const cleanup = () => (cleaning ??= (async () => {
    for (const id of vms) await qemu.destroy(id).catch(() => undefined);
    await h2.purge().catch(() => undefined);
    await h1.purge().catch(() => undefined);
    await sweep();
    rmSync(dir, { recursive: true, force: true });
  })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;   // no converge may re-create what the clean-up removes
      console.error(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await sweep();
    // Baseline: two namespaces on a veth, same MTU as the tenant network.
    await sh('ip', ['netns', 'add', ns('base-a')]);
    await sh('ip', ['netns', 'add', ns('base-b')]);
    await sh('ip', ['-n', ns('base-a'), 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', ns('base-b')]);
    for (const [n, ip] of [[ns('base-a'), '10.77.0.1/24'], [ns('base-b'), '10.77.0.2/24']] as const) {
      await sh('ip', ['-n', n, 'addr', 'add', ip, 'dev', 'eth0']);
      await sh('ip', ['-n', n, 'link', 'set', 'eth0', 'up']);
      await sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }

    // A tenant (VXLAN) network with DHCP on h1, a security group allowing what is measured.
    const net: NetworkSpec = { id: randomUUID(), segmentationType: 'vxlan', segmentationId: 4242, physicalNetwork: null, mtu: 1450, external: false };
    const sub: SubnetSpec = { id: randomUUID(), networkId: net.id, ipVersion: 4, cidr: '10.78.0.0/24', gatewayIp: null, enableDhcp: true,
      dnsNameservers: [], hostRoutes: [], allocationPools: [{ start: '10.78.0.2', end: '10.78.0.254' }] };
    const sgId = randomUUID();
    const mk = (ip: string, n: number, owner = 'compute:nova'): PortSpec => {
      const id = randomUUID();
      return { id, networkId: net.id, macAddress: `fa:16:3e:42:00:${n.toString(16).padStart(2, '0')}`, fixedIps: [{ subnetId: sub.id, ipAddress: ip }],
        deviceOwner: owner, deviceId: randomUUID(), tapName: tapNameFor(id), adminStateUp: true, portSecurityEnabled: owner.startsWith('compute:'),
        allowedAddressPairs: [], securityGroupIds: owner.startsWith('compute:') ? [sgId] : [] };
    };
    const dhcp = mk('10.78.0.2', 1, 'network:dhcp');
    const [pa, pb, pc] = [mk('10.78.0.11', 0x11), mk('10.78.0.12', 0x12), mk('10.78.0.13', 0x13)];   // namespace fake guests
    const [ga, gb, gc] = [mk('10.78.0.21', 0x21), mk('10.78.0.22', 0x22), mk('10.78.0.23', 0x23)];   // real guests
    const a = await fakeGuest('a', pa, '10.78.0.11/24');
    const b = await fakeGuest('b', pb, '10.78.0.12/24');
    const c = await fakeGuest('c', pc, '10.78.0.13/24');
    const peers = [{ hostId: 'h1', underlayIp: '172.16.254.1', networkIds: [net.id] }, { hostId: 'h2', underlayIp: '172.16.254.2', networkIds: [net.id] }];
    const rule = (direction: 'ingress' | 'egress', protocol: string | null) => ({ id: randomUUID(), direction, ethertype: 'IPv4' as const, protocol,
      portRangeMin: null, portRangeMax: null, remoteIpPrefix: direction === 'ingress' ? '10.78.0.0/24' : null, remoteGroupId: null });
    const h2ports = [pc, gc];
    const s1: HostNetworkState = { hostId: 'h1', underlayIp: '172.16.254.1', vxlanPeers: peers, networks: [net], subnets: [sub],
      ports: [dhcp, pa, pb, ga, gb], dhcpReservations: h2ports.map((p) => ({ portId: p.id, networkId: net.id, macAddress: p.macAddress, fixedIps: p.fixedIps })),
      routers: [], floatingIps: [], securityGroups: [{ id: sgId, rules: [rule('egress', null), rule('ingress', 'tcp'), rule('ingress', 'icmp')] }] };
    const s2: HostNetworkState = { ...s1, hostId: 'h2', underlayIp: '172.16.254.2', ports: h2ports, dhcpReservations: [] };
    const converge = async () => {
      if (interrupted) throw new Error('interrupted');
      const [r1, r2] = [await h1.converge(s1), await h2.converge(s2)];
      if (r1.errors.length || r2.errors.length) throw new Error([...r1.errors, ...r2.errors].join('; '));
      return { ...r1.ports, ...r2.ports };
    };
    await converge();

    // Real guests: the agent's QEMU command line, SSH key by config drive, taps plugged by converge.
    const key = join(dir, 'id_ed25519');
    await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const pub = readFileSync(`${key}.pub`, 'utf8').trim();
    for (const [name, p] of [['ga', ga], ['gb', gb], ['gc', gc]] as const) {
      const id = randomUUID();
      vms.push(id);
      await qemu.spawn({ id, name, vcpus: 1, ramMb: 256, diskGb: 0, nics: [{ id: p.id, mac: p.macAddress, tap: p.tapName, mtu: 1450 }] },
        { path: image, format: 'qcow2' }, { metaData: { uuid: id, name, hostname: name, public_keys: { k: pub } } });
    }
    const t0 = Date.now();
    for (;;) {
      const ports = await converge();
      const ready = vms.filter((id) => parseGuestMarkers(readFileSync(qemu.paths(id).console, 'utf8')).sshReady).length;
      if (ready === 3 && [ga, gb, gc].every((p) => ports[p.id] === 'ACTIVE')) break;
      if (Date.now() - t0 > 300_000) throw new Error('the guests did not come up within 300 s');
      await sleep(1000);
    }
    const guest = (p: PortSpec): Place => inGuest(a, key, p.fixedIps[0]!.ipAddress);
    for (const p of [ga, gb, gc]) {
      const nic = parseGuestMarkers(readFileSync(qemu.paths(vms[[ga, gb, gc].indexOf(p)]!).console, 'utf8')).nets[0];
      if (nic?.ip !== `${p.fixedIps[0]!.ipAddress}/24`) throw new Error(`guest ${p.fixedIps[0]!.ipAddress} got ${nic?.ip} by DHCP`);
    }

    // The kinds measured with nc: [name, from, to, receiver's IP].
    const ncKinds: [string, Place, Place, string][] = [
      ['baseline_veth_nc_bps', inNamespace(ns('base-a')), inNamespace(ns('base-b')), '10.77.0.2'],
      ['guests_same_host_nc_bps', guest(ga), guest(gb), '10.78.0.22'],
      ['guests_vxlan_two_agents_nc_bps', guest(ga), guest(gc), '10.78.0.23'],
      // No network at all: what one emulated guest manages with this tool (its CPU's ceiling).
      ['guest_loopback_nc_bps', guest(ga), guest(ga), '127.0.0.1'],
    ];
    // Size each kind's transfer to last ~`seconds` from a first, discarded, one.
    const bytes: Record<string, number> = {};
    for (const [k, from, to, ip] of ncKinds) {
      const probe = await ncTransfer(from, to, ip, k.startsWith('baseline') ? 256 << 20 : 8 << 20);
      bytes[k] = Math.max(4 << 20, Math.round((probe.bps / 8) * seconds));
    }
    for (let i = 0; i < rounds; i++) {
      for (const [k, from, to, ip] of ncKinds) add(k, (await ncTransfer(from, to, ip, bytes[k]!)).bps);
      if (withIperf) {
        add('baseline_veth_iperf3_bps', await iperf(ns('base-b'), ns('base-a'), '10.77.0.2', seconds));
        add('fake_guests_same_host_iperf3_bps', await iperf(b, a, '10.78.0.12', seconds));
        add('fake_guests_vxlan_two_agents_iperf3_bps', await iperf(c, a, '10.78.0.13', seconds));
      }
    }
  } finally {
    await cleanup();
  }
  report(accel, Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v)])), [load0, loadavg()[0]!]);
}

function report(accel: { accel: string; reason: string }, r: Record<string, number>, load: number[]): void {
  const ratio = (k: string, base: string) => (r[k] !== undefined && r[base] ? r[k]! / r[base]! : undefined);
  const ratios = {
    ratio_guests_same_host: ratio('guests_same_host_nc_bps', 'baseline_veth_nc_bps'),
    ratio_guests_vxlan: ratio('guests_vxlan_two_agents_nc_bps', 'baseline_veth_nc_bps'),
    guests_same_host_vs_guest_loopback: ratio('guests_same_host_nc_bps', 'guest_loopback_nc_bps'),
    ratio_fake_same_host: ratio('fake_guests_same_host_iperf3_bps', 'baseline_veth_iperf3_bps'),
    ratio_fake_vxlan: ratio('fake_guests_vxlan_two_agents_iperf3_bps', 'baseline_veth_iperf3_bps'),
  };
  if (asJson) {
    console.log(JSON.stringify({ seconds, rounds, accelerator: accel.accel, loadavg: load, ...r, ...ratios }));
    return;
  }
  const g = (bps: number | undefined) => (bps === undefined ? '-' : bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} Gbit/s` : `${(bps / 1e6).toFixed(0)} Mbit/s`);
  const f = (x: number | undefined) => (x === undefined ? '-' : x < 0.1 ? x.toFixed(3) : x.toFixed(2));
  console.log(`real guests (test image, accelerator ${accel.accel}: ${accel.reason}), busybox nc + dd, median of ${rounds} transfers of ~${seconds} s:`);
  console.log(`  baseline, two namespaces on a veth (MTU 1450):        ${g(r.baseline_veth_nc_bps)}`);
  console.log(`  guest to guest, same host:                           ${g(r.guests_same_host_nc_bps)}   ratio ${f(ratios.ratio_guests_same_host)}`);
  console.log(`  guest to guest, two agents over VXLAN:               ${g(r.guests_vxlan_two_agents_nc_bps)}   ratio ${f(ratios.ratio_guests_vxlan)}`);
  console.log(`  one guest to itself over loopback (no network):      ${g(r.guest_loopback_nc_bps)}   same-host pair / this: ${f(ratios.guests_same_host_vs_guest_loopback)}`);
  console.log(`  load average during the run: ${load.map((x) => x.toFixed(1)).join(' → ')} (2 cores shared with other work)`);
  if (accel.accel === 'TCG') {
    console.log('  note: under TCG each guest vCPU is emulated; the guests\' CPU (sender, receiver, virtio) is the bottleneck, not the data plane.');
  }
  if (r.baseline_veth_iperf3_bps !== undefined) {
    console.log(`data plane alone: namespace "fake guests" on the same bridges, iperf3, median of ${rounds} runs of ${seconds} s:`);
    console.log(`  baseline, veth:                                      ${g(r.baseline_veth_iperf3_bps)}`);
    console.log(`  same host (bridge + security groups + anti-spoofing): ${g(r.fake_guests_same_host_iperf3_bps)}   ratio ${f(ratios.ratio_fake_same_host)}`);
    console.log(`  two agents over VXLAN:                               ${g(r.fake_guests_vxlan_two_agents_iperf3_bps)}   ratio ${f(ratios.ratio_fake_vxlan)}`);
  }
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
