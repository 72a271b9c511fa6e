// Live migration between two hosts with LOCAL disks (block migration), the way libvirt drives QEMU:
//
//  destination                                   source
//  1. create a fresh overlay on the same base image, start QEMU `-incoming defer` with the same
//     devices, export its root disk over NBD (writable), `migrate-incoming tcp:ADDR:PORT`
//                                                2. `drive-mirror` sync=top (only the overlay's own
//                                                   clusters: the base is on both sides) into the NBD
//                                                   export, write-blocking so it converges; wait READY
//                                                3. `migrate` (RAM) with pause-before-switchover
//                                                4. at `pre-switchover` (vCPUs stopped, disk quiet):
//                                                   cancel the READY mirror (a clean, synced finish),
//                                                   then `migrate-continue`
//  5. the guest resumes here on its own (autostart)  6. source QEMU is stopped; its files removed later
//  7. `finishIncoming`: NBD export and server removed
//
// Every step is resumable from what QEMU reports (query-migrate, query-block-jobs) and from a small
// record in the destination's instance dir, so an agent restart mid-way neither repeats nor leaks.
import { createServer } from 'node:net';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BaseImage, ConfigDriveSpec, IncomingMigration, InstanceSpec, MigrateOutOptions, MigrationListen } from '../driver.js';
import { InvalidStateError } from '../driver.js';
import { writeAtomic, type GuestOps } from './guest-ops.js';
import type { QmpClient } from './qmp.js';

const JOB = 'stratus-livemig';
const EXPORT = 'stratus-root';

const recordPath = (h: GuestOps, id: string) => join(h.paths(id).dir, 'incoming.json');
/** Source side: where this guest is being sent (a guest that arrived here also reports "completed"). */
const outgoingPath = (h: GuestOps, id: string) => join(h.paths(id).dir, 'outgoing.json');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The block node of the guest's root disk (the `-drive` on disk.qcow2), found by file name. */
async function rootDisk(c: QmpClient, disk: string): Promise<{ device: string; node: string }> {
  const blocks = await c.execute<{ device: string; qdev?: string; inserted?: { file: string; 'node-name': string } }[]>('query-block');
  const b = blocks.find((x) => x.inserted?.file === disk);
  if (!b?.inserted) throw new Error(`QEMU has no block device on ${disk}`);
  return { device: b.device, node: b.inserted['node-name'] };
}

const vmStatus = (h: GuestOps, id: string) =>
  h.qmp(id, (c) => c.execute<{ status: string }>('query-status'), 10_000).then((s) => s.status);

