// Composes the services into one listener: the all-in-one controller.
// Order matters and is explicit: identity first (everyone authenticates through it), then the
// services that depend on it. Each module owns its tables, routes and catalog entries.
import { mkdirSync } from 'node:fs';
import { loadConfig, publicBaseUrl, type StratusConfig } from './core/config.js';
import { defaultDatabaseUrl, migrate, openDatabase, type Database } from './core/db.js';
import { createHttpApp, type App } from './core/http.js';
import { createLogger, type Logger } from './core/log.js';
import { PolicyEngine } from './core/policy.js';
import type { ServiceContext, ServiceModule } from './core/service.js';
import { createIdentity, type IdentityModule } from './identity/index.js';
import { createNetwork, type NetworkModule } from './network/index.js';
import { createImage, type ImageModule } from './image/index.js';
import { imageServiceSource } from './compute/image-bridge.js';
import { createPlacement, type PlacementModule } from './placement/index.js';
import { createCompute, type ComputeModule } from './compute/index.js';
import { createNetAgent, type NetAgentModule } from './netagent/index.js';
import { serverNetworking } from './netagent/server-networking.js';
import { writeClientConfig, type BootstrapCredentials } from './cli/clientconfig.js';

export interface Cloud {
  cfg: StratusConfig;
  app: App;
  db: Database;
  log: Logger;
  /** http://host:port the API answers at. */
  url: string;
  identity: IdentityModule;
  image: ImageModule;
  network: NetworkModule;
  placement: PlacementModule;
  compute: ComputeModule;
  netagent: NetAgentModule;
  modules: ServiceModule[];
  /** Set on the start that created the bootstrap users (first start only). */
  credentials?: BootstrapCredentials;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Do not write clouds.yaml / openrc files (tests that make their own). */
  skipClientConfig?: boolean;
}

export async function startCloud(cfg: StratusConfig, opts: StartOptions = {}): Promise<Cloud> {
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const log = opts.log ?? createLogger(cfg.logLevel);
  const db = await openDatabase(cfg.databaseUrl ?? defaultDatabaseUrl(cfg.dataDir));
  const policy = new PolicyEngine(cfg.identity.policyFile);
  let baseUrl = publicBaseUrl(cfg);
  const ctx: ServiceContext = { cfg, db, log, policy, baseUrl: () => baseUrl };

  const identity = createIdentity(ctx);
  const image = createImage(ctx, { identity });
  const network = createNetwork(ctx, { identity });
  const placement = createPlacement(ctx, { identity });
  const compute = createCompute(ctx, { identity, placement: placement.client });
  // The Nova API looks images up (and uploads snapshots) through the image service; agents fetch
  // image bytes through it too.
  compute.setImageApi(image);
  compute.setImageSource(imageServiceSource(image, compute.images));
  const netagent = createNetAgent(ctx, { network, compute });
  compute.nova.setNetworking(serverNetworking(network));
  const modules: ServiceModule[] = [identity, image, network, placement, compute, netagent];

  const applied = await migrate(db, Object.fromEntries(modules.map((m) => [m.name, m.migrations])));
  if (applied.length) log.info({ migrations: applied }, 'database migrated');

  const app = createHttpApp({ logger: log });
  let ready = false;
  app.get('/healthz', async (_req, reply) => {
    reply.code(ready ? 200 : 503);
    return { status: ready ? 'ok' : 'starting', services: modules.map((m) => m.name) };
  });
  for (const m of modules) {
    await app.register(async (scope) => { await m.routes(scope); }, { prefix: m.prefix });
  }

  await app.listen({ host: cfg.listenHost, port: cfg.listenPort });
  const addr = app.server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : cfg.listenPort;
  baseUrl = publicBaseUrl(cfg, boundPort);

  let credentials: BootstrapCredentials | undefined;
  try {
    const boot = await identity.bootstrap({
      catalog: modules.flatMap((m) => m.catalog), baseUrl, regionId: cfg.regionId,
    });
    if (boot.adminPassword && boot.demoPassword) {
      credentials = { adminPassword: boot.adminPassword, demoPassword: boot.demoPassword };
    }
    if (!opts.skipClientConfig) writeClientConfig(cfg.dataDir, `${baseUrl}/identity/v3`, cfg.regionId, credentials);
    for (const m of modules) await m.start?.();
  } catch (e) {
    await app.close();
    await db.close();
    throw e;
  }
  ready = true;
  log.info({ url: baseUrl, dataDir: cfg.dataDir, database: db.engine }, 'stratus is up');

  return {
    cfg, app, db, log, url: baseUrl, identity, image, network, placement, compute, netagent, modules, credentials,
    async stop() {
      ready = false;
      for (const m of [...modules].reverse()) await m.stop?.().catch((e) => log.error({ err: e }, `stopping ${m.name}`));
      await app.close();
      await db.close();
    },
  };
}

export { loadConfig };
