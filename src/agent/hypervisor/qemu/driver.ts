// The QEMU driver: every guest is a daemonized qemu-system-x86_64 (not a child of the agent, so it
// outlives agent restarts), described entirely by files in its own directory (see cmdline.ts).
// Operations on one guest are serialized (QMP admits one client at a time).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  InvalidStateError, NotFoundError,
  type BaseImage, type ConfigDriveSpec, type ConsoleChunk, type DiskSpec, type HypervisorDriver, type InstanceInfo, type NicSpec,
  type InstanceSpec, type PowerState, type RebootKind, type SnapshotResult, type VncAddress,
  type IncomingMigration, type MigrateOutOptions, type MigrationListen,
} from '../driver.js';
import { run } from '../../exec.js';
import { buildConfigDrive } from './configdrive.js';
import { guestPaths, qemuArgs, type Accelerator, type GuestPaths } from './cmdline.js';
import { cgroupRoot, guestCgroup, isGuestProcess, launchQemu, readPidFile, removeCgroup, waitGone } from './process.js';
import { withQmp, type QmpClient } from './qmp.js';
import { applyDeviceChange, attachDiskChange, attachNicChange, detachDiskChange, detachNicChange } from './hotplug.js';
import { abortOutgoing, finishIncoming, migrateOut, prepareIncoming } from './migration.js';
import { restoreState, saveState, takeSnapshot } from './savestate.js';
import { diskUsage, writeAtomic, type GuestOps } from './guest-ops.js';

export interface QemuDriverOptions {
  /** DATA_DIR/agent/instances */
  instancesDir: string;
  accel: Accelerator;
  log: Logger;
  binary?: string;
  /** Put each guest in its own cgroup when cgroup v2 is writable (default true). */
  cgroups?: boolean;
  /**
   * Groups this agent's guest cgroups under `stratus.slice/host-TAG.slice`: two agents on one
   * machine (tests, a live migration between them) must not share an instance's cgroup, or
   * removing the source's would kill the destination's QEMU.
   */
  cgroupTag?: string;
  /** Address guests' VNC servers listen on over TCP (for controllers on other machines); default: a unix socket. */
  vncListen?: string;
}

const PAUSED_STATES = new Set(['paused', 'suspended', 'postmigrate', 'finish-migrate', 'inmigrate', 'prelaunch',
  'restore-vm', 'save-vm', 'debug', 'colo']);
const CRASHED_STATES = new Set(['guest-panicked', 'internal-error', 'io-error', 'watchdog']);

export class QemuDriver implements HypervisorDriver, GuestOps {
  readonly hypervisorType = 'QEMU' as const;
  readonly accelerator: Accelerator;
  readonly binary: string;
  readonly cgroupRoot: string | undefined;
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly lastState = new Map<string, PowerState>();

  constructor(private readonly o: QemuDriverOptions) {
    this.accelerator = o.accel;
    this.binary = o.binary ?? 'qemu-system-x86_64';
    mkdirSync(o.instancesDir, { recursive: true });
    this.cgroupRoot = o.cgroups === false ? undefined : cgroupRoot(o.cgroupTag);
  }

  get log(): Logger {
    return this.o.log;
  }

  paths(id: string): GuestPaths {
    return guestPaths(this.o.instancesDir, id);
  }

  /** The full command line of a guest (also used by bench/boot to start one by hand). */
  commandLine(spec: InstanceSpec, opts: { incoming?: boolean; foreground?: boolean } = {}): string[] {
    const p = this.paths(spec.id);
    return [this.binary, ...qemuArgs(spec, p, { accel: this.accelerator, hasConfigDrive: existsSync(p.configDrive), vncListen: this.o.vncListen, ...opts })];
  }

  async spawn(spec: InstanceSpec, image: BaseImage | null, configDrive: ConfigDriveSpec | undefined, opts: { start?: boolean; disk?: string } = {}): Promise<void> {
    const p = this.paths(spec.id);
    if (p.qmp.length > 100) throw new Error(`instance directory too deep for unix sockets: ${p.qmp}`);
    await this.locked(spec.id, async () => {
      await this.createFiles(spec, image, configDrive, opts.disk);
      if (opts.start !== false) await this.start(spec.id);
    });
  }

