// Compute quotas live in identity's unified limits (one truth: `openstack quota set` and
// `openstack limit create` write the same rows). Resource names are Nova's unified-limit names.
import type { Kysely, Transaction } from 'kysely';
import { sql } from 'kysely';
import type { Engine } from '../core/db.js';
import { badRequest, forbidden } from '../core/errors.js';
import type { IdentityModule } from '../identity/index.js';

export interface QuotaResource {
  /** Name in os-quota-sets. */
  api: string;
  /** Name of the unified limit (service type compute). */
  limit: string;
  defaultLimit: number;
  description: string;
  /** Last microversion that shows it (Nova dropped the file-injection quotas at 2.57). */
  maxMinor?: number;
  /**
   * Before 2.36 Nova also showed network quotas; these are the network service's own unified
   * limits (service type network, registered by it), read and written through the same door.
   */
  service?: 'network';
}

export const QUOTA_RESOURCES: QuotaResource[] = [
  { api: 'instances', limit: 'servers', defaultLimit: 10, description: 'Servers per project' },
  { api: 'cores', limit: 'class:VCPU', defaultLimit: 20, description: 'vCPUs per project' },
  { api: 'ram', limit: 'class:MEMORY_MB', defaultLimit: 51200, description: 'RAM (MiB) per project' },
  { api: 'metadata_items', limit: 'server_metadata_items', defaultLimit: 128, description: 'Metadata items per server' },
  { api: 'key_pairs', limit: 'server_key_pairs', defaultLimit: 100, description: 'Key pairs per user' },
  { api: 'server_groups', limit: 'server_groups', defaultLimit: 10, description: 'Server groups per project' },
  { api: 'server_group_members', limit: 'server_group_members', defaultLimit: 10, description: 'Servers per server group' },
  { api: 'injected_files', limit: 'server_injected_files', defaultLimit: 5, description: 'Injected files per server', maxMinor: 56 },
  { api: 'injected_file_content_bytes', limit: 'server_injected_file_content_bytes', defaultLimit: 10240, description: 'Bytes per injected file', maxMinor: 56 },
  { api: 'injected_file_path_bytes', limit: 'server_injected_file_path_bytes', defaultLimit: 255, description: 'Bytes per injected file path', maxMinor: 56 },
  ...([['floating_ips', 'floatingip'], ['fixed_ips', 'port'], ['security_groups', 'security_group'], ['security_group_rules', 'security_group_rule']] as const)
    .map(([api, limit]): QuotaResource => ({ api, limit, defaultLimit: -1, description: `Network ${limit} quota`, maxMinor: 35, service: 'network' })),
];

/** Network quotas shown by os-quota-sets before 2.36, as the network service names them. */
export const NETWORK_PROXIED = QUOTA_RESOURCES.filter((r) => r.service === 'network');
const serviceOf = (r: QuotaResource) => r.service ?? 'compute';

const BY_API = new Map(QUOTA_RESOURCES.map((r) => [r.api, r]));

/** Current consumption of a project, by os-quota-sets name. */
export type Usage = Partial<Record<string, number>>;
/** Narrows a count: key pairs are counted per user. */
export interface UsageScope { userId?: string }
export type UsageCounter = (db: Kysely<any>, projectId: string, scope: UsageScope) => Promise<Usage>;

export class QuotaService {
  /** Counters contributed by the parts of compute that own the counted rows. */
  private readonly counters: UsageCounter[] = [];

  // Limits are region-less: `openstack limit create` without --region and os-quota-sets agree.
  constructor(private readonly db: Kysely<any>, private readonly engine: Engine,
    private readonly identity: IdentityModule) {}

  addCounter(c: UsageCounter): void { this.counters.push(c); }

  async registerDefaults(): Promise<void> {
    for (const r of QUOTA_RESOURCES) {
      if (r.service) continue; // registered by their own service
      await this.identity.ensureRegisteredLimit({
        serviceType: 'compute', resourceName: r.limit, defaultLimit: r.defaultLimit, description: r.description,
      });
    }
  }

