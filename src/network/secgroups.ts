// Security groups and rules, including each project's `default` group (created on first use:
// all egress, and ingress from members of the same group, for IPv4 and IPv6).
import { conflict, invalidInput, notFoundOf, type Caller, type Core } from './core.js';
import { formatCidr, parseCidr } from './ipam.js';
import type { Doc } from './store.js';

const PROTOCOLS: Record<string, number> = {
  ah: 51, dccp: 33, egp: 8, esp: 50, gre: 47, icmp: 1, icmpv6: 58, igmp: 2, 'ipv6-encap': 41,
  'ipv6-frag': 44, 'ipv6-icmp': 58, 'ipv6-nonxt': 59, 'ipv6-opts': 60, 'ipv6-route': 43, ospf: 89,
  pgm: 113, rsvp: 46, sctp: 132, tcp: 6, udp: 17, udplite: 136, vrrp: 112,
};
const PORTED = ['tcp', 'udp', 'sctp', 'dccp', 'udplite', '6', '17', '132', '33', '136'];
const ICMP = ['icmp', 'icmpv6', 'ipv6-icmp', '1', '58'];

/** The project's default group id, creating it (once, even under concurrency) on first use. */
export async function ensureDefaultSecurityGroup(c: Core, projectId: string): Promise<string> {
  const existing = await c.store.defaultSecurityGroupId(projectId);
  if (existing) return existing;
  const sg = c.base(projectId, { name: 'default', description: 'Default security group', stateful: true, shared: false });
  if (!await c.store.claimDefaultSecurityGroup(projectId, sg.id)) return (await c.store.defaultSecurityGroupId(projectId))!;
  await c.store.insert('security_group', sg);
  for (const ethertype of ['IPv4', 'IPv6']) {
    await insertRule(c, sg, { direction: 'egress', ethertype });
    await insertRule(c, sg, { direction: 'ingress', ethertype, remote_group_id: sg.id });
  }
  return sg.id;
}

async function insertRule(c: Core, sg: Doc, r: Record<string, any>): Promise<Doc> {
  const rule = c.base(sg.project_id, {
    security_group_id: sg.id, direction: r.direction, ethertype: r.ethertype, protocol: r.protocol ?? null,
    port_range_min: r.port_range_min ?? null, port_range_max: r.port_range_max ?? null,
    remote_ip_prefix: r.remote_ip_prefix ?? null, normalized_cidr: r.normalized_cidr ?? null,
    remote_group_id: r.remote_group_id ?? null, remote_address_group_id: null, description: r.description ?? '',
    belongs_to_default_sg: sg.name === 'default',
  });
  await c.store.insert('security_group_rule', rule);
  return rule;
}

/**
 * The data plane's firewall is conntrack-based: every group is stateful. Stateless groups
 * (Neutron's stateful-security-group extension, not claimed) are refused rather than enforced
 * as something they are not.
 */
function refuseStateless(body: Record<string, any>): void {
  if (body.stateful !== undefined && body.stateful !== true) {
    throw invalidInput('stateless security groups (stateful: false) are not supported; every group is stateful');
  }
}

export async function createSecurityGroup(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  const project = c.ownerFor(caller, body);
  c.enforce(caller, 'create_security_group', { ...body, project_id: project });
  await ensureDefaultSecurityGroup(c, project);
  if (body.name === 'default') throw conflict(`Default security group already exists.`, 'SecurityGroupDefaultAlreadyExists');
  await c.checkQuota(project, 'security_group');
  refuseStateless(body);
  const sg = c.base(project, { name: body.name ?? '', description: body.description ?? '', stateful: true, shared: false });
  await c.store.insert('security_group', sg);
  // New groups allow all egress, as in Neutron.
  await c.checkQuota(project, 'security_group_rule', 2);
  for (const ethertype of ['IPv4', 'IPv6']) await insertRule(c, sg, { direction: 'egress', ethertype });
  return sg;
}

export async function updateSecurityGroup(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const sg = await c.owned(caller, 'security_group', id);
  c.enforce(caller, 'update_security_group', c.target(sg));
  if (body.name !== undefined && body.name !== sg.name && (sg.name === 'default' || body.name === 'default')) {
    throw conflict('Updating the name of the default security group, or naming a group "default", is not allowed.', 'SecurityGroupCannotUpdateDefault');
  }
  for (const k of ['name', 'description'] as const) if (body[k] !== undefined) sg[k] = body[k];
  refuseStateless(body);
  await c.store.update('security_group', c.touch(sg));
  return sg;
}

export async function deleteSecurityGroup(c: Core, caller: Caller, id: string): Promise<void> {
  const sg = await c.owned(caller, 'security_group', id);
  c.enforce(caller, 'delete_security_group', c.target(sg));
  const isDefault = (await c.store.defaultSecurityGroupId(sg.project_id)) === id;
  if (isDefault && !caller.isAdmin) throw conflict('Removing default security group not allowed.', 'SecurityGroupCannotRemoveDefault');
  if ((await c.store.portsUsingSecurityGroup(id)).length) {
    throw conflict(`Security Group ${id} in use.`, 'SecurityGroupInUse');
  }
  const referencing = (await c.store.find('security_group_rule', { remote_group_id: id })).filter((r) => r.security_group_id !== id);
  for (const r of referencing) await c.store.delete('security_group_rule', r.id);
  for (const r of await c.store.find('security_group_rule', { security_group_id: id })) await c.store.delete('security_group_rule', r.id);
  if (isDefault) await c.store.releaseDefaultSecurityGroup(sg.project_id);
  await c.store.delete('security_group', id);
}

