// The agent's reconcile loop: converges each guest toward the controller's desired state.
// Idempotent and resumable: each instance has a small record on disk (the generation it last
// applied, the one-shot tasks it finished), every driver step is safe to repeat, and a crash in
// the middle only means the step runs again after restart. A guest that changes on its own (it
// powered itself off, QEMU died) is NOT "fixed": the change is reported and the controller
// decides (it records the guest as shut off, as Nova does).
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DesiredInstance, DesiredPower, DesiredState, ObservedInstance, ObservedMigration, TaskResult } from '../compute/agent-protocol.js';
import type { HypervisorDriver, InstanceInfo, InstanceSpec, MigrationListen } from './hypervisor/driver.js';
import type { BaseImage } from './hypervisor/driver.js';
import { MigrationSteps } from './live-migration.js';

export interface ReconcilerOptions {
  driver: HypervisorDriver;
  /** Where the base image of an instance comes from (the host image cache). */
  ensureImage(imageId: string): Promise<BaseImage>;
  report(instances: ObservedInstance[]): Promise<void>;
  /** DATA_DIR/agent/state: one JSON record per instance. */
  stateDir: string;
  /** DATA_DIR/agent/snapshots */
  snapshotDir: string;
  log: Logger;
  powerOffTimeoutSec?: number;
  /** Attempts of one generation before it is given up with a fault. */
  maxAttempts?: number;
  retryDelayMs?: number;
  /**
   * Moves root disks through the controller (cold migration): `upload` sends a file as the disk of
   * migration `migrationId`, `download` fetches a moved disk into `dest` (checksum verified).
   * Files are staged in `dir` (same file system as the instances).
   */
  transfers?: {
    dir: string;
    upload(instanceId: string, migrationId: string, path: string): Promise<{ sha256: string; sizeBytes: number }>;
    download(instanceId: string, disk: { migrationId: string; sha256: string; sizeBytes: number }, dest: string): Promise<void>;
    /** Streams a snapshot into the image service; false when the controller takes no upload for it (keep the file). */
    uploadSnapshot?(imageId: string, path: string): Promise<boolean>;
  };
  /** Called after each converge that reached its power state (the data plane plugs new taps). */
  afterConverge?: (id: string) => void;
  /** Where this host listens for incoming live migrations (default 127.0.0.1, ports 49152-49215). */
  migrationListen?: MigrationListen;
  /** Resolves once the data plane plugged these ports' taps (an incoming live migration waits for it). */
  portsPlugged?: (portIds: string[]) => Promise<void>;
}

interface InstanceRecordOnDisk {
  appliedGeneration: number;
  attempts: number;
  attemptsFor: number;
  doneTasks: string[];
  taskResult?: TaskResult;
  fault: { message: string; at: string } | null;
  /** Powered off by `stratus down`: brought back to its desired state on the next start. */
  resumeOnStart?: boolean;
  /** Outcome of this host's step in the instance's live migration (reported until the controller moves on). */
  migration?: ObservedMigration;
}

const EMPTY: InstanceRecordOnDisk = { appliedGeneration: 0, attempts: 0, attemptsFor: 0, doneTasks: [], fault: null };

export class Reconciler {
  private desired = new Map<string, DesiredInstance>();
  private haveDesired = false;
  private readonly running = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private lastSent = new Map<string, string>();
  private lastFull = 0;
  private stopped = false;
  private readonly migrations: MigrationSteps;

  constructor(private readonly o: ReconcilerOptions) {
    mkdirSync(o.stateDir, { recursive: true });
    mkdirSync(o.snapshotDir, { recursive: true });
    this.migrations = new MigrationSteps({
      driver: o.driver, ensureImage: o.ensureImage, log: o.log, portsPlugged: o.portsPlugged,
      listen: o.migrationListen ?? { host: '127.0.0.1', ports: [49152, 49215] },
      progress: (id, migration) => {
        const rec = this.load(id);
        void this.send([{ id, powerState: 'running', observedGeneration: rec.appliedGeneration, busy: true, migration }]);
      },
    });
  }

