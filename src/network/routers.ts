// Routers (external gateway with SNAT, interfaces on subnets, extra routes) and floating IPs.
import { asBool, badRequest, conflict, invalidInput, notFound, notFoundOf, type Caller, type Core } from './core.js';
import { cidrContains, cidrsOverlap, formatCidr, formatIp, parseCidr, parseIp } from './ipam.js';
import { createPortDoc, deletePortDoc, type FixedIp } from './ports.js';
import type { Doc } from './store.js';

export async function createRouter(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  const project = c.ownerFor(caller, body);
  c.enforce(caller, 'create_router', { ...body, project_id: project });
  await c.checkQuota(project, 'router');
  const router = c.base(project, {
    name: body.name ?? '', description: body.description ?? '',
    admin_state_up: body.admin_state_up === undefined ? true : asBool(body.admin_state_up, 'admin_state_up'),
    status: 'ACTIVE', external_gateway_info: null, routes: [], distributed: false, ha: false, flavor_id: null,
    availability_zone_hints: body.availability_zone_hints ?? [], availability_zones: [c.cfg.availabilityZone],
  });
  await c.store.insert('router', router);
  if (body.external_gateway_info) {
    await setGateway(c, caller, router, body.external_gateway_info);
    await c.store.update('router', router); // the gateway info lives on the router row
  }
  return router;
}

async function gatewayPort(c: Core, routerId: string): Promise<Doc | undefined> {
  return (await c.store.find('port', { device_id: routerId, device_owner: 'network:router_gateway' }))[0];
}

export async function interfacePorts(c: Core, routerId: string): Promise<Doc[]> {
  return c.store.find('port', { device_id: routerId, device_owner: 'network:router_interface' });
}

async function setGateway(c: Core, caller: Caller, router: Doc, info: Record<string, any> | null): Promise<void> {
  const current = await gatewayPort(c, router.id);
  if (!info || !info.network_id) {
    if (!current) return;
    if ((await c.store.find('floatingip', { router_id: router.id })).length) {
      throw conflict(`Gateway cannot be updated for router ${router.id}, since a gateway to external network ` +
        `${current.network_id} is required by one or more floating IPs.`, 'RouterExternalGatewayInUseByFloatingIp');
    }
    await deletePortDoc(c, current);
    router.external_gateway_info = null;
    return;
  }
  const target = c.target(router);
  if (info.enable_snat !== undefined) c.enforce(caller, 'update_router:external_gateway_info:enable_snat', target);
  if (info.external_fixed_ips !== undefined) c.enforce(caller, 'update_router:external_gateway_info:external_fixed_ips', target);
  const net = await c.visibleNetwork(caller, info.network_id);
  if (!net['router:external']) throw badRequest(`Network ${net.id} is not a valid external network`, 'BadRequest');
  const snat = info.enable_snat === undefined ? true : asBool(info.enable_snat, 'enable_snat');
  if (current && current.network_id === net.id && info.external_fixed_ips === undefined) {
    router.external_gateway_info = { ...router.external_gateway_info, enable_snat: snat };
    return;
  }
  if (current) {
    if (current.network_id !== net.id && (await c.store.find('floatingip', { router_id: router.id })).length) {
      throw conflict(`Gateway cannot be updated for router ${router.id}: floating IPs use it.`, 'RouterExternalGatewayInUseByFloatingIp');
    }
    await deletePortDoc(c, current);
  }
  const port = await createPortDoc(c, net, {
    project_id: '', device_owner: 'network:router_gateway', device_id: router.id, name: '',
    fixed_ips: info.external_fixed_ips, port_security_enabled: false, security_groups: [],
    'binding:host_id': router._host ?? '',
  });
  router.external_gateway_info = {
    network_id: net.id, enable_snat: snat,
    external_fixed_ips: port.fixed_ips.map((f: FixedIp) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address })),
  };
}

