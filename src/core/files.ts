// Writing a stream to a file safely: into `<dest>.part`, hashing (SHA-256) and counting on the
// way, renamed into place only when complete (and, if asked, matching an expected checksum), so a
// reader never sees a partial file and a crash leaves only a .part to retry over.
import { createHash } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface WrittenFile { sha256: string; sizeBytes: number }

export async function writeStreamAtomic(body: Readable, dest: string, opts: {
  mode?: number; maxBytes?: number; expectSha256?: string; onProgress?: (bytes: number) => void;
} = {}): Promise<WrittenFile> {
  const part = `${dest}.part`;
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (opts.maxBytes !== undefined && size > opts.maxBytes) { done(new Error(`more than ${opts.maxBytes} bytes`)); return; }
      hash.update(chunk);
      opts.onProgress?.(size);
      done(null, chunk);
    },
  });
  try {
    await pipeline(body, tap, createWriteStream(part, { mode: opts.mode ?? 0o600 }));
    const sha256 = hash.digest('hex');
    if (opts.expectSha256 && sha256 !== opts.expectSha256) throw new Error(`checksum mismatch (got ${sha256}, expected ${opts.expectSha256})`);
    renameSync(part, dest);
    return { sha256, sizeBytes: size };
  } catch (e) {
    rmSync(part, { force: true });
    throw e;
  }
}
