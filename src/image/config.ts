// The `image` section of stratus.yaml, with defaults.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StratusConfig } from '../core/config.js';
import { CONVERTIBLE } from './inspect.js';

export interface ImageStoreConfig {
  id: string;
  /** Directory of a filesystem store; default DATA_DIR/images/<id>. */
  path?: string;
  description?: string;
}

export interface ImageConfig {
  /** Registered as the public image `bootstrapName` on start when present and not yet registered. */
  bootstrapImage: string;
  bootstrapName: string;
  stores: ImageStoreConfig[];
  defaultStore: string;
  /** Staging area of glance-direct imports. */
  stagingDir: string;
  /** Imports convert to this disk format with qemu-img (e.g. 'qcow2'); unset: no conversion. */
  importConvertTo?: string;
  /** Largest image accepted, bytes (Glance's image_size_cap). */
  maxImageSize: number;
  /** Check with qemu-img that uploaded data is what disk_format says (and refuse unsafe qcow2). */
  verifyData: boolean;
  /** Largest number of members, tags and custom properties per image. */
  maxMembers: number;
  maxTags: number;
  maxProperties: number;
  /** Registered default unified limits (sizes in MiB, as Glance). */
  defaultLimits: Record<'image_size_total' | 'image_count_total' | 'image_stage_total' | 'image_count_uploading', number>;
}

// dist/src/image/config.js → the repository root.
const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');

export function imageConfig(cfg: StratusConfig): ImageConfig {
  const given = (cfg.image ?? {}) as Partial<ImageConfig>;
  const imagesDir = join(cfg.dataDir, 'images');
  const stores = (given.stores?.length ? given.stores : [{ id: 'local', description: 'Filesystem store in the data directory' }])
    .map((s) => ({ ...s, path: s.path ?? join(imagesDir, s.id) }));
  for (const s of stores) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(s.id)) throw new Error(`image.stores: invalid store id '${s.id}'`);
  }
  if (given.importConvertTo && !CONVERTIBLE[given.importConvertTo]) {
    throw new Error(`image.importConvertTo: '${given.importConvertTo}' is not one of ${Object.keys(CONVERTIBLE).join(', ')}`);
  }
  return {
    bootstrapImage: resolve(REPO_ROOT, given.bootstrapImage ?? 'build/guest/stratus-test.qcow2'),
    bootstrapName: given.bootstrapName ?? 'stratus-test',
    stores,
    defaultStore: given.defaultStore ?? stores[0]!.id,
    stagingDir: given.stagingDir ?? join(imagesDir, 'staging'),
    importConvertTo: given.importConvertTo,
    maxImageSize: given.maxImageSize ?? 1024 ** 4,
    verifyData: given.verifyData ?? true,
    maxMembers: given.maxMembers ?? 128,
    maxTags: given.maxTags ?? 128,
    maxProperties: given.maxProperties ?? 128,
    defaultLimits: {
      image_size_total: 1024 * 1024, // 1 TiB
      image_count_total: 1000,
      image_stage_total: 1024 * 1024,
      image_count_uploading: 20,
      ...given.defaultLimits,
    },
  };
}
