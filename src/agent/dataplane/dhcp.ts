// dnsmasq for one network: DHCP only (--port=0), static leases only (every dhcp-host entry pins
// a port's MAC to its fixed IP; the ranges are "static", so no address is ever handed out by
// surprise), with router, DNS, classless routes (121/249) and MTU (26) per subnet.
import type { HostNetworkState, NetworkSpec, PortSpec, SubnetSpec } from './model.js';
import { parseCidr } from './ipcalc.js';
import type { ProcSpec } from './procs.js';

export const METADATA_IP = '169.254.169.254';

export interface DhcpPlan {
  network: NetworkSpec;
  /** The network:dhcp port whose leg dnsmasq listens on. */
  port: PortSpec;
  subnets: SubnetSpec[];
  hosts: string;
  opts: string;
  /** Some subnet is isolated: this namespace serves metadata too. */
  metadata: boolean;
}

const LEASE = '86400s';

export function dhcpPlans(state: HostNetworkState): DhcpPlan[] {
  const plans: DhcpPlan[] = [];
  for (const network of state.networks) {
    const port = state.ports.find((p) => p.networkId === network.id && p.deviceOwner === 'network:dhcp');
    if (!port) continue;
    const served = new Set(port.fixedIps.map((f) => f.subnetId));
    const subnets = state.subnets.filter((s) => s.networkId === network.id && s.enableDhcp && s.ipVersion === 4 && served.has(s.id))
      .sort((a, b) => a.id.localeCompare(b.id));
    if (!subnets.length) continue;
    const ids = new Set(subnets.map((s) => s.id));
    const hosts: string[] = [];
    const all = new Map<string, { id: string; macAddress: string; fixedIps: { subnetId: string; ipAddress: string }[] }>();
    for (const r of state.dhcpReservations ?? []) if (r.networkId === network.id) all.set(r.portId, { id: r.portId, ...r });
    for (const p of state.ports) if (p.networkId === network.id) all.set(p.id, p);
    all.delete(port.id);
    for (const p of [...all.values()].sort((a, b) => a.id.localeCompare(b.id))) {
      for (const f of p.fixedIps) {
        if (!ids.has(f.subnetId)) continue;
        // No "set:" tag here: dnsmasq 2.90 crashes on SIGHUP when an entry with a tag has a lease.
        hosts.push(`${p.macAddress.toLowerCase()},host-${f.ipAddress.replace(/\./g, '-')},${f.ipAddress}`);
      }
    }
    const opts: string[] = [];
    for (const s of subnets) {
      const tag = `tag:subnet-${s.id}`;
      opts.push(s.gatewayIp ? `${tag},option:router,${s.gatewayIp}` : `${tag},option:router`);
      if (s.dnsNameservers.length) opts.push(`${tag},option:dns-server,${s.dnsNameservers.join(',')}`);
      const extra = [...s.hostRoutes];
      const dhcpIp = port.fixedIps.find((f) => f.subnetId === s.id)?.ipAddress;
      if (s.isolatedMetadata && dhcpIp) extra.push({ destination: `${METADATA_IP}/32`, nexthop: dhcpIp });
      if (extra.length) {
        // With classless routes, clients ignore option 3: the default route must be among them.
        const routes = extra.map((r) => `${r.destination},${r.nexthop}`);
        if (s.gatewayIp && !extra.some((r) => r.destination === '0.0.0.0/0')) routes.push(`0.0.0.0/0,${s.gatewayIp}`);
        opts.push(`${tag},option:classless-static-route,${routes.join(',')}`);
        opts.push(`${tag},249,${routes.join(',')}`);
      }
      opts.push(`${tag},option:mtu,${network.mtu}`);
    }
    plans.push({ network, port, subnets, hosts: hosts.join('\n') + '\n', opts: opts.join('\n') + '\n',
      metadata: subnets.some((s) => s.isolatedMetadata) });
  }
  return plans;
}

/** The dnsmasq command line (changes here restart it; hosts/opts changes only reload it with SIGHUP). */
export function dnsmasqSpec(plan: DhcpPlan, netns: string, leg: string, dir: string): ProcSpec {
  const args = ['--no-hosts', '--no-resolv', '--port=0', '--keep-in-foreground', '--conf-file=/dev/null',
    '--log-facility=-', '--log-dhcp', `--interface=${leg}`, '--except-interface=lo', '--bind-interfaces',
    `--dhcp-hostsfile=${dir}/hosts`, `--dhcp-optsfile=${dir}/opts`, '--leasefile-ro', '--dhcp-authoritative',
    `--dhcp-lease-max=${Math.max(16, plan.subnets.length * 1024)}`];
  for (const s of plan.subnets) {
    const { network, mask } = parseCidr(s.cidr);
    args.push(`--dhcp-range=set:subnet-${s.id},${network},static,${mask},${LEASE}`);
  }
  return { netns, cmd: 'dnsmasq', args };
}
