// Image data: upload (PUT file), download (with ranges), glance-direct staging and import,
// copy-image between stores, and the start-up recovery that resumes or undoes interrupted work.
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { AuthContext } from '../core/auth.js';
import { ApiError, badRequest, conflict, forbidden, notFound } from '../core/errors.js';
import { nowIso } from '../core/ids.js';
import type { PendingWrite, StoreBackend } from './backends/backend.js';
import { ingest, type Digests } from './data.js';
import { CONVERTIBLE, convertImage, verifyImageData } from './inspect.js';
import { isSystem, type Caller, type ImageService } from './service.js';
import type { ImageRecord, PendingImport } from './store.js';

const MD5_PROP = 'owner_specified.openstack.md5';
const SHA256_PROP = 'owner_specified.openstack.sha256';

export interface UploadHints {
  /** Content-Length of the request, when known. */
  size?: number;
  /** Content-MD5 of the request (hex). */
  md5?: string;
}

export interface ImageData {
  image: ImageRecord;
  stream: Readable;
  /** Bytes in `stream`. */
  length: number;
  /** Whole image size, checksum and multihash. */
  size: number;
  checksum: string | null;
  osHashAlgo: string | null;
  osHashValue: string | null;
  /** Inclusive byte range served, when a range was asked for. */
  range?: { start: number; end: number };
}

export class ImageTransfer {
  private readonly tasks = new Set<Promise<void>>();
  private stopping = false;

  constructor(private readonly svc: ImageService) {}

  private get deps() { return this.svc.deps; }

  private backend(id: string): StoreBackend {
    const b = this.deps.stores.get(id);
    if (!b) throw badRequest(`Unknown store '${id}'.`);
    return b;
  }

  /**
   * Streams the data of a queued image into the default store: queued → saving → active. Any
   * failure leaves the image queued and no data behind.
   */
  async upload(caller: Caller, id: string, src: Readable, hints: UploadHints = {}): Promise<ImageRecord> {
    const img = await this.svc.getVisible(caller, id);
    this.svc.enforce(caller, 'image:upload_image', this.svc.target(img));
    if (img.status !== 'queued') throw conflict(`Image status transition from ${img.status} to saving is not allowed`);
    if (!img.diskFormat || !img.containerFormat) {
      throw badRequest('Properties disk_format, container_format must be set prior to saving data.');
    }
    await this.svc.checkUploadingLimit(img.owner);
    const room = await this.svc.sizeHeadroom(img.owner);
    if (hints.size !== undefined && hints.size > room.bytes) throw room.error();
    if (!(await this.svc.store.update(id, { status: 'saving' }, { ifStatus: ['queued'], updatedAt: nowIso() }))) {
      throw conflict(`Image ${id} is not queued any more (another upload?).`);
    }
    const backend = this.backend(this.deps.cfg.defaultStore);
    let pending: PendingWrite | undefined;
    try {
      const r = await ingest(backend, id, src, {
        maxBytes: room.bytes, tooLarge: room.error, expectedSize: hints.size,
        expectedMd5: hints.md5 ?? (img.properties[MD5_PROP] || undefined),
        expectedSha256: img.properties[SHA256_PROP] || undefined,
      });
      pending = r.pending;
      const virtualSize = await this.inspect(img, pending.path);
      await pending.commit();
      const ok = await this.svc.store.update(id, activeChanges(r.digests, virtualSize, [backend.id]), { ifStatus: ['saving'], updatedAt: nowIso() });
      if (!ok) {
        await backend.delete(id);
        throw conflict(`Image ${id} was deleted or changed during the upload.`);
      }
    } catch (e) {
      await pending?.abort();
      await this.svc.store.update(id, { status: 'queued' }, { ifStatus: ['saving'], updatedAt: nowIso() });
      throw e;
    }
    return (await this.svc.store.get(id))!;
  }

  /** Checks the data against disk_format with qemu-img; returns its virtual size. */
  private async inspect(img: Pick<ImageRecord, 'diskFormat' | 'containerFormat'>, path: string | undefined): Promise<number | null> {
    if (!this.deps.cfg.verifyData || !path || img.containerFormat !== 'bare' || !img.diskFormat) return null;
    return (await verifyImageData(path, img.diskFormat)).virtualSize;
  }