export async function createRule(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  const sg = await c.store.get('security_group', body.security_group_id);
  if (!sg || !caller.check('get_security_group', c.target(sg))) throw notFoundOf('security_group', body.security_group_id);
  const project = body.project_id ?? body.tenant_id ?? sg.project_id;
  c.enforce(caller, 'create_security_group_rule', { ...body, project_id: sg.project_id });
  if (project !== sg.project_id) throw invalidInput('A rule belongs to the project of its security group');
  const r = normalizeRule(body);
  if (r.remote_group_id) {
    const remote = await c.store.get('security_group', r.remote_group_id);
    if (!remote || !caller.check('get_security_group', c.target(remote))) throw notFoundOf('security_group', r.remote_group_id);
  }
  const existing = await c.store.find('security_group_rule', { security_group_id: sg.id });
  const key = (x: Record<string, any>) => JSON.stringify(['direction', 'ethertype', 'protocol', 'port_range_min', 'port_range_max',
    'normalized_cidr', 'remote_group_id'].map((k) => x[k] ?? null));
  const dup = existing.find((e) => key(e) === key(r));
  if (dup) throw conflict(`Security group rule already exists. Rule id is ${dup.id}.`, 'SecurityGroupRuleExists');
  await c.checkQuota(sg.project_id, 'security_group_rule');
  const rule = await insertRule(c, sg, r);
  c.touch(sg);
  await c.store.update('security_group', sg);
  return rule;
}

/** Validates a rule as Neutron does, filling ethertype-matching defaults and the normalized CIDR. */
export function normalizeRule(body: Record<string, any>): Record<string, any> {
  const direction = body.direction;
  if (direction !== 'ingress' && direction !== 'egress') throw invalidInput(`${direction} is not in valid directions ('ingress', 'egress')`);
  const ethertype = body.ethertype ?? 'IPv4';
  if (ethertype !== 'IPv4' && ethertype !== 'IPv6') throw invalidInput(`Security group rule for ethertype '${ethertype}' not supported. Allowed values are ['IPv4', 'IPv6'].`);
  let protocol: string | null = body.protocol === undefined || body.protocol === null || body.protocol === 'any' ? null : String(body.protocol).toLowerCase();
  if (protocol !== null) {
    const num = /^\d+$/.test(protocol) ? Number(protocol) : undefined;
    if (num === undefined && !(protocol in PROTOCOLS)) {
      throw invalidInput(`Security group rule protocol ${protocol} not supported. Only protocol values [${Object.keys(PROTOCOLS).join(', ')}] and integer representations [0 to 255] are supported.`);
    }
    if (num !== undefined && num > 255) throw invalidInput(`Protocol ${protocol} is out of range [0 to 255].`);
    if (protocol === 'icmp' && ethertype === 'IPv6') protocol = 'ipv6-icmp';
  }
  const min = body.port_range_min ?? null, max = body.port_range_max ?? null;
  if (min !== null || max !== null) {
    if (protocol === null) throw invalidInput('Must also specify protocol if port range is given.');
    // Neutron's wording (clients and tempest match on it).
    const bad = [min, max].find((p) => p !== null && (p < 0 || p > 65535));
    if (bad !== undefined) throw invalidInput(`Invalid value for port ${bad}`);
    if (PORTED.includes(protocol)) {
      const zero = [min, max].find((p) => p === 0);
      if (zero !== undefined) throw invalidInput(`Invalid value for port ${zero}`);
      if (min === null || (max !== null && min > max)) throw invalidInput('For TCP/UDP protocols, port_range_min must be <= port_range_max');
    } else if (ICMP.includes(protocol)) {
      for (const [field, attr, v] of [['type', 'port-range-min', min], ['code', 'port-range-max', max]] as const) {
        if (v !== null && v > 255) throw invalidInput(`Invalid value for ICMP ${field} (${attr}) ${v}. It must be 0 to 255.`);
      }
      if (min === null && max !== null) throw invalidInput(`ICMP code (port-range-max) ${max} is provided but ICMP type (port-range-min) is missing.`);
    } else throw invalidInput(`Protocol ${protocol} does not support port ranges.`);
  }
  let prefix: string | null = body.remote_ip_prefix ?? null;
  let normalized: string | null = null;
  if (prefix !== null) {
    const cidr = parseCidr(prefix, false);
    if (!cidr) throw invalidInput(`'${prefix}' is not a valid IP prefix`);
    if ((cidr.version === 4 ? 'IPv4' : 'IPv6') !== ethertype) {
      throw invalidInput(`Conflicting value ethertype ${ethertype} for CIDR ${prefix}`);
    }
    normalized = formatCidr(cidr);
    if (!prefix.includes('/')) prefix = normalized;
  }
  if (prefix !== null && body.remote_group_id) throw invalidInput('Only remote_ip_prefix or remote_group_id may be provided.');
  return {
    direction, ethertype, protocol, port_range_min: min, port_range_max: max === null && min !== null && PORTED.includes(protocol!) ? min : max,
    remote_ip_prefix: prefix, normalized_cidr: normalized, remote_group_id: body.remote_group_id ?? null,
    description: body.description ?? '',
  };
}

export async function deleteRule(c: Core, caller: Caller, id: string): Promise<void> {
  const rule = await c.owned(caller, 'security_group_rule', id);
  c.enforce(caller, 'delete_security_group_rule', c.target(rule));
  await c.store.delete('security_group_rule', id);
  const sg = await c.store.get('security_group', rule.security_group_id);
  if (sg) await c.store.update('security_group', c.touch(sg));
}

export async function updateRule(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const rule = await c.owned(caller, 'security_group_rule', id);
  c.enforce(caller, 'update_security_group_rule', c.target(rule));
  if (body.description !== undefined) rule.description = body.description;
  await c.store.update('security_group_rule', c.touch(rule));
  return rule;
}