async function checkRoutes(c: Core, router: Doc, routes: Array<{ destination: string; nexthop: string }>) {
  const cidrs = await routerCidrs(c, router);
  return routes.map((r) => {
    const dest = parseCidr(r.destination, false), hop = parseIp(r.nexthop);
    if (!dest || !hop) throw badRequest(`Invalid format for routes: ${JSON.stringify(r)}`, 'InvalidRoutes');
    if (!cidrs.some((cidr) => cidrContains(cidr, hop))) {
      throw badRequest(`Invalid format for routes: ${JSON.stringify(r)}, the nexthop is not connected with router`, 'InvalidRoutes');
    }
    return { destination: formatCidr(dest), nexthop: formatIp(hop.version, hop.value) };
  });
}

async function routerCidrs(c: Core, router: Doc) {
  const ports = [...await interfacePorts(c, router.id)];
  const gw = await gatewayPort(c, router.id);
  if (gw) ports.push(gw);
  const ids = ports.flatMap((p) => p.fixed_ips.map((f: FixedIp) => f.subnet_id));
  return (await c.store.find('subnet', { id: ids })).map((s) => parseCidr(s.cidr)!);
}

export async function updateRouter(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const router = await c.owned(caller, 'router', id);
  c.enforce(caller, 'update_router', c.target(router));
  for (const k of ['name', 'description'] as const) if (body[k] !== undefined) router[k] = body[k];
  if (body.admin_state_up !== undefined) router.admin_state_up = asBool(body.admin_state_up, 'admin_state_up');
  if (body.external_gateway_info !== undefined) await setGateway(c, caller, router, body.external_gateway_info);
  if (body.routes !== undefined) router.routes = await checkRoutes(c, router, body.routes ?? []);
  await c.store.update('router', c.touch(router));
  return router;
}

export async function deleteRouter(c: Core, caller: Caller, id: string): Promise<void> {
  const router = await c.owned(caller, 'router', id);
  c.enforce(caller, 'delete_router', c.target(router));
  if ((await interfacePorts(c, id)).length) {
    throw conflict(`Router ${id} still has ports`, 'RouterInUse');
  }
  if ((await c.store.find('floatingip', { router_id: id })).length) {
    throw conflict(`Router ${id} still has floating IPs associated`, 'RouterInUse');
  }
  const gw = await gatewayPort(c, id);
  if (gw) await deletePortDoc(c, gw);
  await c.store.delete('router', id);
}

export async function addInterface(c: Core, caller: Caller, id: string, body: Record<string, any>) {
  const router = await c.owned(caller, 'router', id);
  c.enforce(caller, 'add_router_interface', c.target(router));
  if (!body.subnet_id === !body.port_id) throw badRequest('Either subnet_id or port_id must be specified', 'BadRequest');
  const cidrs = await routerCidrs(c, router);
  let port: Doc;
  if (body.port_id) {
    port = await c.owned(caller, 'port', body.port_id);
    if (port.device_id) throw conflict(`Port ${port.id} has owner ${port.device_owner}:${port.device_id}`, 'PortInUse');
    if (!port.fixed_ips.length) throw badRequest(`Router port must have at least one fixed IP`, 'BadRequest');
    const subs = await c.store.find('subnet', { id: port.fixed_ips.map((f: FixedIp) => f.subnet_id) });
    for (const s of subs) checkOverlap(cidrs, s);
    Object.assign(port, { device_id: id, device_owner: 'network:router_interface', port_security_enabled: false, security_groups: [] });
    port['binding:host_id'] = router._host ?? '';
    await c.store.update('port', c.touch(port));
    await c.store.setPortSecurityGroups(port.id, []);
  } else {
    const sub = await c.store.get('subnet', body.subnet_id);
    if (!sub) throw notFoundOf('subnet', body.subnet_id);
    const net = await c.visibleNetwork(caller, sub.network_id).catch(() => { throw notFoundOf('subnet', body.subnet_id); });
    if (net.project_id !== router.project_id && !net.shared && !caller.isAdmin) throw notFoundOf('subnet', body.subnet_id);
    if (!sub.gateway_ip) throw badRequest(`Bad router request: Subnet for router interface must have a gateway IP.`, 'BadRequest');
    checkOverlap(cidrs, sub);
    port = await createPortDoc(c, net, {
      project_id: router.project_id, device_owner: 'network:router_interface', device_id: id, name: '',
      fixed_ips: [{ subnet_id: sub.id, ip_address: sub.gateway_ip }], port_security_enabled: false, security_groups: [],
      'binding:host_id': router._host ?? '',
    });
  }
  await c.store.update('router', c.touch(router));
  const subnetIds = port.fixed_ips.map((f: FixedIp) => f.subnet_id);
  return {
    id, tenant_id: router.project_id, project_id: router.project_id, port_id: port.id, network_id: port.network_id,
    subnet_id: subnetIds[0], subnet_ids: subnetIds,
  };
}

