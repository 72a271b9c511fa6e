// The Linux data-plane driver: converge(desired) makes one host's network match a
// HostNetworkState, idempotently, and removes whatever Stratus made that no longer belongs.
// Layout (docs/dataplane.md): one bridge namespace per agent holds every network's bridge, the
// guests' taps, VXLAN devices, uplinks and the firewall; one namespace per DHCP network and per
// router; shared "physical" namespaces for provider networks and the VXLAN underlay. The root
// namespace never gets an address, a route or a firewall rule.
import { mkdirSync, chmodSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { ConvergeReport, HostNetworkState, NetworkSpec, PortSpec } from './model.js';
import { emptyHostNetworkState } from './model.js';
import { ChangeLog, run } from './exec.js';
import { Names, bridgeName, dhcpLeg, routerGwLeg, routerIfLeg, vxlanName } from './names.js';
import { addresses, deleteNetns, ensureNetns, fixLink, links, listNetns, staticRoutes, syncAddresses, syncSysctls, type Link } from './linux.js';
import { ANTISPOOF_TABLE, antispoofText, iptablesText } from './firewall.js';
import { dhcpPlans, dnsmasqSpec, type DhcpPlan } from './dhcp.js';
import { METADATA_IP, portAddresses, raSpec, routerPlan, type LegPlan, type RouterPlan } from './router.js';
import { ProcDir, procDirs } from './procs.js';
import { validateState } from './validate.js';
import { SharedSegments, type PhysicalNetworkMapping, type UnderlayMapping } from './shared.js';
import { AppliedTables } from './tables.js';

export interface DataplaneConfig {
  /** Scopes this agent's namespaces (default "stratus-"). */
  prefix?: string;
  /** Where pid files, dnsmasq and proxy configs live (default /run/stratus/dataplane-PREFIX: gone at reboot, like namespaces). */
  stateDir?: string;
  /** physical network name → the namespace-backed segment it maps to (like Neutron's physical_interface_mappings). */
  physicalNetworks?: Record<string, PhysicalNetworkMapping>;
  /** The VXLAN underlay segment (a shared namespace bridge on one machine). */
  underlay?: UnderlayMapping;
  /** Metadata proxies in router namespaces forward to this unix socket, signing with this secret. */
  metadata?: { socketPath: string; secret: string };
}

export const DEFAULT_PROVIDER_NS = 'stratus-provider';

/** The all-in-one default: physical network "public" is the provider namespace's bridge, gateway 203.0.113.1. */
export function defaultPhysicalNetworks(): Record<string, PhysicalNetworkMapping> {
  return { public: { netns: DEFAULT_PROVIDER_NS, bridge: 'br-public', addresses: ['203.0.113.1/24'] } };
}
const VXLAN_PORT = '4789';


export class LinuxDataplane {
  readonly names: Names;
  readonly stateDir: string;
  private readonly shared: SharedSegments;
  private readonly tables: AppliedTables;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly cfg: DataplaneConfig = {}) {
    this.names = new Names(cfg.prefix ?? 'stratus-');
    this.stateDir = cfg.stateDir ?? `/run/stratus/dataplane-${this.names.prefix.replace(/-$/, '')}`;
    this.shared = new SharedSegments(this.names, cfg.physicalNetworks ?? {}, cfg.underlay ?? null);
    this.tables = new AppliedTables(this.stateDir);
  }

  /** Makes the host match `desired` (one converge at a time). */
  converge(desired: HostNetworkState): Promise<ConvergeReport> {
    const next = this.queue.then(() => this.doConverge(desired));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Removes everything this agent made (converge to the empty state), its bookkeeping directory included. */
  async purge(): Promise<ConvergeReport> {
    const report = await this.converge(emptyHostNetworkState('purge'));
    // Kept when something could not be removed, so the next purge still knows what was applied.
    if (report.errors.length === 0) rmSync(this.stateDir, { recursive: true, force: true });
    return report;
  }

  /** Creates a physical network's namespace and bridge on its own (`stratus exec-external` needs it to exist). */
  async ensurePhysicalNetwork(name: string): Promise<string> {
    const log = new ChangeLog();
    return (await this.shared.ensurePhysnet(name, log)).netns;
  }

  private async doConverge(input: HostNetworkState): Promise<ConvergeReport> {
    const errors: string[] = [];
    const log = new ChangeLog();
    const state = validateState(input, errors);
    mkdirSync(this.stateDir, { recursive: true, mode: 0o755 });
    chmodSync(this.stateDir, 0o755);
    const br = this.names.bridgeNs;
    const dhcp = dhcpPlans(state);
    const routers = state.routers.map((r) => {
      try { return routerPlan(state, r, errors); } catch (e) { errors.push(`router ${r.id}: ${(e as Error).message}`); return null; }
    }).filter((p): p is RouterPlan => p !== null);
    const wantNs = new Set<string>();
    if (state.networks.length) wantNs.add(br);
    for (const p of dhcp) wantNs.add(this.names.dhcpNs(p.network.id));
    for (const p of routers) wantNs.add(this.names.routerNs(p.router.id));
    // 1. Namespaces (the bridge namespace first: legs are created from it into the others).
    for (const ns of [...wantNs].sort((a, b) => (a === br ? -1 : b === br ? 1 : a.localeCompare(b)))) {
      if (await ensureNetns(ns, log)) log.note(`created ${ns}`);
    }
    const ports = new Map<string, 'ACTIVE' | 'DOWN'>(input.ports.map((p) => [p.id, 'DOWN']));
    if (wantNs.has(br)) {
      await syncSysctls(br, {
        'net.bridge.bridge-nf-call-iptables': '1', 'net.bridge.bridge-nf-call-ip6tables': '1',
        'net.bridge.bridge-nf-call-arptables': '0', 'net.ipv4.ip_forward': '0',
        'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1',
      }, log);
      await this.convergeBridgeNs(state, dhcp, routers, ports, errors, log);
    }
    // 2. DHCP and router namespaces.
    const wantProcs = new Set<string>();
    for (const plan of dhcp) {
      await this.step(errors, `dhcp ${plan.network.id}`, () => this.convergeDhcp(plan, wantProcs, log));
    }
    for (const plan of routers) {
      await this.step(errors, `router ${plan.router.id}`, () => this.convergeRouter(plan, wantProcs, log));
    }
    // 3. Garbage: helper processes, then namespaces, then our legs in shared namespaces.
    for (const d of procDirs(this.stateDir)) {
      if (!wantProcs.has(d) && /^(dhcp|meta|metan|ra)-/.test(d)) {
        await new ProcDir(join(this.stateDir, d)).remove();
        log.note(`stopped ${d}`);
      }
    }
    for (const ns of await listNetns()) {
      if (this.names.ownsNs(ns) && !wantNs.has(ns)) await deleteNetns(ns, log);
    }
    await this.step(errors, 'shared segments', () => this.shared.collect(wantNs.has(br) ? br : null, log));
    for (const p of state.ports) if (ports.get(p.id) === undefined) ports.set(p.id, 'DOWN');
    // Forget the firewall bookkeeping of routers that are gone.
    this.tables.keepOnly(new Set(['br-v4', 'br-v6', 'br-antispoof', ...routers.map((r) => `router-${r.router.id}`)]));
    return { ports: Object.fromEntries(ports), changes: log.count, actions: log.lines.map((l) => l.slice(0, 300)), errors };
  }

  private async step(errors: string[], what: string, fn: () => Promise<void>): Promise<void> {
    try { await fn(); } catch (e) { errors.push(`${what}: ${(e as Error).message}`); }
  }

  /** Bridges, VXLAN devices, uplinks, taps and legs in the bridge namespace, then its firewall. */
  private async convergeBridgeNs(state: HostNetworkState, dhcp: DhcpPlan[], routers: RouterPlan[],
    status: Map<string, 'ACTIVE' | 'DOWN'>, errors: string[], log: ChangeLog): Promise<void> {
    const br = this.names.bridgeNs;
    let have = await links(br);
    const want = new Set<string>(['lo']);
    const networks = new Map(state.networks.map((n) => [n.id, n]));
    const needsVxlan = state.underlayIp !== null && state.networks.some((n) => n.segmentationType === 'vxlan');
    if (needsVxlan && this.cfg.underlay) {
      await this.step(errors, 'underlay', async () => {
        await this.shared.attachUnderlay(br, `${state.underlayIp}/${this.cfg.underlay!.prefixLen}`, log);
        want.add(this.names.underlayLeg);
      });
      have = await links(br);
    }
    for (const n of state.networks) {
      await this.step(errors, `network ${n.id}`, async () => {
        const b = bridgeName(n.id);
        want.add(b);
        if (!have.has(b)) await log.change('ip', ['-n', br, 'link', 'add', b, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
        const upl = await this.uplink(n, state, have, log);
        if (upl) want.add(upl);
      });
    }
    have = await links(br);
    for (const n of state.networks) {
      const b = have.get(bridgeName(n.id));
      if (b) await fixLink(br, b, { mtu: n.mtu, up: true }, log);
    }
    // Legs into DHCP and router namespaces: veth pairs, bridge end "tapXXX", namespace end with the port's MAC.
    const legs: { ns: string; leg: LegPlan }[] = [
      ...dhcp.map((p) => ({ ns: this.names.dhcpNs(p.network.id), leg: { port: p.port, dev: dhcpLeg(p.port.id), mtu: p.network.mtu, addresses: portAddresses(state, p.port) } })),
      ...routers.flatMap((r) => r.legs.map((leg) => ({ ns: this.names.routerNs(r.router.id), leg }))),
    ];
    for (const { ns, leg } of legs) {
      await this.step(errors, `leg ${leg.dev}`, async () => {
        const tap = leg.port.tapName;
        want.add(tap);
        const there = (await links(ns)).get(leg.dev);
        if (have.has(tap) && !there) { await log.change('ip', ['-n', br, 'link', 'del', tap]); have.delete(tap); }
        if (!have.has(tap)) {
          await log.change('ip', ['-n', br, 'link', 'add', tap, 'mtu', String(leg.mtu), 'type', 'veth', 'peer', 'name', leg.dev,
            'mtu', String(leg.mtu), 'address', leg.port.macAddress, 'netns', ns]);
        }
      });
    }
    // Guest taps: made by the hypervisor (QEMU ifname=tapXXX), either here already or in the root namespace to be moved in.
    const guestPorts = state.ports.filter((p) => !p.deviceOwner.startsWith('network:'));
    if (guestPorts.some((p) => !have.has(p.tapName))) {
      const root = await links(null);
      for (const p of guestPorts) {
        const l = root.get(p.tapName);
        if (!have.has(p.tapName) && l && (l.kind === 'tun' || l.kind === 'veth') && !l.master) {
          await this.step(errors, `tap ${p.tapName}`, () => log.change('ip', ['link', 'set', 'dev', p.tapName, 'netns', br]).then(() => undefined));
        }
      }
    }
    have = await links(br);
    for (const p of state.ports) {
      const l = have.get(p.tapName);
      const net = networks.get(p.networkId)!;
      if (!l) continue;
      want.add(p.tapName);
      await this.step(errors, `port ${p.id}`, async () => {
        await fixLink(br, l, { mtu: net.mtu, master: bridgeName(net.id), up: p.adminStateUp }, log);
        status.set(p.id, 'ACTIVE');
      });
    }
    // Whatever else is in our bridge namespace is ours and stale (guest taps of removed ports, old bridges, uplinks).
    for (const l of have.values()) {
      if (want.has(l.name) || [...want].some((w) => l.name === `${w}`)) continue;
      await this.step(errors, `remove ${l.name}`, async () => {
        try { await log.change('ip', ['-n', br, 'link', 'del', l.name]); } catch {
          // a tap still held by a running QEMU cannot always be deleted: cut it off instead.
          await fixLink(br, l, { master: null, up: false }, log);
        }
      });
    }
    await this.step(errors, 'vxlan flood lists', () => this.convergeFdb(state, log));
    await this.step(errors, 'firewall', async () => {
      await this.tables.iptables('br-v4', br, 'iptables', iptablesText(state, false), log);
      await this.tables.iptables('br-v6', br, 'ip6tables', iptablesText(state, true), log);
      await this.tables.nft('br-antispoof', br, 'bridge', ANTISPOOF_TABLE, antispoofText(state), log);
    });
  }

  /** The device that connects a network's bridge to the outside: a VXLAN device, or a physical network uplink (VLAN sub-device). */
  private async uplink(n: NetworkSpec, state: HostNetworkState, have: Map<string, Link>, log: ChangeLog): Promise<string | null> {
    const br = this.names.bridgeNs;
    const b = bridgeName(n.id);
    if (n.segmentationType === 'vxlan') {
      // A VXLAN device needs this host's tunnel endpoint and the underlay to carry it; without
      // them the network stays local to this host (fine on a single host, an error with peers).
      if (state.underlayIp === null || !this.cfg.underlay) {
        if (state.vxlanPeers.some((p) => p.networkIds.includes(n.id) && p.underlayIp !== state.underlayIp)) {
          throw new Error('VXLAN peers are listed but this host has no underlay (underlayIp and the underlay setting)');
        }
        return null;
      }
      const v = vxlanName(n.segmentationId!);
      const l = have.get(v);
      if (l && l.local !== state.underlayIp) { await log.change('ip', ['-n', br, 'link', 'del', v]); have.delete(v); }
      if (!have.has(v)) {
        await log.change('ip', ['-n', br, 'link', 'add', v, 'mtu', String(n.mtu), 'type', 'vxlan', 'id', String(n.segmentationId),
          'local', state.underlayIp, 'dstport', VXLAN_PORT, 'dev', this.names.underlayLeg]);
      }
      const now = (await links(br)).get(v)!;
      await fixLink(br, now, { mtu: n.mtu, master: b, up: true }, log);
      return v;
    }
    const phys = await this.shared.attachPhysnet(br, n.physicalNetwork!, log);
    if (n.segmentationType === 'flat') {
      await fixLink(br, (await links(br)).get(phys)!, { master: b, up: true }, log);
      return phys;
    }
    const sub = `${phys}.${n.segmentationId}`;
    if (!have.has(sub)) {
      await log.change('ip', ['-n', br, 'link', 'add', 'link', phys, 'name', sub, 'type', 'vlan', 'id', String(n.segmentationId)]).catch((e) => {
        throw /Unknown device type|not supported/i.test(String(e.message))
          ? new Error('VLAN networks need 802.1Q support in the host kernel, which this host lacks') : e;
      });
    }
    const all = await links(br);
    await fixLink(br, all.get(phys)!, { up: true }, log);
    await fixLink(br, all.get(sub)!, { mtu: n.mtu, master: b, up: true }, log);
    return sub;
  }

  /** Flood entries (00:00:00:00:00:00 dst PEER) on each VXLAN device towards the peers carrying its network. */
  private async convergeFdb(state: HostNetworkState, log: ChangeLog): Promise<void> {
    if (state.underlayIp === null || !this.cfg.underlay) return;
    const br = this.names.bridgeNs;
    for (const n of state.networks.filter((n) => n.segmentationType === 'vxlan')) {
      const dev = vxlanName(n.segmentationId!);
      const want = new Set(state.vxlanPeers.filter((p) => p.networkIds.includes(n.id) && p.underlayIp !== state.underlayIp).map((p) => p.underlayIp));
      const out = await run('bridge', ['-n', br, '-j', 'fdb', 'show', 'dev', dev]);
      const have = new Set((JSON.parse(out || '[]') as any[]).filter((e) => e.mac === '00:00:00:00:00:00' && e.dst).map((e) => e.dst as string));
      for (const ip of have) if (!want.has(ip)) await log.change('bridge', ['-n', br, 'fdb', 'del', '00:00:00:00:00:00', 'dev', dev, 'dst', ip]);
      for (const ip of want) if (!have.has(ip)) await log.change('bridge', ['-n', br, 'fdb', 'append', '00:00:00:00:00:00', 'dev', dev, 'dst', ip]);
    }
  }

  /** One network's DHCP namespace: its leg's addresses and dnsmasq (restarted on new ranges, reloaded on new hosts/options). */
  private async convergeDhcp(plan: DhcpPlan, wantProcs: Set<string>, log: ChangeLog): Promise<void> {
    const ns = this.names.dhcpNs(plan.network.id);
    const dev = dhcpLeg(plan.port.id);
    const meta = plan.metadata ? this.cfg.metadata : undefined;
    await this.convergeLegs(ns, [{ port: plan.port, dev, mtu: plan.network.mtu, addresses: plan.subnets.map((s) => {
      const ip = plan.port.fixedIps.find((f) => f.subnetId === s.id)!.ipAddress;
      return `${ip}/${s.cidr.split('/')[1]}`;
    }) }], log, meta ? [`${METADATA_IP}/32`] : []);
    await syncSysctls(ns, { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.disable_ipv6': '1' }, log);
    const name = `dhcp-${plan.network.id}`;
    wantProcs.add(name);
    const dir = new ProcDir(join(this.stateDir, name));
    dir.ensure();
    const changed = [dir.writeIfChanged('hosts', plan.hosts), dir.writeIfChanged('opts', plan.opts)].some(Boolean);
    const spec = dnsmasqSpec(plan, ns, dev, dir.dir);
    if (dir.pid() === null || dir.startedWith() !== JSON.stringify(spec)) {
      await dir.stop();
      dir.start(spec);
      log.note(`started dnsmasq in ${ns}`);
    } else if (changed) {
      dir.signal('SIGHUP');
      log.note(`reloaded dnsmasq in ${ns}`);
    }
    if (meta) await this.ensureProxy(`metan-${plan.network.id}`, ns, { networkId: plan.network.id }, meta, wantProcs, log);
  }

  /** A metadata proxy in a namespace, (re)started when its config changes or it died. */
  private async ensureProxy(name: string, ns: string, scope: { routerId?: string; networkId?: string },
    meta: { socketPath: string; secret: string }, wantProcs: Set<string>, log: ChangeLog): Promise<void> {
    wantProcs.add(name);
    const dir = new ProcDir(join(this.stateDir, name));
    dir.ensure();
    const changed = dir.writeIfChanged('config.json', JSON.stringify({ listen: METADATA_IP, port: 80, socketPath: meta.socketPath,
      secret: meta.secret, ...scope }), 0o600);
    const spec = { netns: ns, cmd: process.execPath, args: [fileURLToPath(new URL('./metadata-proxy.js', import.meta.url)), dir.path('config.json')] };
    if (changed || dir.pid() === null || dir.startedWith() !== JSON.stringify(spec)) {
      await dir.stop();
      dir.start(spec);
      log.note(`started metadata proxy in ${ns}`);
    }
  }

  /** One router's namespace: legs, forwarding, routes, NAT and the metadata proxy. */
  private async convergeRouter(plan: RouterPlan, wantProcs: Set<string>, log: ChangeLog): Promise<void> {
    const ns = this.names.routerNs(plan.router.id);
    const meta = this.cfg.metadata;
    const v6 = plan.legs.some((l) => l.addresses.some((a) => a.includes(':')));
    // IPv6 only where a leg has an IPv6 address; set before the addresses (a disabled stack refuses them).
    await syncSysctls(ns, { 'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.disable_ipv6': v6 ? '0' : '1',
      'net.ipv6.conf.default.disable_ipv6': v6 ? '0' : '1', 'net.ipv6.conf.all.forwarding': v6 ? '1' : '0',
      'net.ipv6.conf.all.accept_dad': '0', 'net.ipv6.conf.default.accept_dad': '0' }, log);
    await this.convergeLegs(ns, plan.legs, log, meta ? [`${METADATA_IP}/32`] : []);
    // Routes: the connected ones come with the addresses; the rest (default via the external gateway, extra routes) here.
    const have = await staticRoutes(ns);
    const key = (r: { dst: string; gateway: string | null }) => `${r.dst} ${r.gateway}`;
    const want = new Set(plan.routes.map(key));
    for (const r of have) if (!want.has(key(r))) await log.change('ip', ['-n', ns, 'route', 'del', r.dst, ...(r.gateway ? ['via', r.gateway] : [])]);
    const haveKeys = new Set(have.map(key));
    for (const r of plan.routes) {
      if (!haveKeys.has(key(r))) await log.change('ip', ['-n', ns, 'route', 'replace', r.dst, 'via', r.gateway]);
    }
    await this.tables.iptables(`router-${plan.router.id}`, ns, 'iptables', plan.iptables, log);
    if (meta) await this.ensureProxy(`meta-${plan.router.id}`, ns, { routerId: plan.router.id }, meta, wantProcs, log);
    if (plan.ra.length) {
      const name = `ra-${plan.router.id}`;
      wantProcs.add(name);
      const dir = new ProcDir(join(this.stateDir, name));
      dir.ensure();
      const spec = raSpec(plan, ns);
      spec.args.push(`--pid-file=${dir.path('dnsmasq.pid')}`); // names the directory in the command line
      if (dir.pid() === null || dir.startedWith() !== JSON.stringify(spec)) {
        await dir.stop();
        dir.start(spec);
        log.note(`started router advertisements in ${ns}`);
      }
    }
  }

  /** The namespace ends of veth legs: up, MTU, MAC, exactly their addresses; anything else in the namespace (but lo) goes. */
  private async convergeLegs(ns: string, legs: LegPlan[], log: ChangeLog, loAddrs: string[] = []): Promise<void> {
    const have = await links(ns);
    const addrs = await addresses(ns);
    const want = new Set(['lo', ...legs.map((l) => l.dev)]);
    for (const l of have.values()) if (!want.has(l.name)) await log.change('ip', ['-n', ns, 'link', 'del', l.name]);
    const lo = have.get('lo');
    if (lo) await fixLink(ns, lo, { up: true }, log);
    await syncAddresses(ns, 'lo', (addrs.get('lo') ?? []).filter((a) => !a.startsWith('127.') && !a.startsWith('::1')), loAddrs, log);
    for (const leg of legs) {
      const l = have.get(leg.dev);
      if (!l) throw new Error(`leg ${leg.dev} missing in ${ns}`);
      await fixLink(ns, l, { mac: leg.port.macAddress, mtu: leg.mtu, up: leg.port.adminStateUp }, log);
      await syncAddresses(ns, leg.dev, addrs.get(leg.dev) ?? [], leg.addresses, log);
    }
  }
}

export type { PortSpec };
export { routerIfLeg, routerGwLeg };