  /** The project's limits (its own, else the registered defaults); -1 means unlimited. */
  async limits(projectId: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of QUOTA_RESOURCES) {
      const v = await this.identity.getLimit({ projectId, serviceType: serviceOf(r), resourceName: r.limit });
      out[r.api] = v ?? -1;
    }
    return out;
  }

  defaults(): Promise<Record<string, number>> {
    return this.limits(''); // no project has the empty id: the registered defaults answer
  }

  async limit(projectId: string, api: string): Promise<number> {
    const r = BY_API.get(api)!;
    return (await this.identity.getLimit({ projectId, serviceType: serviceOf(r), resourceName: r.limit })) ?? -1;
  }

  async usage(projectId: string, db: Kysely<any> = this.db, scope: UsageScope = {}): Promise<Usage> {
    const out: Usage = {};
    for (const c of this.counters) Object.assign(out, await c(db, projectId, scope));
    return out;
  }

  /** Writes the project's limits. Refuses a limit below current usage unless `force`. */
  async update(projectId: string, values: Record<string, number>, force: boolean): Promise<void> {
    for (const [k, v] of Object.entries(values)) {
      if (!BY_API.has(k)) throw badRequest(`Invalid input for field/attribute quota_set. Unknown quota '${k}'.`);
      if (!Number.isInteger(v) || v < -1) throw badRequest(`Invalid input for field/attribute ${k}. Value must be an integer >= -1.`);
    }
    if (!force) {
      const used = await this.usage(projectId);
      for (const [k, v] of Object.entries(values)) {
        const u = used[k] ?? 0;
        if (v !== -1 && v < u) {
          throw badRequest(`Quota limit ${v} for ${k} must be greater than or equal to already used and reserved ${u}.`);
        }
      }
    }
    for (const [k, v] of Object.entries(values)) {
      const r = BY_API.get(k)!;
      await this.identity.setProjectLimit({ projectId, serviceType: serviceOf(r), resourceName: r.limit, value: v });
    }
  }

  /** os-quota-class-sets/default: the registered (default) limits of these resources. */
  async updateDefaults(values: Record<string, number>): Promise<void> {
    for (const [k, v] of Object.entries(values)) {
      const r = BY_API.get(k);
      if (!r) throw badRequest(`Invalid input for field/attribute quota_class_set. Unknown quota '${k}'.`);
      if (!Number.isInteger(v) || v < -1) throw badRequest(`Invalid input for field/attribute ${k}. Value must be an integer >= -1.`);
    }
    for (const [k, v] of Object.entries(values)) {
      const r = BY_API.get(k)!;
      await this.identity.setRegisteredLimit({ serviceType: serviceOf(r), resourceName: r.limit, value: v });
    }
  }

  /** DELETE os-quota-sets: the project's limits go back to today's defaults. */
  async reset(projectId: string): Promise<void> {
    const d = await this.defaults();
    for (const r of QUOTA_RESOURCES) {
      if (r.service) continue; // the network service's own quotas stay as they are
      await this.identity.setProjectLimit({ projectId, serviceType: 'compute', resourceName: r.limit, value: d[r.api]! });
    }
  }

  /**
   * Runs `fn` in a transaction in which the project's usage cannot change concurrently
   * (PostgreSQL: an advisory lock per project; SQLite: write transactions are serialised),
   * after checking that `delta` more fits in the project's limits. This is what makes quota
   * enforcement atomic with the insert that consumes it.
   */
  async consume<T>(projectId: string, delta: Record<string, number>, fn: (tx: Transaction<any>) => Promise<T>,
    scope: UsageScope = {}): Promise<T> {
    const limits: Record<string, number> = {};
    for (const k of Object.keys(delta)) limits[k] = await this.limit(projectId, k);
    return this.db.transaction().execute(async (tx) => {
      await lockProject(tx, this.engine, projectId);
      const used = await this.usage(projectId, tx, scope);
      const over = Object.keys(delta).filter((k) => limits[k]! >= 0 && (used[k] ?? 0) + delta[k]! > limits[k]!);
      if (over.length) {
        const k = over[0]!;
        throw forbidden(`Quota exceeded for ${over.join(', ')}: Requested ${delta[k]}, but already used ${used[k] ?? 0} of ${limits[k]} ${k}`);
      }
      return fn(tx);
    });
  }
}

/** Serialises quota-consuming transactions of one project. */
export async function lockProject(tx: Transaction<any>, engine: Engine, projectId: string): Promise<void> {
  if (engine === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${'compute-quota:' + projectId}))`.execute(tx);
}