  /** Takes a new desired state from the watch and starts converging what changed. */
  setDesired(state: DesiredState): void {
    const next = new Map(state.instances.map((i) => [i.id, i]));
    this.desired = next;
    this.haveDesired = true;
    for (const d of next.values()) {
      this.migrations.notice(d);
      this.schedule(d.id);
    }
  }

  /** Guests on this host the controller knows nothing about (reported, never touched). */
  async orphans(): Promise<string[]> {
    if (!this.haveDesired) return [];
    return (await this.o.driver.list()).map((i) => i.id).filter((id) => !this.desired.has(id));
  }

  /** Waits for every in-flight convergence (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()]);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.retryTimers.values()) clearTimeout(t);
  }

  schedule(id: string): void {
    if (this.stopped) return;
    if (this.running.has(id)) {
      this.dirty.add(id);
      return;
    }
    const p = (async () => {
      do {
        this.dirty.delete(id);
        const d = this.desired.get(id);
        if (d) await this.converge(d).catch((e) => this.o.log.error({ instance: id, err: e }, 'reconcile failed'));
      } while (this.dirty.has(id) && !this.stopped);
    })().finally(() => this.running.delete(id));
    this.running.set(id, p);
  }

  /** Observes every guest and reports what changed (everything every 30 s). */
  async observe(): Promise<void> {
    const full = Date.now() - this.lastFull > 30_000;
    const infos = new Map((await this.o.driver.list()).map((i) => [i.id, i]));
    const out: ObservedInstance[] = [];
    for (const [id, d] of this.desired) {
      if (this.running.has(id)) continue; // converge reports when it is done
      const o = this.observation(d, infos.get(id));
      if (o) out.push(o);
    }
    const changed = out.filter((o) => full || this.lastSent.get(o.id) !== fingerprint(o));
    if (!changed.length) return;
    await this.o.report(changed);
    for (const o of changed) this.lastSent.set(o.id, fingerprint(o));
    if (full) this.lastFull = Date.now();
  }

  // --- one instance --------------------------------------------------------------------------

