// The networking service module (Neutron v2.0 at /network): composed by server.ts after identity.
import type { IdentityModule } from '../identity/index.js';
import type { ServiceContext, ServiceModule } from '../core/service.js';
import { DEFAULT_NET_CONFIG, type NetConfig } from './core.js';
import { networkMigrations } from './migrations.js';
import { NETWORK_POLICY } from './policy.js';
import { networkRoutes } from './api/routes.js';
import { NetworkService } from './service.js';

export interface NetworkModule extends ServiceModule {
  /** The typed interface compute and the host agent call (in-process). */
  service: NetworkService;
}

export function createNetwork(ctx: ServiceContext, deps: { identity: IdentityModule }): NetworkModule {
  ctx.policy.registerDefaults(NETWORK_POLICY);
  const cfg: NetConfig = { ...DEFAULT_NET_CONFIG, ...(ctx.cfg.network as Partial<NetConfig> | undefined) };
  const service = new NetworkService(ctx.db, deps.identity, ctx.log.child({ service: 'network' }), cfg);
  return {
    name: 'network',
    prefix: '/network',
    migrations: networkMigrations,
    catalog: [{ type: 'network', name: 'neutron', description: 'Networking (Neutron v2.0)', path: '/network' }],
    service,
    async routes(app) {
      await networkRoutes(app, { service, policy: ctx.policy, validator: deps.identity, baseUrl: ctx.baseUrl });
    },
    async start() {
      await service.registerLimits();
      const admin = await deps.identity.findProject('admin');
      if (!admin) throw new Error('network: the bootstrap admin project is missing');
      await service.bootstrapPublicNetwork(admin.id);
    },
  };
}
