// bench/network: guest-to-guest TCP throughput through the Stratus data plane, against two plain
// namespaces joined by a veth (the baseline) in the same run.
//   node dist/bench/network.js [--seconds N] [--rounds R] [--json]
// Each figure is the median of R runs of N seconds, the three kinds interleaved so that noise
// from the 2-core machine hits them alike.
// Guests are network namespaces whose veth end plays the tap (as in test/dataplane), so the path
// measured is the real one minus virtio: bridge, br_netfilter + iptables security groups
// (stateful, conntrack zones), nft anti-spoofing, and (third figure) VXLAN between two agents.
// Needs root and iperf3. Everything is created under the "stratus-bench-" prefix and removed.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { LinuxDataplane } from '../src/agent/dataplane/driver.js';
import { tapNameFor, type HostNetworkState, type NetworkSpec, type PortSpec, type SubnetSpec } from '../src/agent/dataplane/model.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || dflt : dflt);
const seconds = flag('--seconds', 3);
const rounds = flag('--rounds', 3);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const asJson = args.includes('--json');
const PREFIX = 'stratus-bench-';

function sh(cmd: string, a: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, a, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, out, errOut) =>
    err ? reject(new Error(`${cmd} ${a.join(' ')}: ${errOut || err.message}`)) : resolve(String(out))));
}
const ns = (n: string) => `${PREFIX}${n}`;

/** iperf3 from `client` to `ip` (server in `server`), in bits per second. */
async function iperf(server: string, client: string, ip: string): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-B', ip], { stdio: 'ignore' });
  try {
    let lastErr: unknown;
    for (let i = 0; i < 30; i++) {
      try {
        const out = await sh('ip', ['netns', 'exec', client, 'iperf3', '-c', ip, '-t', String(seconds), '-J', '-O', '1']);
        return JSON.parse(out).end.sum_received.bits_per_second as number;
      } catch (e) { lastErr = e; await new Promise((r) => setTimeout(r, 200)); }
    }
    throw lastErr;
  } finally { srv.kill(); }
}

