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

export interface IdentityModule extends ServiceModule, TokenValidator {
  /** Idempotent: creates the default domain, roles, admin/demo, region and catalog; refreshes endpoint URLs. */
  bootstrap(opts: BootstrapOptions): Promise<BootstrapResult>;
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
  };
}
