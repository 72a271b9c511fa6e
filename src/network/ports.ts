// Ports: MAC generation, fixed IP allocation (IPAM over the network_ip_allocations unique key),
// security groups, allowed address pairs, port security and binding.
import { asBool, conflict, forbidden, invalidInput, notFoundOf, RetryError, type Caller, type Core } from './core.js';
import {
  cidrContains, eui64, formatIp, freeAddresses, isValidMac, parseCidr, parseIp, poolsOf, randomMac, usableRange,
} from './ipam.js';
import { ensureDefaultSecurityGroup } from './secgroups.js';
import type { Doc } from './store.js';

export interface FixedIpRequest { subnet_id?: string; ip_address?: string }
export interface FixedIp { subnet_id: string; ip_address: string }

const ROUTER_OWNERS = ['network:router_interface', 'network:router_gateway', 'network:router_interface_distributed'];

/**
 * Allocates addresses for `portId` on `net`: the requested ones (exact IPs or "any IP of this
 * subnet"), or by default one IPv4 address and one IPv6 address (EUI-64 on SLAAC subnets).
 */
export async function allocateFixedIps(
  c: Core, net: Doc, portId: string, mac: string, requested: FixedIpRequest[] | undefined, deviceOwner = '',
  existing: FixedIp[] = [],
): Promise<FixedIp[]> {
  const subnets = await c.store.find('subnet', { network_id: net.id });
  const out: FixedIp[] = [];
  const take = async (sub: Doc, ip: string, explicit: boolean): Promise<boolean> => {
    const ok = await c.store.allocateIp({ network_id: net.id, ip_address: ip, subnet_id: sub.id, port_id: portId });
    if (!ok && explicit) throw conflict(`IP address ${ip} already allocated in subnet ${sub.id}`, 'IpAddressAlreadyAllocated');
    if (ok) out.push({ subnet_id: sub.id, ip_address: ip });
    return ok;
  };
  const auto = async (sub: Doc): Promise<boolean> => {
    const cidr = parseCidr(sub.cidr)!;
    if (sub.ipv6_address_mode === 'slaac' || sub.ipv6_address_mode === 'dhcpv6-stateless') {
      return take(sub, formatIp(6, eui64(cidr, mac)), true);
    }
    const used = new Set((await c.store.usedIps({ subnet_id: sub.id })).map((a) => parseIp(a.ip_address)!.value));
    if (sub.gateway_ip) used.add(parseIp(sub.gateway_ip)!.value);
    const candidates = freeAddresses(poolsOf(cidr.version, sub.allocation_pools), used, 8);
    for (const a of candidates) if (await take(sub, formatIp(cidr.version, a), false)) return true;
    if (candidates.length) throw new RetryError(`addresses on subnet ${sub.id} taken concurrently`);
    return false;
  };

  if (requested === undefined) {
    for (const version of [4, 6]) {
      const ofVersion = subnets.filter((s) => s.ip_version === version);
      const stateful = ofVersion.filter((s) => s.ipv6_address_mode !== 'slaac' && s.ipv6_address_mode !== 'dhcpv6-stateless');
      for (const s of ofVersion.filter((x) => !stateful.includes(x))) await auto(s);
      let got = stateful.length === 0;
      for (const s of stateful) if (!got) got = await auto(s);
      if (!got) throw conflict(`No more IP addresses available on network ${net.id}.`, 'IpAddressGenerationFailure');
    }
    return out;
  }
  for (const r of requested) {
    let sub: Doc | undefined;
    let ip = r.ip_address === undefined ? undefined : parseIp(r.ip_address);
    if (r.ip_address !== undefined && !ip) throw invalidInput(`${r.ip_address} is not a valid IP address`);
    if (r.subnet_id !== undefined) {
      sub = subnets.find((s) => s.id === r.subnet_id);
      if (!sub) {
        throw invalidInput(`Failed to create port on network ${net.id}, because fixed_ips included invalid subnet ${r.subnet_id}`);
      }
    } else if (ip) {
      sub = subnets.find((s) => cidrContains(parseCidr(s.cidr)!, ip!));
      if (!sub) {
        throw invalidInput(`IP address ${r.ip_address} is not a valid IP for any of the subnets on the specified network.`);
      }
    } else throw invalidInput('fixed_ips entries need a subnet_id or an ip_address');
    if (!ip) {
      if (!await auto(sub)) throw conflict(`No more IP addresses available on subnet ${sub.id}.`, 'IpAddressGenerationFailure');
      continue;
    }
    const cidr = parseCidr(sub.cidr)!;
    const [first, last] = usableRange(cidr);
    if (!cidrContains(cidr, ip) || ip.value < first || ip.value > last) {
      throw invalidInput(`IP address ${r.ip_address} is not a valid IP for the specified subnet.`);
    }
    const text = formatIp(ip.version, ip.value);
    if (text === sub.gateway_ip && !ROUTER_OWNERS.includes(deviceOwner)) {
      throw conflict(`IP address ${text} already allocated in subnet ${sub.id}: it is the subnet's gateway`, 'IpAddressAlreadyAllocated');
    }
    await take(sub, text, true);
  }
  // As Neutron: SLAAC subnets give every (non-router) port its EUI-64 address, asked for or not.
  if (!ROUTER_OWNERS.includes(deviceOwner)) {
    for (const s of subnets) {
      const slaac = s.ipv6_address_mode === 'slaac' || s.ipv6_address_mode === 'dhcpv6-stateless';
      if (slaac && ![...out, ...existing].some((f) => f.subnet_id === s.id)) await auto(s);
    }
  }
  return out;
}

