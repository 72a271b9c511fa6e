// The desired state of one host's data plane (src/agent/dataplane/model.ts), computed from the
// API state: the ports bound to the host, their networks, subnets and security groups (remote
// groups resolved to member addresses), the routers hosted there and their floating IPs.
import type {
  FloatingIpSpec, HostNetworkState, NetworkSpec, PortSpec, RouterSpec, SecurityGroupSpec, SubnetSpec, VxlanPeer,
} from '../agent/dataplane/model.js';
import { emptyHostNetworkState, tapNameFor } from '../agent/dataplane/model.js';
import { schedulableHosts } from './agents.js';
import type { Core } from './core.js';
import { parseCidr, parseIp } from './ipam.js';
import type { FixedIp } from './ports.js';
import type { Doc } from './store.js';

const L3_OWNERS = ['network:router_interface', 'network:router_gateway'];

/**
 * Places what has no host yet on one: routers (with their ports) and DHCP ports go to the
 * first registered agent (by host id) whose L3 / DHCP agent is admin-up, or to `hostId` when no
 * agent registered. Stable once set.
 */
export async function scheduleUnhosted(c: Core, hostId: string): Promise<void> {
  const registered = (await c.store.agents()).length > 0;
  // With agents registered, only those an admin has not set down (admin_state_up) take new ones.
  const pick = async (kind: 'dhcp' | 'l3') => (registered ? (await schedulableHosts(c, kind))[0] : hostId);
  const l3Host = await pick('l3');
  const dhcpHost = await pick('dhcp');
  for (const r of await c.store.find('router')) {
    if (r._host || !l3Host) continue;
    r._host = l3Host;
    await c.store.update('router', r);
  }
  const routers = new Map((await c.store.find('router')).map((r) => [r.id, r]));
  const unbound = [
    ...await c.store.find('port', { device_owner: ['network:dhcp', ...L3_OWNERS] }),
  ].filter((p) => !p['binding:host_id']);
  for (const p of unbound) {
    const host = p.device_owner === 'network:dhcp' ? dhcpHost : routers.get(p.device_id)?._host;
    if (!host) continue;
    p['binding:host_id'] = host;
    p['binding:vif_type'] = 'bridge';
    p['binding:vif_details'] = { port_filter: true };
    await c.store.update('port', p);
  }
}

