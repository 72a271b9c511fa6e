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
import type { PlacementLike } from './scheduler/index.js';
import type { ImageLookup } from './servers/ports.js';
import { notFound } from '../core/errors.js';
import { ConsoleProxy } from './consoles/proxy.js';

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
  /** The image service as the Nova API uses it (image lookups with visibility, snapshots). */
  setImageApi(api: ImageLookup): void;
  /** The remote console proxy (noVNC pages and the WebSocket to guests' VNC servers). */
  consoleProxy: ConsoleProxy;
}

export interface ComputeDeps {
  identity: IdentityModule;
  images?: ImageSource;
  /** Placement's in-process client: the scheduler claims resources through it. */
  placement: PlacementLike;
}

/** Reads DATA_DIR/agent-token, creating it (mode 0600) on the first start. */
export function ensureAgentToken(dataDir: string): string {
  const file = join(dataDir, 'agent-token');
  if (!existsSync(file)) writeFileSync(file, `${secret(32)}\n`, { mode: 0o600, flag: 'wx' });
  return readFileSync(file, 'utf8').trim();
}

export function createCompute(ctx: ServiceContext, deps: ComputeDeps): ComputeModule {
  const service = new ComputeService(ctx.db.kysely, ctx.log.child({ service: 'compute' }),
    { transfersDir: join(ctx.cfg.dataDir, 'compute', 'transfers') });
  let token: string | undefined;
  const agentToken = () => (token ??= ensureAgentToken(ctx.cfg.dataDir));
  let imageApi: ImageLookup | undefined;
  // Without an image service the Nova API sees the images agents can fetch (tests, bootstrap).
  // Images registered only with the agents' image source (tests, bootstrap files) are found too.
  const fileImage = async (id: string) => {
    const info = await mod.images.describe(id);
    if (!info) throw notFound(`Image ${id} could not be found.`);
    return { id, name: id, status: 'active', minDisk: 0, minRam: 0, size: info.sizeBytes, virtualSize: null, properties: {} };
  };
  const imageLookup = (): ImageLookup => {
    const api = imageApi;
    if (!api) return { getImage: fileImage };
    return {
      async getImage(id, as) {
        try { return await api.getImage(id, as); } catch (e) {
          // Hidden from this caller is not the same as unknown to the image service.
          const known = await api.getImage(id, 'system').then(() => true, () => false);
          if ((e as { status?: number }).status === 404 && !known) return fileImage(id);
          throw e;
        }
      },
      createImage: api.createImage?.bind(api), uploadImageData: api.uploadImageData?.bind(api),
    };
  };
  const nova = createNovaApi(ctx, { identity: deps.identity, hosts: service, instances: service, placement: deps.placement, images: imageLookup });
  const consoleProxy = new ConsoleProxy(nova.consoles, ctx.log.child({ service: 'console-proxy' }));
  const mod: ComputeModule = {
    name: 'compute',
    prefix: '/compute',
    migrations: { ...computeMigrations, ...nova.migrations },
    catalog: nova.catalog,
    nova,
    service,
    images: deps.images ?? new FileImageSource(),
    setImageSource(src) { mod.images = src; },
    setImageApi(api) { imageApi = api; },
    agentToken,
    consoleProxy,
    async routes(app) {
      useErrorStyle(app, novaError);
      agentRoutes(app, {
        service, images: { describe: (id) => mod.images.describe(id), open: (id) => mod.images.open(id) }, token: agentToken,
        snapshots: {
          accepts: async (id) => !!imageApi?.uploadImageData && (await imageApi.getImage(id, 'system').catch(() => undefined))?.status === 'queued',
          upload: (id, data) => imageApi!.uploadImageData!(id, 'system', data),
        },
      });
      await nova.routes(app);
      // The console proxy: noVNC pages under /compute/console/, its WebSocket on the same listener.
      consoleProxy.routes(app, nova.consoles.cfg.novncDir);
      consoleProxy.attach(app.server);
    },
    async start() { agentToken(); await nova.start(); },
    async stop() { consoleProxy.close(); await nova.stop(); service.close(); },
  };
  return mod;
}
