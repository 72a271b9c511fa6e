// A router's namespace contents, computed from the desired state: legs (qr- on each subnet,
// qg- on the external network), routes, and the nat/filter tables (SNAT, floating IPs).
import type { HostNetworkState, PortSpec, RouterSpec } from './model.js';
import { parseCidr } from './ipcalc.js';
import { routerGwLeg, routerIfLeg } from './names.js';

import { METADATA_IP } from './dhcp.js';
export { METADATA_IP };

export interface LegPlan {
  port: PortSpec;
  /** Device name inside the router (or DHCP) namespace. */
  dev: string;
  mtu: number;
  /** "ip/prefix" addresses on the leg. */
  addresses: string[];
}

export interface RouterPlan {
  router: RouterSpec;
  legs: LegPlan[];
  /** Routes besides the connected ones: destination CIDR → next hop (all via some leg). */
  routes: { dst: string; gateway: string }[];
  /** iptables-restore input for the router namespace (nat + filter tables). */
  iptables: string;
  /** IPv6 subnets the router advertises (router advertisements from dnsmasq in the namespace). */
  ra: RaPlan[];
}

export interface RaPlan {
  dev: string;
  cidr: string;
  mode: 'slaac' | 'dhcpv6-stateless';
  mtu: number;
}

/** dnsmasq sending router advertisements (no DNS, no DHCPv4) on a router's IPv6 legs. */
export function raSpec(plan: RouterPlan, netns: string): { netns: string; cmd: string; args: string[] } {
  const args = ['--no-hosts', '--no-resolv', '--port=0', '--keep-in-foreground', '--conf-file=/dev/null', '--log-facility=-',
    '--enable-ra', '--bind-interfaces', '--except-interface=lo'];
  for (const r of [...plan.ra].sort((a, b) => a.dev.localeCompare(b.dev))) {
    const [net, len] = r.cidr.split('/');
    args.push(`--interface=${r.dev}`, `--dhcp-range=${net},${r.mode === 'slaac' ? 'ra-only' : 'ra-stateless'},${len}`,
      `--ra-param=${r.dev},mtu:${r.mtu},10,600`);
  }
  return { netns, cmd: 'dnsmasq', args };
}

/** The leg addresses of a port: each fixed IP with the prefix of its subnet. */
export function portAddresses(state: HostNetworkState, port: PortSpec, withV6 = false): string[] {
  const subnets = new Map(state.subnets.map((s) => [s.id, s]));
  return port.fixedIps.filter((f) => subnets.has(f.subnetId) && (withV6 || subnets.get(f.subnetId)!.ipVersion === 4))
    .map((f) => `${f.ipAddress}/${subnets.get(f.subnetId)!.cidr.split('/')[1]}`);
}

export function routerPlan(state: HostNetworkState, router: RouterSpec, errors: string[]): RouterPlan | null {
  const ports = new Map(state.ports.map((p) => [p.id, p]));
  const networks = new Map(state.networks.map((n) => [n.id, n]));
  const subnets = new Map(state.subnets.map((s) => [s.id, s]));
  const legs: LegPlan[] = [];
  const internal: string[] = [];
  const ra: RaPlan[] = [];
  for (const itf of router.interfaces) {
    const port = ports.get(itf.portId);
    const subnet = subnets.get(itf.subnetId);
    if (!port || !subnet || !networks.has(port.networkId)) {
      errors.push(`router ${router.id}: interface port ${itf.portId} or subnet ${itf.subnetId} missing from the state`);
      continue;
    }
    if (subnet.ipVersion === 4) internal.push(subnet.cidr);
    const mode = subnet.ipv6RaMode ?? subnet.ipv6AddressMode ?? null;
    if (subnet.ipVersion === 6 && (mode === 'slaac' || mode === 'dhcpv6-stateless')) {
      ra.push({ dev: routerIfLeg(port.id), cidr: subnet.cidr, mode, mtu: networks.get(port.networkId)!.mtu });
    } else if (subnet.ipVersion === 6 && mode === 'dhcpv6-stateful') {
      errors.push(`router ${router.id}: subnet ${subnet.id}: dhcpv6-stateful is not supported (slaac and dhcpv6-stateless are)`);
    }
    const existing = legs.find((l) => l.port.id === port.id);
    if (existing) continue;
    legs.push({ port, dev: routerIfLeg(port.id), mtu: networks.get(port.networkId)!.mtu, addresses: portAddresses(state, port, true) });
  }
  const nat = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
  const filter = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  const routes: { dst: string; gateway: string }[] = [];
  const gwPort = router.gateway ? ports.get(router.gateway.portId) : undefined;
  if (router.gateway && (!gwPort || !networks.has(gwPort.networkId))) {
    errors.push(`router ${router.id}: gateway port ${router.gateway.portId} or its network missing from the state`);
  }
  if (router.gateway && gwPort && networks.has(gwPort.networkId)) {
    const qg = routerGwLeg(gwPort.id);
    const fips = state.floatingIps.filter((f) => f.routerId === router.id).sort((a, b) => a.id.localeCompare(b.id));
    const gwAddrs = portAddresses(state, gwPort);
    legs.push({ port: gwPort, dev: qg, mtu: networks.get(gwPort.networkId)!.mtu,
      addresses: [...gwAddrs, ...fips.map((f) => `${f.floatingIpAddress}/32`)] });
    const extGw = gwPort.fixedIps.map((f) => subnets.get(f.subnetId)).find((s) => s?.ipVersion === 4 && s.gatewayIp)?.gatewayIp;
    if (extGw) routes.push({ dst: '0.0.0.0/0', gateway: extGw });
    const gwIp = gwAddrs[0]?.split('/')[0];
    for (const f of fips) {
      nat.push(`-A PREROUTING -d ${f.floatingIpAddress}/32 -j DNAT --to-destination ${f.fixedIpAddress}`);
      nat.push(`-A OUTPUT -d ${f.floatingIpAddress}/32 -j DNAT --to-destination ${f.fixedIpAddress}`);
    }
    // A guest reaching another guest's floating IP through this router (hairpin) must see the reply come back here.
    for (const cidr of internal) nat.push(`-A POSTROUTING -s ${cidr} ! -o ${qg} -m conntrack --ctstate DNAT -j MASQUERADE`);
    // Between internal subnets, and towards DNATed guests: no address translation.
    nat.push(`-A POSTROUTING ! -o ${qg} -j ACCEPT`);
    for (const f of fips) nat.push(`-A POSTROUTING -s ${f.fixedIpAddress}/32 -o ${qg} -j SNAT --to-source ${f.floatingIpAddress}`);
    if (router.gateway.enableSnat && gwIp) {
      for (const cidr of internal) nat.push(`-A POSTROUTING -s ${cidr} -o ${qg} -j SNAT --to-source ${gwIp}`);
    }
    filter.push(`-A INPUT -i ${qg} -d ${METADATA_IP}/32 -j DROP`);
  }
  for (const r of router.routes) {
    if (r.destination.includes(':')) continue;
    routes.push({ dst: r.destination === '0.0.0.0/0' ? '0.0.0.0/0' : `${parseCidr(r.destination).network}/${parseCidr(r.destination).prefix}`, gateway: r.nexthop });
  }
  return { router, legs, routes, ra, iptables: [...nat, 'COMMIT', ...filter, 'COMMIT', ''].join('\n') };
}