  private async converge(d: DesiredInstance): Promise<void> {
    const { driver, log: baseLog } = this.o;
    const log = baseLog.child({ instance: d.id });
    const rec = this.load(d.id);

    if (d.deleted) {
      if (this.retryTimers.has(d.id)) clearTimeout(this.retryTimers.get(d.id)!);
      await driver.destroy(d.id);
      rmSync(this.recordPath(d.id), { force: true });
      log.info('instance deleted');
      await this.send([{ id: d.id, powerState: 'deleted', observedGeneration: d.generation }]);
      return;
    }
    if (d.generation <= rec.appliedGeneration && !rec.resumeOnStart) return;
    if (rec.attemptsFor !== d.generation) { rec.attempts = 0; rec.attemptsFor = d.generation; }
    rec.attempts += 1;
    this.save(d.id, rec);

    const started = Date.now();
    try {
      if (d.migration) {
        const out = await this.migrations.step(d, specOf(d), rec.migration, log);
        rec.migration = out.state;
        this.save(d.id, rec);
        if (out.hold) {
          rec.appliedGeneration = d.generation;
          rec.fault = null;
          this.save(d.id, rec);
          const o = this.observation(d, await driver.getInfo(d.id));
          if (o) await this.send([o]);
          return;
        }
      }
      let info = await driver.getInfo(d.id);
      if (!info || !(await driver.getSpec(d.id))) {
        // With NICs the guest reads the metadata service (169.254.169.254) instead of a config drive.
        const drive = d.nics.length && !d.forceConfigDrive ? undefined : d.configDrive;
        if (d.disk) {
          // A guest moved here: its own disk, fetched through the controller, not a new one from the image.
          const t = this.requireTransfers();
          const file = join(t.dir, `${d.disk.migrationId}.in.qcow2`);
          log.info({ migration: d.disk.migrationId, bytes: d.disk.sizeBytes }, 'fetching moved disk');
          try {
            await t.download(d.id, d.disk, file);
            await driver.spawn(specOf(d), null, drive, { start: false, disk: file });
          } finally {
            rmSync(file, { force: true }); // moved into the guest's directory, or useless
          }
        } else {
          log.info({ image: d.imageId }, 'spawning');
          const image = await this.o.ensureImage(d.imageId);
          await driver.spawn(specOf(d), image, drive, { start: false });
        }
        info = await driver.getInfo(d.id);
      }
      await this.applyFlavor(d, info!, log);
      await this.syncNics(d, log);
      if (d.task && !rec.doneTasks.includes(d.task.id)) {
        rec.taskResult = await this.runTask(d, log);
        rec.doneTasks = [...rec.doneTasks.slice(-19), d.task.id];
        this.save(d.id, rec);
      }
      await this.convergePower(d.id, d.power, log);
      this.o.afterConverge?.(d.id);
      await this.applyFlavor(d, (await driver.getInfo(d.id))!, log);
      rec.appliedGeneration = d.generation;
      rec.fault = null;
      delete rec.resumeOnStart;
      log.info({ generation: d.generation, power: d.power, ms: Date.now() - started }, 'converged');
    } catch (e) {
      const message = (e as Error).message;
      const max = this.o.maxAttempts ?? 3;
      if (rec.attempts < max && !this.stopped) {
        log.warn({ err: message, attempt: rec.attempts }, 'converging failed; will retry');
        this.save(d.id, rec);
        const t = setTimeout(() => { this.retryTimers.delete(d.id); this.schedule(d.id); }, (this.o.retryDelayMs ?? 3000) * rec.attempts);
        this.retryTimers.set(d.id, t);
        return;
      }
      log.error({ err: message, generation: d.generation }, 'giving up on this desired state');
      rec.appliedGeneration = d.generation;
      rec.fault = { message, at: new Date().toISOString() };
      if (d.task && !rec.doneTasks.includes(d.task.id)) {
        rec.taskResult = { taskId: d.task.id, ok: false, error: message };
        rec.doneTasks = [...rec.doneTasks.slice(-19), d.task.id];
      }
    }
    this.save(d.id, rec);
    // This pass is done: busy only if another one is already queued (a newer desired state).
    // Counting this pass as busy held ACTIVE (and every action's end) back until observe()'s
    // next tick, up to 2 s later.
    const o = this.observation(d, await driver.getInfo(d.id), { finishing: true });
    if (o) await this.send([o]);
  }

  private async runTask(d: DesiredInstance, log: Logger): Promise<TaskResult> {
    const task = d.task!;
    const started = Date.now();
    try {
      if (task.type === 'reboot') {
        log.info({ kind: task.kind }, 'rebooting');
        await this.o.driver.reboot(d.id, task.kind, this.o.powerOffTimeoutSec ?? 60);
        return { taskId: task.id, ok: true, result: { ms: Date.now() - started } };
      }
      if (task.type === 'export-disk') return { taskId: task.id, ok: true, result: { ...(await this.exportDisk(d, task.migrationId, log)), ms: Date.now() - started } };
      log.info({ image: task.imageId }, 'taking snapshot');
      const dest = join(this.o.snapshotDir, `${task.imageId}.qcow2`);
      const r = await this.o.driver.snapshot(d.id, dest);
      // Streamed into the image service through the controller when it waits for this image;
      // otherwise the file stays here and its path is the result (a controller on this host reads it).
      const up = await this.o.transfers?.uploadSnapshot?.(task.imageId, dest);
      if (up) {
        rmSync(dest, { force: true });
        log.info({ image: task.imageId, bytes: r.sizeBytes }, 'snapshot uploaded');
        const { path: _p, ...rest } = r;
        return { taskId: task.id, ok: true, result: { ...rest, uploaded: true, imageId: task.imageId, name: task.name, ms: Date.now() - started } };
      }
      return { taskId: task.id, ok: true, result: { ...r, imageId: task.imageId, name: task.name, ms: Date.now() - started } };
    } catch (e) {
      log.error({ err: (e as Error).message, task: task.type }, 'task failed');
      return { taskId: task.id, ok: false, error: (e as Error).message };
    }
  }

