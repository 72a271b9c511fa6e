// OpenStack network_data.json of an instance: its ports as links, each configured by DHCP. The
// metadata service serves it and the config drive (config_drive=true) carries the same.
import type { NetworkModule } from '../network/index.js';

export async function networkDataOf(network: NetworkModule, instanceId: string): Promise<Record<string, unknown>> {
  const store = network.service.core.store;
  const ports = (await store.find('port', { device_id: instanceId })).filter((p) => String(p.device_owner).startsWith('compute:'));
  const nets = new Map((await store.find('network', { id: [...new Set(ports.map((p) => p.network_id as string))] })).map((n) => [n.id, n]));
  const subnets = new Map((await store.find('subnet', { network_id: [...nets.keys()] })).map((s) => [s.id, s]));
  const links = ports.map((p) => ({ id: `tap${String(p.id).slice(0, 11)}`, vif_id: p.id, type: 'bridge', mtu: nets.get(p.network_id)?.mtu ?? null, ethernet_mac_address: p.mac_address }));
  const networks = ports.flatMap((p) => (p.fixed_ips as { subnet_id: string; ip_address: string }[]).map((f, i) => {
    const s = subnets.get(f.subnet_id);
    return { id: `network${i}-${String(p.id).slice(0, 8)}`, type: s?.ip_version === 6 ? 'ipv6_slaac' : 'ipv4_dhcp',
      link: `tap${String(p.id).slice(0, 11)}`, network_id: p.network_id, ip_address: f.ip_address };
  }));
  const dns = [...new Set([...subnets.values()].flatMap((s) => s.dns_nameservers as string[]))];
  return { links, networks, services: dns.map((address) => ({ type: 'dns', address })) };
}
