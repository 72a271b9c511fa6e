// Root disks in transit between hosts (cold migration). Agents never talk to each other: the
// source agent uploads the stopped guest's flattened disk through the agent API, the controller
// stages it here (DATA_DIR/compute/transfers/<migration>.qcow2, written to .part then renamed,
// with its sha256), the destination agent downloads it, and the server reconciler removes it once
// the destination runs the guest (or the move is rolled back).
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { writeStreamAtomic } from '../core/files.js';

const ID = /^[0-9a-f-]{36}$/;

export interface StagedDisk { sha256: string; sizeBytes: number }

export class DiskTransfers {
  constructor(readonly dir: string) {}

  private paths(migrationId: string) {
    if (!ID.test(migrationId)) throw new Error(`bad migration id ${migrationId}`);
    const file = join(this.dir, `${migrationId}.qcow2`);
    return { file, part: `${file}.part`, meta: `${file}.json` }; // .part: see writeStreamAtomic
  }

  /** Stores the stream as the disk of `migrationId` (replacing an earlier attempt); returns its checksum. */
  async receive(migrationId: string, body: Readable, maxBytes: number): Promise<StagedDisk> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const p = this.paths(migrationId);
    rmSync(p.meta, { force: true });
    const staged = await writeStreamAtomic(body, p.file, { maxBytes });
    writeFileSync(p.meta, JSON.stringify(staged));
    return staged;
  }

  /** The staged disk, or undefined when there is none (never uploaded, or already removed). */
  open(migrationId: string): (StagedDisk & { stream: Readable }) | undefined {
    const p = this.paths(migrationId);
    if (!existsSync(p.file) || !existsSync(p.meta)) return undefined;
    const meta = JSON.parse(readFileSync(p.meta, 'utf8')) as StagedDisk;
    if (statSync(p.file).size !== meta.sizeBytes) return undefined;
    return { ...meta, stream: createReadStream(p.file, { highWaterMark: 1024 * 1024 }) };
  }

  has(migrationId: string): boolean {
    return existsSync(this.paths(migrationId).file);
  }

  /** Idempotent. */
  remove(migrationId: string): void {
    const p = this.paths(migrationId);
    for (const f of [p.file, p.part, p.meta]) rmSync(f, { force: true });
  }
}