function checkOverlap(cidrs: ReturnType<typeof parseCidr>[], sub: Doc): void {
  const cidr = parseCidr(sub.cidr)!;
  if (cidrs.some((x) => x && cidrsOverlap(x, cidr))) {
    throw badRequest(`Bad router request: Cidr ${sub.cidr} of subnet ${sub.id} overlaps with a subnet of the router.`, 'BadRequest');
  }
}

export async function removeInterface(c: Core, caller: Caller, id: string, body: Record<string, any>) {
  const router = await c.owned(caller, 'router', id);
  c.enforce(caller, 'remove_router_interface', c.target(router));
  const ports = await interfacePorts(c, id);
  const port = body.port_id ? ports.find((p) => p.id === body.port_id)
    : ports.find((p) => p.fixed_ips.some((f: FixedIp) => f.subnet_id === body.subnet_id));
  if (!port) {
    if (body.port_id) throw notFound(`Router ${id} does not have an interface with id ${body.port_id}`, 'RouterInterfaceNotFound');
    throw notFound(`Router ${id} has no interface on subnet ${body.subnet_id}`, 'RouterInterfaceNotFoundForSubnet');
  }
  const subnetIds: string[] = port.fixed_ips.map((f: FixedIp) => f.subnet_id);
  for (const fip of await c.store.find('floatingip', { router_id: id })) {
    const target = await c.store.get('port', fip.port_id);
    if (target?.fixed_ips.some((f: FixedIp) => subnetIds.includes(f.subnet_id) && f.ip_address === fip.fixed_ip_address)) {
      throw conflict(`Router interface for subnet ${subnetIds[0]} on router ${id} cannot be deleted, as it is required by one or more floating IPs.`,
        'RouterInterfaceInUseByFloatingIP');
    }
  }
  const cidrsLeft = (await c.store.find('subnet', {
    id: ports.filter((p) => p !== port).flatMap((p) => p.fixed_ips.map((f: FixedIp) => f.subnet_id)),
  })).map((s) => parseCidr(s.cidr)!);
  if (router.routes.some((r: { nexthop: string }) => !cidrsLeft.some((cidr) => cidrContains(cidr, parseIp(r.nexthop)!)) &&
    (router.external_gateway_info?.external_fixed_ips ?? []).length === 0)) {
    throw conflict(`Router interface for subnet ${subnetIds[0]} on router ${id} cannot be deleted, as it is required by one or more routes.`,
      'RouterInterfaceInUseByRoute');
  }
  await deletePortDoc(c, port);
  await c.store.update('router', c.touch(router));
  return {
    id, tenant_id: router.project_id, project_id: router.project_id, port_id: port.id, network_id: port.network_id,
    subnet_id: subnetIds[0], subnet_ids: subnetIds,
  };
}

// ---- floating IPs ----

export async function createFloatingIp(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  const project = c.ownerFor(caller, body);
  const net = await c.visibleNetwork(caller, body.floating_network_id);
  c.enforce(caller, 'create_floatingip', { ...body, project_id: project });
  if (body.floating_ip_address !== undefined) c.enforce(caller, 'create_floatingip:floating_ip_address', { ...body, project_id: project });
  if (!net['router:external']) throw badRequest(`Network ${net.id} is not a valid external network`, 'BadRequest');
  await c.checkQuota(project, 'floatingip');
  const fip = c.base(project, {
    floating_network_id: net.id, floating_ip_address: '', router_id: null, port_id: null, fixed_ip_address: null,
    status: 'DOWN', description: body.description ?? '', port_details: null, qos_policy_id: null, port_forwardings: [],
    dns_domain: '', dns_name: '',
  });
  const req = body.floating_ip_address !== undefined || body.subnet_id !== undefined
    ? [{ ...(body.subnet_id ? { subnet_id: body.subnet_id } : {}), ...(body.floating_ip_address ? { ip_address: body.floating_ip_address } : {}) }]
    : undefined;
  const v4 = (await c.store.find('subnet', { network_id: net.id, ip_version: 4 }));
  const port = await createPortDoc(c, net, {
    project_id: '', device_owner: 'network:floatingip', device_id: fip.id, name: '',
    fixed_ips: req ?? (v4.length ? [{ subnet_id: v4[0]!.id }] : undefined), port_security_enabled: false, security_groups: [],
  });
  fip.floating_ip_address = port.fixed_ips[0]?.ip_address;
  if (!fip.floating_ip_address) throw conflict(`No more IP addresses available on network ${net.id}.`, 'IpAddressGenerationFailure');
  if (body.port_id) await associate(c, caller, fip, body.port_id, body.fixed_ip_address);
  await c.store.insert('floatingip', fip);
  return fip;
}

