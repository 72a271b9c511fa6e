// Guest state written to files: suspend to disk (QMP `migrate` to a file, then quit) and back
// (`-incoming defer` + `migrate-incoming` from it), and flattened snapshots of the root disk.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { InvalidStateError, type SnapshotResult } from '../driver.js';
import { run } from '../../exec.js';
import type { GuestOps } from './guest-ops.js';
import type { QmpClient } from './qmp.js';

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function waitMigration(c: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await c.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (m.status === 'completed') return;
    if (m.status === 'failed' || m.status === 'cancelled') throw new Error(`migration ${m.status}: ${m['error-desc'] ?? ''}`);
    if (Date.now() > deadline) throw new Error('saving/loading guest state timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Saves memory and device state to `memory.state` and stops the process. */
export async function saveState(g: GuestOps, id: string): Promise<void> {
  const p = g.paths(id);
  const pid = g.livePid(id);
  if (!pid) {
    if (existsSync(p.state)) return;
    throw new InvalidStateError(`guest ${id} is not running; only a running or paused guest can be suspended`);
  }
  const part = `${p.state}.part`;
  rmSync(part, { force: true });
  const started = Date.now();
  await g.qmp(id, async (c) => {
    await c.execute('stop');
    await c.execute('migrate', { uri: `exec:cat > ${shellQuote(part)}` });
    await waitMigration(c, 300_000);
  });
  renameSync(part, p.state);
  await g.stopGuest(id, pid);
  g.log.info({ instance: id, ms: Date.now() - started, bytes: statSync(p.state).size }, 'suspended guest to disk');
}

/** Starts QEMU waiting for the saved state, loads it, and lets the vCPUs run. */
export async function restoreState(g: GuestOps, id: string): Promise<void> {
  const p = g.paths(id);
  const started = Date.now();
  await g.startGuest(id, { incoming: true });
  await g.qmp(id, async (c) => {
    await c.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(p.state)}` });
    await waitMigration(c, 300_000);
    await c.execute('cont');
  });
  unlinkSync(p.state);
  g.noteState(id, 'running');
  g.log.info({ instance: id, ms: Date.now() - started }, 'resumed guest from saved state');
}

/** Copies the root disk, flattened, to `dest`; a running guest is paused only for the copy. */
export async function takeSnapshot(g: GuestOps, id: string, dest: string): Promise<SnapshotResult> {
  const p = g.requireGuest(id);
  const part = `${dest}.part`;
  const pid = g.livePid(id);
  let paused = false;
  const started = Date.now();
  try {
    if (pid) {
      // `stop` drains and flushes the disk, so reading it with -U (shared lock) is consistent.
      const status = await g.qmp(id, (c) => c.execute<{ status: string }>('query-status'));
      if (status.status === 'running') {
        await g.qmp(id, (c) => c.execute('stop'));
        paused = true;
      }
    }
    await run('qemu-img', ['convert', ...(pid ? ['-U'] : []), '-f', 'qcow2', '-O', 'qcow2', p.disk, part]);
  } finally {
    if (paused) await g.qmp(id, (c) => c.execute('cont'));
  }
  renameSync(part, dest);
  const info = JSON.parse(await run('qemu-img', ['info', '--output=json', dest])) as { 'virtual-size': number };
  const result: SnapshotResult = {
    path: dest, sizeBytes: statSync(dest).size, virtualSizeBytes: info['virtual-size'],
    sha256: await sha256File(dest), format: 'qcow2',
  };
  g.log.info({ instance: id, ms: Date.now() - started, pausedMs: paused ? Date.now() - started : 0, dest }, 'snapshot taken');
  return result;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}