async function fakeGuest(name: string, p: PortSpec, cidr: string, mtu: number): Promise<string> {
  const n = ns(`vm-${name}`);
  await sh('ip', ['netns', 'add', n]);
  await sh('ip', ['link', 'add', p.tapName, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
  await sh('ip', ['-n', n, 'link', 'set', 'eth0', 'address', p.macAddress, 'mtu', String(mtu), 'up']);
  await sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  await sh('ip', ['-n', n, 'addr', 'add', cidr, 'dev', 'eth0']);
  return n;
}

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
  const underlay = { netns: ns('underlay'), bridge: 'br-underlay', prefixLen: 24 };
  const h1 = new LinuxDataplane({ prefix: ns('h1-'), stateDir: join(dir, 'h1'), underlay });
  const h2 = new LinuxDataplane({ prefix: ns('h2-'), stateDir: join(dir, 'h2'), underlay });
  const results: Record<string, number> = {};
  try {
    await sweep();
    // Baseline: two namespaces on a veth, same MTU as the tenant network.
    await sh('ip', ['netns', 'add', ns('base-a')]);
    await sh('ip', ['netns', 'add', ns('base-b')]);
    await sh('ip', ['-n', ns('base-a'), 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', ns('base-b')]);
    for (const [n, ip] of [[ns('base-a'), '10.77.0.1/24'], [ns('base-b'), '10.77.0.2/24']]) {
      await sh('ip', ['-n', n, 'addr', 'add', ip, 'dev', 'eth0']);
      await sh('ip', ['-n', n, 'link', 'set', 'eth0', 'up']);
      await sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }

    // Through the data plane: a tenant (VXLAN) network with a security group allowing iperf.
    const net: NetworkSpec = { id: randomUUID(), segmentationType: 'vxlan', segmentationId: 4242, physicalNetwork: null, mtu: 1450, external: false };
    const sub: SubnetSpec = { id: randomUUID(), networkId: net.id, ipVersion: 4, cidr: '10.78.0.0/24', gatewayIp: null, enableDhcp: false,
      dnsNameservers: [], hostRoutes: [], allocationPools: [] };
    const sgId = randomUUID();
    const mk = (ip: string, n: number): PortSpec => {
      const id = randomUUID();
      return { id, networkId: net.id, macAddress: `fa:16:3e:42:00:0${n}`, fixedIps: [{ subnetId: sub.id, ipAddress: ip }], deviceOwner: 'compute:nova',
        deviceId: randomUUID(), tapName: tapNameFor(id), adminStateUp: true, portSecurityEnabled: true, allowedAddressPairs: [], securityGroupIds: [sgId] };
    };
    const pa = mk('10.78.0.11', 1), pb = mk('10.78.0.12', 2), pc = mk('10.78.0.13', 3);
    const a = await fakeGuest('a', pa, '10.78.0.11/24', 1450);
    const b = await fakeGuest('b', pb, '10.78.0.12/24', 1450);
    const c = await fakeGuest('c', pc, '10.78.0.13/24', 1450);
    const peers = [{ hostId: 'h1', underlayIp: '172.16.254.1', networkIds: [net.id] }, { hostId: 'h2', underlayIp: '172.16.254.2', networkIds: [net.id] }];
    const base: HostNetworkState = { hostId: 'h1', underlayIp: '172.16.254.1', vxlanPeers: peers, networks: [net], subnets: [sub], ports: [pa, pb],
      dhcpReservations: [], routers: [], floatingIps: [],
      securityGroups: [{ id: sgId, rules: [
        { id: randomUUID(), direction: 'egress', ethertype: 'IPv4', protocol: null, portRangeMin: null, portRangeMax: null, remoteIpPrefix: null, remoteGroupId: null },
        { id: randomUUID(), direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp', portRangeMin: 5201, portRangeMax: 5201, remoteIpPrefix: '10.78.0.0/24', remoteGroupId: null },
      ] }] };
    const r1 = await h1.converge(base);
    const r2 = await h2.converge({ ...base, hostId: 'h2', underlayIp: '172.16.254.2', ports: [pc] });
    if (r1.errors.length || r2.errors.length) throw new Error([...r1.errors, ...r2.errors].join('; '));
    const runs: Record<string, number[]> = { baseline_veth_bps: [], dataplane_same_host_bps: [], dataplane_vxlan_two_agents_bps: [] };
    for (let i = 0; i < rounds; i++) {
      runs.baseline_veth_bps.push(await iperf(ns('base-b'), ns('base-a'), '10.77.0.2'));
      runs.dataplane_same_host_bps.push(await iperf(b, a, '10.78.0.12'));
      runs.dataplane_vxlan_two_agents_bps.push(await iperf(c, a, '10.78.0.13'));
    }
    for (const [k, v] of Object.entries(runs)) results[k] = median(v);
  } finally {
    await h2.purge().catch(() => undefined);
    await h1.purge().catch(() => undefined);
    await sweep();
    rmSync(dir, { recursive: true, force: true });
  }
  const ratio = results.dataplane_same_host_bps / results.baseline_veth_bps;
  const vxRatio = results.dataplane_vxlan_two_agents_bps / results.baseline_veth_bps;
  if (asJson) {
    console.log(JSON.stringify({ seconds, rounds, ...results, ratio_same_host: ratio, ratio_vxlan: vxRatio }));
  } else {
    const g = (bps: number) => `${(bps / 1e9).toFixed(2)} Gbit/s`;
    console.log(`baseline (veth between two namespaces, MTU 1450): ${g(results.baseline_veth_bps)}`);
    console.log(`data plane, same host (bridge + security groups + anti-spoofing): ${g(results.dataplane_same_host_bps)}`);
    console.log(`data plane, two agents over VXLAN (underlay namespace): ${g(results.dataplane_vxlan_two_agents_bps)}`);
    console.log(`(median of ${rounds} runs of ${seconds} s each)`);
    console.log(`ratio same-host/baseline: ${ratio.toFixed(2)}   ratio vxlan/baseline: ${vxRatio.toFixed(2)}`);
  }
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
