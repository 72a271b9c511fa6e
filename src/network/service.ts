// The networking service's typed interface: what the API routes, compute and the host agent call.
import type { HostNetworkState } from '../agent/dataplane/model.js';
import type { Database } from '../core/db.js';
import type { Logger } from '../core/log.js';
import {
  Core, DEFAULT_NET_CONFIG, forbidden, invalidInput, notFoundOf, systemCaller,
  type Caller, type Limits, type NetConfig,
} from './core.js';
import * as agents from './agents.js';
import { buildHostState, scheduleUnhosted } from './hoststate.js';
import * as nets from './networks.js';
import * as ports from './ports.js';
import * as quotas from './quotas.js';
import { createRbac, deleteRbac, updateRbac } from './rbac.js';
import * as l3 from './routers.js';
import * as sgs from './secgroups.js';
import { NetworkStore, type Doc, type Kind } from './store.js';

/** A caller acting for one project without a token (compute on behalf of a server's owner). */
export function projectCaller(projectId: string): Caller {
  return {
    projectId, isAdmin: false,
    check: (_rule, target) => {
      const owner = target.project_id;
      return owner === undefined || owner === '' || owner === projectId || target.network_project_id === projectId;
    },
  };
}

const ownerOf = (caller: Caller, body: Record<string, any>): string =>
  String(body.project_id ?? body.tenant_id ?? caller.projectId);

/** How each kind is created inside a transaction, and the quotas a create counts against. */
const CREATE: Record<Kind, (c: Core, caller: Caller, body: Record<string, any>) => Promise<Doc>> = {
  network: nets.createNetwork, subnet: nets.createSubnet, port: ports.createPort, router: l3.createRouter,
  floatingip: l3.createFloatingIp, security_group: sgs.createSecurityGroup, security_group_rule: sgs.createRule,
  rbac_policy: createRbac,
};
const QUOTA_OF: Record<Kind, string[]> = {
  network: ['network'], subnet: ['subnet'], port: ['port'], router: ['router'], floatingip: ['floatingip'],
  security_group: ['security_group', 'security_group_rule'], security_group_rule: ['security_group_rule'], rbac_policy: ['rbac_policy'],
};

export class NetworkService {
  readonly core: Core;
  private readonly changeListeners = new Set<() => void>();

  constructor(db: Database, limits: Limits, log: Logger, cfg: NetConfig = DEFAULT_NET_CONFIG) {
    const notify = () => { for (const l of this.changeListeners) l(); };
    this.core = new Core(new NetworkStore(db.kysely, db.engine, notify), limits, log, cfg);
  }

  private run<T>(fn: (c: Core) => Promise<T>, projectId?: string, ...resources: string[]): Promise<T> {
    return this.core.retrying(fn, ...(projectId && resources.length ? [{ projectId, resources }] : []));
  }

  // ---- reads ----

  async get(kind: Kind, caller: Caller, id: string): Promise<Doc> {
    if (kind === 'network') return this.core.visibleNetwork(caller, id);
    if (kind === 'subnet') return nets.visibleSubnet(this.core, caller, id);
    if (kind === 'security_group' || kind === 'security_group_rule') await this.ensureDefault(caller);
    return this.core.owned(caller, kind, id);
  }

  /** Everything of `kind` the caller may see (filters, sorting and paging are the API's). */
  async list(kind: Kind, caller: Caller): Promise<Doc[]> {
    const s = this.core.store;
    if (kind === 'security_group' || kind === 'security_group_rule') await this.ensureDefault(caller);
    if (kind === 'network' || kind === 'subnet') {
      const all = await s.find('network');
      const pols = await s.find('rbac_policy', { object_type: 'network' });
      const visible = new Set<string>();
      for (const n of all) {
        const access = caller.isAdmin || n.project_id === caller.projectId || n.shared || n['router:external'] ||
          pols.some((p) => p.object_id === n.id && (p.target_tenant === '*' || p.target_tenant === caller.projectId))
          ? (n.project_id === caller.projectId || caller.isAdmin ? n.project_id : caller.projectId) : undefined;
        if (access && caller.check('get_network', { ...n, project_id: access })) visible.add(n.id);
      }
      if (kind === 'network') return all.filter((n) => visible.has(n.id));
      return (await s.find('subnet')).filter((x) => visible.has(x.network_id));
    }
    const docs = caller.isAdmin ? await s.find(kind) : await s.find(kind, { project_id: caller.projectId });
    const mine = new Set<string>();
    if (kind === 'port' && !caller.isAdmin) {
      // Network owners also see the ports others made on their networks.
      for (const n of await s.find('network', { project_id: caller.projectId })) mine.add(n.id);
      docs.push(...(await s.find('port', { network_id: [...mine] })).filter((p) => p.project_id !== caller.projectId));
    }
    return docs.filter((d) => caller.check(`get_${kind}`, {
      ...d, project_id: d.project_id || caller.projectId, ...(mine.has(d.network_id) ? { network_project_id: caller.projectId } : {}),
    }));
  }