async function associate(c: Core, caller: Caller, fip: Doc, portId: string | null, fixedIp?: string): Promise<void> {
  if (!portId) {
    Object.assign(fip, { port_id: null, fixed_ip_address: null, router_id: null, status: 'DOWN' });
    return;
  }
  const port = await c.owned(caller, 'port', portId);
  if (port.project_id !== fip.project_id && !caller.isAdmin) throw notFoundOf('port', portId);
  const v4 = port.fixed_ips.filter((f: FixedIp) => parseIp(f.ip_address)?.version === 4);
  const fixed = fixedIp ? v4.find((f: FixedIp) => f.ip_address === fixedIp) : v4[0];
  if (!fixed) {
    throw badRequest(fixedIp ? `Port ${portId} does not have fixed ip ${fixedIp}` : `Port ${portId} does not have an IPv4 address to associate with a floating IP`, 'BadRequest');
  }
  const others = (await c.store.find('floatingip', { port_id: portId }))
    .filter((f) => f.id !== fip.id && f.fixed_ip_address === fixed.ip_address && f.floating_network_id === fip.floating_network_id);
  if (others.length) {
    throw conflict(`Cannot associate floating IP ${fip.floating_ip_address} (${fip.id}) with port ${portId} using fixed IP ` +
      `${fixed.ip_address}, as that fixed IP already has a floating IP on external network ${fip.floating_network_id}.`, 'FloatingIPPortAlreadyAssociated');
  }
  // The router that links the port's subnet to the floating IP's network.
  const ifaces = await c.store.find('port', { network_id: port.network_id, device_owner: 'network:router_interface' });
  let routerId: string | undefined;
  for (const i of ifaces) {
    if (!i.fixed_ips.some((f: FixedIp) => f.subnet_id === fixed.subnet_id)) continue;
    const r = await c.store.get('router', i.device_id);
    if (r?.external_gateway_info?.network_id === fip.floating_network_id) { routerId = r!.id; break; }
  }
  if (!routerId) {
    throw notFound(`External network ${fip.floating_network_id} is not reachable from subnet ${fixed.subnet_id}. ` +
      `Therefore, cannot associate Port ${portId} with a Floating IP.`, 'ExternalGatewayForFloatingIPNotFound');
  }
  Object.assign(fip, { port_id: portId, fixed_ip_address: fixed.ip_address, router_id: routerId, status: 'ACTIVE' });
}

export async function updateFloatingIp(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const fip = await c.owned(caller, 'floatingip', id);
  c.enforce(caller, 'update_floatingip', c.target(fip));
  if (body.description !== undefined) fip.description = body.description;
  if (body.port_id !== undefined) await associate(c, caller, fip, body.port_id, body.fixed_ip_address);
  else if (body.fixed_ip_address !== undefined && fip.port_id) await associate(c, caller, fip, fip.port_id, body.fixed_ip_address);
  await c.store.update('floatingip', c.touch(fip));
  return fip;
}

export async function deleteFloatingIp(c: Core, caller: Caller, id: string): Promise<void> {
  const fip = await c.owned(caller, 'floatingip', id);
  c.enforce(caller, 'delete_floatingip', c.target(fip));
  for (const p of await c.store.find('port', { device_id: id, device_owner: 'network:floatingip' })) await deletePortDoc(c, p);
  await c.store.delete('floatingip', id);
}

export { invalidInput };
