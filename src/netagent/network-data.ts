// OpenStack network_data.json of an instance: its ports as links and one network entry per fixed
// IP. A subnet with DHCP is "ipv4_dhcp" (IPv6: its address mode); one without DHCP is configured
// statically from here (address, netmask, default and host routes, DNS), as Nova writes it: the
// config drive is then the only way such a guest learns its address. The metadata service serves
// the same document.
import type { NetworkModule } from '../network/index.js';
import { formatIp, parseCidr, prefixMask } from '../network/ipam.js';
import type { Doc } from '../network/store.js';

const tapOf = (p: Doc) => `tap${String(p.id).slice(0, 11)}`;

function netmaskOf(cidr: string): string | undefined {
  const c = parseCidr(cidr, false);
  return c && formatIp(c.version, prefixMask(c.version, c.prefix));
}

/** Nova's route entries: the subnet's gateway as the default route, then its host routes. */
function routesOf(s: Doc): Array<{ network: string; netmask: string; gateway: string }> {
  const any = s.ip_version === 6 ? '::' : '0.0.0.0';
  const routes = s.gateway_ip ? [{ network: any, netmask: any, gateway: String(s.gateway_ip) }] : [];
  for (const r of (s.host_routes ?? []) as { destination: string; nexthop: string }[]) {
    const c = parseCidr(r.destination, false);
    const netmask = netmaskOf(r.destination);
    if (c && netmask) routes.push({ network: formatIp(c.version, c.network), netmask, gateway: r.nexthop });
  }
  return routes;
}

const dnsOf = (s: Doc | undefined) => ((s?.dns_nameservers ?? []) as string[]).map((address) => ({ type: 'dns', address }));

export async function networkDataOf(network: NetworkModule, instanceId: string): Promise<Record<string, unknown>> {
  const store = network.service.core.store;
  const ports = (await store.find('port', { device_id: instanceId })).filter((p) => String(p.device_owner).startsWith('compute:'));
  const nets = new Map((await store.find('network', { id: [...new Set(ports.map((p) => p.network_id as string))] })).map((n) => [n.id, n]));
  const subnets = new Map((await store.find('subnet', { network_id: [...nets.keys()] })).map((s) => [s.id, s]));
  const links = ports.map((p) => ({ id: tapOf(p), vif_id: p.id, type: 'bridge', mtu: nets.get(p.network_id)?.mtu ?? null, ethernet_mac_address: p.mac_address }));
  const networks = ports.flatMap((p) => (p.fixed_ips as { subnet_id: string; ip_address: string }[]).map((f, i) => {
    const s = subnets.get(f.subnet_id);
    const base = { id: `network${i}-${String(p.id).slice(0, 8)}`, link: tapOf(p), network_id: p.network_id, ip_address: f.ip_address };
    if (s?.ip_version === 6 && s.ipv6_address_mode) return { ...base, type: `ipv6_${s.ipv6_address_mode}` };
    if (!s || s.enable_dhcp) return { ...base, type: s?.ip_version === 6 ? 'ipv6_slaac' : 'ipv4_dhcp' };
    return { ...base, type: `ipv${s.ip_version}`, netmask: netmaskOf(String(s.cidr)), routes: routesOf(s), services: dnsOf(s) };
  }));
  const dns = [...new Map([...subnets.values()].flatMap(dnsOf).map((d) => [d.address, d])).values()];
  return { links, networks, services: dns };
}
