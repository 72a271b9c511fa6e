// The hypervisor driver: one narrow interface between the agent's reconcile loop and whatever
// runs guests (QEMU here; a fake for unit tests). Modelled on Nova's virt driver: every method
// is idempotent where it can be (destroying a missing guest, powering on a running one are no-ops),
// because the reconcile loop may repeat a step after a crash.

/** A network interface of a guest. Filled by the networking issue (tap on a bridge in a netns). */
export interface NicSpec {
  /** Port id; the tap device is derived from it. */
  id: string;
  mac: string;
  /** Host tap device name, created by the dataplane before spawn. */
  tap: string;
  mtu?: number;
}

/** What a guest is made of: the agent persists it next to the guest, so a restart needs no controller. */
export interface InstanceSpec {
  id: string;
  name: string;
  vcpus: number;
  ramMb: number;
  /** Root disk size; 0 keeps the image's virtual size. Never shrinks. */
  diskGb: number;
  /** Empty: the guest boots with no NIC (`-nic none`). */
  nics: NicSpec[];
  /** Data disks (volumes), in attach order; hot-plugged into a running guest by attachDisk. */
  disks?: DiskSpec[];
}

/** A volume attached to a guest: a file (qcow2/raw) or block device on this host. */
export interface DiskSpec {
  /** Volume id: names the QEMU device and is the disk's serial (the guest sees /dev/disk/by-id/virtio-<serial>). */
  id: string;
  path: string;
  format: 'qcow2' | 'raw';
  readOnly?: boolean;
}

/** Contents of the config drive (ISO9660 labelled `config-2`, OpenStack layout). */
export interface ConfigDriveSpec {
  metaData: Record<string, unknown>;
  userData?: string;
  networkData?: Record<string, unknown>;
  vendorData?: Record<string, unknown>;
}

export interface BaseImage {
  /** Local path of the cached, checksum-verified base image. */
  path: string;
  format: 'qcow2' | 'raw';
}

/**
 * `running`: vCPUs run. `paused`: process alive, vCPUs stopped. `suspended`: no process, memory
 * state saved to disk. `shutdown`: no process, disk intact. `crashed`: process alive but the guest
 * panicked or QEMU reports an internal error.
 */
export type PowerState = 'running' | 'paused' | 'suspended' | 'shutdown' | 'crashed';

export interface InstanceInfo {
  id: string;
  powerState: PowerState;
  /** QEMU pid when a process exists. */
  pid?: number;
  vcpus: number;
  ramMb: number;
  /** Bytes the guest's files take on the host (overlay, config drive, saved state, console log). */
  diskBytes: number;
  /** An operation on this guest is in progress; `powerState` is the last state seen before it. */
  busy?: boolean;
}

export interface SnapshotResult {
  path: string;
  sizeBytes: number;
  virtualSizeBytes: number;
  sha256: string;
  format: 'qcow2';
}

export interface ConsoleChunk {
  data: Buffer;
  /** Offset to pass next time. */
  next: number;
  /** Current size of the whole log. */
  size: number;
}

export type VncAddress = { unixSocket: string } | { host: string; port: number };

export type RebootKind = 'soft' | 'hard';

/** Where a destination host listens for incoming live migrations (its migration address and port range). */
export interface MigrationListen {
  host: string;
  ports: [number, number];
}

/** What a prepared destination tells the source: memory stream and writable NBD export of the root disk. */
export interface IncomingMigration {
  /** QEMU migration URI, `tcp:HOST:PORT`. */
  uri: string;
  /** NBD URI of the destination's root disk, `nbd:HOST:PORT:exportname=NAME`. */
  diskUri: string;
}

export interface MigrationProgress {
  phase: 'disk' | 'memory' | 'switchover' | 'done';
  diskDone?: number;
  diskTotal?: number;
  memoryDone?: number;
  memoryTotal?: number;
}

export interface MigrateOutOptions {
  onProgress?: (p: MigrationProgress) => void;
  /** Aborting cancels the jobs; the guest keeps running on the source. */
  signal?: AbortSignal;
  /** Aborting this one forces completion: the guest is paused so the copy converges (it arrives paused). */
  forceComplete?: AbortSignal;
  timeoutMs?: number;
}