/** Creates a port document with its addresses and bindings; rules about who may ask are the caller's. */
export async function createPortDoc(c: Core, net: Doc, body: Record<string, any>): Promise<Doc> {
  const project = String(body.project_id ?? net.project_id);
  let mac: string = body.mac_address ?? '';
  if (mac) {
    mac = mac.toLowerCase();
    if (!isValidMac(mac)) throw invalidInput(`'${body.mac_address}' is not a valid MAC address`);
    if ((await c.store.find('port', { network_id: net.id, mac_address: mac })).length) {
      throw conflict(`Unable to complete operation for network ${net.id}. The mac address ${mac} is in use.`, 'MacAddressInUse');
    }
  } else {
    for (let i = 0; !mac && i < 16; i++) {
      const m = randomMac();
      if (!(await c.store.find('port', { network_id: net.id, mac_address: m })).length) mac = m;
    }
  }
  const owner = String(body.device_owner ?? '');
  const portSecurity = body.port_security_enabled === undefined ? Boolean(net.port_security_enabled)
    : asBool(body.port_security_enabled, 'port_security_enabled');
  let sgs: string[] = body.security_groups ?? [];
  if (body.security_groups === undefined && portSecurity && !owner.startsWith('network:') && project) {
    sgs = [await ensureDefaultSecurityGroup(c, project)];
  }
  const pairs = checkPairs(body.allowed_address_pairs ?? []);
  if (!portSecurity && (sgs.length || pairs.length)) {
    throw conflict('Port security must be enabled in order to have allowed address pairs or security groups on a port.',
      'PortSecurityAndIPRequiredForSecurityGroups');
  }
  const host = String(body['binding:host_id'] ?? '');
  const doc = c.base(project, {
    name: body.name ?? '', description: body.description ?? '', network_id: net.id,
    admin_state_up: body.admin_state_up === undefined ? true : asBool(body.admin_state_up, 'admin_state_up'),
    status: 'DOWN', mac_address: mac, device_id: String(body.device_id ?? ''), device_owner: owner,
    fixed_ips: [], allowed_address_pairs: pairs, security_groups: [...new Set(sgs)],
    port_security_enabled: portSecurity, extra_dhcp_opts: [], ip_allocation: 'immediate',
    'binding:host_id': host, 'binding:profile': body['binding:profile'] ?? {},
    'binding:vnic_type': body['binding:vnic_type'] ?? 'normal',
    'binding:vif_type': host ? 'bridge' : 'unbound', 'binding:vif_details': host ? { port_filter: true } : {},
    propagate_uplink_status: false,
  });
  await checkSecurityGroups(c, project, doc.security_groups, body.__admin === true);
  doc.fixed_ips = await allocateFixedIps(c, net, doc.id, mac, body.fixed_ips, owner);
  await c.store.insert('port', doc);
  await c.store.setPortSecurityGroups(doc.id, doc.security_groups);
  return doc;
}

