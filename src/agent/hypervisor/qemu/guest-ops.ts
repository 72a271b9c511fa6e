// What the QEMU driver's helpers (hot-plug, saved state, live migration) need from it: the
// guest's files and process, QMP, start/stop. QemuDriver implements it; callers hold its
// per-guest lock.
import { readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { BaseImage, ConfigDriveSpec, InstanceSpec, PowerState } from '../driver.js';
import type { GuestPaths } from './cmdline.js';
import type { QmpClient } from './qmp.js';

export interface GuestOps {
  readonly log: Logger;
  paths(id: string): GuestPaths;
  /** Paths of a guest that exists (NotFoundError otherwise). */
  requireGuest(id: string): GuestPaths;
  livePid(id: string): number | undefined;
  readSpec(id: string): InstanceSpec | undefined;
  writeSpec(id: string, spec: InstanceSpec): void;
  /** QMP on a live guest (InvalidStateError when it does not run). */
  qmp<T>(id: string, fn: (c: QmpClient) => Promise<T>, timeoutMs?: number): Promise<T>;
  createFiles(spec: InstanceSpec, image: BaseImage, configDrive: ConfigDriveSpec | undefined): Promise<void>;
  /** `incoming`: QEMU waits for `migrate-incoming` (saved state or another host). */
  startGuest(id: string, opts: { incoming?: boolean }): Promise<number>;
  /** Stops a live QEMU (quit, then SIGKILL) and forgets its sockets. */
  stopGuest(id: string, pid: number): Promise<void>;
  /** Records the power state last seen (answered while the guest is busy). */
  noteState(id: string, state: PowerState): void;
}

export function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Bytes the files directly in `dir` take on disk. */
export function diskUsage(dir: string): number {
  let total = 0;
  try {
    for (const name of readdirSync(dir)) {
      try {
        const s = statSync(`${dir}/${name}`);
        if (s.isFile()) total += s.blocks * 512;
      } catch { /* vanished */ }
    }
  } catch { /* no dir */ }
  return total;
}
