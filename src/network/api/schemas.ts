// Request bodies (TypeBox): unknown attributes and wrong types are refused with a 400 at the edge.
import { Type as T, type Static, type TSchema } from '@sinclair/typebox';

const Name = T.String({ maxLength: 255 });
const Desc = T.String({ maxLength: 255 });
const Id = T.String({ minLength: 1, maxLength: 255 });
const Bool = T.Union([T.Boolean(), T.String({ pattern: '^([Tt]rue|[Ff]alse|TRUE|FALSE)$' })]);
// `type: [t, 'null']`, not anyOf: with Ajv's coerceTypes an anyOf tries the first branch and turns
// null into "" (gateway_ip: null became '' and was refused).
const Nullable = <S extends TSchema>(s: S) =>
  T.Unsafe<Static<S> | null>(typeof s.type === 'string' ? { ...s, type: [s.type, 'null'] } : T.Union([s, T.Null()]));
// Neutron converts these attributes with convert_to_int: a JSON integer or a string of digits
// (bodies are validated without type coercion; `intAttributes` turns the string into the number).
const Int = T.Union([T.Integer(), T.String({ pattern: '^-?[0-9]+$', maxLength: 20 })]);
const INT_ATTRS = ['mtu', 'provider:segmentation_id', 'ip_version', 'prefixlen', 'port_range_min', 'port_range_max'];
const owner = { project_id: T.Optional(Id), tenant_id: T.Optional(Id) };
const common = { name: T.Optional(Name), description: T.Optional(Desc) };

const Route = T.Object({ destination: T.String(), nexthop: T.String() }, { additionalProperties: false });
const FixedIp = T.Object({ subnet_id: T.Optional(Id), ip_address: T.Optional(T.String()) }, { additionalProperties: false });
const Pair = T.Object({ ip_address: T.String(), mac_address: T.Optional(Nullable(T.String())) }, { additionalProperties: false });

const networkAttrs = {
  ...common, admin_state_up: T.Optional(Bool), shared: T.Optional(Bool), 'router:external': T.Optional(Bool),
  mtu: T.Optional(Int), port_security_enabled: T.Optional(Bool),
  'provider:network_type': T.Optional(T.String()), 'provider:physical_network': T.Optional(Nullable(T.String())),
  'provider:segmentation_id': T.Optional(Nullable(Int)),
  availability_zone_hints: T.Optional(T.Array(T.String())), is_default: T.Optional(T.Boolean()),
};
const subnetUpdate = {
  ...common, gateway_ip: T.Optional(Nullable(T.String())), enable_dhcp: T.Optional(Bool),
  allocation_pools: T.Optional(T.Array(T.Object({ start: T.String(), end: T.String() }, { additionalProperties: false }))),
  dns_nameservers: T.Optional(T.Array(T.String())), host_routes: T.Optional(T.Array(Route)),
};
const portUpdate = {
  ...common, admin_state_up: T.Optional(Bool), device_id: T.Optional(T.String({ maxLength: 255 })),
  device_owner: T.Optional(T.String({ maxLength: 255 })), fixed_ips: T.Optional(T.Array(FixedIp)),
  mac_address: T.Optional(T.String()), security_groups: T.Optional(Nullable(T.Array(Id))),
  port_security_enabled: T.Optional(Bool), allowed_address_pairs: T.Optional(Nullable(T.Array(Pair))),
  'binding:host_id': T.Optional(Nullable(T.String())), 'binding:profile': T.Optional(Nullable(T.Record(T.String(), T.Unknown()))),
  'binding:vnic_type': T.Optional(T.Union([T.Literal('normal'), T.Literal('direct'), T.Literal('macvtap'), T.Literal('baremetal'), T.Literal('virtio-forwarder')])),
};
const Gateway = Nullable(T.Object({
  network_id: T.Optional(Id), enable_snat: T.Optional(Bool),
  external_fixed_ips: T.Optional(T.Array(FixedIp)),
}, { additionalProperties: false }));
const routerUpdate = {
  ...common, admin_state_up: T.Optional(Bool), external_gateway_info: T.Optional(Gateway),
  routes: T.Optional(Nullable(T.Array(Route))),
};

const wrap = (key: string, attrs: Record<string, TSchema>, required: string[] = []) => T.Object({
  [key]: T.Object(Object.fromEntries(Object.entries(attrs).map(([k, s]) => [k, required.includes(k) ? stripOptional(s) : s])),
    { additionalProperties: false }),
}, { additionalProperties: false });

// TypeBox marks optional properties with a symbol; a required field is the same schema without it.
function stripOptional(s: TSchema): TSchema {
  const copy = { ...s };
  for (const sym of Object.getOwnPropertySymbols(s)) if (String(sym).includes('Optional')) delete (copy as Record<symbol, unknown>)[sym];
  return copy;
}

