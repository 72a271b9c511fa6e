// The OpenStack compute API (Nova v2.1) of Stratus, mounted by the compute module under
// /compute: version discovery, microversions, and the resources built on compute's hosts and
// instances. createCompute (index.ts) calls createNovaApi and registers it with one line.
import type { FastifyRequest } from 'fastify';
import { authenticate } from '../core/auth.js';
import type { App } from '../core/http.js';
import type { ServiceMigrations } from '../core/db.js';
import type { CatalogEntry, ServiceContext } from '../core/service.js';
import type { IdentityModule } from '../identity/index.js';
import { AggregateService } from './aggregates.js';
import { registerAggregateRoutes } from './api/aggregates.js';
import type { RouteDeps } from './api/common.js';
import { registerFlavorRoutes } from './api/flavors.js';
import { registerHostRoutes } from './api/hosts.js';
import { registerKeypairRoutes } from './api/keypairs.js';
import { microversionHook } from './api/microversion.js';
import { registerQuotaRoutes } from './api/quotas.js';
import { registerNetworkProxyRoutes } from './api/network-proxies.js';
import { registerServerGroupRoutes } from './api/server-groups.js';
import { registerVersionRoutes } from './api/versions.js';
import { FlavorService } from './flavors.js';
import { HostDirectory, type HostSource } from './hosts.js';
import { KeypairService } from './keypairs.js';
import { novaMigrations } from './nova-migrations.js';
import { registerComputePolicy } from './policy.js';
import { QuotaService } from './quotas.js';
import { ServerGroupService } from './server-groups.js';
import { registerServerActionRoutes } from './api/server-actions.js';
import { registerServerRoutes, type ServerRouteDeps } from './api/servers.js';
import { registerUsageRoutes } from './api/usage.js';
import { DEFAULT_SCHEDULER, Scheduler, type PlacementLike, type SchedulerConfig } from './scheduler/index.js';
import { ServerOperations } from './servers/operations.js';
import type { ImageLookup, InstanceApi } from './servers/ports.js';
import { ServerReconciler } from './servers/reconciler.js';
import { ServerService } from './servers/service.js';
import { registerInterfaceRoutes } from './api/interfaces.js';
import type { ServerNetworking } from './servers/networking.js';
import { registerConsoleRoutes } from './api/consoles.js';
import { consoleMigrations } from './consoles/migrations.js';
import { ConsoleService, consoleConfig } from './consoles/service.js';
import { MigrationService } from './migrations/service.js';
import { registerMigrationRoutes } from './api/migrations.js';
import { ServerMoves } from './servers/moves.js';
import { registerLiveMigrationRoutes } from './api/live-migration.js';

/** `compute.scheduler` in stratus.yaml: allocation ratios and weigher multipliers. */
function schedulerConfig(ctx: ServiceContext): Partial<SchedulerConfig> {
  const c = (ctx.cfg.compute as { scheduler?: Partial<SchedulerConfig> } | undefined)?.scheduler;
  return c && typeof c === 'object' ? c : {};
}

export interface NovaDeps {
  identity: IdentityModule;
  /** Compute's host registry and instance service (ComputeService). */
  hosts: HostSource;
  instances: InstanceApi;
  placement: PlacementLike;
  /** The image service (or, without one, the agents' image source). */
  images: () => ImageLookup;
}