  private async ensureDefault(caller: Caller): Promise<void> {
    if (caller.projectId) await this.run((c) => sgs.ensureDefaultSecurityGroup(c, caller.projectId));
  }

  /** The API representation: computed attributes added, admin-only ones hidden from others. */
  async views(kind: Kind, caller: Caller, docs: Doc[]): Promise<Record<string, unknown>[]> {
    const s = this.core.store;
    let subnetsOf = new Map<string, string[]>();
    let sharedTo = new Set<string>();
    let rulesOf = new Map<string, Doc[]>();
    if (kind === 'network') {
      for (const sub of await s.find('subnet', { network_id: docs.map((d) => d.id) })) {
        subnetsOf.set(sub.network_id, [...subnetsOf.get(sub.network_id) ?? [], sub.id]);
      }
      for (const p of await s.find('rbac_policy', { object_type: 'network', action: 'access_as_shared' })) {
        if (p.target_tenant === '*' || p.target_tenant === caller.projectId) sharedTo.add(p.object_id);
      }
    }
    if (kind === 'security_group') {
      for (const r of await s.find('security_group_rule', { security_group_id: docs.map((d) => d.id) })) {
        rulesOf.set(r.security_group_id, [...rulesOf.get(r.security_group_id) ?? [], r]);
      }
    }
    const providerOk = kind === 'network' && caller.check('get_network:provider', {});
    const bindingOk = kind === 'port' && caller.check('get_port:binding', {});
    return docs.map((d) => {
      const v: Record<string, unknown> = {};
      for (const [k, val] of Object.entries(d)) if (!k.startsWith('_')) v[k] = val;
      if (kind === 'network') {
        v.subnets = subnetsOf.get(d.id) ?? [];
        v.shared = Boolean(d.shared) || sharedTo.has(d.id);
        if (!providerOk) for (const k of ['provider:network_type', 'provider:physical_network', 'provider:segmentation_id']) delete v[k];
      }
      if (kind === 'port' && !bindingOk) {
        for (const k of ['binding:host_id', 'binding:profile', 'binding:vif_type', 'binding:vif_details']) delete v[k];
      }
      if (kind === 'security_group') v.security_group_rules = rulesOf.get(d.id) ?? [];
      return v;
    });
  }

  // ---- writes (one transaction each; retried when a concurrent writer won a unique value) ----

  /**
   * Neutron's bulk create (`{"networks": [...]}`): all of them in one transaction, or none (the
   * first refused one refuses the request; quotas count the earlier ones of the same request).
   */
  async bulkCreate(kind: Kind, caller: Caller, bodies: Array<Record<string, any>>): Promise<Doc[]> {
    const quotas = [];
    for (const body of bodies) {
      const projectId = kind === 'security_group_rule'
        ? (await this.core.store.get('security_group', String(body.security_group_id ?? '')))?.project_id : ownerOf(caller, body);
      if (projectId) quotas.push({ projectId, resources: QUOTA_OF[kind] });
    }
    return this.core.retrying(async (c) => {
      const out: Doc[] = [];
      for (const body of bodies) out.push(await CREATE[kind](c, caller, body));
      return out;
    }, ...quotas);
  }

