// Image (Glance v2): registers, stores, shares and serves images. Mounted at /image.
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { conflict } from '../core/errors.js';
import type { ServiceContext, ServiceModule } from '../core/service.js';
import type { IdentityModule } from '../identity/index.js';
import { imageRoutes } from './api/routes.js';
import type { StoreBackend } from './backends/backend.js';
import { FileBackend } from './backends/file.js';
import { imageConfig, type ImageConfig } from './config.js';
import { migrations } from './migrations.js';
import { IMAGE_POLICY } from './policy.js';
import { ImageService, type Caller, type NewImage } from './service.js';
import type { ImageRecord } from './store.js';
import { ImageTransfer, type ImageData } from './transfer.js';

export type { Caller, NewImage, ImageRecord, ImageData };

/**
 * What other services call in-process (compute boots from images and uploads snapshots; the host
 * agent gets image data through compute). `as` is the user's AuthContext (visibility and policy
 * apply) or 'system' (the cloud itself: sees everything).
 */
export interface ImageApi {
  /** The image record, if `as` may see it; throws a 404 ApiError otherwise. */
  getImage(id: string, as: Caller): Promise<ImageRecord>;
  /**
   * A read stream of an active image's data with its size and checksums (md5 `checksum`, sha512
   * `osHashValue`); `range` is inclusive. Throws 404/403 ApiErrors; 409 when it has no data yet.
   */
  openImageData(id: string, as: Caller, range?: { start: number; end: number }): Promise<ImageData>;
  /** Registers a queued image (e.g. a snapshot record, before its data exists). */
  createImage(as: Caller, meta: NewImage): Promise<ImageRecord>;
  /** Streams data into a queued image (checked with qemu-img, hashed); resolves with it active. */
  uploadImageData(id: string, as: Caller, data: Readable | { path: string }): Promise<ImageRecord>;
  deleteImage(id: string, as: Caller): Promise<void>;
}

export interface ImageModule extends ServiceModule, ImageApi {
  service: ImageService;
  transfer: ImageTransfer;
  config: ImageConfig;
}

export function createImage(ctx: ServiceContext, deps: { identity: IdentityModule }): ImageModule {
  const cfg = imageConfig(ctx.cfg);
  ctx.policy.registerDefaults(IMAGE_POLICY);
  let svc: ImageService | undefined;
  let transfer: ImageTransfer | undefined;
  // Backends create their directories, so they are made at start, not at construction.
  const ready = () => {
    if (!svc || !transfer) {
      const stores = new Map<string, StoreBackend>(cfg.stores.map((s) => [s.id, new FileBackend(s.id, s.path!, s.description)]));
      if (!stores.has(cfg.defaultStore)) throw new Error(`image.defaultStore '${cfg.defaultStore}' is not one of image.stores`);
      const staging = new FileBackend('staging', cfg.stagingDir, 'glance-direct staging area');
      svc = new ImageService({
        db: ctx.db, identity: deps.identity, policy: ctx.policy, log: ctx.log.child({ service: 'image' }), cfg,
        regionId: ctx.cfg.regionId, stores, staging,
      });
      transfer = new ImageTransfer(svc);
    }
    return { svc, transfer };
  };

  const mod: ImageModule = {
    name: 'image',
    prefix: '/image',
    migrations,
    catalog: [{ type: 'image', name: 'glance', description: 'Image service', path: '/image' }],
    config: cfg,
    get service() { return ready().svc; },
    get transfer() { return ready().transfer; },
    async routes(app) {
      const { svc: s, transfer: t } = ready();
      await imageRoutes(app, { svc: s, transfer: t, validator: deps.identity });
    },
    async start() {
      const { svc: s, transfer: t } = ready();
      for (const [resourceName, defaultLimit] of Object.entries(cfg.defaultLimits)) {
        await deps.identity.ensureRegisteredLimit({
          serviceType: 'image', resourceName, defaultLimit, regionId: ctx.cfg.regionId,
          description: /size|stage/.test(resourceName) ? 'Image bytes (MiB)' : 'Images',
        });
      }
      await t.recover();
      await bootstrapImage(mod, s, ctx, deps.identity);
    },
    async stop() {
      await transfer?.stop();
    },
    getImage: (id, as) => ready().svc.getImage(as, id),
    async openImageData(id, as, range) {
      const data = await ready().transfer.open(as, id, range);
      if (!data) throw conflict(`Image ${id} has no data yet.`);
      return data;
    },
    createImage: (as, meta) => ready().svc.create(as, meta),
    async uploadImageData(id, as, data) {
      const src = 'path' in data && typeof data.path === 'string' ? createReadStream(data.path, { highWaterMark: 1024 * 1024 }) : data as Readable;
      const size = 'path' in data && typeof data.path === 'string' ? (await stat(data.path)).size : undefined;
      return ready().transfer.upload(as, id, src, { size });
    },
    deleteImage: (id, as) => ready().svc.delete(as, id),
  };
  return mod;
}

/** Registers the test guest image once, public and owned by the admin project. */
async function bootstrapImage(mod: ImageModule, svc: ImageService, ctx: ServiceContext, identity: IdentityModule): Promise<void> {
  const { bootstrapImage: path, bootstrapName: name } = mod.config;
  if ((await svc.store.findByName(name)).length) return;
  if (!existsSync(path)) {
    ctx.log.info({ path }, `no test guest image yet: '${name}' not registered (build it with scripts/build-guest-image.sh)`);
    return;
  }
  const owner = await adminProjectId(identity);
  const img = await svc.create('system', {
    name, visibility: 'public', disk_format: 'qcow2', container_format: 'bare', owner,
    properties: { description: 'Stratus test guest (Debian kernel, busybox, dropbear)' },
  });
  try {
    await mod.uploadImageData(img.id, 'system', { path });
    ctx.log.info({ image: img.id, path }, `registered the test guest image '${name}'`);
  } catch (e) {
    await svc.delete('system', img.id).catch(() => undefined);
    ctx.log.error({ err: e, path }, `could not register the test guest image '${name}'`);
  }
}

async function adminProjectId(identity: IdentityModule): Promise<string | null> {
  return (await identity.findProject('admin'))?.id ?? null;
}
