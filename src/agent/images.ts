// The host's image cache: DATA_DIR/agent/images/<id>.<format>, downloaded once from the controller,
// verified by SHA-256 while streaming, read-only afterwards (instance overlays are backed by it).
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeStreamAtomic } from '../core/files.js';
import type { Logger } from 'pino';
import type { BaseImage } from './hypervisor/driver.js';
import type { ControllerClient } from './client.js';

interface CacheMeta { sha256: string; format: 'qcow2' | 'raw'; size: number; path: string; fetchedAt: string }

export class ImageCache {
  private readonly inflight = new Map<string, Promise<BaseImage>>();

  constructor(private readonly dir: string, private readonly client: ControllerClient, private readonly log: Logger) {
    mkdirSync(dir, { recursive: true });
  }

  ensure(id: string): Promise<BaseImage> {
    let p = this.inflight.get(id);
    if (!p) {
      p = this.fetch(id).finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }

  private async fetch(id: string): Promise<BaseImage> {
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new Error(`bad image id ${id}`);
    const metaFile = join(this.dir, `${id}.json`);
    const meta = readMeta(metaFile);
    const cached = meta?.path;
    let remote: { sha256: string; format: 'qcow2' | 'raw'; size: number } | undefined;
    try {
      remote = await this.client.image(id, 'HEAD');
    } catch (e) {
      // The controller may be unreachable: a verified cached copy still serves.
      if (cached && existsSync(cached)) {
        this.log.warn({ image: id, err: (e as Error).message }, 'controller unreachable; using the cached image');
        return { path: cached, format: meta!.format };
      }
      throw e;
    }
    if (cached && meta.sha256 === remote.sha256 && existsSync(cached) && statSync(cached).size === meta.size) {
      return { path: cached, format: meta.format };
    }
    const started = Date.now();
    const { body, sha256, format, size } = await this.client.image(id);
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`image ${id}: the controller gave no SHA-256`);
    // Named by checksum: a new version of an image never replaces the bytes older overlays are backed by.
    const dest = join(this.dir, `${id}-${sha256.slice(0, 16)}.${format}`);
    let lastLog = Date.now();
    const { sizeBytes: got } = await writeStreamAtomic(body!, dest, {
      mode: 0o444, // read-only: overlays are backed by it
      expectSha256: sha256,
      onProgress: (bytes) => {
        if (Date.now() - lastLog < 5000) return;
        lastLog = Date.now();
        this.log.info({ image: id, bytes, of: size }, 'downloading image');
      },
    }).catch((e: Error) => { throw new Error(`image ${id}: ${e.message}`); });
    writeFileSync(metaFile, JSON.stringify({ sha256, format, size: got, path: dest, fetchedAt: new Date().toISOString() } satisfies CacheMeta));
    this.log.info({ image: id, bytes: got, ms: Date.now() - started }, 'image cached');
    return { path: dest, format };
  }
}

function readMeta(file: string): CacheMeta | undefined {
  try { return JSON.parse(readFileSync(file, 'utf8')) as CacheMeta; } catch { return undefined; }
}
