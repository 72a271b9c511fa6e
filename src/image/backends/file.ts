// The filesystem store: DIR/<key>, written as DIR/.tmp/<key>.<random>, fsynced, then renamed.
import { createWriteStream, mkdirSync } from 'node:fs';
import { open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import type { PendingWrite, StoreBackend } from './backend.js';

const CHUNK = 1024 * 1024;
const SAFE_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export class FileBackend implements StoreBackend {
  private readonly tmpDir: string;

  constructor(readonly id: string, readonly dir: string, readonly description = `filesystem store at ${dir}`) {
    this.tmpDir = join(dir, '.tmp');
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
  }

  private pathOf(key: string): string {
    if (!SAFE_KEY.test(key)) throw new Error(`invalid object key '${key}'`);
    return join(this.dir, key);
  }

  async write(key: string, src: Readable): Promise<PendingWrite> {
    const final = this.pathOf(key);
    const tmp = join(this.tmpDir, `${key}.${randomBytes(6).toString('hex')}`);
    let bytes = 0;
    try {
      const out = createWriteStream(tmp, { mode: 0o600, highWaterMark: CHUNK });
      await pipeline(src, out);
      bytes = out.bytesWritten;
      await fsyncPath(tmp);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    let done = false;
    return {
      bytes,
      path: tmp,
      commit: async () => {
        if (done) return;
        await rename(tmp, final);
        await fsyncPath(this.dir);
        done = true;
      },
      abort: async () => {
        if (done) return;
        done = true;
        await unlink(tmp).catch(() => undefined);
      },
    };
  }

  async open(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const path = this.pathOf(key);
    const fh = await open(path, 'r'); // fail here (ENOENT) rather than on the first read
    return fh.createReadStream({ highWaterMark: CHUNK, autoClose: true, ...(range ?? {}) });
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(key))).size;
    } catch {
      return undefined;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async keys(): Promise<string[]> {
    return (await readdir(this.dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name);
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  async sweepTemporary(): Promise<number> {
    const names = await readdir(this.tmpDir);
    await Promise.all(names.map((n) => rm(join(this.tmpDir, n), { force: true })));
    return names.length;
  }
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
