// Placement: resource providers, inventories, allocations and allocation candidates, at /placement.
import { authenticate, authOf, type TokenValidator } from '../core/auth.js';
import { placementError } from '../core/errors.js';
import { useErrorStyle } from '../core/http.js';
import type { ServiceContext, ServiceModule } from '../core/service.js';
import { AllocationService } from './allocations.js';
import { allocationRoutes } from './api/allocations.js';
import { catalogRoutes } from './api/catalog.js';
import type { Deps } from './api/deps.js';
import { providerRoutes } from './api/providers.js';
import { createPlacementClient, type PlacementClient } from './client.js';
import { cacheHeaders, MAX_VERSION, MIN_VERSION, negotiate } from './microversion.js';
import { migrations } from './migrations.js';
import { PlacementService } from './service.js';

export type { PlacementClient } from './client.js';

/** Placement's defaults: admin (or a service user) only, like upstream; system readers may read. */
const READ = 'rule:cloud_reader or role:service';
const WRITE = 'rule:admin or role:service';
const RULES: Record<string, string> = {};
for (const r of ['resource_providers:list', 'resource_providers:show', 'resource_providers:inventories:list',
  'resource_providers:inventories:show', 'resource_providers:traits:list', 'resource_providers:aggregates:list',
  'resource_providers:usages', 'resource_providers:allocations:list', 'usages', 'resource_classes:list',
  'resource_classes:show', 'traits:list', 'traits:show', 'allocations:list', 'allocation_candidates:list']) RULES[`placement:${r}`] = READ;
for (const r of ['resource_providers:create', 'resource_providers:update', 'resource_providers:delete',
  'resource_providers:inventories:create', 'resource_providers:inventories:update', 'resource_providers:inventories:delete',
  'resource_providers:traits:update', 'resource_providers:traits:delete', 'resource_providers:aggregates:update',
  'resource_classes:create', 'resource_classes:update', 'resource_classes:delete', 'traits:update', 'traits:delete',
  'allocations:update', 'allocations:delete', 'allocations:manage', 'reshaper:reshape']) RULES[`placement:${r}`] = WRITE;

export interface PlacementModule extends ServiceModule {
  /** The in-process interface for compute (scheduler, host registration). */
  client: PlacementClient;
  service: PlacementService;
}

export function createPlacement(ctx: ServiceContext, deps: { identity: TokenValidator }): PlacementModule {
  ctx.policy.registerDefaults(RULES);
  const log = ctx.log.child({ service: 'placement' });
  const svc = new PlacementService(ctx.db);
  const alloc = new AllocationService(svc, log);
  const d: Deps = {
    svc, alloc, baseUrl: ctx.baseUrl,
    enforce: (req, rule, target = {}) => ctx.policy.enforce(rule, authOf(req), target),
  };

  return {
    name: 'placement',
    prefix: '/placement',
    migrations,
    catalog: [{ type: 'placement', name: 'placement', path: '/placement' }],
    client: createPlacementClient(svc, alloc, log),
    service: svc,
    async routes(app) {
      useErrorStyle(app, placementError);
      app.addHook('onRequest', negotiate);
      app.addHook('onSend', cacheHeaders);
      // Version discovery answers without a token, as Placement's root does.
      app.get('/', async () => ({
        versions: [{ id: 'v1.0', max_version: MAX_VERSION, min_version: MIN_VERSION, status: 'CURRENT',
          links: [{ rel: 'self', href: '' }] }],
      }));
      await app.register(async (scope) => {
        scope.addHook('preHandler', authenticate(deps.identity));
        await providerRoutes(scope, d);
        await catalogRoutes(scope, d);
        await allocationRoutes(scope, d);
      });
    },
  };
}