  /** The guest's directory, spec, overlay disk and config drive (each created once). */
  async createFiles(spec: InstanceSpec, image: BaseImage | null, configDrive: ConfigDriveSpec | undefined, disk?: string): Promise<void> {
    const p = this.paths(spec.id);
    const log = this.o.log.child({ instance: spec.id });
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    writeAtomic(p.spec, JSON.stringify(spec, null, 2));
    if (!existsSync(p.disk) && disk) {
      // A moved guest's own disk (cold migration), grown to the spec's size.
      const info = JSON.parse(await run('qemu-img', ['info', '--output=json', disk])) as { 'virtual-size': number; format: string };
      if (info.format !== 'qcow2') throw new Error(`a moved disk must be qcow2, not ${info.format}`);
      const want = spec.diskGb * 1024 ** 3;
      if (want > info['virtual-size']) await run('qemu-img', ['resize', '-q', disk, String(want)]);
      renameSync(disk, p.disk);
      log.info({ virtualSize: Math.max(want, info['virtual-size']) }, 'imported moved disk');
    }
    if (!existsSync(p.disk)) {
      if (!image) throw new Error(`guest ${spec.id} has no disk and no image to make one from`);
      const part = `${p.disk}.part`;
      const size = await this.targetSize(image, spec.diskGb);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', image.format, '-b', image.path, part, ...(size ? [String(size)] : [])]);
      renameSync(part, p.disk);
      log.info({ base: image.path, sizeBytes: size }, 'created overlay disk');
    }
    if (configDrive && !existsSync(p.configDrive)) {
      await buildConfigDrive(configDrive, p.configDrive);
      log.info('built config drive');
    }
  }

  async destroy(id: string): Promise<void> {
    await this.locked(id, async () => {
      const p = this.paths(id);
      const pid = this.livePid(id);
      if (pid) {
        process.kill(pid, 'SIGKILL');
        await waitGone(pid, id, 10_000);
      }
      await removeCgroup(guestCgroup(this.cgroupRoot, id));
      rmSync(p.dir, { recursive: true, force: true });
      this.lastState.delete(id);
      this.o.log.info({ instance: id, pid }, 'destroyed guest');
    });
  }

  async powerOn(id: string): Promise<void> {
    await this.locked(id, async () => {
      if (this.livePid(id)) return;
      if (existsSync(this.paths(id).state)) await restoreState(this, id);
      else await this.start(id);
    });
  }

  async powerOff(id: string, timeoutSec: number): Promise<{ clean: boolean }> {
    return this.locked(id, async () => {
      const p = this.paths(id);
      const pid = this.livePid(id);
      if (!pid) {
        // Stopping a suspended guest discards its saved memory, as a stop would.
        rmSync(p.state, { force: true });
        return { clean: true };
      }
      const clean = await this.acpiShutdown(id, pid, timeoutSec);
      if (!clean) await this.hardStop(id, pid);
      this.afterExit(id);
      return { clean };
    });
  }

  async reboot(id: string, kind: RebootKind, timeoutSec = 60): Promise<void> {
    await this.locked(id, async () => {
      const pid = this.livePid(id);
      if (pid) {
        const clean = kind === 'soft' ? await this.acpiShutdown(id, pid, timeoutSec) : false;
        if (!clean) await this.hardStop(id, pid);
        this.afterExit(id);
      }
      // A reboot from a suspended state boots afresh (the saved memory is discarded).
      rmSync(this.paths(id).state, { force: true });
      await this.start(id);
    });
  }

  async pause(id: string): Promise<void> {
    await this.locked(id, () => this.qmp(id, (c) => c.execute('stop')));
  }

  async unpause(id: string): Promise<void> {
    await this.locked(id, () => this.qmp(id, (c) => c.execute('cont')));
  }

  async suspend(id: string): Promise<void> {
    await this.locked(id, () => saveState(this, id));
  }

  async resume(id: string): Promise<void> {
    await this.locked(id, async () => {
      if (this.livePid(id)) {
        await this.qmp(id, (c) => c.execute('cont'));
        return;
      }
      if (!existsSync(this.paths(id).state)) throw new InvalidStateError(`guest ${id} has no saved state to resume from`);
      await restoreState(this, id);
    });
  }

  async snapshot(id: string, dest: string): Promise<SnapshotResult> {
    return this.locked(id, () => takeSnapshot(this, id, dest));
  }

  async resize(id: string, flavor: { vcpus: number; ramMb: number; diskGb?: number }): Promise<void> {
    await this.locked(id, async () => {
      const p = this.requireGuest(id);
      if (this.livePid(id) || existsSync(p.state)) throw new InvalidStateError(`guest ${id} must be stopped to be resized`);
      const spec = this.readSpec(id)!;
      if (flavor.diskGb && flavor.diskGb > spec.diskGb) {
        const info = JSON.parse(await run('qemu-img', ['info', '--output=json', p.disk])) as { 'virtual-size': number };
        const want = flavor.diskGb * 1024 ** 3;
        if (want > info['virtual-size']) await run('qemu-img', ['resize', '-q', p.disk, String(want)]);
        spec.diskGb = flavor.diskGb;
      }
      spec.vcpus = flavor.vcpus;
      spec.ramMb = flavor.ramMb;
      writeAtomic(p.spec, JSON.stringify(spec, null, 2));
    });
  }