  /** Flattens the stopped guest's disk into the staging dir and uploads it; the staged file is removed either way. */
  private async exportDisk(d: DesiredInstance, migrationId: string, log: Logger): Promise<{ sha256: string; sizeBytes: number }> {
    const t = this.requireTransfers();
    const info = await this.o.driver.getInfo(d.id);
    if (info?.powerState !== 'shutdown') throw new Error(`the guest must be stopped to move its disk (it is ${info?.powerState ?? 'missing'})`);
    const file = join(t.dir, `${migrationId}.out.qcow2`);
    try {
      const snap = await this.o.driver.snapshot(d.id, file);
      const up = await t.upload(d.id, migrationId, file);
      if (up.sha256 !== snap.sha256) throw new Error(`the controller received a different disk (sha256 ${up.sha256}, sent ${snap.sha256})`);
      log.info({ migration: migrationId, bytes: up.sizeBytes }, 'disk exported');
      return up;
    } finally {
      rmSync(file, { force: true });
    }
  }

  private requireTransfers(): NonNullable<ReconcilerOptions['transfers']> {
    if (!this.o.transfers) throw new Error('this agent cannot move disks (no transfer channel)');
    return this.o.transfers;
  }

  /** Interface attach/detach: NICs hot-plugged (QMP) into the running guest, or recorded for its next start. */
  private async syncNics(d: DesiredInstance, log: Logger): Promise<void> {
    const spec = await this.o.driver.getSpec(d.id);
    if (!spec) return;
    const have = new Set(spec.nics.map((n) => n.id));
    const want = new Set(d.nics.map((n) => n.id));
    for (const n of spec.nics) if (!want.has(n.id)) { log.info({ nic: n.id }, 'detaching NIC'); await this.o.driver.detachNic(d.id, n.id); }
    for (const n of d.nics) if (!have.has(n.id)) { log.info({ nic: n.id }, 'attaching NIC'); await this.o.driver.attachNic(d.id, n); }
  }

  /** vCPUs/RAM/disk can only change while the guest is stopped; otherwise it waits for a stop. */
  private async applyFlavor(d: DesiredInstance, info: InstanceInfo, log: Logger): Promise<void> {
    const spec = await this.o.driver.getSpec(d.id);
    if (!spec) return;
    const f = d.flavor;
    if (spec.vcpus === f.vcpus && spec.ramMb === f.ramMb && spec.diskGb >= f.diskGb) return;
    if (info.powerState !== 'shutdown') return;
    log.info({ from: { vcpus: spec.vcpus, ramMb: spec.ramMb }, to: f }, 'resizing');
    await this.o.driver.resize(d.id, f);
  }

