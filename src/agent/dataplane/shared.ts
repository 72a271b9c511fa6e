// Segments shared by every agent of a machine, playing the "physical" world: a provider
// network's namespace (its bridge carries the external network; the gateway address, e.g.
// 203.0.113.1/24, lives on it so that `stratus exec-external` can reach floating IPs from
// there) and the VXLAN underlay's namespace (a bridge the agents' tunnel endpoints sit on).
// Each agent plugs one veth leg into each; a shared namespace goes when no leg is left in it.
import type { ChangeLog } from './exec.js';
import { ensureNetns, fixLink, links, listNetns, addresses, syncAddresses, syncSysctls, sleep } from './linux.js';
import type { Names } from './names.js';

export interface PhysicalNetworkMapping {
  /** The namespace standing for the physical segment (default provider: "stratus-provider"). */
  netns: string;
  /** The bridge in it (e.g. "br-public"). */
  bridge: string;
  /** Addresses on that bridge, e.g. ["203.0.113.1/24"] (the external subnet's gateway). */
  addresses: string[];
}

export interface UnderlayMapping {
  /** e.g. "stratus-underlay" */
  netns: string;
  /** e.g. "br-underlay" */
  bridge: string;
  /** Prefix length of the agents' underlay addresses (e.g. 24 for 172.16.255.0/24). */
  prefixLen: number;
}

export class SharedSegments {
  constructor(private readonly names: Names, private readonly physnets: Record<string, PhysicalNetworkMapping>,
    private readonly underlay: UnderlayMapping | null) {}

  /** The namespace and bridge of a physical network, created if missing. */
  async ensurePhysnet(name: string, log: ChangeLog): Promise<PhysicalNetworkMapping> {
    const m = this.physnets[name];
    if (!m) throw new Error(`physical network ${name} is not mapped on this host`);
    await this.ensureSegment(m.netns, m.bridge, m.addresses, log);
    return m;
  }

  private async ensureSegment(ns: string, bridge: string, addrs: string[], log: ChangeLog): Promise<void> {
    await ensureNetns(ns, log);
    // A plain wire: no firewall hooks on bridged traffic, no forwarding.
    await syncSysctls(ns, { 'net.bridge.bridge-nf-call-iptables': '0', 'net.bridge.bridge-nf-call-ip6tables': '0', 'net.ipv4.ip_forward': '0' }, log);
    let l = (await links(ns)).get(bridge);
    if (!l) {
      await log.change('ip', ['-n', ns, 'link', 'add', bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
      l = (await links(ns)).get(bridge)!;
    }
    await fixLink(ns, l, { up: true }, log);
    await syncAddresses(ns, bridge, ((await addresses(ns)).get(bridge) ?? []).filter((a) => !a.includes(':')), addrs, log);
  }

  /** Plugs the bridge namespace into a physical network; returns the leg's name in the bridge namespace. */
  async attachPhysnet(brNs: string, physnet: string, log: ChangeLog): Promise<string> {
    const m = await this.ensurePhysnet(physnet, log);
    const leg = this.names.physLeg(physnet);
    await this.attach(brNs, leg, m.netns, this.names.sharedLeg(`phys|${physnet}`), m.bridge, log);
    return leg;
  }

  /** Plugs the bridge namespace into the underlay with this host's tunnel endpoint address. */
  async attachUnderlay(brNs: string, cidr: string, log: ChangeLog): Promise<void> {
    const u = this.underlay!;
    await this.ensureSegment(u.netns, u.bridge, [], log);
    const leg = this.names.underlayLeg;
    await this.attach(brNs, leg, u.netns, this.names.sharedLeg('underlay'), u.bridge, log);
    await syncAddresses(brNs, leg, ((await addresses(brNs)).get(leg) ?? []).filter((a) => !a.includes(':')), [cidr], log);
  }

  private async attach(brNs: string, leg: string, ns: string, peer: string, bridge: string, log: ChangeLog): Promise<void> {
    const mine = await links(brNs);
    const theirs = await links(ns);
    if (mine.has(leg) && !theirs.has(peer)) await log.change('ip', ['-n', brNs, 'link', 'del', leg]);
    if (!mine.has(leg) || !theirs.has(peer)) {
      if (theirs.has(peer)) await log.change('ip', ['-n', ns, 'link', 'del', peer]);
      await log.change('ip', ['-n', brNs, 'link', 'add', leg, 'type', 'veth', 'peer', 'name', peer, 'netns', ns]);
    }
    await fixLink(brNs, (await links(brNs)).get(leg)!, { up: true }, log);
    await fixLink(ns, (await links(ns)).get(peer)!, { master: bridge, up: true }, log);
  }

  /**
   * Removes this agent's stale legs in shared namespaces (a leg whose bridge-namespace end is gone
   * dies with it; this catches a leg left by a crash) and each shared namespace nobody is plugged into.
   */
  async collect(brNs: string | null, log: ChangeLog): Promise<void> {
    const all = await listNetns();
    const mine = brNs ? await links(brNs) : new Map();
    const segs = [
      ...Object.entries(this.physnets).map(([name, m]) => ({ ns: m.netns, bridge: m.bridge, peer: this.names.sharedLeg(`phys|${name}`), leg: this.names.physLeg(name) })),
      ...(this.underlay ? [{ ns: this.underlay.netns, bridge: this.underlay.bridge, peer: this.names.sharedLeg('underlay'), leg: this.names.underlayLeg }] : []),
    ];
    for (const s of segs) {
      // Two names of one physical network share a namespace (`public` and `physnet-public`): the
      // first may just have deleted it.
      if (!all.includes(s.ns) || !(await listNetns()).includes(s.ns)) continue;
      const theirs = await links(s.ns);
      if (theirs.has(s.peer) && !mine.has(s.leg)) {
        // Usually the peer of a leg in a just-deleted namespace, which the kernel removes a moment later.
        await log.change('ip', ['-n', s.ns, 'link', 'del', s.peer]).catch(() => undefined);
        for (let i = 0; i < 100 && (await links(s.ns)).has(s.peer); i++) await sleep(20);
      }
      // Any agent's leg (on any bridge) keeps the namespace. Processes inside (an exec-external
      // session) keep it alive until they end; nothing is killed here.
      const left = [...(await links(s.ns)).values()].filter((l) => l.master !== null);
      if (!left.length && (await listNetns()).includes(s.ns)) await log.change('ip', ['netns', 'del', s.ns]);
    }
  }
}
