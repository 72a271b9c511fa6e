// Fake guests and desired-state builders for the data-plane tests. A fake guest is a network
// namespace whose veth end ("eth0") plays the guest NIC; the other end is created in the root
// namespace under the port's tap name, exactly where QEMU would create its tap, and converge()
// moves it into the bridge namespace. Everything is named with the test's prefix and torn down.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { HostNetworkState, NetworkSpec, PortSpec, SecurityGroupRuleSpec, SubnetSpec } from '../../src/agent/dataplane/model.js';
import { tapNameFor } from '../../src/agent/dataplane/model.js';

export function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
export async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
export const inNs = (ns: string, cmd: string, args: string[], timeoutMs?: number) => sh('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);

/** One ping (true if answered). */
export async function ping(ns: string, ip: string, count = 1): Promise<boolean> {
  return (await inNs(ns, 'ping', ['-c', String(count), '-W', '1', '-i', '0.2', ip])).code === 0;
}
/** Pings until answered (ARP, bridge learning and dnsmasq start take a moment), up to `tries`. */
export async function pingEventually(ns: string, ip: string, tries = 10): Promise<boolean> {
  for (let i = 0; i < tries; i++) if (await ping(ns, ip)) return true;
  return false;
}

/** A TCP connect from `ns` to ip:port (true if it connects and reads the server's line). */
export async function tcpConnect(ns: string, ip: string, port: number): Promise<string | null> {
  const r = await inNs(ns, 'socat', ['-T', '2', '-u', `TCP:${ip}:${port},connect-timeout=2`, 'STDOUT'], 5000);
  return r.code === 0 ? r.stdout : null;
}

/** Retries an async check (servers and proxies take a moment to listen, more so under load). */
export async function eventually<T>(fn: () => Promise<T | null>, tries = 15, delayMs = 200): Promise<T | null> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  return null;
}