export async function buildHostState(c: Core, hostId: string): Promise<HostNetworkState> {
  const state = emptyHostNetworkState(hostId);
  const agents = await c.store.agents();
  state.underlayIp = agents.find((a) => a.host_id === hostId)?.underlay_ip ?? null;

  // Ports bound here, and those of guests live-migrating here (plugged before the guest arrives).
  const migrating = (await c.store.find('port', { migrating_to: hostId })).filter((p) => p['binding:host_id'] !== hostId);
  const ports = [...await c.store.find('port', { host_id: hostId }), ...migrating].filter((p) => p.device_owner !== 'network:floatingip');
  // External (provider) networks are carried by every agent, ports or not: their segment (the
  // provider namespace) is then always up, for `stratus exec-external` and for floating IPs.
  const external = agents.some((a) => a.host_id === hostId) ? await c.store.find('network', { router_external: true }) : [];
  const networkIds = [...new Set([...ports.map((p) => p.network_id), ...external.map((n) => n.id)])];
  const networks = await c.store.find('network', { id: networkIds });
  const segments = new Map((await c.store.segmentsOf(networkIds)).map((s) => [s.network_id, s]));
  state.networks = networks.map((n): NetworkSpec => {
    const seg = segments.get(n.id);
    const type = (seg?.network_type ?? n['provider:network_type']) as NetworkSpec['segmentationType'];
    return {
      id: n.id, name: n.name, segmentationType: type,
      segmentationId: type === 'flat' ? null : Number(seg?.segmentation_id ?? n['provider:segmentation_id']),
      physicalNetwork: type === 'vxlan' ? null : (seg?.physical_network || n['provider:physical_network'] || null),
      mtu: n.mtu, external: Boolean(n['router:external']),
    };
  });
  const subnets = await c.store.find('subnet', { network_id: networkIds });
  // A subnet no router has an interface on gets its metadata from the DHCP namespace.
  const routed = new Set((await c.store.find('port', { network_id: networkIds, device_owner: 'network:router_interface' }))
    .flatMap((p) => p.fixed_ips.map((f: FixedIp) => f.subnet_id)));
  state.subnets = subnets.map((s): SubnetSpec => ({
    id: s.id, networkId: s.network_id, ipVersion: s.ip_version, cidr: s.cidr, gatewayIp: s.gateway_ip,
    enableDhcp: Boolean(s.enable_dhcp), dnsNameservers: s.dns_nameservers, hostRoutes: s.host_routes,
    allocationPools: s.allocation_pools,
    isolatedMetadata: s.ip_version === 4 && Boolean(s.enable_dhcp) && !routed.has(s.id),
    ipv6RaMode: s.ipv6_ra_mode ?? null, ipv6AddressMode: s.ipv6_address_mode ?? null,
  }));
  state.ports = ports.map((p): PortSpec => ({
    id: p.id, networkId: p.network_id, macAddress: p.mac_address,
    fixedIps: p.fixed_ips.map((f: FixedIp) => ({ subnetId: f.subnet_id, ipAddress: f.ip_address })),
    deviceOwner: p.device_owner, deviceId: p.device_id, tapName: tapNameFor(p.id), adminStateUp: Boolean(p.admin_state_up),
    portSecurityEnabled: Boolean(p.port_security_enabled),
    allowedAddressPairs: p.allowed_address_pairs.map((a: { ip_address: string; mac_address?: string }) =>
      ({ ipAddress: a.ip_address, macAddress: a.mac_address ?? null })),
    securityGroupIds: p.port_security_enabled ? p.security_groups : [],
  }));
  state.securityGroups = await securityGroups(c, [...new Set(state.ports.flatMap((p) => p.securityGroupIds))]);

  const routers = (await c.store.find('router')).filter((r) => r._host === hostId);
  const byDevice = new Map<string, Doc[]>();
  for (const p of ports) if (L3_OWNERS.includes(p.device_owner)) byDevice.set(p.device_id, [...byDevice.get(p.device_id) ?? [], p]);
  state.routers = routers.map((r): RouterSpec => {
    const rp = byDevice.get(r.id) ?? [];
    const gw = rp.find((p) => p.device_owner === 'network:router_gateway');
    return {
      id: r.id,
      gateway: gw ? { portId: gw.id, enableSnat: r.external_gateway_info?.enable_snat !== false } : null,
      interfaces: rp.filter((p) => p.device_owner === 'network:router_interface')
        .flatMap((p) => p.fixed_ips.map((f: FixedIp) => ({ portId: p.id, subnetId: f.subnet_id }))),
      routes: r.routes,
    };
  });
  const fips = await c.store.find('floatingip', { router_id: routers.map((r) => r.id) });
  state.floatingIps = fips.filter((f) => f.port_id && f.fixed_ip_address).map((f): FloatingIpSpec => ({
    id: f.id, floatingIpAddress: f.floating_ip_address, floatingNetworkId: f.floating_network_id,
    routerId: f.router_id, portId: f.port_id, fixedIpAddress: f.fixed_ip_address,
  }));

  // DHCP here answers the guests of its networks on every host (over VXLAN): all their ports.
  const dhcpNets = state.ports.filter((p) => p.deviceOwner === 'network:dhcp').map((p) => p.networkId);
  state.dhcpReservations = (await c.store.find('port', { network_id: [...new Set(dhcpNets)] }))
    .filter((p) => p['binding:host_id'] !== hostId && p._migrating_to !== hostId && p.device_owner !== 'network:floatingip' && p.fixed_ips.length)
    .map((p) => ({ portId: p.id, networkId: p.network_id, macAddress: p.mac_address,
      fixedIps: p.fixed_ips.map((f: FixedIp) => ({ subnetId: f.subnet_id, ipAddress: f.ip_address })) }));

  // VXLAN peers: other agents with bound ports on the VXLAN networks this host carries (a
  // live migration's destination too: the guest may resume there before its port is rebound).
  const vxlanIds = state.networks.filter((n) => n.segmentationType === 'vxlan').map((n) => n.id);
  const peers = new Map<string, Set<string>>();
  for (const p of await c.store.find('port', { network_id: vxlanIds })) {
    if (p.device_owner === 'network:floatingip') continue;
    for (const h of [p['binding:host_id'], p._migrating_to]) {
      if (!h || h === hostId) continue;
      peers.set(h, (peers.get(h) ?? new Set()).add(p.network_id));
    }
  }
  state.vxlanPeers = agents.filter((a) => peers.has(a.host_id) && a.underlay_ip)
    .map((a): VxlanPeer => ({ hostId: a.host_id, underlayIp: a.underlay_ip!, networkIds: [...peers.get(a.host_id)!].sort() }));
  return state;
}

async function securityGroups(c: Core, ids: string[]): Promise<SecurityGroupSpec[]> {
  const rules = await c.store.find('security_group_rule', { security_group_id: ids });
  const remoteIds = [...new Set(rules.map((r) => r.remote_group_id).filter(Boolean))] as string[];
  const members = await c.store.portIdsInGroups(remoteIds);
  const memberPorts = new Map((await c.store.find('port', { id: [...new Set(members.map((m) => m.port_id))] })).map((p) => [p.id, p]));
  const addrs = (groupId: string, version: 4 | 6): string[] => {
    const out = new Set<string>();
    for (const m of members) {
      if (m.security_group_id !== groupId) continue;
      const p = memberPorts.get(m.port_id);
      if (!p) continue;
      for (const f of p.fixed_ips as FixedIp[]) if (parseIp(f.ip_address)?.version === version) out.add(f.ip_address);
      for (const a of p.allowed_address_pairs as Array<{ ip_address: string }>) {
        if (parseCidr(a.ip_address, false)?.version === version) out.add(a.ip_address);
      }
    }
    return [...out].sort();
  };
  return ids.map((id) => ({
    id,
    rules: rules.filter((r) => r.security_group_id === id).map((r) => ({
      id: r.id, direction: r.direction, ethertype: r.ethertype, protocol: r.protocol,
      portRangeMin: r.port_range_min, portRangeMax: r.port_range_max, remoteIpPrefix: r.remote_ip_prefix,
      remoteGroupId: r.remote_group_id,
      ...(r.remote_group_id ? { remoteGroupIps: addrs(r.remote_group_id, r.ethertype === 'IPv6' ? 6 : 4) } : {}),
    })),
  }));
}