export interface NovaApi {
  migrations: ServiceMigrations;
  catalog: CatalogEntry[];
  flavors: FlavorService;
  keypairs: KeypairService;
  quotas: QuotaService;
  aggregates: AggregateService;
  serverGroups: ServerGroupService;
  hosts: HostDirectory;
  servers: ServerService;
  operations: ServerOperations;
  scheduler: Scheduler;
  reconciler: ServerReconciler;
  /** Remote console tokens and URLs (the proxy that uses them is in consoles/proxy.ts). */
  consoles: ConsoleService;
  /** Migration records (compute_migrations): cold/live migrations and resizes. */
  serverMigrations: MigrationService;
  /** Wires the networking service in (server.ts): ports for servers, addresses in views. */
  setNetworking(n: ServerNetworking): void;
  /** Registers version discovery and every /v2.1 route on the compute scope. */
  routes(app: App): Promise<void>;
  /** Bootstrap (registered limits, default flavors), then the server reconciler. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createNovaApi(ctx: ServiceContext, deps: NovaDeps): NovaApi {
  registerComputePolicy(ctx.policy);
  const db = ctx.db.kysely;
  const quotas = new QuotaService(db, ctx.db.engine, deps.identity);
  const flavors = new FlavorService(db);
  const keypairs = new KeypairService(db, quotas);
  const hosts = new HostDirectory(db, deps.hosts);
  const aggregates = new AggregateService(db, async (name) => !!(await deps.hosts.getHost(name)));
  const serverGroups = new ServerGroupService(db, quotas);
  const serverMigrations = new MigrationService(db);
  const routeDeps: RouteDeps = { policy: ctx.policy, computeUrl: () => `${ctx.baseUrl()}/compute` };
  const log = ctx.log.child({ service: 'compute-api' });
  const scheduler = new Scheduler(hosts, aggregates, deps.placement, { ...DEFAULT_SCHEDULER, ...schedulerConfig(ctx) }, log);
  let networking: ServerNetworking | undefined;
  const network = () => networking;
  const servers = new ServerService(db, {
    flavors, keypairs, quotas, groups: serverGroups, aggregates, hosts, instances: deps.instances, images: deps.images, log, network,
  });
  const moves = new ServerMoves({
    servers, instances: deps.instances, placement: deps.placement, scheduler, hosts, aggregates, groups: serverGroups,
    migrations: serverMigrations, network,
  });
  const operations = new ServerOperations(servers, {
    instances: deps.instances, flavors, quotas, placement: deps.placement, hosts, images: deps.images, migrations: serverMigrations, moves,
  });
  const reconciler = new ServerReconciler({
    store: servers.store, actions: servers.actions, instances: deps.instances, scheduler, placement: deps.placement,
    groups: serverGroups, aggregates, migrations: serverMigrations, moves, hosts, log, maxAttempts: 3, buildTimeoutMs: 10 * 60_000, sweepMs: 5000, images: deps.images, network,
  });
  servers.kick = (id) => reconciler.kick(id);
  const consoles = new ConsoleService(db, {
    servers, log,
    instances: { getInstance: (id) => deps.instances.getInstance(id), vncAddress: async (id) => deps.instances.vncAddress?.(id) },
  }, consoleConfig(ctx.cfg.compute), ctx.baseUrl);
  const serverRoutes: ServerRouteDeps = { ...routeDeps, servers, hosts, groups: serverGroups, db, network, consoles };

  return {
    migrations: { ...novaMigrations(ctx.db.engine), ...consoleMigrations },
    catalog: [{ type: 'compute', name: 'nova', description: 'Compute (Nova v2.1)', path: '/compute/v2.1' }],
    flavors, keypairs, quotas, aggregates, serverGroups, hosts, servers, operations, scheduler, reconciler, consoles, serverMigrations,
    setNetworking(n) { networking = n; },
    async routes(app) {
      registerVersionRoutes(app, (_req: FastifyRequest) => routeDeps.computeUrl());
      await app.register(async (v21) => {
        v21.addHook('onRequest', async (req, reply) => {
          reply.header('x-compute-request-id', req.id);
        });
        // Authenticate before the body is parsed and validated: no token, no 400s about it.
        v21.addHook('onRequest', authenticate(deps.identity));
        v21.addHook('onRequest', microversionHook);
        registerFlavorRoutes(v21, routeDeps, flavors);
        registerKeypairRoutes(v21, routeDeps, keypairs);
        registerQuotaRoutes(v21, routeDeps, quotas, deps.identity, network);
        registerNetworkProxyRoutes(v21, routeDeps, network);
        registerAggregateRoutes(v21, routeDeps, aggregates, hosts);
        registerServerGroupRoutes(v21, routeDeps, serverGroups);
        registerHostRoutes(v21, routeDeps, hosts, aggregates);
        registerServerRoutes(v21, serverRoutes);
        registerServerActionRoutes(v21, serverRoutes, operations);
        registerInterfaceRoutes(v21, serverRoutes, deps.instances);
        registerConsoleRoutes(v21, { ...serverRoutes, consoles });
        registerUsageRoutes(v21, routeDeps, db);
        registerMigrationRoutes(v21, { ...routeDeps, migrations: serverMigrations, servers });
        registerLiveMigrationRoutes(v21, routeDeps, operations.live);
      }, { prefix: '/v2.1' });
    },
    async start() {
      await quotas.registerDefaults();
      await flavors.ensureDefaults();
      reconciler.start();
      consoles.start();
    },
    async stop() {
      consoles.stop();
      await reconciler.stop();
    },
  };
}