/** Root-namespace links named after these taps (there must be none once converged away). */
export async function rootTaps(taps: string[]): Promise<string[]> {
  const names = (JSON.parse(await must('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname);
  return names.filter((n) => taps.includes(n));
}

export class Fixture {
  readonly prefix: string;
  readonly dir: string;
  private guests: string[] = [];
  private pids: number[] = [];
  constructor(tag: string) {
    // Unique per run: several checkouts may run these tests on one machine at the same time.
    this.prefix = `stratus-${tag}${randomUUID().slice(0, 4)}-`;
    this.dir = mkdtempSync(join(tmpdir(), `stratus-dp-${tag}-`));
    chmodSync(this.dir, 0o755);
  }
  ns(name: string): string { return `${this.prefix}vm-${name}`; }

  /** A fake guest for `port`: namespace + veth, MAC from the port; static IP unless dhcp. */
  async guest(name: string, port: PortSpec, mtu: number, ipCidr: string | null, gateway?: string): Promise<string> {
    const ns = this.ns(name);
    this.guests.push(ns);
    await must('ip', ['netns', 'add', ns]);
    await must('ip', ['link', 'add', port.tapName, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', port.macAddress, 'mtu', String(mtu), 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    if (ipCidr) await must('ip', ['-n', ns, 'addr', 'add', ipCidr, 'dev', 'eth0']);
    if (gateway) await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', gateway]);
    return ns;
  }

  /** busybox udhcpc in a guest: returns what the lease said (ip, router, mtu, staticroutes, dns). */
  async dhcp(ns: string): Promise<Record<string, string> | null> {
    const script = join(this.dir, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip|mask=$mask|router=$router|mtu=$mtu|dns=$dns|staticroutes=$staticroutes"\nexit 0\n');
    chmodSync(script, 0o755);
    const r = await inNs(ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '4', '-T', '1', '-s', script, '-O', 'staticroutes', '-O', 'mtu'], 20_000);
    const line = r.stdout.split('\n').find((l) => l.startsWith('ip='));
    if (!line) return null;
    return Object.fromEntries(line.split('|').map((kv) => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]));
  }

  /** A TCP server in `ns` on port answering one line; killed in cleanup. */
  serve(ns: string, port: number, reply: string): void {
    const child = execFile('ip', ['netns', 'exec', ns, 'socat', `TCP-LISTEN:${port},fork,reuseaddr`, `SYSTEM:echo ${reply}`]);
    if (child.pid) this.pids.push(child.pid);
  }

  /** A TCP echo server in `ns`. */
  serveEcho(ns: string, port: number): void {
    const child = execFile('ip', ['netns', 'exec', ns, 'socat', `TCP-LISTEN:${port},fork,reuseaddr`, 'EXEC:cat']);
    if (child.pid) this.pids.push(child.pid);
  }

  /** A long-lived TCP client in `ns`: say(line) resolves with the echoed line, or null after 2 s. */
  async session(ns: string, ip: string, port: number): Promise<{ say(line: string): Promise<string | null>; close(): void } | null> {
    const child = spawn('ip', ['netns', 'exec', ns, 'socat', '-', `TCP:${ip}:${port},connect-timeout=2`], { stdio: ['pipe', 'pipe', 'ignore'] });
    if (child.pid) this.pids.push(child.pid);
    let buf = '';
    child.stdout!.on('data', (d) => { buf += String(d); });
    const say = (line: string) => new Promise<string | null>((resolve) => {
      buf = '';
      child.stdin!.write(line + '\n');
      const started = Date.now();
      const t = setInterval(() => {
        if (buf.includes('\n')) { clearInterval(t); resolve(buf.trim()); }
        else if (Date.now() - started > 2000 || child.exitCode !== null) { clearInterval(t); resolve(null); }
      }, 20);
    });
    const close = () => { child.kill(); };
    if ((await say('hello')) !== 'hello') { close(); return null; }
    return { say, close };
  }

  /** Removes the fake guests and anything the test prefix names that is still there (safety sweep). */
  async cleanup(): Promise<void> {
    for (const pid of this.pids) { try { process.kill(pid); } catch { /* gone */ } }
    const all = (await sh('ip', ['-j', 'netns', 'list'])).stdout;
    const names = all.trim() ? (JSON.parse(all) as { name: string }[]).map((n) => n.name) : [];
    for (const ns of names.filter((n) => n.startsWith(this.prefix))) {
      const pids = (await sh('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      await sh('ip', ['netns', 'del', ns]);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- desired-state builders ----

export const uuid = () => randomUUID();
let macN = 0x10;
export const mac = () => `fa:16:3e:00:${(Math.floor(Math.random() * 200) + 16).toString(16)}:${(macN++ & 0xff).toString(16).padStart(2, '0')}`;

export function network(over: Partial<NetworkSpec> = {}): NetworkSpec {
  return { id: uuid(), segmentationType: 'vxlan', segmentationId: 1000 + Math.floor(Math.random() * 50000), physicalNetwork: null,
    mtu: 1450, external: false, ...over };
}
export function subnet(net: NetworkSpec, cidr: string, gatewayIp: string | null, over: Partial<SubnetSpec> = {}): SubnetSpec {
  return { id: uuid(), networkId: net.id, ipVersion: 4, cidr, gatewayIp, enableDhcp: true, dnsNameservers: [], hostRoutes: [],
    allocationPools: [], ...over };
}
export function port(net: NetworkSpec, sub: SubnetSpec, ip: string, over: Partial<PortSpec> = {}): PortSpec {
  const id = over.id ?? uuid();
  return { id, networkId: net.id, macAddress: mac(), fixedIps: [{ subnetId: sub.id, ipAddress: ip }], deviceOwner: 'compute:nova',
    deviceId: uuid(), tapName: tapNameFor(id), adminStateUp: true, portSecurityEnabled: true, allowedAddressPairs: [],
    securityGroupIds: [], ...over };
}
export function rule(direction: 'ingress' | 'egress', over: Partial<SecurityGroupRuleSpec> = {}): SecurityGroupRuleSpec {
  return { id: uuid(), direction, ethertype: 'IPv4', protocol: null, portRangeMin: null, portRangeMax: null, remoteIpPrefix: null,
    remoteGroupId: null, ...over };
}
export function emptyState(): HostNetworkState {
  return { hostId: 'test', underlayIp: null, vxlanPeers: [], networks: [], subnets: [], ports: [], dhcpReservations: [], securityGroups: [], routers: [], floatingIps: [] };
}

/** Everything observable that the data plane may leave behind, for before/after comparisons. */
export async function hostSnapshot(): Promise<{ route: string; netns: string[]; links: string[]; ruleset: string }> {
  const route = (await must('ip', ['-4', 'route', 'show', 'table', 'all'])).trim(); // IPv4: other tests' links may come and go (IPv6 link routes)
  const ns = (await sh('ip', ['-j', 'netns', 'list'])).stdout.trim();
  const links = (JSON.parse(await must('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).sort();
  const ruleset = (await must('nft', ['list', 'ruleset'])).trim();
  return { route, netns: ns ? (JSON.parse(ns) as { name: string }[]).map((n) => n.name).sort() : [], links, ruleset };
}
