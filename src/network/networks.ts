// Networks and subnets: segments (VXLAN VNI allocation, flat/vlan provider networks), CIDR and
// pool validation, and the DHCP port each DHCP-enabled network gets.
import { asBool, conflict, invalidInput, notFoundOf, RetryError, type Caller, type Core } from './core.js';
import {
  cidrContains, cidrsOverlap, defaultPools, formatCidr, formatIp, parseCidr, parseIp, usableRange, validatePools,
  type Pool,
} from './ipam.js';
import { allocateFixedIps, createPortDoc, deletePortDoc } from './ports.js';
import type { Doc } from './store.js';

const PROVIDER = ['provider:network_type', 'provider:physical_network', 'provider:segmentation_id'] as const;

export async function createNetwork(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  const project = c.ownerFor(caller, body);
  const target = { ...body, project_id: project };
  c.enforce(caller, 'create_network', target);
  if (body.shared !== undefined && asBool(body.shared, 'shared')) c.enforce(caller, 'create_network:shared', target);
  if (body['router:external'] !== undefined && asBool(body['router:external'], 'router:external')) {
    c.enforce(caller, 'create_network:router:external', target);
  }
  if (PROVIDER.some((k) => body[k] !== undefined)) c.enforce(caller, 'create_network:provider', target);
  await c.checkQuota(project, 'network');

  const seg = await allocateSegment(c, body);
  const maxMtu = seg.network_type === 'vxlan' ? c.cfg.underlayMtu - 50 : c.cfg.underlayMtu;
  const mtu = body.mtu ?? maxMtu;
  if (mtu < 68 || mtu > maxMtu) throw invalidInput(`Requested MTU is too big, maximum is ${maxMtu}`);
  const doc = c.base(project, {
    name: body.name ?? '', description: body.description ?? '',
    admin_state_up: body.admin_state_up === undefined ? true : asBool(body.admin_state_up, 'admin_state_up'),
    status: 'ACTIVE', shared: body.shared === undefined ? false : asBool(body.shared, 'shared'),
    'router:external': body['router:external'] === undefined ? false : asBool(body['router:external'], 'router:external'),
    mtu, port_security_enabled: body.port_security_enabled === undefined ? true : asBool(body.port_security_enabled, 'port_security_enabled'),
    'provider:network_type': seg.network_type,
    'provider:physical_network': seg.physical_network || null,
    'provider:segmentation_id': seg.network_type === 'flat' ? null : seg.segmentation_id,
    availability_zone_hints: body.availability_zone_hints ?? [], availability_zones: [c.cfg.availabilityZone],
    ipv4_address_scope: null, ipv6_address_scope: null, is_default: false, l2_adjacency: true,
  });
  if (!await c.store.insertSegment({ ...seg, network_id: doc.id })) {
    if (body['provider:network_type'] === 'flat') {
      throw conflict(`Unable to create the flat network. Physical network ${seg.physical_network} is in use.`, 'FlatNetworkInUse');
    }
    if (body['provider:segmentation_id'] !== undefined) {
      throw conflict(`Unable to create the network. The ${seg.network_type} ${seg.segmentation_id} on physical network ` +
        `${seg.physical_network || '-'} is in use.`, 'SegmentationIdInUse');
    }
    throw new RetryError('segment taken concurrently');
  }
  await c.store.insert('network', doc);
  return doc;
}

