// An in-memory hypervisor for unit tests of the layers above the driver (reconcile loop, compute).
// It keeps the state machine of the real driver, so tests of those layers can fail for real
// reasons; `crash(id)` simulates a guest dying behind the agent's back.
import {
  InvalidStateError, NotFoundError,
  type BaseImage, type ConfigDriveSpec, type ConsoleChunk, type DiskSpec, type HypervisorDriver, type InstanceInfo, type NicSpec,
  type InstanceSpec, type PowerState, type RebootKind, type SnapshotResult, type VncAddress,
  type IncomingMigration, type MigrateOutOptions, type MigrationListen,
} from '../driver.js';

/** Destinations waiting for a migration, by URI: fake drivers in one process migrate to each other. */
const incoming = new Map<string, { guest: FakeGuest; arrived: boolean }>();

interface FakeGuest {
  spec: InstanceSpec;
  image: BaseImage | null;
  /** The moved disk it was spawned from, if any. */
  disk?: string;
  configDrive?: ConfigDriveSpec;
  state: PowerState;
  pid?: number;
  console: string;
  boots: number;
}

export class FakeDriver implements HypervisorDriver {
  readonly hypervisorType = 'fake' as const;
  readonly accelerator = 'TCG' as const;
  readonly guests = new Map<string, FakeGuest>();
  /** Every call, in order ("powerOn <id>"), for assertions. */
  readonly calls: string[] = [];
  private nextPid = 1000;
  /** Make the next call of this method throw (tests of retries and faults). */
  failNext = new Map<string, string>();

  async spawn(spec: InstanceSpec, image: BaseImage | null, configDrive: ConfigDriveSpec | undefined, opts: { start?: boolean; disk?: string } = {}): Promise<void> {
    this.record('spawn', spec.id);
    if (!this.guests.has(spec.id)) this.guests.set(spec.id, { spec: { ...spec }, image, ...(opts.disk ? { disk: opts.disk } : {}), configDrive, state: 'shutdown', console: '', boots: 0 });
    if (opts.start !== false) await this.powerOn(spec.id);
  }

  async destroy(id: string): Promise<void> {
    this.record('destroy', id);
    this.guests.delete(id);
  }

  async powerOn(id: string): Promise<void> {
    this.record('powerOn', id);
    const g = this.get(id);
    if (g.pid) return;
    this.boot(g);
  }

  async powerOff(id: string): Promise<{ clean: boolean }> {
    this.record('powerOff', id);
    const g = this.get(id);
    g.state = 'shutdown';
    g.pid = undefined;
    return { clean: true };
  }

  async reboot(id: string, kind: RebootKind): Promise<void> {
    this.record(`reboot-${kind}`, id);
    this.boot(this.get(id));
  }

  async pause(id: string): Promise<void> {
    this.record('pause', id);
    this.require(id, ['running', 'paused']).state = 'paused';
  }

  async unpause(id: string): Promise<void> {
    this.record('unpause', id);
    this.require(id, ['running', 'paused']).state = 'running';
  }

  async suspend(id: string): Promise<void> {
    this.record('suspend', id);
    const g = this.require(id, ['running', 'paused', 'suspended']);
    g.state = 'suspended';
    g.pid = undefined;
  }

  async resume(id: string): Promise<void> {
    this.record('resume', id);
    const g = this.require(id, ['suspended', 'running', 'paused']);
    if (!g.pid) g.pid = this.nextPid++;
    g.state = 'running';
  }

  async snapshot(id: string, dest: string): Promise<SnapshotResult> {
    this.record('snapshot', id);
    this.get(id);
    return { path: dest, sizeBytes: 1, virtualSizeBytes: 1, sha256: '0'.repeat(64), format: 'qcow2' };
  }

  async resize(id: string, flavor: { vcpus: number; ramMb: number; diskGb?: number }): Promise<void> {
    this.record('resize', id);
    const g = this.require(id, ['shutdown']);
    g.spec = { ...g.spec, vcpus: flavor.vcpus, ramMb: flavor.ramMb, diskGb: Math.max(g.spec.diskGb, flavor.diskGb ?? 0) };
  }

  async getInfo(id: string): Promise<InstanceInfo | undefined> {
    const g = this.guests.get(id);
    if (!g) return undefined;
    return { id, powerState: g.state, pid: g.pid, vcpus: g.spec.vcpus, ramMb: g.spec.ramMb, diskBytes: 4096 };
  }

  async list(): Promise<InstanceInfo[]> {
    return (await Promise.all([...this.guests.keys()].map((id) => this.getInfo(id)))).filter((i): i is InstanceInfo => !!i);
  }

