// Where image bytes live. A small interface so that the object service (or Ceph) can be a store
// later; the filesystem store is the default. Objects are written in two steps so that nothing is
// visible before it is complete and checked: write() streams to a durable temporary object,
// commit() publishes it atomically, abort() throws it away.
import type { Readable } from 'node:stream';

export interface PendingWrite {
  /** Bytes written. */
  bytes: number;
  /** Local path of the temporary object, when the backend keeps files (inspection reads it). */
  path?: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface StoreBackend {
  readonly id: string;
  readonly description: string;
  /** Streams `src` into a temporary object for `key`; resolves once it is durable. Never buffers it whole. */
  write(key: string, src: Readable): Promise<PendingWrite>;
  /** A read stream of the object, or of the inclusive byte range [start, end]. */
  open(key: string, range?: { start: number; end: number }): Promise<Readable>;
  size(key: string): Promise<number | undefined>;
  delete(key: string): Promise<void>;
  /** Keys of every committed object (the orphan sweep compares them with the database). */
  keys(): Promise<string[]>;
  /** Local file of a committed object, when the backend has one (qemu-img, copies). */
  localPath(key: string): string | undefined;
  /** Removes temporary objects left by a crash. */
  sweepTemporary(): Promise<number>;
}
