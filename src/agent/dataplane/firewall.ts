// Security groups and anti-spoofing for the ports of the bridge namespace, as text for
// iptables-restore / ip6tables-restore (stateful rules, seen through br_netfilter with physdev
// matches, like Neutron's hybrid iptables firewall) and nft (bridge family, stateless MAC/ARP/IP
// source checks, deletable: no ebtables among-src). Pure functions: the driver applies the text.
import type { HostNetworkState, PortSpec, SecurityGroupRuleSpec } from './model.js';
import { bridgeName, egressChain, ingressChain } from './names.js';

/** Ports whose traffic is filtered: guest ports with port security (network:* ports are trusted, as in Neutron). */
export function filteredPorts(state: HostNetworkState): PortSpec[] {
  return state.ports.filter((p) => p.portSecurityEnabled && !p.deviceOwner.startsWith('network:'))
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** A stable conntrack zone per network (1..65000), so that overlapping tenant addresses never share connections. */
export function conntrackZones(networkIds: string[]): Map<string, number> {
  const zones = new Map<string, number>();
  const used = new Set<number>();
  for (const id of [...networkIds].sort()) {
    let z = (parseInt(id.replace(/-/g, '').slice(0, 8), 16) % 65000) + 1;
    if (Number.isNaN(z)) z = 1;
    while (used.has(z)) z = (z % 65000) + 1;
    used.add(z);
    zones.set(id, z);
  }
  return zones;
}

const isV6 = (ip: string) => ip.includes(':');

function protoArgs(rule: SecurityGroupRuleSpec, v6: boolean): string | null {
  let proto = rule.protocol?.toLowerCase() ?? null;
  if (proto === null || proto === 'any' || proto === '0') return '';
  if (v6 && (proto === 'icmp' || proto === 'icmpv6' || proto === '58')) proto = 'ipv6-icmp';
  if (!v6 && (proto === 'icmpv6' || proto === 'ipv6-icmp')) return null;
  if (!/^[a-z0-9-]+$/.test(proto)) return null;
  const parts = [`-p ${proto}`];
  const { portRangeMin: min, portRangeMax: max } = rule;
  if (['tcp', 'udp', 'sctp', 'udplite', '6', '17', '132'].includes(proto) && min !== null) {
    const mod = { '6': 'tcp', '17': 'udp', '132': 'sctp' }[proto] ?? proto;
    parts.push(`-m ${mod} --dport ${max !== null && max !== min ? `${min}:${max}` : min}`);
  } else if ((proto === 'icmp' || proto === 'ipv6-icmp') && min !== null) {
    const flag = v6 ? '--icmpv6-type' : '--icmp-type';
    parts.push(`-m ${v6 ? 'icmp6' : 'icmp'} ${flag} ${min}${max !== null ? `/${max}` : ''}`);
  }
  return parts.join(' ');
}

/** The iptables lines (after "-A CHAIN ") a rule turns into, for one address family. */
export function ruleLines(rule: SecurityGroupRuleSpec, v6: boolean): string[] {
  if ((rule.ethertype === 'IPv6') !== v6) return [];
  const proto = protoArgs(rule, v6);
  if (proto === null) return [];
  const peerFlag = rule.direction === 'ingress' ? '-s' : '-d';
  let peers: (string | null)[] = [null];
  if (rule.remoteGroupId) peers = (rule.remoteGroupIps ?? []).filter((ip) => isV6(ip) === v6);
  else if (rule.remoteIpPrefix && !/^(0\.0\.0\.0|::)\/0$/.test(rule.remoteIpPrefix)) {
    if (isV6(rule.remoteIpPrefix) !== v6) return [];
    peers = [rule.remoteIpPrefix];
  }
  return peers.map((peer) => [peer ? `${peerFlag} ${peer}` : '', proto, '-j RETURN'].filter(Boolean).join(' '));
}

/** iptables-restore (v4) or ip6tables-restore (v6) input for the whole raw and filter tables of the bridge namespace. */
export function iptablesText(state: HostNetworkState, v6: boolean): string {
  const zones = conntrackZones(state.networks.map((n) => n.id));
  const raw = ['*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (const n of [...state.networks].sort((a, b) => a.id.localeCompare(b.id))) {
    raw.push(`-A PREROUTING -i ${bridgeName(n.id)} -j CT --zone ${zones.get(n.id)}`);
  }
  raw.push('COMMIT');
  const groups = new Map(state.securityGroups.map((g) => [g.id, g]));
  const ports = filteredPorts(state);
  const filter = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  const body: string[] = [];
  const dhcpClient = v6 ? '-p udp -m udp --sport 546 --dport 547' : '-p udp -m udp --sport 68 --dport 67';
  const dhcpServer = v6 ? '-p udp -m udp --sport 547 --dport 546' : '-p udp -m udp --sport 67 --dport 68';
  for (const p of ports) {
    const i = ingressChain(p.id), o = egressChain(p.id);
    filter.push(`:${i} - [0:0]`, `:${o} - [0:0]`);
    body.push(`-A FORWARD -m physdev --physdev-out ${p.tapName} --physdev-is-bridged -j ${i}`);
    body.push(`-A FORWARD -m physdev --physdev-in ${p.tapName} --physdev-is-bridged -j ${o}`);
    const rules = p.securityGroupIds.flatMap((g) => groups.get(g)?.rules ?? []);
    // Towards the port: replies, DHCP answers (and IPv6 neighbour discovery), then what the groups allow.
    // Replies pass by state; packets of the initiator's direction are matched against the rules
    // every time, so that removing a rule cuts the flows it allowed at once (no conntrack flush needed).
    body.push(`-A ${i} -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j RETURN`);
    body.push(`-A ${i} -m conntrack --ctstate RELATED -j RETURN`);
    body.push(`-A ${i} -m conntrack --ctstate INVALID -j DROP`);
    body.push(`-A ${i} ${dhcpServer} -j RETURN`);
    if (v6) for (const t of [130, 131, 132, 134, 135, 136, 143]) body.push(`-A ${i} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j RETURN`);
    for (const r of rules.filter((r) => r.direction === 'ingress')) for (const l of ruleLines(r, v6)) body.push(`-A ${i} ${l}`);
    body.push(`-A ${i} -j DROP`);
    // From the port: DHCP requests (a guest may not answer DHCP), then replies and what the groups allow.
    body.push(`-A ${o} ${dhcpClient} -j RETURN`);
    body.push(`-A ${o} ${dhcpServer} -j DROP`);
    if (v6) {
      for (const t of [130, 131, 132, 133, 135, 136, 143]) body.push(`-A ${o} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j RETURN`);
      body.push(`-A ${o} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP`);
    }
    body.push(`-A ${o} -m conntrack --ctstate ESTABLISHED --ctdir REPLY -j RETURN`);
    body.push(`-A ${o} -m conntrack --ctstate RELATED -j RETURN`);
    body.push(`-A ${o} -m conntrack --ctstate INVALID -j DROP`);
    for (const r of rules.filter((r) => r.direction === 'egress')) for (const l of ruleLines(r, v6)) body.push(`-A ${o} ${l}`);
    body.push(`-A ${o} -j DROP`);
  }
  if (ports.length) body.push('-A FORWARD -j ACCEPT');
  return [...raw, ...filter, ...body, 'COMMIT', ''].join('\n');
}

/** IPv6 link-local address (EUI-64) of a MAC, as nft writes it. */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] ^= 2;
  const w = [(b[0] << 8) | b[1], (b[2] << 8) | 0xff, (0xfe << 8) | b[3], (b[4] << 8) | b[5]];
  return `fe80::${w.map((x) => x.toString(16)).join(':')}`;
}