function checkPairs(pairs: Array<{ ip_address: string; mac_address?: string }>) {
  const seen = new Set<string>();
  return pairs.map((p) => {
    const cidr = parseCidr(String(p.ip_address ?? ''), false);
    if (!cidr) throw invalidInput(`'${p.ip_address}' is not a valid IP address or CIDR in allowed_address_pairs`);
    if (p.mac_address !== undefined && p.mac_address !== null && !isValidMac(p.mac_address)) {
      throw invalidInput(`'${p.mac_address}' is not a valid MAC address in allowed_address_pairs`);
    }
    const key = `${p.ip_address}|${p.mac_address ?? ''}`;
    if (seen.has(key)) throw invalidInput('Duplicate address detected in allowed_address_pairs');
    seen.add(key);
    return p.mac_address ? { ip_address: p.ip_address, mac_address: p.mac_address.toLowerCase() } : { ip_address: p.ip_address };
  });
}

async function checkSecurityGroups(c: Core, project: string, ids: string[], admin: boolean): Promise<void> {
  for (const id of ids) {
    const sg = await c.store.get('security_group', id);
    if (!sg || (!admin && sg.project_id !== project)) throw notFoundOf('security_group', id);
  }
}

/**
 * Ports owned by the network itself (router interface or gateway, DHCP, floating IP) are made by
 * this service; the data plane trusts their device_owner/device_id (a router interface port joins
 * the router named by device_id). So only admins may set or change them, else a project could plug
 * its network into another project's router or take over its gateway.
 */
function guardDeviceOwner(caller: Caller, port: Doc | undefined, body: Record<string, any>): void {
  if (caller.isAdmin) return;
  const isNet = (o: unknown) => typeof o === 'string' && o.startsWith('network:');
  const changes = (k: 'device_owner' | 'device_id') => body[k] !== undefined && String(body[k]) !== String(port?.[k] ?? '');
  if (isNet(body.device_owner) && changes('device_owner')) {
    throw forbidden(`Only admins can give a port the device owner '${body.device_owner}'.`, 'PolicyNotAuthorized');
  }
  if (port && isNet(port.device_owner) && (changes('device_owner') || changes('device_id'))) {
    throw forbidden(`Port ${port.id} belongs to ${port.device_owner}; its device owner and id cannot change.`, 'PolicyNotAuthorized');
  }
}

export async function createPort(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  guardDeviceOwner(caller, undefined, body);
  const net = await c.visibleNetwork(caller, body.network_id);
  const project = c.ownerFor(caller, body);
  const target = { ...body, project_id: project, network_project_id: net.project_id };
  c.enforce(caller, 'create_port', target);
  if (body.mac_address !== undefined) c.enforce(caller, 'create_port:mac_address', target);
  if ((body.fixed_ips ?? []).some((f: FixedIpRequest) => f.ip_address !== undefined)) {
    c.enforce(caller, 'create_port:fixed_ips:ip_address', target);
  }
  for (const k of ['binding:host_id', 'binding:profile'] as const) if (body[k] !== undefined) c.enforce(caller, `create_port:${k}`, target);
  if (net['router:external'] && !net.shared && net.project_id !== project && !caller.isAdmin) {
    throw forbidden(`Ports cannot be created on external network ${net.id} by other projects.`, 'PolicyNotAuthorized');
  }
  await c.checkQuota(project, 'port');
  return createPortDoc(c, net, { ...body, project_id: project, __admin: caller.isAdmin });
}