  async getInfo(id: string): Promise<InstanceInfo | undefined> {
    const p = this.paths(id);
    if (!existsSync(p.dir)) return undefined;
    const spec = this.readSpec(id);
    const pid = this.livePid(id);
    const base = { id, pid, vcpus: spec?.vcpus ?? 0, ramMb: spec?.ramMb ?? 0, diskBytes: diskUsage(p.dir) };
    if (!pid) {
      const powerState: PowerState = existsSync(p.state) ? 'suspended' : 'shutdown';
      return { ...base, pid: undefined, powerState, ...(this.locks.has(id) ? { busy: true } : {}) };
    }
    if (this.locks.has(id)) return { ...base, powerState: this.lastState.get(id) ?? 'running', busy: true };
    let powerState: PowerState = this.lastState.get(id) ?? 'running';
    try {
      const s = await this.locked(id, () => this.qmp(id, (c) => c.execute<{ status: string }>('query-status'), 3000));
      powerState = s.status === 'running' ? 'running'
        : CRASHED_STATES.has(s.status) ? 'crashed'
        : s.status === 'shutdown' ? 'shutdown'
        : PAUSED_STATES.has(s.status) ? 'paused' : 'running';
    } catch (e) {
      this.o.log.warn({ instance: id, err: (e as Error).message }, 'QMP query-status failed');
    }
    this.lastState.set(id, powerState);
    return { ...base, powerState };
  }

  async list(): Promise<InstanceInfo[]> {
    const ids = readdirSync(this.o.instancesDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && /^[0-9a-f-]{36}$/.test(d.name)).map((d) => d.name);
    const infos = await Promise.all(ids.map((id) => this.getInfo(id)));
    return infos.filter((i): i is InstanceInfo => !!i);
  }

  async readConsole(id: string, offset: number, maxBytes = 64 * 1024): Promise<ConsoleChunk> {
    const p = this.requireGuest(id);
    if (!existsSync(p.console)) return { data: Buffer.alloc(0), next: 0, size: 0 };
    const size = statSync(p.console).size;
    const start = Math.min(Math.max(0, offset), size);
    const len = Math.min(maxBytes, size - start);
    const data = Buffer.alloc(len);
    const fd = openSync(p.console, 'r');
    try { readSync(fd, data, 0, len, start); } finally { closeSync(fd); }
    return { data, next: start + len, size };
  }

  async vncAddress(id: string): Promise<VncAddress | undefined> {
    const p = this.paths(id);
    if (!this.livePid(id)) return undefined;
    if (existsSync(p.vnc)) return { unixSocket: p.vnc };
    // TCP: the port QEMU picked (first free display), as it reports it.
    type Vnc = { enabled: boolean; host?: string; service?: string; family?: string };
    const v = await this.locked(id, () => this.qmp(id, (c) => c.execute<Vnc>('query-vnc'), 3000)).catch(() => undefined);
    if (!v?.enabled || !v.host || !v.service || v.family === 'unix') return undefined;
    return { host: v.host, port: Number(v.service) };
  }

  async getSpec(id: string): Promise<InstanceSpec | undefined> {
    return this.readSpec(id);
  }

  async attachDisk(id: string, disk: DiskSpec): Promise<void> {
    await this.locked(id, () => applyDeviceChange(this, id, attachDiskChange(disk)));
  }

  async detachDisk(id: string, diskId: string): Promise<void> {
    await this.locked(id, () => applyDeviceChange(this, id, detachDiskChange(diskId)));
  }

  async attachNic(id: string, nic: NicSpec): Promise<void> {
    await this.locked(id, () => applyDeviceChange(this, id, attachNicChange(nic)));
  }

  async detachNic(id: string, nicId: string): Promise<void> {
    await this.locked(id, () => applyDeviceChange(this, id, detachNicChange(nicId)));
  }

  async prepareIncoming(spec: InstanceSpec, image: BaseImage, configDrive: ConfigDriveSpec | undefined, listen: MigrationListen): Promise<IncomingMigration> {
    return this.locked(spec.id, () => prepareIncoming(this, spec, image, configDrive, listen));
  }

  async migrateOut(id: string, to: IncomingMigration, opts?: MigrateOutOptions): Promise<{ downtimeMs?: number; totalMs: number }> {
    return this.locked(id, () => migrateOut(this, id, to, opts));
  }

  async abortOutgoing(id: string): Promise<void> {
    await this.locked(id, () => abortOutgoing(this, id));
  }