  private async convergePower(id: string, target: DesiredPower, log: Logger): Promise<void> {
    const drv = this.o.driver;
    const timeout = this.o.powerOffTimeoutSec ?? 60;
    // A few steps at most (e.g. suspended → running → paused); re-read the state after each.
    for (let step = 0; step < 4; step++) {
      const cur = (await drv.getInfo(id))!.powerState;
      const want = target === 'shutoff' ? 'shutdown' : target;
      if (cur === want) return;
      log.info({ from: cur, to: target }, 'changing power state');
      switch (cur) {
        case 'crashed':
          await drv.powerOff(id, 0);
          break;
        case 'shutdown':
          if (target === 'suspended') throw new Error('a stopped guest cannot be suspended');
          await drv.powerOn(id);
          break;
        case 'suspended':
          if (target === 'shutoff') await drv.powerOff(id, timeout);
          else await drv.resume(id);
          break;
        case 'paused':
          if (target === 'shutoff') await drv.powerOff(id, timeout);
          else if (target === 'suspended') await drv.suspend(id);
          else await drv.unpause(id);
          break;
        case 'running':
          if (target === 'shutoff') await drv.powerOff(id, timeout);
          else if (target === 'paused') await drv.pause(id);
          else await drv.suspend(id);
          break;
      }
    }
    throw new Error(`could not bring the guest to ${target}`);
  }

  private observation(d: DesiredInstance, info: InstanceInfo | undefined, opts: { finishing?: boolean } = {}): ObservedInstance | undefined {
    if (d.deleted && !info) return { id: d.id, powerState: 'deleted', observedGeneration: d.generation };
    const rec = this.load(d.id);
    if (!info) {
      // A destination whose preparation failed has nothing left but the outcome to report.
      return rec.migration && d.migration?.id === rec.migration.id
        ? { id: d.id, powerState: 'deleted', observedGeneration: rec.appliedGeneration, migration: rec.migration } : undefined;
    }
    return {
      id: d.id, powerState: info.powerState, ...(info.pid ? { pid: info.pid } : {}), diskBytes: info.diskBytes,
      observedGeneration: rec.appliedGeneration, busy: !!info.busy || (opts.finishing ? this.dirty.has(d.id) : this.running.has(d.id)) || !!rec.resumeOnStart, fault: rec.fault,
      // Repeated until the controller stops asking for the task (it has recorded the result).
      ...(rec.taskResult && d.task?.id === rec.taskResult.taskId ? { taskResult: rec.taskResult } : {}),
      ...(rec.migration && d.migration?.id === rec.migration.id ? { migration: rec.migration } : {}),
    };
  }

  private async send(obs: ObservedInstance[]): Promise<void> {
    try {
      await this.o.report(obs);
      for (const o of obs) this.lastSent.set(o.id, fingerprint(o));
    } catch (e) {
      // The next observe() pass reports again.
      this.o.log.warn({ err: (e as Error).message }, 'report failed');
      for (const o of obs) this.lastSent.delete(o.id);
    }
  }

  private recordPath(id: string): string {
    return join(this.o.stateDir, `${id}.json`);
  }

  private load(id: string): InstanceRecordOnDisk {
    try { return { ...EMPTY, ...JSON.parse(readFileSync(this.recordPath(id), 'utf8')) }; } catch { return { ...EMPTY, doneTasks: [] }; }
  }

  private save(id: string, rec: InstanceRecordOnDisk): void {
    const p = this.recordPath(id);
    writeFileSync(`${p}.tmp`, JSON.stringify(rec));
    renameSync(`${p}.tmp`, p);
  }
}

function specOf(d: DesiredInstance): InstanceSpec {
  return { id: d.id, name: d.name, vcpus: d.flavor.vcpus, ramMb: d.flavor.ramMb, diskGb: d.flavor.diskGb, nics: d.nics };
}

const fingerprint = (o: ObservedInstance) => JSON.stringify({ ...o, diskBytes: undefined });

/** Marks a guest powered off by the host's shutdown (`stratus down`), to be restored on the next start. */
export function markResumeOnStart(stateDir: string, id: string): void {
  const p = join(stateDir, `${id}.json`);
  let rec: InstanceRecordOnDisk;
  try { rec = { ...EMPTY, ...JSON.parse(readFileSync(p, 'utf8')) }; } catch { rec = { ...EMPTY, doneTasks: [] }; }
  rec.resumeOnStart = true;
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(`${p}.tmp`, JSON.stringify(rec));
  renameSync(`${p}.tmp`, p);
}