  /** Opens the data of an active image (deactivated: admins only). */
  async open(caller: Caller, id: string, range?: { start?: number; end?: number }): Promise<ImageData | undefined> {
    const img = await this.svc.getVisible(caller, id);
    this.svc.enforce(caller, 'image:download_image', this.svc.target(img));
    if (img.status === 'deactivated') {
      if (!isSystem(caller) && !this.deps.policy.check('image:download_deactivated', caller as AuthContext, this.svc.target(img))) {
        throw forbidden('The requested image has been deactivated. Image data download is forbidden.');
      }
    } else if (img.status !== 'active') {
      return undefined; // no data (yet): Glance answers 204
    }
    const backend = img.stores.map((s) => this.deps.stores.get(s)).find((b) => b);
    if (!backend || img.size === null) throw notFound(`Image ${id} has no data in any configured store.`);
    const size = img.size;
    let r: { start: number; end: number } | undefined;
    if (range) {
      const start = range.start ?? Math.max(0, size - (range.end ?? 0));
      const end = range.start === undefined ? size - 1 : Math.min(range.end ?? size - 1, size - 1);
      if (start >= size || start > end || size === 0) {
        throw new ApiError(416, `Requested range not satisfiable (image size ${size}).`, { headers: { 'Content-Range': `bytes */${size}` } });
      }
      r = { start, end };
    }
    const stream = await backend.open(id, r);
    return {
      image: img, stream, length: r ? r.end - r.start + 1 : size, size, range: r,
      checksum: img.checksum, osHashAlgo: img.osHashAlgo, osHashValue: img.osHashValue,
    };
  }

  // ---- interoperable import ----

  /** glance-direct, step 1: data into the staging area; queued → uploading. */
  async stage(caller: Caller, id: string, src: Readable, hints: UploadHints = {}): Promise<void> {
    const img = await this.svc.getVisible(caller, id);
    this.svc.enforce(caller, 'image:stage_image', this.svc.target(img));
    if (img.status !== 'queued') throw conflict(`Image status transition from ${img.status} to uploading is not allowed`);
    await this.svc.checkUploadingLimit(img.owner);
    let maxBytes = this.deps.cfg.maxImageSize;
    let tooLarge: (() => ApiError) | undefined;
    if (img.owner) {
      const limitMiB = await this.svc.limit(img.owner, 'image_stage_total');
      const staged = (await this.svc.store.usage(img.owner)).staged;
      const left = Math.max(0, limitMiB * 1024 * 1024 - staged);
      if (left < maxBytes) {
        maxBytes = left;
        tooLarge = () => this.svc.overLimit('image_stage_total (MiB)', limitMiB, Math.ceil(staged / 1048576), Math.ceil(left / 1048576) + 1);
      }
    }
    if (hints.size !== undefined && hints.size > maxBytes) throw (tooLarge ?? (() => badRequest('Image too large.')))();
    if (!(await this.svc.store.update(id, { status: 'uploading' }, { ifStatus: ['queued'], updatedAt: nowIso() }))) {
      throw conflict(`Image ${id} is not queued any more.`);
    }
    try {
      const { pending, digests } = await ingest(this.deps.staging, id, src, { maxBytes, tooLarge, expectedSize: hints.size, expectedMd5: hints.md5 });
      await pending.commit();
      await this.svc.store.update(id, { stagedSize: digests.size }, { ifStatus: ['uploading'], updatedAt: nowIso() });
    } catch (e) {
      await this.deps.staging.delete(id);
      await this.svc.store.update(id, { status: 'queued', stagedSize: null }, { ifStatus: ['uploading'], updatedAt: nowIso() });
      throw e;
    }
  }