export interface HypervisorDriver {
  readonly hypervisorType: 'QEMU' | 'fake';
  readonly accelerator: 'KVM' | 'TCG';

  /**
   * Creates the guest's files (overlay disk on `image`, config drive) and starts it unless `start`
   * is false. With `disk`, that file (a moved guest's disk, qcow2) becomes the root disk instead —
   * moved in, grown to the spec's size — and `image` may be null.
   */
  spawn(spec: InstanceSpec, image: BaseImage | null, configDrive: ConfigDriveSpec | undefined, opts?: { start?: boolean; disk?: string }): Promise<void>;
  /** Stops the process (hard) and removes every file and socket of the guest. Missing guest: no-op. */
  destroy(id: string): Promise<void>;
  powerOn(id: string): Promise<void>;
  /** ACPI power button, then a hard stop once `timeoutSec` has passed. */
  powerOff(id: string, timeoutSec: number): Promise<{ clean: boolean }>;
  /** soft: ACPI shutdown (falls back to hard after the timeout) then start; hard: stop the process and start. */
  reboot(id: string, kind: RebootKind, timeoutSec?: number): Promise<void>;
  pause(id: string): Promise<void>;
  unpause(id: string): Promise<void>;
  /** Saves memory and device state to disk and stops the process. */
  suspend(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Copies the root disk, flattened (no backing file), to `dest`; a running guest is paused briefly. */
  snapshot(id: string, dest: string): Promise<SnapshotResult>;
  /** Changes vCPUs/RAM (and grows the disk) of a stopped guest. */
  resize(id: string, flavor: { vcpus: number; ramMb: number; diskGb?: number }): Promise<void>;
  getInfo(id: string): Promise<InstanceInfo | undefined>;
  list(): Promise<InstanceInfo[]>;
  readConsole(id: string, offset: number, maxBytes?: number): Promise<ConsoleChunk>;
  vncAddress(id: string): Promise<VncAddress | undefined>;
  /** The persisted spec of a guest the driver knows. */
  getSpec(id: string): Promise<InstanceSpec | undefined>;
  /** Hot-plugs a data disk into a running guest (and keeps it for later boots); a no-op if attached. */
  attachDisk(id: string, disk: DiskSpec): Promise<void>;
  /** Unplugs it (the guest must release it: ACPI hot-unplug) and forgets it; a no-op if absent. */
  detachDisk(id: string, diskId: string): Promise<void>;
  /** Hot-plugs a NIC (its tap must exist) and keeps it for later boots. */
  attachNic(id: string, nic: NicSpec): Promise<void>;
  detachNic(id: string, nicId: string): Promise<void>;

  // Live migration with local disks (block migration); see qemu/migration.ts for the protocol.
  /** Destination: creates the guest's files and waits for it (QEMU `-incoming`, root disk exported). Repeatable. */
  prepareIncoming(spec: InstanceSpec, image: BaseImage, configDrive: ConfigDriveSpec | undefined, listen: MigrationListen): Promise<IncomingMigration>;
  /** Source: copies disk, memory and device state to `to`, then stops the local process (files stay until destroy). */
  migrateOut(id: string, to: IncomingMigration, opts?: MigrateOutOptions): Promise<{ downtimeMs?: number; totalMs: number }>;
  /** Source: cancels a migration left in progress (e.g. by an agent restart); the guest keeps running here. */
  abortOutgoing(id: string): Promise<void>;
  /** Destination: waits until the guest runs here and closes the disk export; throws if the migration failed. */
  finishIncoming(id: string, timeoutMs?: number): Promise<void>;
}

/** Thrown for requests that cannot apply in the guest's current state (e.g. resize while running). */
export class InvalidStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateError';
  }
}

export class NotFoundError extends Error {
  constructor(id: string) {
    super(`no guest ${id} on this host`);
    this.name = 'NotFoundError';
  }
}