  async readConsole(id: string, offset: number, maxBytes = 65536): Promise<ConsoleChunk> {
    const buf = Buffer.from(this.get(id).console);
    const data = buf.subarray(offset, offset + maxBytes);
    return { data, next: offset + data.length, size: buf.length };
  }

  async vncAddress(id: string): Promise<VncAddress | undefined> {
    return this.get(id).pid ? { host: '127.0.0.1', port: 5900 } : undefined;
  }

  async getSpec(id: string): Promise<InstanceSpec | undefined> {
    return this.guests.get(id)?.spec;
  }

  async attachDisk(id: string, disk: DiskSpec): Promise<void> {
    this.record('attachDisk', id);
    const g = this.get(id);
    g.spec.disks = [...(g.spec.disks ?? []).filter((d) => d.id !== disk.id), disk];
  }

  async detachDisk(id: string, diskId: string): Promise<void> {
    this.record('detachDisk', id);
    const g = this.get(id);
    g.spec.disks = (g.spec.disks ?? []).filter((d) => d.id !== diskId);
  }

  async attachNic(id: string, nic: NicSpec): Promise<void> {
    this.record('attachNic', id);
    const g = this.get(id);
    g.spec.nics = [...g.spec.nics.filter((n) => n.id !== nic.id), nic];
  }

  async detachNic(id: string, nicId: string): Promise<void> {
    this.record('detachNic', id);
    const g = this.get(id);
    g.spec.nics = g.spec.nics.filter((n) => n.id !== nicId);
  }

  /** The guest dies (QEMU killed, host OOM) without the agent doing anything. */
  async prepareIncoming(spec: InstanceSpec, image: BaseImage, configDrive: ConfigDriveSpec | undefined, listen: MigrationListen): Promise<IncomingMigration> {
    this.record('prepareIncoming', spec.id);
    const uri = `fake:${listen.host}:${listen.ports[0]}/${spec.id}`;
    if (!this.guests.has(spec.id)) {
      const guest: FakeGuest = { spec: { ...spec }, image, configDrive, state: 'paused', pid: this.nextPid++, console: '', boots: 0 };
      this.guests.set(spec.id, guest);
      incoming.set(uri, { guest, arrived: false });
    }
    return { uri, diskUri: `${uri}/disk` };
  }

  async migrateOut(id: string, to: IncomingMigration, opts: MigrateOutOptions = {}): Promise<{ downtimeMs?: number; totalMs: number }> {
    this.record('migrateOut', id);
    const g = this.require(id, ['running', 'paused']);
    const dest = incoming.get(to.uri);
    if (!dest) throw new Error(`nobody waits for a migration at ${to.uri}`);
    if (opts.signal?.aborted) throw new Error('live migration aborted');
    opts.onProgress?.({ phase: 'memory', memoryDone: 1, memoryTotal: 1 });
    // force_complete pauses the guest: it arrives paused (the destination's agent resumes it).
    if (opts.forceComplete?.aborted) { this.calls.push(`forceComplete ${id}`); g.state = 'paused'; }
    Object.assign(dest.guest, { state: g.state, console: g.console, boots: g.boots });
    dest.arrived = true;
    incoming.delete(to.uri);
    g.state = 'shutdown';
    g.pid = undefined;
    return { downtimeMs: 1, totalMs: 1 };
  }

  async abortOutgoing(id: string): Promise<void> {
    this.record('abortOutgoing', id);
  }

  async finishIncoming(id: string): Promise<void> {
    this.record('finishIncoming', id);
    const g = this.get(id);
    if ([...incoming.values()].some((w) => w.guest === g)) throw new Error(`the migration of ${id} has not arrived`);
  }

  crash(id: string): void {
    const g = this.get(id);
    g.state = 'shutdown';
    g.pid = undefined;
  }

  private boot(g: FakeGuest): void {
    g.pid = this.nextPid++;
    g.state = 'running';
    g.boots++;
    g.console += `boot ${g.boots}\n`;
  }

  private record(op: string, id: string): void {
    this.calls.push(`${op} ${id}`);
    const msg = this.failNext.get(op);
    if (msg) {
      this.failNext.delete(op);
      throw new Error(msg);
    }
  }

  private get(id: string): FakeGuest {
    const g = this.guests.get(id);
    if (!g) throw new NotFoundError(id);
    return g;
  }

  private require(id: string, states: PowerState[]): FakeGuest {
    const g = this.get(id);
    if (!states.includes(g.state)) throw new InvalidStateError(`guest ${id} is ${g.state}`);
    return g;
  }
}