async function allocateSegment(c: Core, body: Record<string, any>) {
  const type = String(body['provider:network_type'] ?? 'vxlan');
  const physnet = body['provider:physical_network'] as string | undefined;
  const segId = body['provider:segmentation_id'] as number | undefined;
  if (!['vxlan', 'flat', 'vlan'].includes(type)) {
    throw invalidInput(`network_type value '${type}' not supported (supported: vxlan, flat, vlan)`);
  }
  if (type === 'vxlan') {
    if (physnet) throw invalidInput('provider:physical_network specified for vxlan network');
    if (segId !== undefined) {
      if (segId < 1 || segId > 16777215) throw invalidInput(`${segId} is not a valid VXLAN VNI (1-16777215)`);
      return { network_type: type, physical_network: '', segmentation_id: segId };
    }
    return { network_type: type, physical_network: '', segmentation_id: await freeId(c, type, '', c.cfg.vniRange) };
  }
  if (!physnet) throw invalidInput(`provider:physical_network required for ${type} provider network`);
  if (!c.cfg.physicalNetworks.includes(physnet)) {
    throw invalidInput(`physical_network '${physnet}' unknown for ${type} provider network (known: ${c.cfg.physicalNetworks.join(', ')})`);
  }
  if (type === 'flat') {
    if (segId !== undefined) throw invalidInput('provider:segmentation_id specified for flat network');
    return { network_type: type, physical_network: physnet, segmentation_id: 0 };
  }
  if (segId !== undefined) {
    if (segId < 1 || segId > 4094) throw invalidInput(`${segId} is not a valid VLAN tag (1-4094)`);
    return { network_type: type, physical_network: physnet, segmentation_id: segId };
  }
  return { network_type: type, physical_network: physnet, segmentation_id: await freeId(c, type, physnet, c.cfg.vlanRange) };
}

async function freeId(c: Core, type: string, physnet: string, [lo, hi]: [number, number]): Promise<number> {
  const used = await c.store.usedSegmentIds(type, physnet);
  const free: number[] = [];
  for (let i = lo; i <= hi && free.length < 16; i++) if (!used.has(i)) free.push(i);
  if (!free.length) throw conflict(`Unable to create the network. No ${type} segment is available.`, 'NoNetworkAvailable');
  // Concurrent creators spread over the first free ids; the unique constraint settles the rest.
  return free[Math.floor(Math.random() * Math.min(free.length, 4))]!;
}

export async function updateNetwork(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const net = await c.visibleNetwork(caller, id);
  c.enforce(caller, 'update_network', c.target(net));
  if (PROVIDER.some((k) => body[k] !== undefined)) {
    c.enforce(caller, 'update_network:provider', c.target(net));
    if (PROVIDER.some((k) => body[k] !== undefined && body[k] !== net[k])) {
      throw invalidInput('Plugin does not support updating the following provider network attributes: ' +
        PROVIDER.filter((k) => body[k] !== undefined && body[k] !== net[k]).join(', '));
    }
  }
  for (const k of ['name', 'description'] as const) if (body[k] !== undefined) net[k] = body[k];
  for (const k of ['admin_state_up', 'port_security_enabled'] as const) {
    if (body[k] !== undefined) net[k] = asBool(body[k], k);
  }
  if (body.shared !== undefined) {
    c.enforce(caller, 'update_network:shared', c.target(net));
    const shared = asBool(body.shared, 'shared');
    if (!shared && net.shared) {
      const ports = await c.store.find('port', { network_id: id });
      if (ports.some((p) => p.project_id && p.project_id !== net.project_id)) {
        throw conflict(`Unable to reconfigure sharing settings for network ${id}. Multiple tenants are using it.`, 'InvalidSharedSetting');
      }
    }
    net.shared = shared;
  }
  if (body['router:external'] !== undefined) {
    c.enforce(caller, 'update_network:router:external', c.target(net));
    const ext = asBool(body['router:external'], 'router:external');
    if (!ext && net['router:external']) {
      const used = await c.store.find('port', { network_id: id, device_owner: ['network:router_gateway', 'network:floatingip'] });
      if (used.length) throw conflict(`External network ${id} cannot be updated, because it is used by routers or floating IPs.`, 'ExternalNetworkInUse');
    }
    net['router:external'] = ext;
  }
  if (body.mtu !== undefined) {
    const maxMtu = net['provider:network_type'] === 'vxlan' ? c.cfg.underlayMtu - 50 : c.cfg.underlayMtu;
    if (body.mtu < 68 || body.mtu > maxMtu) throw invalidInput(`Requested MTU is too big, maximum is ${maxMtu}`);
    net.mtu = body.mtu;
  }
  await c.store.update('network', c.touch(net));
  return net;
}

