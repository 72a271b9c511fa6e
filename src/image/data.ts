// Moving image bytes: streamed through md5 + sha512 (+ sha256 when a caller declared one) into a
// store backend, with a byte ceiling enforced while streaming. Never holds an image in memory.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { ApiError, badRequest, payloadTooLarge } from '../core/errors.js';
import type { PendingWrite, StoreBackend } from './backends/backend.js';

export interface Digests {
  size: number;
  md5: string;
  sha512: string;
  sha256?: string;
}

class Digester extends Transform {
  readonly md5 = createHash('md5');
  readonly sha512 = createHash('sha512');
  readonly sha256?: Hash;
  bytes = 0;

  constructor(private readonly maxBytes: number, private readonly tooLarge: () => ApiError, withSha256: boolean) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    if (withSha256) this.sha256 = createHash('sha256');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      cb(this.tooLarge());
      return;
    }
    this.md5.update(chunk);
    this.sha512.update(chunk);
    this.sha256?.update(chunk);
    cb(null, chunk);
  }
}

export interface IngestOptions {
  /** Largest number of bytes accepted (quota headroom, size cap); more fails with `tooLarge`. */
  maxBytes: number;
  tooLarge?: () => ApiError;
  /** Bytes the client said it sends (Content-Length). */
  expectedSize?: number;
  expectedMd5?: string;
  expectedSha256?: string;
}

/**
 * Streams `src` into a temporary object of `backend` and checks size and checksums. Resolves with
 * the pending write (commit or abort it) and the digests; on any failure nothing is left behind.
 */
export async function ingest(backend: StoreBackend, key: string, src: Readable, opts: IngestOptions): Promise<{ pending: PendingWrite; digests: Digests }> {
  const tooLarge = opts.tooLarge ?? (() => payloadTooLarge('Image exceeds the size limit.'));
  const digester = new Digester(opts.maxBytes, tooLarge, !!opts.expectedSha256);
  // Errors of the source (client went away) must reach the pipeline through the digester.
  src.on('error', (e) => digester.destroy(e));
  let pending: PendingWrite;
  try {
    pending = await backend.write(key, src.pipe(digester));
  } catch (e) {
    if (e instanceof ApiError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNRESET' || (e as Error).message === 'aborted') throw badRequest('The upload was interrupted before all data arrived.');
    throw e;
  }
  const digests: Digests = {
    size: digester.bytes,
    md5: digester.md5.digest('hex'),
    sha512: digester.sha512.digest('hex'),
    sha256: digester.sha256?.digest('hex'),
  };
  try {
    if (opts.expectedSize !== undefined && opts.expectedSize !== digests.size) {
      throw badRequest(`Image data size ${digests.size} does not match the declared size ${opts.expectedSize}.`);
    }
    if (opts.expectedMd5 && opts.expectedMd5.toLowerCase() !== digests.md5) {
      throw badRequest(`Checksum verification failed: the data's md5 is ${digests.md5}, ${opts.expectedMd5} was declared.`);
    }
    if (opts.expectedSha256 && opts.expectedSha256.toLowerCase() !== digests.sha256) {
      throw badRequest(`Checksum verification failed: the data's sha256 is ${digests.sha256}, ${opts.expectedSha256} was declared.`);
    }
  } catch (e) {
    await pending.abort();
    throw e;
  }
  return { pending, digests };
}

/** A Content-MD5 header value (base64 per RFC 1864, or hex as Glance sends it) as hex. */
export function md5HeaderToHex(v: string | undefined): string | undefined {
  if (!v) return undefined;
  if (/^[0-9a-fA-F]{32}$/.test(v)) return v.toLowerCase();
  const b = Buffer.from(v, 'base64');
  if (b.length !== 16) throw badRequest('Content-MD5 is neither a hex nor a base64 md5 digest.');
  return b.toString('hex');
}