  async finishIncoming(id: string, timeoutMs = 600_000): Promise<void> {
    await this.locked(id, () => finishIncoming(this, id, timeoutMs));
  }

  /** Pid of the guest's live QEMU, checked against /proc (never trusts the pid file alone). */
  livePid(id: string): number | undefined {
    const pid = readPidFile(this.paths(id).pid);
    return pid && isGuestProcess(pid, id) ? pid : undefined;
  }

  // --- internals -----------------------------------------------------------------------------

  // --- GuestOps: for hotplug.ts, savestate.ts, migration.ts (callers hold the guest's lock) ---

  readSpec(id: string): InstanceSpec | undefined {
    try { return JSON.parse(readFileSync(this.paths(id).spec, 'utf8')) as InstanceSpec; } catch { return undefined; }
  }

  writeSpec(id: string, spec: InstanceSpec): void {
    writeAtomic(this.paths(id).spec, JSON.stringify(spec, null, 2));
  }

  requireGuest(id: string): GuestPaths {
    const p = this.paths(id);
    if (!existsSync(p.spec)) throw new NotFoundError(id);
    return p;
  }

  startGuest(id: string, opts: { incoming?: boolean }): Promise<number> {
    return this.start(id, opts);
  }

  noteState(id: string, state: PowerState): void {
    this.lastState.set(id, state);
  }

  async stopGuest(id: string, pid: number): Promise<void> {
    await this.hardStop(id, pid);
    this.afterExit(id);
  }

  private async start(id: string, opts: { incoming?: boolean } = {}): Promise<number> {
    const p = this.requireGuest(id);
    const spec = this.readSpec(id)!;
    // Sockets and pid file of a process that died without cleaning up.
    for (const f of [p.qmp, p.vnc, p.pid]) rmSync(f, { force: true });
    const [bin, ...args] = this.commandLine(spec, opts);
    const started = Date.now();
    await launchQemu(bin!, args, { cgroup: guestCgroup(this.cgroupRoot, id), logFile: p.log });
    const pid = readPidFile(p.pid);
    if (!pid) throw new Error(`qemu started but wrote no pid file for ${id}`);
    this.lastState.set(id, opts.incoming ? 'paused' : 'running');
    this.o.log.info({ instance: id, pid, ms: Date.now() - started, accel: this.accelerator }, 'started qemu');
    return pid;
  }

  private async acpiShutdown(id: string, pid: number, timeoutSec: number): Promise<boolean> {
    try {
      await this.qmp(id, async (c) => {
        const s = await c.execute<{ status: string }>('query-status');
        // A paused guest cannot see the power button.
        if (s.status !== 'running') await c.execute('cont').catch(() => undefined);
        await c.execute('system_powerdown');
      });
    } catch (e) {
      this.o.log.warn({ instance: id, err: (e as Error).message }, 'ACPI power button failed');
      return false;
    }
    const clean = await waitGone(pid, id, timeoutSec * 1000);
    this.o.log.info({ instance: id, clean, timeoutSec }, clean ? 'guest shut down' : 'guest ignored the power button');
    return clean;
  }

  private async hardStop(id: string, pid: number): Promise<void> {
    try {
      await this.qmp(id, (c) => c.execute('quit'), 2000);
    } catch { /* fall through to SIGKILL */ }
    if (!(await waitGone(pid, id, 3000))) {
      process.kill(pid, 'SIGKILL');
      await waitGone(pid, id, 10_000);
    }
  }

  private afterExit(id: string): void {
    const p = this.paths(id);
    for (const f of [p.qmp, p.vnc, p.pid]) rmSync(f, { force: true });
    this.lastState.set(id, existsSync(p.state) ? 'suspended' : 'shutdown');
  }

  async qmp<T>(id: string, fn: (c: QmpClient) => Promise<T>, timeoutMs?: number): Promise<T> {
    if (!this.livePid(id)) throw new InvalidStateError(`guest ${id} is not running`);
    return withQmp(this.paths(id).qmp, fn, timeoutMs);
  }

  private async targetSize(image: BaseImage, diskGb: number): Promise<number | undefined> {
    if (!diskGb) return undefined;
    const info = JSON.parse(await run('qemu-img', ['info', '--output=json', '-f', image.format, image.path])) as { 'virtual-size': number };
    const want = diskGb * 1024 ** 3;
    return want > info['virtual-size'] ? want : undefined;
  }

  /** Serializes operations on one guest; re-entrant calls from inside a locked section are not used. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      const cur = this.locks.get(id);
      if (!cur) break;
      await cur.catch(() => undefined);
    }
    const p = fn();
    this.locks.set(id, p);
    try {
      return await p;
    } finally {
      if (this.locks.get(id) === p) this.locks.delete(id);
    }
  }
}