  /** POST /import: validates now (clear 4xx), then runs the import in the background (202). */
  async import(caller: Caller, id: string, req: { method: string; stores?: string[]; allStores?: boolean; allStoresMustSucceed?: boolean }): Promise<void> {
    const img = await this.svc.getVisible(caller, id);
    const stores = req.allStores ? [...this.deps.stores.keys()] : req.stores ?? [this.deps.cfg.defaultStore];
    for (const s of stores) this.backend(s);
    const pending: PendingImport = { method: req.method as PendingImport['method'], stores, allStoresMustSucceed: req.allStoresMustSucceed ?? true };
    if (req.method === 'glance-direct') {
      this.svc.enforce(caller, 'image:import_image', this.svc.target(img));
      if (img.status !== 'uploading' || img.stagedSize === null) throw conflict(`Image ${id} has no staged data to import (status ${img.status}).`);
      if (!img.diskFormat || !img.containerFormat) throw badRequest('Properties disk_format, container_format must be set prior to importing data.');
      await this.inspect(img, this.deps.staging.localPath(id));
      const room = await this.svc.sizeHeadroom(img.owner);
      if (img.stagedSize > room.bytes) throw room.error();
      if (!(await this.svc.store.update(id, { status: 'importing', pendingImport: pending }, { ifStatus: ['uploading'], updatedAt: nowIso() }))) {
        throw conflict(`Image ${id} changed status meanwhile.`);
      }
    } else if (req.method === 'copy-image') {
      this.svc.enforce(caller, 'image:copy_image', this.svc.target(img));
      if (img.status !== 'active') throw conflict(`Only active images can be copied (image ${id} is ${img.status}).`);
      if (img.pendingImport) throw conflict(`Image ${id} is already being imported.`);
      pending.stores = stores.filter((s) => !img.stores.includes(s));
      if (!pending.stores.length) throw conflict(`Image ${id} is already present in store(s) ${stores.join(', ')}.`);
      const props = { ...img.properties, os_glance_importing_to_stores: pending.stores.join(',') };
      await this.svc.store.replaceMetadata({ ...img, properties: props, pendingImport: pending, updatedAt: nowIso() });
    } else {
      throw badRequest(`Import method '${req.method}' is not supported: glance-direct or copy-image.`);
    }
    this.spawn(id);
  }

  private spawn(id: string): void {
    if (this.stopping) return;
    const p = this.runImport(id)
      .catch((e) => this.deps.log.error({ err: e, image: id }, 'image import failed'))
      .finally(() => this.tasks.delete(p));
    this.tasks.add(p);
  }

  private async runImport(id: string): Promise<void> {
    const img = await this.svc.store.get(id);
    if (!img?.pendingImport) return;
    if (img.pendingImport.method === 'glance-direct') await this.importStaged(img, img.pendingImport);
    else await this.copyImage(img, img.pendingImport);
  }

  private async importStaged(img: ImageRecord, job: PendingImport): Promise<void> {
    const { cfg, staging, log } = this.deps;
    const stagedPath = staging.localPath(img.id);
    let source = stagedPath;
    let diskFormat = img.diskFormat!;
    const written: { backend: StoreBackend; pending: PendingWrite }[] = [];
    let converted: string | undefined;
    try {
      if (!source) throw new Error('the staging area has no local files');
      const target = cfg.importConvertTo;
      if (target && target !== diskFormat && img.containerFormat === 'bare' && CONVERTIBLE[target]) {
        const info = await verifyImageData(source, diskFormat);
        converted = `${stagedPath}.${target}`;
        await convertImage(source, info.format, converted, CONVERTIBLE[target]!);
        source = converted;
        diskFormat = target;
      }
      const virtualSize = await this.inspect({ diskFormat, containerFormat: img.containerFormat }, source);
      const room = await this.svc.sizeHeadroom(img.owner);
      let digests: Digests | undefined;
      const done: string[] = [];
      for (const s of job.stores) {
        const backend = this.backend(s);
        try {
          const r = await ingest(backend, img.id, createReadStream(source, { highWaterMark: 1024 * 1024 }), { maxBytes: room.bytes, tooLarge: room.error });
          written.push({ backend, pending: r.pending });
          digests = r.digests;
          done.push(s);
        } catch (e) {
          if (job.allStoresMustSucceed) throw e;
          log.warn({ err: e, image: img.id, store: s }, 'import into a store failed');
        }
      }
      if (!digests) throw new Error('the import failed in every store');
      for (const w of written) await w.pending.commit();
      const changes = { ...activeChanges(digests, virtualSize, done), diskFormat, stagedSize: null, pendingImport: null };
      if (!(await this.svc.store.update(img.id, changes, { ifStatus: ['importing'], updatedAt: nowIso() }))) {
        for (const w of written) await w.backend.delete(img.id);
      }
      await staging.delete(img.id);
      log.info({ image: img.id, stores: done, size: digests.size }, 'image imported');
    } catch (e) {
      for (const w of written) await w.pending.abort();
      await staging.delete(img.id);
      const now = nowIso();
      const failed = { ...img.properties, os_glance_failed_import: job.stores.join(',') };
      const cur = await this.svc.store.get(img.id);
      if (cur?.status === 'importing') {
        await this.svc.store.replaceMetadata({ ...cur, status: 'queued', stagedSize: null, pendingImport: null, properties: failed, updatedAt: now });
      }
      throw e;
    } finally {
      if (converted) await rm(converted, { force: true });
    }
  }

