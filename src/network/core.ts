// What every part of the networking service shares: the caller, errors in Neutron's vocabulary,
// visibility rules, quotas and the bookkeeping attributes (revision, timestamps).
import { ApiError, badRequest, conflict, forbidden, notFound } from '../core/errors.js';
import { isoSeconds, uuid } from '../core/ids.js';
import type { Logger } from '../core/log.js';
import type { Target } from '../core/policy.js';
import { isUniqueViolation } from '../core/db.js';
import type { Doc, Kind, NetworkStore } from './store.js';

/** Who asks. Compute and the agent call in as `systemCaller` (admin, no project). */
export interface Caller {
  projectId: string;
  isAdmin: boolean;
  /** Evaluates a policy rule against a target (the API's policy engine, or "allow" for internal calls). */
  check(rule: string, target: Target): boolean;
}

export const systemCaller: Caller = { projectId: '', isAdmin: true, check: () => true };

/** Unified limits as the networking service uses them (identity's interface, or a fake in unit tests). */
export interface Limits {
  getLimit(q: { projectId: string; serviceType: string; resourceName: string }): Promise<number | undefined>;
  setProjectLimit(q: { projectId: string; serviceType: string; resourceName: string; value: number }): Promise<void>;
  ensureRegisteredLimit(q: { serviceType: string; resourceName: string; defaultLimit: number; description?: string }): Promise<void>;
  projectsWithLimits(serviceType: string): Promise<string[]>;
}

/** Quota resources, their Neutron defaults (-1: unlimited), and the kind they count. */
export const QUOTA_RESOURCES: Record<string, { kind: Kind; default: number }> = {
  network: { kind: 'network', default: 100 },
  subnet: { kind: 'subnet', default: 100 },
  port: { kind: 'port', default: 500 },
  router: { kind: 'router', default: 10 },
  floatingip: { kind: 'floatingip', default: 50 },
  security_group: { kind: 'security_group', default: 10 },
  security_group_rule: { kind: 'security_group_rule', default: 100 },
  rbac_policy: { kind: 'rbac_policy', default: 10 },
};

export const LABEL: Record<Kind, string> = {
  network: 'Network', subnet: 'Subnet', port: 'Port', router: 'Router', floatingip: 'Floating IP',
  security_group: 'Security group', security_group_rule: 'Security group rule', rbac_policy: 'RBAC policy',
};
const NOT_FOUND_TYPE: Record<Kind, string> = {
  network: 'NetworkNotFound', subnet: 'SubnetNotFound', port: 'PortNotFound', router: 'RouterNotFound',
  floatingip: 'FloatingIPNotFound', security_group: 'SecurityGroupNotFound',
  security_group_rule: 'SecurityGroupRuleNotFound', rbac_policy: 'RbacPolicyNotFound',
};

export const invalidInput = (message: string) => new ApiError(400, `Invalid input for operation: ${message}`, { type: 'InvalidInput' });
export const notFoundOf = (kind: Kind, id: string) =>
  notFound(`${LABEL[kind]} ${id} could not be found.`, NOT_FOUND_TYPE[kind]);
export { badRequest, conflict, forbidden, notFound };

export interface NetConfig {
  /** VXLAN VNIs handed to tenant networks, inclusive. */
  vniRange: [number, number];
  vlanRange: [number, number];
  /** Physical networks an admin may put flat/vlan provider networks on. */
  physicalNetworks: string[];
  /** MTU of the underlay; VXLAN networks get 50 bytes less. */
  underlayMtu: number;
  availabilityZone: string;
}

export const DEFAULT_NET_CONFIG: NetConfig = {
  vniRange: [1000, 65535],
  vlanRange: [100, 4094],
  physicalNetworks: ['physnet-public'],
  underlayMtu: 1500,
  availabilityZone: 'nova',
};

export class Core {
  constructor(
    readonly store: NetworkStore,
    readonly limits: Limits,
    readonly log: Logger,
    readonly cfg: NetConfig = DEFAULT_NET_CONFIG,
    /** Limits read before a transaction began ("project/resource" -> limit). */
    readonly prefetched: Map<string, number> = new Map(),
  ) {}

  /**
   * Reads the limits of `projectId` before a transaction: identity shares the database, and on
   * SQLite (one connection) calling it from inside our transaction would wait on ourselves.
   */
  async prefetchLimits(projectId: string, resources: string[]): Promise<Map<string, number>> {
    const m = new Map<string, number>();
    if (!projectId) return m;
    for (const r of resources) m.set(`${projectId}/${r}`, await this.limitOfDirect(projectId, r));
    return m;
  }

  now(): string {
    return isoSeconds(new Date());
  }

  /** The bookkeeping attributes every new resource carries. */
  base(projectId: string, extra: Record<string, unknown> = {}): Doc {
    const now = this.now();
    return {
      id: uuid(), project_id: projectId, tenant_id: projectId, created_at: now, updated_at: now,
      revision_number: 0, tags: [], description: '', ...extra,
    };
  }

  touch(doc: Doc): Doc {
    doc.updated_at = this.now();
    doc.revision_number = Number(doc.revision_number ?? 0) + 1;
    return doc;
  }

  /** The target policy rules see: the resource's attributes, with the owner as `project_id`. */
  target(doc: Doc, extra: Record<string, unknown> = {}): Target {
    return { ...doc, ...extra };
  }