export async function deleteNetwork(c: Core, caller: Caller, id: string): Promise<void> {
  const net = await c.visibleNetwork(caller, id);
  c.enforce(caller, 'delete_network', c.target(net));
  // Like Neutron, an external network takes its unassociated floating IPs with it.
  const fips = await c.store.find('floatingip', { floating_network_id: id });
  const idle = new Set(fips.filter((f) => !f.port_id).map((f) => f.id));
  const ports = await c.store.find('port', { network_id: id });
  if (ports.some((p) => p.device_owner !== 'network:dhcp' && !(p.device_owner === 'network:floatingip' && idle.has(p.device_id)))) {
    throw conflict(`Unable to complete operation on network ${id}. There are one or more ports still in use on the network.`, 'NetworkInUse');
  }
  for (const p of ports) await deletePortDoc(c, p);
  for (const f of idle) await c.store.delete('floatingip', f);
  for (const s of await c.store.find('subnet', { network_id: id })) await c.store.delete('subnet', s.id);
  for (const r of await c.store.find('rbac_policy', { object_type: 'network', object_id: id })) await c.store.delete('rbac_policy', r.id);
  await c.store.deleteSegment(id);
  await c.store.delete('network', id);
}

// ---- subnets ----

function parseGateway(body: Record<string, any>, cidr: ReturnType<typeof parseCidr> & object): bigint | undefined {
  if (body.gateway_ip === null) return undefined;
  if (body.gateway_ip === undefined) return usableRange(cidr)[0];
  const gw = parseIp(body.gateway_ip);
  if (!gw || gw.version !== cidr.version) throw invalidInput(`'${body.gateway_ip}' is not a valid IP address`);
  if (!cidrContains(cidr, gw)) throw invalidInput(`Gateway ip ${body.gateway_ip} is not in subnet ${formatCidr(cidr)}`);
  const [first, last] = usableRange(cidr);
  if (gw.value < first || gw.value > last) throw invalidInput(`Gateway ip ${body.gateway_ip} is not a usable host address in ${formatCidr(cidr)}`);
  return gw.value;
}

function checkNameservers(list: unknown[] | undefined): string[] {
  const out: string[] = [];
  for (const d of list ?? []) {
    const ip = parseIp(String(d));
    if (!ip) throw invalidInput(`'${String(d)}' is not a valid nameserver`);
    const t = formatIp(ip.version, ip.value);
    if (out.includes(t)) throw invalidInput(`Duplicate nameserver '${t}'`);
    out.push(t);
  }
  return out;
}

function checkHostRoutes(list: Array<{ destination: string; nexthop: string }> | undefined, version: number) {
  return (list ?? []).map((r) => {
    const dest = parseCidr(r.destination, false);
    const hop = parseIp(r.nexthop);
    if (!dest || !hop || dest.version !== version || hop.version !== version) {
      throw invalidInput(`Invalid host route ${JSON.stringify(r)}: destination must be a CIDR and nexthop an IP of IPv${version}`);
    }
    return { destination: formatCidr({ ...dest, network: dest.network }), nexthop: formatIp(hop.version, hop.value) };
  });
}