export const Schemas = {
  network: {
    create: wrap('network', { ...networkAttrs, ...owner }),
    update: wrap('network', networkAttrs),
  },
  subnet: {
    create: wrap('subnet', {
      ...subnetUpdate, ...owner, network_id: T.Optional(Id), ip_version: T.Optional(T.Union([T.Literal(4), T.Literal(6), T.Literal('4'), T.Literal('6')])),
      cidr: T.Optional(T.String()), ipv6_ra_mode: T.Optional(Nullable(T.String({ enum: ['slaac', 'dhcpv6-stateful', 'dhcpv6-stateless'] }))),
      ipv6_address_mode: T.Optional(Nullable(T.String({ enum: ['slaac', 'dhcpv6-stateful', 'dhcpv6-stateless'] }))),
      subnetpool_id: T.Optional(T.Null()), use_default_subnetpool: T.Optional(T.Literal(false)),
      prefixlen: T.Optional(Int), segment_id: T.Optional(T.Null()), service_types: T.Optional(T.Array(T.String(), { maxItems: 0 })),
    }, ['network_id']),
    update: wrap('subnet', subnetUpdate),
  },
  port: {
    create: wrap('port', { ...portUpdate, ...owner, network_id: T.Optional(Id) }, ['network_id']),
    update: wrap('port', portUpdate),
  },
  router: {
    create: wrap('router', { ...routerUpdate, ...owner, availability_zone_hints: T.Optional(T.Array(T.String())), distributed: T.Optional(T.Literal(false)), ha: T.Optional(T.Literal(false)) }),
    update: wrap('router', routerUpdate),
  },
  floatingip: {
    create: wrap('floatingip', {
      ...owner, description: T.Optional(Desc), floating_network_id: T.Optional(Id), port_id: T.Optional(Nullable(Id)),
      fixed_ip_address: T.Optional(T.String()), floating_ip_address: T.Optional(T.String()), subnet_id: T.Optional(Id),
    }, ['floating_network_id']),
    update: wrap('floatingip', { description: T.Optional(Desc), port_id: T.Optional(Nullable(Id)), fixed_ip_address: T.Optional(T.String()) }),
  },
  security_group: {
    create: wrap('security_group', { ...common, ...owner, stateful: T.Optional(T.Boolean()) }),
    update: wrap('security_group', { ...common, stateful: T.Optional(T.Boolean()) }),
  },
  security_group_rule: {
    create: wrap('security_group_rule', {
      ...owner, description: T.Optional(Desc), security_group_id: T.Optional(Id), direction: T.Optional(T.String()),
      ethertype: T.Optional(T.String()), protocol: T.Optional(Nullable(T.Union([T.String(), T.Integer()]))),
      port_range_min: T.Optional(Nullable(Int)), port_range_max: T.Optional(Nullable(Int)),
      remote_ip_prefix: T.Optional(Nullable(T.String())), remote_group_id: T.Optional(Nullable(Id)),
      remote_address_group_id: T.Optional(T.Null()),
    }, ['security_group_id', 'direction']),
    update: wrap('security_group_rule', { description: T.Optional(Desc) }),
  },
  rbac_policy: {
    create: wrap('rbac_policy', {
      ...owner, object_type: T.Optional(T.String()), object_id: T.Optional(Id), action: T.Optional(T.String()),
      target_tenant: T.Optional(Id),
    }, ['object_type', 'object_id', 'action', 'target_tenant']),
    update: wrap('rbac_policy', { target_tenant: T.Optional(Id) }),
  },
};

/**
 * A create body: one resource (`{"network": {...}}`) or Neutron's bulk form (`{"networks": [...]}`).
 * Exactly one of the two keys (the route checks it, with Neutron's message).
 */
export function createBody(kind: keyof typeof Schemas, collection: string): TSchema {
  const one = (Schemas[kind].create as unknown as { properties: Record<string, TSchema> }).properties[kind]!;
  return T.Object({ [kind]: T.Optional(one), [collection]: T.Optional(T.Array(one, { minItems: 1, maxItems: 1000 })) },
    { additionalProperties: false });
}

/** The integer attributes of a validated resource body as numbers (Neutron's convert_to_int). */
export function intAttributes<B extends Record<string, unknown>>(body: B): B {
  for (const k of INT_ATTRS) if (typeof body[k] === 'string') (body as Record<string, unknown>)[k] = Number(body[k]);
  return body;
}

export const AgentBody = T.Object({
  agent: T.Object({ admin_state_up: T.Optional(Bool), description: T.Optional(Desc) }, { additionalProperties: false }),
}, { additionalProperties: false });

export const InterfaceBody = T.Object({ subnet_id: T.Optional(Id), port_id: T.Optional(Id) }, { additionalProperties: false });
export const RoutesBody = T.Object({ router: T.Object({ routes: T.Array(Route) }, { additionalProperties: false }) }, { additionalProperties: false });
export const QuotaBody = T.Object({ quota: T.Record(T.String(), T.Union([T.Integer(), T.String(), T.Boolean()])) }, { additionalProperties: false });