  enforce(caller: Caller, rule: string, target: Target): void {
    if (!caller.check(rule, target)) throw forbidden(`(rule:${rule}) is disallowed by policy`, 'PolicyNotAuthorized');
  }

  /** Project a new resource belongs to: the caller's, or (admins only) the one asked for. */
  ownerFor(caller: Caller, body: { project_id?: string; tenant_id?: string }): string {
    const asked = body.project_id ?? body.tenant_id;
    if (body.project_id && body.tenant_id && body.project_id !== body.tenant_id) {
      throw invalidInput('project_id and tenant_id do not match');
    }
    if (asked && asked !== caller.projectId && !caller.isAdmin) {
      throw forbidden('Only admins can create resources on behalf of other projects.', 'PolicyNotAuthorized');
    }
    return asked ?? caller.projectId;
  }

  // ---- networks visibility (shared, RBAC, external) ----

  /** Projects a network is shared with through RBAC ('*' for everyone). */
  async rbacTargets(networkId: string): Promise<{ shared: string[]; external: string[] }> {
    const pols = await this.store.find('rbac_policy', { object_type: 'network', object_id: networkId });
    return {
      shared: pols.filter((p) => p.action === 'access_as_shared').map((p) => String(p.target_tenant)),
      external: pols.filter((p) => p.action === 'access_as_external').map((p) => String(p.target_tenant)),
    };
  }

  /** The project through which the caller may see the network, or undefined. */
  async networkAccess(caller: Caller, net: Doc): Promise<string | undefined> {
    if (caller.isAdmin) return net.project_id;
    if (net.project_id === caller.projectId) return net.project_id;
    if (net.shared || net['router:external']) return caller.projectId;
    const t = await this.rbacTargets(net.id);
    if ([...t.shared, ...t.external].some((p) => p === '*' || p === caller.projectId)) return caller.projectId;
    return undefined;
  }

  /** The network if the caller may see it; 404 otherwise (as Neutron, hiding what exists). */
  async visibleNetwork(caller: Caller, id: string): Promise<Doc> {
    const net = await this.store.get('network', id);
    const access = net && await this.networkAccess(caller, net);
    if (!net || !access || !caller.check('get_network', this.target(net, { project_id: access }))) {
      throw notFoundOf('network', id);
    }
    return net;
  }

  /** A project-owned resource (router, port, ...) the caller may read; 404 otherwise. */
  async owned(caller: Caller, kind: Kind, id: string): Promise<Doc> {
    const doc = await this.store.get(kind, id);
    if (!doc || !caller.check(`get_${kind}`, this.target(doc))) throw notFoundOf(kind, id);
    return doc;
  }

  // ---- quotas ----

  async limitOf(projectId: string, resource: string): Promise<number> {
    const cached = this.prefetched.get(`${projectId}/${resource}`);
    if (cached !== undefined) return cached;
    if (this.store.inTransaction) throw new Error(`network: limit ${projectId}/${resource} was not read before the transaction`);
    return this.limitOfDirect(projectId, resource);
  }

  private async limitOfDirect(projectId: string, resource: string): Promise<number> {
    const v = await this.limits.getLimit({ projectId, serviceType: 'network', resourceName: resource });
    return v ?? QUOTA_RESOURCES[resource]!.default;
  }

  async usage(projectId: string, resource: string): Promise<number> {
    return this.store.count(QUOTA_RESOURCES[resource]!.kind, { project_id: projectId });
  }

  /** 409 OverQuota when `projectId` already holds its limit of `resource` (`adding` more would exceed it). */
  async checkQuota(projectId: string, resource: string, adding = 1): Promise<void> {
    if (!projectId) return;
    const limit = await this.limitOf(projectId, resource);
    if (limit < 0) return;
    const used = await this.usage(projectId, resource);
    if (used + adding > limit) {
      throw conflict(`Quota exceeded for resources: ['${resource}'].`, 'OverQuota');
    }
  }

  /** Runs `fn` in a transaction, again (a few times) when a concurrent writer took a unique value first. */
  async retrying<T>(fn: (core: Core) => Promise<T>, ...quotas: Array<{ projectId: string; resources: string[] }>): Promise<T> {
    const limits = new Map<string, number>();
    for (const q of quotas) for (const [k, v] of await this.prefetchLimits(q.projectId, q.resources)) limits.set(k, v);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.tx((s) => fn(new Core(s, this.limits, this.log, this.cfg, limits)));
      } catch (e) {
        const retriable = e instanceof RetryError || isUniqueViolation(e);
        if (!retriable) throw e;
        if (attempt >= 8) throw conflict(e instanceof Error ? e.message : String(e), 'Conflict');
        await new Promise((r) => setTimeout(r, Math.random() * 20 * (attempt + 1)));
      }
    }
  }
}

/** Thrown inside `retrying` when the transaction lost a race and must start over. */
export class RetryError extends Error {}

/** Boolean attributes as Neutron accepts them ("True", "false", true, 1 ...). */
export function asBool(v: unknown, field: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v === 'string' && /^(true|false|1|0)$/i.test(v)) return /^(true|1)$/i.test(v);
  throw invalidInput(`'${String(v)}' cannot be converted to boolean for '${field}'`);
}