  createNetwork = (caller: Caller, body: Record<string, any>) => this.run((c) => nets.createNetwork(c, caller, body), ownerOf(caller, body), 'network');
  updateNetwork = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => nets.updateNetwork(c, caller, id, body));
  deleteNetwork = (caller: Caller, id: string) => this.run((c) => nets.deleteNetwork(c, caller, id));
  createSubnet = (caller: Caller, body: Record<string, any>) => this.run((c) => nets.createSubnet(c, caller, body), ownerOf(caller, body), 'subnet');
  updateSubnet = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => nets.updateSubnet(c, caller, id, body));
  deleteSubnet = (caller: Caller, id: string) => this.run((c) => nets.deleteSubnet(c, caller, id));
  createPort = (caller: Caller, body: Record<string, any>) => this.run((c) => ports.createPort(c, caller, body), ownerOf(caller, body), 'port');
  updatePort = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => ports.updatePort(c, caller, id, body));
  deletePort = (caller: Caller, id: string) => this.run((c) => ports.deletePort(c, caller, id));
  createRouter = (caller: Caller, body: Record<string, any>) => this.run((c) => l3.createRouter(c, caller, body), ownerOf(caller, body), 'router');
  updateRouter = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => l3.updateRouter(c, caller, id, body));
  deleteRouter = (caller: Caller, id: string) => this.run((c) => l3.deleteRouter(c, caller, id));
  addRouterInterface = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => l3.addInterface(c, caller, id, body));
  removeRouterInterface = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => l3.removeInterface(c, caller, id, body));
  createFloatingIp = (caller: Caller, body: Record<string, any>) => this.run((c) => l3.createFloatingIp(c, caller, body), ownerOf(caller, body), 'floatingip');
  updateFloatingIp = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => l3.updateFloatingIp(c, caller, id, body));
  deleteFloatingIp = (caller: Caller, id: string) => this.run((c) => l3.deleteFloatingIp(c, caller, id));
  createSecurityGroup = (caller: Caller, body: Record<string, any>) => this.run((c) => sgs.createSecurityGroup(c, caller, body), ownerOf(caller, body), 'security_group', 'security_group_rule');
  updateSecurityGroup = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => sgs.updateSecurityGroup(c, caller, id, body));
  deleteSecurityGroup = (caller: Caller, id: string) => this.run((c) => sgs.deleteSecurityGroup(c, caller, id));
  createSecurityGroupRule = async (caller: Caller, body: Record<string, any>) => {
    const sg = await this.core.store.get('security_group', String(body.security_group_id ?? ''));
    return this.run((c) => sgs.createRule(c, caller, body), sg?.project_id, 'security_group_rule');
  };
  updateSecurityGroupRule = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => sgs.updateRule(c, caller, id, body));
  deleteSecurityGroupRule = (caller: Caller, id: string) => this.run((c) => sgs.deleteRule(c, caller, id));
  createRbacPolicy = (caller: Caller, body: Record<string, any>) => this.run((c) => createRbac(c, caller, body), ownerOf(caller, body), 'rbac_policy');
  updateRbacPolicy = (caller: Caller, id: string, body: Record<string, any>) => this.run((c) => updateRbac(c, caller, id, body));
  deleteRbacPolicy = (caller: Caller, id: string) => this.run((c) => deleteRbac(c, caller, id));

  // ---- quotas (unified limits in identity, service type "network"; see quotas.ts) ----

  getQuota = (caller: Caller, projectId: string) => quotas.getQuota(this.core, caller, projectId);
  quotaDetails = (caller: Caller, projectId: string) => quotas.quotaDetails(this.core, caller, projectId);
  nonDefaultQuotas = (caller: Caller) => quotas.nonDefaultQuotas(this.core, caller);
  defaultQuota = () => quotas.defaultQuota();
  setQuota = (caller: Caller, projectId: string, values: Record<string, unknown>) => quotas.setQuota(this.core, caller, projectId, values);
  resetQuota = (caller: Caller, projectId: string) => quotas.resetQuota(this.core, caller, projectId);
  registerLimits = () => quotas.registerLimits(this.core);

  // ---- for compute (in-process; all take the server owner's project) ----

  /** Creates a port for a server on a network the project may use (`server create --network`). */
  async createServerPort(o: {
    projectId: string; serverId: string; networkId: string; fixedIp?: string; securityGroups?: string[];
    hostId?: string; availabilityZone?: string;
  }): Promise<Doc> {
    const caller = projectCaller(o.projectId);
    const sgIds = o.securityGroups ? await Promise.all(o.securityGroups.map((g) => this.resolveSecurityGroup(o.projectId, g))) : undefined;
    return this.run(async (c) => {
      const net = await c.visibleNetwork(caller, o.networkId);
      if (net['router:external'] && !net.shared && net.project_id !== o.projectId) {
        throw forbidden(`Servers cannot be attached to external network ${net.id}.`, 'PolicyNotAuthorized');
      }
      await c.checkQuota(o.projectId, 'port');
      return ports.createPortDoc(c, net, {
        project_id: o.projectId, device_owner: `compute:${o.availabilityZone ?? c.cfg.availabilityZone}`, device_id: o.serverId,
        fixed_ips: o.fixedIp ? [{ ip_address: o.fixedIp }] : undefined, security_groups: sgIds,
        'binding:host_id': o.hostId ?? '', __admin: false,
      });
    }, o.projectId, 'port');
  }

  /** Attaches an existing, unused port of the project to a server (`--nic port-id=`). */
  async claimPort(portId: string, o: { projectId: string; serverId: string; availabilityZone?: string }): Promise<Doc> {
    return this.run(async (c) => {
      const port = await c.store.get('port', portId);
      if (!port || port.project_id !== o.projectId) throw notFoundOf('port', portId);
      if (port.device_id && port.device_id !== o.serverId) {
        throw invalidInput(`Port ${portId} is still in use by ${port.device_owner} ${port.device_id}`);
      }
      Object.assign(port, { device_id: o.serverId, device_owner: `compute:${o.availabilityZone ?? c.cfg.availabilityZone}` });
      await c.store.update('port', c.touch(port));
      return port;
    });
  }

  /** Binds a port to the host its server runs on (the agent there plugs it); '' unbinds it. */
  bindPort = (portId: string, hostId: string) => this.run(async (c) => {
    const port = await c.store.get('port', portId);
    if (!port) throw notFoundOf('port', portId);
    ports.setBinding(port, hostId);
    await c.store.update('port', c.touch(port));
    return port;
  });

  unbindPort = (portId: string) => this.bindPort(portId, '');

  /**
   * Live migration of a server: its ports are plugged on `dest` too (the destination's data plane
   * builds the network and plugs the tap before the guest resumes there), or no more (null: the
   * move failed). Shown in binding:profile as Neutron does (`migrating_to`); binding the port to a
   * host (bindPort, at the switch-over) ends it.
   */
  markMigrating = (serverId: string, dest: string | null) => this.run(async (c) => {
    for (const port of await c.store.find('port', { device_id: serverId })) {
      if ((port._migrating_to ?? null) === dest) continue;
      ports.setMigratingTo(port, dest);
      await c.store.update('port', c.touch(port));
    }
  });

  /** Detaches a port from its server without deleting it (a port the user brought). */
  detachPort = (portId: string) => this.run(async (c) => {
    const port = await c.store.get('port', portId);
    if (!port) return;
    Object.assign(port, { device_id: '', device_owner: '' });
    ports.setBinding(port, '');
    await c.store.update('port', c.touch(port));
  });

  /** Deletes a port compute created (server delete, interface detach); unknown ids are ignored. */
  deleteServerPort = (portId: string) => this.run(async (c) => {
    const port = await c.store.get('port', portId);
    if (port) await ports.deletePortDoc(c, port);
  });

  serverPorts = (serverId: string) => this.core.store.find('port', { device_id: serverId });

  /** A security group id from a name or id the project can use (`server add security group`). */
  async resolveSecurityGroup(projectId: string, nameOrId: string): Promise<string> {
    await this.ensureDefault(projectCaller(projectId));
    const byId = await this.core.store.get('security_group', nameOrId);
    if (byId && byId.project_id === projectId) return byId.id;
    const named = (await this.core.store.find('security_group', { project_id: projectId })).filter((g) => g.name === nameOrId);
    if (named.length === 1) return named[0]!.id;
    if (named.length > 1) throw invalidInput(`Multiple security groups named ${nameOrId}; use an id`);
    throw notFoundOf('security_group', nameOrId);
  }

  /** Replaces a port's security groups (names or ids). */
  async setPortSecurityGroups(projectId: string, portId: string, groups: string[]): Promise<Doc> {
    const ids = await Promise.all(groups.map((g) => this.resolveSecurityGroup(projectId, g)));
    return this.updatePort(projectCaller(projectId), portId, { security_groups: ids });
  }

  /** Allocates a floating IP on `networkId` (default: the first external network). */
  async allocateFloatingIp(projectId: string, networkId?: string): Promise<Doc> {
    let net = networkId;
    if (!net) {
      const ext = (await this.core.store.find('network', { router_external: true }));
      if (!ext.length) throw notFoundOf('network', 'external');
      net = ext[0]!.id;
    }
    return this.createFloatingIp(projectCaller(projectId), { floating_network_id: net });
  }

  /** Associates a floating IP (id or address) with a port, or disassociates it (portId null). */
  async associateFloatingIp(projectId: string, fipIdOrAddress: string, portId: string | null, fixedIp?: string): Promise<Doc> {
    const fip = (await this.core.store.get('floatingip', fipIdOrAddress)) ??
      (await this.core.store.find('floatingip', { floating_ip_address: fipIdOrAddress, project_id: projectId }))[0];
    if (!fip || fip.project_id !== projectId) throw notFoundOf('floatingip', fipIdOrAddress);
    return this.updateFloatingIp(projectCaller(projectId), fip.id, { port_id: portId, ...(fixedIp ? { fixed_ip_address: fixedIp } : {}) });
  }

  // ---- agents (/v2.0/agents, derived from the registered hosts) ----

  listAgents = (caller: Caller) => agents.listAgents(this.core, caller);
  getAgent = (caller: Caller, id: string) => agents.getAgent(this.core, caller, id);
  updateAgent = (caller: Caller, id: string, body: Record<string, unknown>) =>
    this.run((c) => agents.updateAgent(c, caller, id, body));

  // ---- for the host agent ----

  /** The host's agent is alive (its state polls); no revision bump. */
  agentHeartbeat = (hostId: string) => this.core.store.agentHeartbeat(hostId, new Date().toISOString());

  /** Records an agent (its VXLAN underlay address) and its heartbeat. */
  async registerHost(hostId: string, underlayIp: string | null): Promise<void> {
    await this.core.store.upsertAgent({ host_id: hostId, underlay_ip: underlayIp, heartbeat_at: new Date().toISOString() });
  }

  /**
   * The network revision (kept in the database, so shared by every controller copy and kept
   * across restarts): it changes with every committed change host states are computed from.
   */
  stateRevision = (): Promise<number> => this.core.store.revision();

  /** `fn` runs after each change this process committed (other copies' changes: poll stateRevision). */
  onStateChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  /** The desired state of `hostId`'s data plane (schedules unhosted routers and DHCP first). */
  async hostNetworkState(hostId: string): Promise<HostNetworkState> {
    await this.scheduleUnhosted(hostId);
    return this.builtHostState(hostId);
  }

  /** Places routers and DHCP ports that have no host yet (on the first registered agent). */
  scheduleUnhosted = (hostId: string): Promise<void> => this.run((c) => scheduleUnhosted(c, hostId));

  /** The desired state of `hostId`'s data plane as the database says now (no scheduling). */
  builtHostState(hostId: string): Promise<HostNetworkState> {
    return this.core.store.tx((s) => buildHostState(new Core(s, this.core.limits, this.core.log, this.core.cfg), hostId));
  }

  /** The agent's observation of its ports: sets status ACTIVE/DOWN on ports bound to that host. */
  async reportPortStatus(hostId: string, statuses: Record<string, 'ACTIVE' | 'DOWN'>): Promise<number> {
    return this.run(async (c) => {
      let changed = 0;
      const bound = await c.store.find('port', { id: Object.keys(statuses), host_id: hostId });
      for (const p of bound) {
        const st = statuses[p.id];
        if (st !== 'ACTIVE' && st !== 'DOWN') continue;
        if (p.status !== st) {
          p.status = st;
          // A port's status is no part of any host's desired state: no revision bump.
          await c.store.update('port', c.touch(p), { hostState: false });
          changed++;
        }
      }
      return changed;
    });
  }

  // ---- bootstrap ----

  /** Creates the shared external network `public` (203.0.113.0/24, flat on physnet-public) once. */
  async bootstrapPublicNetwork(adminProjectId: string): Promise<void> {
    const existing = (await this.core.store.find('network', { router_external: true })).find((n) => n.name === 'public');
    const net = existing ?? await this.createNetwork(systemCaller, {
      name: 'public', project_id: adminProjectId, shared: true, 'router:external': true,
      'provider:network_type': 'flat', 'provider:physical_network': 'physnet-public', description: 'Stratus external network',
    });
    if (!(await this.core.store.find('subnet', { network_id: net.id })).length) {
      await this.createSubnet(systemCaller, {
        name: 'public-subnet', project_id: adminProjectId, network_id: net.id, ip_version: 4, cidr: '203.0.113.0/24',
        gateway_ip: '203.0.113.1', allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.250' }], enable_dhcp: false,
      });
    }
  }
}

export type { Caller, Doc, Kind };
