// Compute (Nova's role). This first part owns hosts and instances' desired state and the agent
// API; the OpenStack compute API (/compute/v2.1) and its catalog entry come with the compute API issue.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { secret } from '../core/ids.js';
import { useErrorStyle } from '../core/http.js';
import { novaError } from '../core/errors.js';
import type { ServiceContext, ServiceModule } from '../core/service.js';
import type { IdentityModule } from '../identity/index.js';
import { agentRoutes } from './api/agent.js';
import { FileImageSource, type ImageSource } from './images.js';
import { computeMigrations } from './migrations.js';
import { ComputeService } from './service.js';
import { createNovaApi, type NovaApi } from './nova.js';

export type { ImageSource } from './images.js';
export { FileImageSource } from './images.js';
export type { CreateInstanceInput } from './service.js';
export type { InstanceRecord, HostRecord } from './store.js';

export interface ComputeModule extends ServiceModule {
  service: ComputeService;
  /** Where agents get image bytes; the image service replaces the default with itself. */
  images: ImageSource;
  setImageSource(src: ImageSource): void;
  /** The shared secret agents authenticate with (DATA_DIR/agent-token). */
  agentToken(): string;
  /** The OpenStack compute API (Nova v2.1) and its services (flavors, quotas, scheduler, ...). */
  nova: NovaApi;
}

export interface ComputeDeps {
  identity: IdentityModule;
  images?: ImageSource;
}

/** Reads DATA_DIR/agent-token, creating it (mode 0600) on the first start. */
export function ensureAgentToken(dataDir: string): string {
  const file = join(dataDir, 'agent-token');
  if (!existsSync(file)) writeFileSync(file, `${secret(32)}\n`, { mode: 0o600, flag: 'wx' });
  return readFileSync(file, 'utf8').trim();
}

export function createCompute(ctx: ServiceContext, deps: ComputeDeps): ComputeModule {
  const service = new ComputeService(ctx.db.kysely, ctx.log.child({ service: 'compute' }));
  let token: string | undefined;
  const agentToken = () => (token ??= ensureAgentToken(ctx.cfg.dataDir));
  const nova = createNovaApi(ctx, { identity: deps.identity, hosts: service });
  const mod: ComputeModule = {
    name: 'compute',
    prefix: '/compute',
    migrations: { ...computeMigrations, ...nova.migrations },
    catalog: nova.catalog,
    nova,
    service,
    images: deps.images ?? new FileImageSource(),
    setImageSource(src) { mod.images = src; },
    agentToken,
    async routes(app) {
      useErrorStyle(app, novaError);
      agentRoutes(app, { service, images: { describe: (id) => mod.images.describe(id), open: (id) => mod.images.open(id) }, token: agentToken });
      await nova.routes(app);
    },
    async start() { agentToken(); await nova.start(); },
    async stop() { service.close(); },
  };
  return mod;
}