/** A free TCP port on `host` within the range (checked by binding; the caller binds it right after). */
async function freePort(host: string, [lo, hi]: [number, number], avoid: Set<number>): Promise<number> {
  for (let port = lo; port <= hi; port++) {
    if (avoid.has(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, host, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error(`no free migration port on ${host} in ${lo}-${hi}`);
}

/**
 * Destination: creates the guest's files (fresh overlay on the same base, same virtual size) and
 * starts QEMU waiting for the migration with its root disk exported over NBD. Repeating it while
 * that QEMU waits returns the same addresses.
 */
export async function prepareIncoming(h: GuestOps, spec: InstanceSpec, image: BaseImage,
  configDrive: ConfigDriveSpec | undefined, listen: MigrationListen): Promise<IncomingMigration> {
  const p = h.paths(spec.id);
  if (h.livePid(spec.id)) {
    if (existsSync(recordPath(h, spec.id))) return JSON.parse(readFileSync(recordPath(h, spec.id), 'utf8')) as IncomingMigration;
    throw new InvalidStateError(`guest ${spec.id} already runs on this host`);
  }
  await h.createFiles(spec, image, configDrive);
  const used = new Set<number>();
  const nbdPort = await freePort(listen.host, listen.ports, used);
  used.add(nbdPort);
  const memPort = await freePort(listen.host, listen.ports, used);
  await h.startGuest(spec.id, { incoming: true });
  const bracket = (a: string) => (a.includes(':') ? `[${a}]` : a);
  const target: IncomingMigration = {
    uri: `tcp:${bracket(listen.host)}:${memPort}`,
    diskUri: `nbd:${bracket(listen.host)}:${nbdPort}:exportname=${EXPORT}`,
  };
  await h.qmp(spec.id, async (c) => {
    const root = await rootDisk(c, p.disk);
    await c.execute('nbd-server-start', { addr: { type: 'inet', data: { host: listen.host, port: String(nbdPort) } } });
    await c.execute('block-export-add', { type: 'nbd', id: EXPORT, 'node-name': root.node, name: EXPORT, writable: true });
    await c.execute('migrate-incoming', { uri: target.uri });
  });
  writeAtomic(recordPath(h, spec.id), JSON.stringify(target));
  h.log.info({ instance: spec.id, ...target }, 'waiting for an incoming live migration');
  return target;
}

interface MigrateStatus {
  status?: string;
  'error-desc'?: string;
  ram?: { transferred: number; total: number; remaining: number };
  downtime?: number;
  'total-time'?: number;
}
interface BlockJob { device: string; type: string; len: number; offset: number; ready: boolean; status: string }

/**
 * Source: mirrors the root disk into the destination's NBD export, then migrates RAM and device
 * state, then stops the local QEMU. Resumable: it looks at what QEMU is already doing first.
 * `signal` aborts: the jobs are cancelled and the guest keeps running here.
 */
export async function migrateOut(h: GuestOps, id: string, to: IncomingMigration,
  opts: MigrateOutOptions = {}): Promise<{ downtimeMs?: number; totalMs: number }> {
  const p = h.paths(id);
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 600_000);
  const log = h.log.child({ instance: id });
  const pid = h.livePid(id);
  if (!pid) throw new InvalidStateError(`guest ${id} is not running here`);
  // Only the root disk is mirrored; volumes would need their own copy (or shared storage).
  if (h.readSpec(id)?.disks?.length) throw new InvalidStateError(`guest ${id} has data disks attached: they are not live-migrated`);
  const q = <T>(fn: (c: QmpClient) => Promise<T>) => h.qmp(id, fn, 10_000);
  let forced = false;
  // The guest stays here: running again if force_complete paused it.
  const giveUp = async () => {
    await abortOutgoing(h, id);
    if (forced) await q((c) => c.execute('cont'));
  };
  const check = async () => {
    if (opts.forceComplete?.aborted && !forced) {
      // force_complete (as libvirt does it): stopped vCPUs dirty nothing, the copy converges.
      forced = true;
      await q((c) => c.execute('stop'));
      log.info('guest paused to force the migration to complete');
    }
    if (opts.signal?.aborted) { await giveUp(); throw new MigrationAborted(); }
    if (Date.now() > deadline) { await giveUp(); throw new Error('live migration timed out'); }
  };

  const mine = existsSync(outgoingPath(h, id)) && readFileSync(outgoingPath(h, id), 'utf8') === JSON.stringify(to);
  let mig = await q((c) => c.execute<MigrateStatus>('query-migrate'));
  if (!mine && mig.status !== 'none' && mig.status !== undefined && !['completed', 'failed', 'cancelled'].includes(mig.status)) {
    throw new InvalidStateError(`guest ${id} is already being migrated elsewhere`);
  }
  if (!mine) writeAtomic(outgoingPath(h, id), JSON.stringify(to));
  // "completed" may be the migration that brought the guest here: only a stopped source counts.
  const sent = mine && mig.status === 'completed' && (await vmStatus(h, id)) === 'postmigrate';
  if (!sent) {
    if (!['active', 'setup', 'pre-switchover', 'device'].includes(mig.status ?? '')) {
      // Phase 1: the disk. A READY mirror from a previous attempt is reused.
      const jobs = await q((c) => c.execute<BlockJob[]>('query-block-jobs'));
      if (!jobs.some((j) => j.device === JOB)) {
        await q(async (c) => {
          const root = await rootDisk(c, p.disk);
          const status = await c.execute<{ status: string }>('query-status');
          if (status.status !== 'running' && status.status !== 'paused') throw new InvalidStateError(`guest ${id} is ${status.status}`);
          await c.execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: true }] });
          await c.execute('drive-mirror', {
            'job-id': JOB, device: root.device, target: to.diskUri, format: 'raw', mode: 'existing', sync: 'top', 'copy-mode': 'write-blocking',
          });
        });
        log.info({ to: to.diskUri }, 'mirroring the disk to the destination');
      }
      for (;;) {
        const job = (await q((c) => c.execute<BlockJob[]>('query-block-jobs'))).find((j) => j.device === JOB);
        if (!job) throw new Error('the disk mirror ended before it was ready (destination gone?)');
        opts.onProgress?.({ phase: 'disk', diskDone: job.offset, diskTotal: job.len });
        if (job.ready) break;
        await check();
        await sleep(200);
      }
      log.info({ ms: Date.now() - started }, 'disk mirror ready; migrating memory');
      await q((c) => c.execute('migrate', { uri: to.uri }));
    }
    // Phase 2: memory, then the switch-over with the disk quiet.
    for (;;) {
      mig = await q((c) => c.execute<MigrateStatus>('query-migrate'));
      if (mig.status === 'completed') break;
      if (mig.status === 'failed' || mig.status === 'cancelled') {
        await cancelMirror(h, id, true);
        rmSync(outgoingPath(h, id), { force: true });
        if (forced) await q((c) => c.execute('cont'));
        throw new Error(`live migration ${mig.status}: ${mig['error-desc'] ?? 'see the destination host'}`);
      }
      if (mig.ram) opts.onProgress?.({ phase: 'memory', memoryDone: mig.ram.transferred, memoryTotal: mig.ram.total });
      if (mig.status === 'pre-switchover') {
        opts.onProgress?.({ phase: 'switchover' });
        // vCPUs are stopped: finishing the mirror now leaves the destination's disk identical.
        await cancelMirror(h, id, false);
        await q((c) => c.execute('migrate-continue', { state: 'pre-switchover' }));
      } else {
        await check();
      }
      await sleep(100);
    }
  }
  const stats = { downtimeMs: mig.downtime, totalMs: Date.now() - started };
  await h.stopGuest(id, pid);
  log.info(stats, 'live migration completed; source QEMU stopped');
  opts.onProgress?.({ phase: 'done' });
  return stats;
}

