// Agents fetch image bytes through compute (ImageSource); this serves them from the image
// service, falling back to another source (files registered by tests or bootstrap). The agent
// verifies its cached copy by SHA-256, which the image service does not record: it is computed
// once per image (active images never change) and remembered.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { AuthContext } from '../core/auth.js';
import type { ImageInfo as SourceInfo, ImageSource } from './images.js';

export interface ImageDataApi {
  getImage(id: string, as: AuthContext | 'system'): Promise<{ id: string; status: string; size: number | null; diskFormat: string | null }>;
  openImageData(id: string, as: AuthContext | 'system'): Promise<{ stream: Readable; length: number }>;
}

export function imageServiceSource(images: ImageDataApi, fallback: ImageSource): ImageSource {
  const sums = new Map<string, string>();
  const record = async (id: string) => {
    try {
      const img = await images.getImage(id, 'system');
      return img.status === 'active' ? img : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    async describe(id): Promise<SourceInfo | undefined> {
      const img = await record(id);
      if (!img) return fallback.describe(id);
      let sha256 = sums.get(id);
      if (!sha256) {
        const { stream } = await images.openImageData(id, 'system');
        const h = createHash('sha256');
        for await (const chunk of stream) h.update(chunk as Buffer);
        sha256 = h.digest('hex');
        sums.set(id, sha256);
      }
      return { id, sizeBytes: img.size ?? 0, sha256, diskFormat: img.diskFormat === 'raw' ? 'raw' : 'qcow2' };
    },
    async open(id) {
      if (await record(id)) return (await images.openImageData(id, 'system')).stream;
      return fallback.open(id);
    },
  };
}
