// Neutron's agents (/v2.0/agents), derived from the registered host agents: every Stratus host
// agent runs the network side Neutron splits into four agents (L2 bridging/VXLAN, DHCP, L3
// routers, metadata proxy), so each registered host shows those four rows. `alive` comes from
// the host's heartbeats (its registration and its state polls); an admin may set
// `admin_state_up` (a DHCP or L3 agent that is down gets no new networks or routers) and
// `description`.
import { createHash } from 'node:crypto';
import { asBool, notFound, type Caller, type Core } from './core.js';
import type { AgentRow, Doc } from './store.js';

/** Neutron's agent_down_time default: no heartbeat for this long and the agent is dead. */
export const AGENT_DOWN_AFTER_SEC = 75;

export const AGENT_TYPES = {
  l2: { agent_type: 'Linux bridge agent', binary: 'neutron-linuxbridge-agent', topic: 'N/A', az: false },
  dhcp: { agent_type: 'DHCP agent', binary: 'neutron-dhcp-agent', topic: 'dhcp_agent', az: true },
  l3: { agent_type: 'L3 agent', binary: 'neutron-l3-agent', topic: 'l3_agent', az: true },
  metadata: { agent_type: 'Metadata agent', binary: 'neutron-metadata-agent', topic: 'N/A', az: false },
} as const;
export type AgentKind = keyof typeof AGENT_TYPES;

/** A stable UUID per (host, kind): the agents are derived, not stored. */
export function agentId(host: string, kind: AgentKind): string {
  const h = createHash('sha1').update(`stratus-agent/${host}/${kind}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Hosts that may take new DHCP ports or routers, in placement order: alive (a heartbeat within
 * AGENT_DOWN_AFTER_SEC: a host gone for good must not collect new networks that would never
 * work) and with their `kind` agent not set down by an admin.
 */
export async function schedulableHosts(c: Core, kind: 'dhcp' | 'l3', now = Date.now()): Promise<string[]> {
  const settings = await c.store.agentSettings();
  return (await c.store.agents())
    .filter((a) => now - Date.parse(a.heartbeat_at) < AGENT_DOWN_AFTER_SEC * 1000)
    .map((a) => a.host_id)
    .filter((h) => settings.get(agentId(h, kind))?.admin_state_up !== false);
}

export async function listAgents(c: Core, caller: Caller): Promise<Record<string, unknown>[]> {
  if (!caller.check('get_agent', {})) return [];
  const [hosts, settings] = await Promise.all([c.store.agents(), c.store.agentSettings()]);
  const ports = await c.store.find('port', { host_id: hosts.map((h) => h.host_id) });
  const fips = await c.store.find('floatingip');
  const routerHost = new Map((await c.store.find('router')).map((r) => [r.id, r._host as string | undefined]));
  const now = Date.now();
  return hosts.flatMap((h) => (Object.keys(AGENT_TYPES) as AgentKind[]).map((kind) => {
    const t = AGENT_TYPES[kind];
    const id = agentId(h.host_id, kind);
    const set = settings.get(id);
    const mine = ports.filter((p) => p['binding:host_id'] === h.host_id);
    return {
      id, agent_type: t.agent_type, binary: t.binary, topic: t.topic, host: h.host_id,
      admin_state_up: set?.admin_state_up ?? true, alive: now - Date.parse(h.heartbeat_at) < AGENT_DOWN_AFTER_SEC * 1000,
      availability_zone: t.az ? c.cfg.availabilityZone : null,
      configurations: configurations(kind, h, mine, {
        routers: [...routerHost.values()].filter((x) => x === h.host_id).length,
        floatingIps: fips.filter((f) => f.router_id && f.port_id && routerHost.get(f.router_id) === h.host_id).length,
      }),
      created_at: neutronTime(h.registered_at ?? h.heartbeat_at), started_at: neutronTime(h.registered_at ?? h.heartbeat_at),
      heartbeat_timestamp: neutronTime(h.heartbeat_at), description: set?.description ?? '',
      resources_synced: null,
    };
  }));
}

export async function getAgent(c: Core, caller: Caller, id: string): Promise<Record<string, unknown>> {
  const a = (await listAgents(c, caller)).find((x) => x.id === id);
  if (!a) throw notFound(`Agent ${id} could not be found.`, 'AgentNotFound');
  return a;
}

export async function updateAgent(c: Core, caller: Caller, id: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const a = await getAgent(c, caller, id);
  c.enforce(caller, 'update_agent', {});
  const admin = body.admin_state_up === undefined ? Boolean(a.admin_state_up) : asBool(body.admin_state_up, 'admin_state_up');
  await c.store.setAgentSettings(id, { admin_state_up: admin, description: String(body.description ?? a.description ?? '') });
  return getAgent(c, caller, id);
}

function configurations(kind: AgentKind, h: AgentRow, ports: Doc[], l3: { routers: number; floatingIps: number }): Record<string, unknown> {
  const owned = (o: string) => ports.filter((p) => p.device_owner === o);
  switch (kind) {
    case 'l2': return {
      bridge_mappings: { 'physnet-public': 'br-public' }, tunnel_types: h.underlay_ip ? ['vxlan'] : [],
      tunneling_ip: h.underlay_ip, devices: ports.length,
    };
    case 'dhcp': return { networks: new Set(owned('network:dhcp').map((p) => p.network_id)).size, ports: owned('network:dhcp').length, dhcp_driver: 'dnsmasq' };
    case 'l3': return {
      routers: l3.routers, ex_gw_ports: owned('network:router_gateway').length, interfaces: owned('network:router_interface').length,
      floating_ips: l3.floatingIps, agent_mode: 'legacy',
    };
    case 'metadata': return { metadata_proxy_socket: 'DATA_DIR/agent/metadata.sock' };
  }
}

/** Neutron's agent timestamps: "YYYY-MM-DD HH:MM:SS". */
function neutronTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z?$|Z$/, '');
}
