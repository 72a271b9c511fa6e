// The image service as compute's image source: what host agents download and verify. Agents check
// their cached copies by SHA-256, which Glance does not keep; it is computed once per image (while
// uploading when the client declared one, else here on first use) and stored.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ApiError } from '../core/errors.js';
import type { ImageService } from './service.js';
import type { ImageTransfer } from './transfer.js';

/** Structurally compute's ImageSource (src/compute/images.ts). */
export interface AgentImageSource {
  describe(imageId: string): Promise<{ id: string; sizeBytes: number; sha256: string; diskFormat: 'qcow2' | 'raw' } | undefined>;
  open(imageId: string): Promise<Readable>;
}

export function agentImageSource(parts: () => { svc: ImageService; transfer: ImageTransfer }): AgentImageSource {
  return {
    async describe(id) {
      const { svc, transfer } = parts();
      const img = await svc.getImage('system', id).catch((e) => {
        if (e instanceof ApiError && e.status === 404) return undefined;
        throw e;
      });
      if (!img || img.status !== 'active' || img.size === null) return undefined;
      if (img.diskFormat !== 'qcow2' && img.diskFormat !== 'raw') return undefined;
      let sha256 = img.sha256;
      if (!sha256) {
        const data = await transfer.open('system', id);
        if (!data) return undefined;
        const h = createHash('sha256');
        for await (const chunk of data.stream) h.update(chunk as Buffer);
        sha256 = h.digest('hex');
        // Internal bookkeeping: updated_at stays as the user last changed it.
        await svc.store.update(id, { sha256 }, { ifStatus: ['active', 'deactivated'], updatedAt: img.updatedAt });
      }
      return { id, sizeBytes: img.size, sha256, diskFormat: img.diskFormat };
    },
    async open(id) {
      const data = await parts().transfer.open('system', id);
      if (!data) throw new Error(`image ${id} has no data`);
      return data.stream;
    },
  };
}