export const ANTISPOOF_TABLE = 'stratus_antispoof';

/**
 * nft input that replaces the bridge-family anti-spoofing table: a port may only send frames
 * from its MAC, ARP for its own addresses, and IP packets from its fixed IPs or allowed address
 * pairs (a DHCP client's 0.0.0.0 request excepted). Everything else from the port is dropped.
 */
export function antispoofText(state: HostNetworkState): string {
  const ports = filteredPorts(state);
  const head = `table bridge ${ANTISPOOF_TABLE}\ndelete table bridge ${ANTISPOOF_TABLE}\n`;
  if (!ports.length) return head;
  const lines = [`table bridge ${ANTISPOOF_TABLE} {`, '  chain prerouting {',
    '    type filter hook prerouting priority -200; policy accept;'];
  for (const p of ports) lines.push(`    iifname "${p.tapName}" jump port_${p.tapName}`);
  lines.push('  }');
  for (const p of ports) {
    lines.push(`  chain port_${p.tapName} {`);
    // (mac, addresses) the port may use: its own, then each allowed address pair.
    const byMac = new Map<string, string[]>();
    const add = (mac: string, ip: string) => byMac.set(mac.toLowerCase(), [...(byMac.get(mac.toLowerCase()) ?? []), ip]);
    for (const f of p.fixedIps) add(p.macAddress, f.ipAddress);
    add(p.macAddress, linkLocalOf(p.macAddress));
    for (const pair of p.allowedAddressPairs) add(pair.macAddress || p.macAddress, pair.ipAddress);
    // One rule per address (not a set): a pair's CIDR may overlap a fixed IP, which an nft set refuses.
    for (const [mac, ips] of [...byMac].sort()) {
      const v4 = [...new Set(ips.filter((i) => !isV6(i)))], v6 = [...new Set(ips.filter(isV6))];
      if (v4.length) lines.push(`    ether saddr ${mac} arp saddr ether ${mac} arp saddr ip 0.0.0.0 accept`);
      for (const ip of v4) {
        lines.push(`    ether saddr ${mac} arp saddr ether ${mac} arp saddr ip ${ip} accept`);
        lines.push(`    ether saddr ${mac} ip saddr ${ip} accept`);
      }
      for (const ip of ['::', ...v6, ...(mac === p.macAddress.toLowerCase() ? [] : [linkLocalOf(mac)])]) {
        lines.push(`    ether saddr ${mac} ip6 saddr ${ip} accept`);
      }
    }
    lines.push(`    ether saddr ${p.macAddress.toLowerCase()} ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept`);
    lines.push('    drop', '  }');
  }
  lines.push('}');
  return head + lines.join('\n') + '\n';
}