export async function createSubnet(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  const net = await c.visibleNetwork(caller, body.network_id);
  const project = c.ownerFor(caller, body);
  c.enforce(caller, 'create_subnet', { ...body, project_id: project, network_project_id: net.project_id });
  const cidr = parseCidr(String(body.cidr ?? ''), true);
  if (body.cidr === undefined) throw invalidInput('cidr is required (subnet pools are not supported)');
  if (!cidr) {
    const loose = parseCidr(String(body.cidr), false);
    throw invalidInput(loose ? `'${body.cidr}' isn't a recommended CIDR, '${formatCidr(loose)}' is recommended`
      : `'${body.cidr}' is not a valid IP subnet`);
  }
  const version = body.ip_version ?? cidr.version;
  if (version !== cidr.version) throw invalidInput(`Cidr ${body.cidr} does not match ip_version ${version}`);
  if ((version === 4 && cidr.prefix > 30) || (version === 6 && cidr.prefix > 126)) {
    throw invalidInput(`Subnet ${body.cidr} is too small to hold hosts`);
  }
  const ra = body.ipv6_ra_mode ?? null, am = body.ipv6_address_mode ?? null;
  if (version === 4 && (ra || am)) throw invalidInput('ipv6_ra_mode and ipv6_address_mode are only valid for IPv6 subnets');
  if (ra && am && ra !== am) throw invalidInput(`ipv6_ra_mode set to '${ra}' with ipv6_address_mode set to '${am}' is not valid`);
  if ((am === 'slaac' || am === 'dhcpv6-stateless') && cidr.prefix !== 64) {
    throw invalidInput(`Invalid CIDR ${body.cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64`);
  }
  await c.checkQuota(project, 'subnet');
  const existing = await c.store.find('subnet', { network_id: net.id });
  for (const s of existing) {
    if (cidrsOverlap(parseCidr(s.cidr)!, cidr)) {
      throw invalidInput(`Requested subnet with cidr: ${formatCidr(cidr)} for network: ${net.id} overlaps with another subnet`);
    }
  }
  const gateway = parseGateway(body, cidr);
  let pools: Pool[];
  if (body.allocation_pools?.length) {
    const r = validatePools(cidr, body.allocation_pools, gateway);
    if (typeof r === 'string') throw invalidInput(r);
    pools = r.map((p) => ({ start: formatIp(cidr.version, p.start), end: formatIp(cidr.version, p.end) }));
  } else pools = defaultPools(cidr, gateway);
  const doc = c.base(project, {
    name: body.name ?? '', description: body.description ?? '', network_id: net.id, ip_version: version,
    cidr: formatCidr(cidr), gateway_ip: gateway === undefined ? null : formatIp(cidr.version, gateway),
    allocation_pools: pools, dns_nameservers: checkNameservers(body.dns_nameservers),
    host_routes: checkHostRoutes(body.host_routes, version),
    enable_dhcp: body.enable_dhcp === undefined ? true : asBool(body.enable_dhcp, 'enable_dhcp'),
    ipv6_ra_mode: ra, ipv6_address_mode: am, subnetpool_id: null, segment_id: null, service_types: [],
    dns_publish_fixed_ip: false,
  });
  await c.store.insert('subnet', doc);
  if (doc.enable_dhcp) await ensureDhcpPort(c, net);
  return doc;
}

export async function updateSubnet(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const sub = await visibleSubnet(c, caller, id);
  c.enforce(caller, 'update_subnet', c.target(sub));
  const cidr = parseCidr(sub.cidr)!;
  for (const k of ['name', 'description'] as const) if (body[k] !== undefined) sub[k] = body[k];
  if (body.dns_nameservers !== undefined) sub.dns_nameservers = checkNameservers(body.dns_nameservers);
  if (body.host_routes !== undefined) sub.host_routes = checkHostRoutes(body.host_routes, sub.ip_version);
  let gateway = sub.gateway_ip ? parseIp(sub.gateway_ip)!.value : undefined;
  if (body.gateway_ip !== undefined) {
    gateway = parseGateway(body, cidr);
    const gw = gateway === undefined ? null : formatIp(cidr.version, gateway);
    if (gw && gw !== sub.gateway_ip && (await c.store.usedIps({ subnet_id: id })).some((a) => a.ip_address === gw)) {
      throw conflict(`Gateway ip ${gw} conflicts with an address already allocated on subnet ${id}`, 'GatewayIpInUse');
    }
    sub.gateway_ip = gw;
  }
  if (body.allocation_pools !== undefined || body.gateway_ip !== undefined) {
    const r = validatePools(cidr, body.allocation_pools ?? sub.allocation_pools, gateway);
    if (typeof r === 'string') throw invalidInput(r);
    sub.allocation_pools = r.map((p) => ({ start: formatIp(cidr.version, p.start), end: formatIp(cidr.version, p.end) }));
  }
  if (body.enable_dhcp !== undefined) sub.enable_dhcp = asBool(body.enable_dhcp, 'enable_dhcp');
  await c.store.update('subnet', c.touch(sub));
  const net = (await c.store.get('network', sub.network_id))!;
  if (sub.enable_dhcp) await ensureDhcpPort(c, net);
  else await dropDhcpAddress(c, net.id, id);
  return sub;
}