  private async copyImage(img: ImageRecord, job: PendingImport): Promise<void> {
    const source = img.stores.map((s) => this.deps.stores.get(s)).find((b) => b);
    const copied: string[] = [];
    const failed: string[] = [];
    for (const s of job.stores) {
      try {
        if (!source) throw new Error('no readable source store');
        const { pending, digests } = await ingest(this.backend(s), img.id, await source.open(img.id), {
          maxBytes: Number.MAX_SAFE_INTEGER, expectedSize: img.size ?? undefined, expectedMd5: img.checksum ?? undefined,
        });
        await pending.commit();
        if (digests.sha512 !== img.osHashValue) throw new Error('copy does not match the image multihash');
        copied.push(s);
      } catch (e) {
        failed.push(s);
        this.deps.log.warn({ err: e, image: img.id, store: s }, 'copy-image into a store failed');
        if (job.allStoresMustSucceed) break;
      }
    }
    const cur = await this.svc.store.get(img.id);
    if (!cur) {
      for (const s of copied) await this.backend(s).delete(img.id);
      return;
    }
    const { os_glance_importing_to_stores: _, ...props } = cur.properties;
    if (failed.length) props.os_glance_failed_import = failed.join(',');
    const undo = failed.length && job.allStoresMustSucceed;
    if (undo) for (const s of copied) await this.backend(s).delete(img.id);
    const stores = undo ? cur.stores : [...new Set([...cur.stores, ...copied])];
    await this.svc.store.replaceMetadata({ ...cur, stores, properties: props, pendingImport: null, updatedAt: nowIso() });
  }

  // ---- recovery ----

  /** After a restart: undo interrupted uploads, resume imports, remove orphaned data. */
  async recover(): Promise<void> {
    const { store } = this.svc;
    const { stores, staging, log } = this.deps;
    for (const b of [...stores.values(), staging]) {
      const n = await b.sweepTemporary();
      if (n) log.info({ store: b.id, files: n }, 'removed temporary files of interrupted writes');
    }
    for (const img of await store.findByStatus(['saving'])) {
      await store.update(img.id, { status: 'queued' }, { ifStatus: ['saving'], updatedAt: nowIso() });
      log.warn({ image: img.id }, 'upload interrupted by a restart: image back to queued');
    }
    const live = new Map<string, ImageRecord>();
    for (const img of await store.findByStatus(['active', 'deactivated', 'uploading', 'importing'])) live.set(img.id, img);
    for (const b of stores.values()) {
      for (const key of await b.keys()) {
        const img = live.get(key);
        const expected = img && (img.stores.includes(b.id) || img.pendingImport?.stores.includes(b.id));
        if (!expected) {
          await b.delete(key);
          log.warn({ store: b.id, key }, 'removed orphaned image data');
        }
      }
    }
    for (const key of await staging.keys()) {
      const img = live.get(key);
      if (!img || !['uploading', 'importing'].includes(img.status)) await staging.delete(key);
    }
    for (const img of live.values()) if (img.pendingImport) this.spawn(img.id);
  }

  /** Waits for running imports (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.tasks.size) await Promise.allSettled([...this.tasks]);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.idle();
  }
}

function activeChanges(d: Digests, virtualSize: number | null, stores: string[]) {
  return {
    status: 'active' as const, size: d.size, checksum: d.md5, osHashAlgo: 'sha512', osHashValue: d.sha512,
    virtualSize, stores,
  };
}
