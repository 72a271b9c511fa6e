// Where the controller gets image bytes for agents. The image service implements ImageSource
// (when it lands); FileImageSource serves files registered by path (tests, bootstrap).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';

export interface ImageInfo {
  id: string;
  sizeBytes: number;
  /** Hex SHA-256 of the bytes `open` yields; agents verify their cached copy against it. */
  sha256: string;
  diskFormat: 'qcow2' | 'raw';
}

export interface ImageSource {
  describe(imageId: string): Promise<ImageInfo | undefined>;
  open(imageId: string): Promise<Readable>;
}

/** Serves image files registered by id; checksums are computed once per (path, size, mtime). */
export class FileImageSource implements ImageSource {
  private readonly files = new Map<string, { path: string; diskFormat: 'qcow2' | 'raw' }>();
  private readonly sums = new Map<string, { key: string; sha256: string }>();

  add(id: string, path: string, diskFormat: 'qcow2' | 'raw' = 'qcow2'): void {
    this.files.set(id, { path, diskFormat });
  }

  async describe(id: string): Promise<ImageInfo | undefined> {
    const f = this.files.get(id);
    if (!f || !existsSync(f.path)) return undefined;
    const st = statSync(f.path);
    const key = `${f.path}:${st.size}:${st.mtimeMs}`;
    let sum = this.sums.get(id);
    if (!sum || sum.key !== key) {
      sum = { key, sha256: await sha256(f.path) };
      this.sums.set(id, sum);
    }
    return { id, sizeBytes: st.size, sha256: sum.sha256, diskFormat: f.diskFormat };
  }

  async open(id: string): Promise<Readable> {
    const f = this.files.get(id);
    if (!f) throw new Error(`no image ${id}`);
    return createReadStream(f.path);
  }
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}