export async function deleteSubnet(c: Core, caller: Caller, id: string): Promise<void> {
  const sub = await visibleSubnet(c, caller, id);
  c.enforce(caller, 'delete_subnet', c.target(sub));
  const allocs = await c.store.usedIps({ subnet_id: id });
  const ports = await c.store.find('port', { id: [...new Set(allocs.map((a) => a.port_id))] } as never);
  // Addresses of an auto-address (SLAAC / DHCPv6-stateless) subnet are derived, not chosen: as in
  // Neutron, deleting the subnet removes them from the ports; router interfaces still block it.
  const auto = sub.ip_version === 6 && (sub.ipv6_address_mode === 'slaac' || sub.ipv6_address_mode === 'dhcpv6-stateless');
  const blocking = ports.filter((p) => p.device_owner !== 'network:dhcp' && (!auto || p.device_owner === 'network:router_interface'));
  if (blocking.length) {
    throw conflict(`Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.`, 'SubnetInUse');
  }
  for (const p of ports) {
    if (p.device_owner === 'network:dhcp') continue;
    const gone = p.fixed_ips.filter((f: { subnet_id: string }) => f.subnet_id === id);
    p.fixed_ips = p.fixed_ips.filter((f: { subnet_id: string }) => f.subnet_id !== id);
    await c.store.releaseIps(p.id, gone.map((f: { ip_address: string }) => f.ip_address));
    await c.store.update('port', c.touch(p));
  }
  await dropDhcpAddress(c, sub.network_id, id);
  await c.store.delete('subnet', id);
}

export async function visibleSubnet(c: Core, caller: Caller, id: string): Promise<Doc> {
  const sub = await c.store.get('subnet', id);
  if (!sub) throw notFoundOf('subnet', id);
  try {
    await c.visibleNetwork(caller, sub.network_id);
  } catch {
    throw notFoundOf('subnet', id);
  }
  return sub;
}

// ---- the DHCP port: one per network, with an address on every DHCP-enabled subnet ----

async function ensureDhcpPort(c: Core, net: Doc): Promise<void> {
  const subnets = (await c.store.find('subnet', { network_id: net.id })).filter((s) => s.enable_dhcp);
  const [port] = await c.store.find('port', { network_id: net.id, device_owner: 'network:dhcp' });
  if (!port) {
    const fixed = subnets.map((s) => ({ subnet_id: s.id }));
    await createPortDoc(c, net, {
      project_id: net.project_id, device_owner: 'network:dhcp', device_id: `dhcp-${net.id}`, name: '',
      fixed_ips: fixed, port_security_enabled: false, security_groups: [],
    });
    return;
  }
  const missing = subnets.filter((s) => !port.fixed_ips.some((f: { subnet_id: string }) => f.subnet_id === s.id));
  if (!missing.length) return;
  const added = await allocateFixedIps(c, net, port.id, port.mac_address, missing.map((s) => ({ subnet_id: s.id })), port.device_owner,
    port.fixed_ips);
  port.fixed_ips = [...port.fixed_ips, ...added];
  await c.store.update('port', c.touch(port));
}

async function dropDhcpAddress(c: Core, networkId: string, subnetId: string): Promise<void> {
  const [port] = await c.store.find('port', { network_id: networkId, device_owner: 'network:dhcp' });
  if (!port) return;
  const gone = port.fixed_ips.filter((f: { subnet_id: string }) => f.subnet_id === subnetId);
  if (!gone.length) return;
  port.fixed_ips = port.fixed_ips.filter((f: { subnet_id: string }) => f.subnet_id !== subnetId);
  if (!port.fixed_ips.length) {
    await deletePortDoc(c, port);
    return;
  }
  await c.store.releaseIps(port.id, gone.map((f: { ip_address: string }) => f.ip_address));
  await c.store.update('port', c.touch(port));
}
