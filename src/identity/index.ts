// Identity (Keystone v3). PLACEHOLDER from the skeleton commit: the identity issue replaces it.
import type { AuthContext, TokenValidator } from '../core/auth.js';
import { unauthorized } from '../core/errors.js';
import type { CatalogEntry, ServiceContext, ServiceModule } from '../core/service.js';
import { secret } from '../core/ids.js';

export interface BootstrapOptions {
  catalog: CatalogEntry[];
  baseUrl: string;
  regionId: string;
}

export interface BootstrapResult {
  /** Generated passwords, only on the start that created the users. */
  adminPassword?: string;
  demoPassword?: string;
}

export interface LimitQuery {
  projectId: string;
  serviceType: string;    // 'image', 'compute', 'network', ...
  resourceName: string;   // 'image_count_total', 'instances', ...
  regionId?: string;
}

export interface ProjectInfo {
  id: string;
  name: string;
  domainId: string;
  enabled: boolean;
  parentId: string | null;
}

/** What the server and other services may call on identity (in-process; an HTTP client later). */
export interface IdentityModule extends ServiceModule, TokenValidator {
  /** Idempotent: creates the default domain, roles, admin/demo, region and catalog; refreshes endpoint URLs. */
  bootstrap(opts: BootstrapOptions): Promise<BootstrapResult>;
  /** Unified limits: the project's limit, else the registered default; undefined when none is registered. */
  getLimit(q: LimitQuery): Promise<number | undefined>;
  /** Creates or updates the project's limit (os-quota-sets and Neutron quotas write through this). */
  setProjectLimit(q: LimitQuery & { value: number }): Promise<void>;
  /** Registers a default limit if none exists yet (services call this at start for their resources). */
  ensureRegisteredLimit(q: Omit<LimitQuery, 'projectId'> & { defaultLimit: number; description?: string }): Promise<void>;
  getProject(id: string): Promise<ProjectInfo | undefined>;
}

export function createIdentity(ctx: ServiceContext): IdentityModule {
  return {
    name: 'identity',
    prefix: '/identity',
    migrations: {},
    catalog: [{ type: 'identity', name: 'keystone', path: '/identity/v3' }],
    async routes(app) {
      app.get('/', async () => ({ versions: { values: [] } }));
    },
    async bootstrap() {
      ctx.log.warn('identity placeholder');
      return { adminPassword: secret(12), demoPassword: secret(12) };
    },
    async validateToken(): Promise<AuthContext> {
      throw unauthorized();
    },
    async getLimit() { return undefined; },
    async setProjectLimit() { throw new Error('not implemented yet'); },
    async ensureRegisteredLimit() { /* placeholder */ },
    async getProject() { return undefined; },
  };
}