/** Ends the mirror job: a READY job cancelled without force completes cleanly (target in sync). */
async function cancelMirror(h: GuestOps, id: string, force: boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  let asked = false;
  for (;;) {
    const job = (await h.qmp(id, (c) => c.execute<BlockJob[]>('query-block-jobs'), 10_000)).find((j) => j.device === JOB);
    if (!job) return;
    if (!asked || force) {
      await h.qmp(id, (c) => c.execute('block-job-cancel', { device: JOB, force }), 10_000).catch(() => undefined);
      asked = true;
    }
    if (Date.now() > deadline) throw new Error('the disk mirror did not finish');
    await sleep(100);
  }
}

/** Source: stops a migration in progress; the guest keeps running here (resumed if it was stopped for it). */
export async function abortOutgoing(h: GuestOps, id: string): Promise<void> {
  if (!h.livePid(id)) return;
  const mig = await h.qmp(id, (c) => c.execute<MigrateStatus>('query-migrate'), 10_000);
  if (mig.status === 'completed' && (await vmStatus(h, id)) === 'postmigrate') {
    throw new InvalidStateError(`the migration of ${id} has already completed`);
  }
  if (['active', 'setup', 'pre-switchover', 'device'].includes(mig.status ?? '')) {
    await h.qmp(id, (c) => c.execute('migrate_cancel'), 10_000);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const m = await h.qmp(id, (c) => c.execute<MigrateStatus>('query-migrate'), 10_000);
      if (!['active', 'setup', 'pre-switchover', 'device', 'cancelling'].includes(m.status ?? '')) break;
      // At pre-switchover the cancel must be confirmed by moving on from that state.
      if (m.status === 'pre-switchover') await h.qmp(id, (c) => c.execute('migrate-continue', { state: 'pre-switchover' }), 10_000).catch(() => undefined);
      if (Date.now() > deadline) throw new Error('cancelling the migration timed out');
      await sleep(100);
    }
  }
  await cancelMirror(h, id, true);
  rmSync(outgoingPath(h, id), { force: true });
  const s = await h.qmp(id, (c) => c.execute<{ status: string }>('query-status'), 10_000);
  // A migration that got as far as the switch-over leaves the vCPUs stopped; the guest was running.
  if (s.status === 'postmigrate' || s.status === 'finish-migrate') await h.qmp(id, (c) => c.execute('cont'), 10_000);
  h.log.info({ instance: id }, 'live migration aborted; guest stays on this host');
}

/**
 * Destination: waits until the migrated guest runs here, then removes the NBD export. Throws if the
 * incoming migration failed (the caller destroys this copy).
 */
export async function finishIncoming(h: GuestOps, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!h.livePid(id)) throw new Error(`the incoming QEMU of ${id} is gone (migration failed)`);
    const [mig, st] = await h.qmp(id, async (c) => [
      await c.execute<MigrateStatus>('query-migrate'), await c.execute<{ status: string }>('query-status'),
    ] as const, 10_000);
    if (mig.status === 'failed') throw new Error(`incoming migration failed: ${mig['error-desc'] ?? ''}`);
    if (st.status !== 'inmigrate' && (mig.status === 'completed' || st.status === 'running')) break;
    if (Date.now() > deadline) throw new Error('the incoming migration did not complete in time');
    await sleep(100);
  }
  await h.qmp(id, async (c) => {
    await c.execute('block-export-del', { id: EXPORT }).catch(() => undefined);
    await c.execute('nbd-server-stop').catch(() => undefined);
    // A guest that was paused on the source arrives paused; a running one runs (autostart).
  }, 10_000);
  const rec = recordPath(h, id);
  if (existsSync(rec)) renameSync(rec, `${rec}.done`);
  h.log.info({ instance: id }, 'incoming live migration finished; guest runs here');
}

export class MigrationAborted extends Error {
  constructor() {
    super('live migration aborted');
    this.name = 'MigrationAborted';
  }
}