export async function updatePort(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const port = await c.owned(caller, 'port', id);
  const net = (await c.store.get('network', port.network_id))!;
  const target = c.target(port, { network_project_id: net.project_id });
  c.enforce(caller, 'update_port', target);
  guardDeviceOwner(caller, port, body);
  for (const k of ['name', 'description', 'device_id', 'device_owner', 'binding:vnic_type'] as const) {
    if (body[k] !== undefined) port[k] = body[k];
  }
  if (body.admin_state_up !== undefined) port.admin_state_up = asBool(body.admin_state_up, 'admin_state_up');
  for (const k of ['binding:host_id', 'binding:profile', 'mac_address'] as const) {
    if (body[k] !== undefined) c.enforce(caller, `update_port:${k}`, target);
  }
  if (body.mac_address !== undefined && body.mac_address.toLowerCase() !== port.mac_address) {
    if (port['binding:host_id']) throw conflict(`Port ${id} is bound; its MAC address cannot change.`, 'PortBound');
    const mac = body.mac_address.toLowerCase();
    if (!isValidMac(mac)) throw invalidInput(`'${body.mac_address}' is not a valid MAC address`);
    if ((await c.store.find('port', { network_id: net.id, mac_address: mac })).length) {
      throw conflict(`Unable to complete operation for network ${net.id}. The mac address ${mac} is in use.`, 'MacAddressInUse');
    }
    port.mac_address = mac;
  }
  if (body['binding:host_id'] !== undefined) setBinding(port, String(body['binding:host_id'] ?? ''));
  if (body['binding:profile'] !== undefined) port['binding:profile'] = body['binding:profile'] ?? {};
  if (body.port_security_enabled !== undefined) port.port_security_enabled = asBool(body.port_security_enabled, 'port_security_enabled');
  if (body.security_groups !== undefined) {
    await checkSecurityGroups(c, port.project_id, body.security_groups ?? [], caller.isAdmin);
    port.security_groups = [...new Set<string>(body.security_groups ?? [])];
  }
  if (body.allowed_address_pairs !== undefined) port.allowed_address_pairs = checkPairs(body.allowed_address_pairs ?? []);
  if (!port.port_security_enabled && (port.security_groups.length || port.allowed_address_pairs.length)) {
    throw conflict('Port security must be enabled in order to have allowed address pairs or security groups on a port.',
      'PortSecurityPortHasSecurityGroup');
  }
  if (body.fixed_ips !== undefined) {
    if ((body.fixed_ips ?? []).some((f: FixedIpRequest) => f.ip_address !== undefined)) {
      c.enforce(caller, 'update_port:fixed_ips:ip_address', target);
    }
    const wanted: FixedIpRequest[] = body.fixed_ips ?? [];
    const keep = port.fixed_ips.filter((f: FixedIp) => wanted.some((w) => w.ip_address !== undefined &&
      parseIp(w.ip_address) && formatIp(parseIp(w.ip_address)!.version, parseIp(w.ip_address)!.value) === f.ip_address &&
      (w.subnet_id === undefined || w.subnet_id === f.subnet_id)));
    const fresh = wanted.filter((w) => !keep.some((k: FixedIp) => w.ip_address !== undefined &&
      formatIp(parseIp(w.ip_address)!.version, parseIp(w.ip_address)!.value) === k.ip_address));
    const dropped = port.fixed_ips.filter((f: FixedIp) => !keep.includes(f));
    await c.store.releaseIps(port.id, dropped.map((f: FixedIp) => f.ip_address));
    port.fixed_ips = [...keep, ...(fresh.length ? await allocateFixedIps(c, net, port.id, port.mac_address, fresh, port.device_owner, keep) : [])];
  }
  await c.store.update('port', c.touch(port));
  await c.store.setPortSecurityGroups(port.id, port.security_groups);
  return port;
}

export function setBinding(port: Doc, host: string): void {
  setMigratingTo(port, null);
  port['binding:host_id'] = host;
  port['binding:vif_type'] = host ? 'bridge' : 'unbound';
  port['binding:vif_details'] = host ? { port_filter: true } : {};
  if (!host) port.status = 'DOWN';
}

export async function deletePort(c: Core, caller: Caller, id: string): Promise<void> {
  const port = await c.owned(caller, 'port', id);
  const net = await c.store.get('network', port.network_id);
  c.enforce(caller, 'delete_port', c.target(port, { network_project_id: net?.project_id }));
  if (ROUTER_OWNERS.includes(port.device_owner) || port.device_owner === 'network:floatingip') {
    throw conflict(`Port ${id} cannot be deleted directly via the port API: has device owner ${port.device_owner}.`, 'L3PortInUse');
  }
  await deletePortDoc(c, port);
}

/** Removes a port, its addresses and bindings, and unlinks floating IPs that pointed at it. */
export async function deletePortDoc(c: Core, port: Doc): Promise<void> {
  for (const fip of await c.store.find('floatingip', { port_id: port.id })) {
    Object.assign(fip, { port_id: null, fixed_ip_address: null, router_id: null, status: 'DOWN' });
    await c.store.update('floatingip', c.touch(fip));
  }
  await c.store.releaseIps(port.id);
  await c.store.setPortSecurityGroups(port.id, []);
  await c.store.delete('port', port.id);
}

/** A live migration's destination, where the port is plugged too until it is bound there (null: none). */
export function setMigratingTo(port: Doc, dest: string | null): void {
  const { migrating_to: _, ...profile } = (port['binding:profile'] ?? {}) as Record<string, unknown>;
  if (dest) {
    port._migrating_to = dest;
    port['binding:profile'] = { ...profile, migrating_to: dest };
  } else if (port._migrating_to !== undefined || _ !== undefined) {
    delete port._migrating_to;
    port['binding:profile'] = profile;
  }
}
