// The contract between the controller and host agents (HTTP under /compute/agent/v1, JSON).
// Types only: the controller (compute/api/agent.ts) and the agent (agent/client.ts) both import it.

export type DesiredPower = 'running' | 'shutoff' | 'paused' | 'suspended';
export type ObservedPower = 'running' | 'paused' | 'suspended' | 'shutdown' | 'crashed';

/** A one-shot action; done once per id (the agent remembers the ids it completed). */
export type AgentTask =
  | { id: string; type: 'reboot'; kind: 'soft' | 'hard' }
  | { id: string; type: 'snapshot'; imageId: string; name: string }
  /** Cold migration: upload the stopped guest's root disk (flattened) to the controller. */
  | { id: string; type: 'export-disk'; migrationId: string };

/** A root disk moved from another host, fetched from the controller instead of built from the image. */
export interface DiskSource {
  migrationId: string;
  sha256: string;
  sizeBytes: number;
}

/** Where a prepared destination waits: QEMU's migration URI and the NBD export of its root disk. */
export interface MigrationTarget { uri: string; diskUri: string }

/**
 * A live migration step for this host (docs/agent.md, "Live migration"). The destination first
 * gets a copy of the instance with `phase: "prepare"` (QEMU waits, disk exported) and reports the
 * target; the source then gets `target` and sends the guest; once it reports `completed` the
 * instance belongs to the destination (`phase: "finish"`: close the export) and the source gets a
 * deleted tombstone of it. `abort` asks the source to cancel (the guest stays there);
 * `forceComplete` to pause the guest so that the copy converges (it resumes on the destination).
 */
export type DesiredMigration =
  | { id: string; role: 'destination'; phase: 'prepare' | 'finish' }
  | { id: string; role: 'source'; target: MigrationTarget; abort?: boolean; forceComplete?: boolean };

export interface ObservedMigration {
  id: string;
  /** destination: prepared → finished; source: running → completed; either: failed; source: aborted. */
  state: 'prepared' | 'running' | 'completed' | 'finished' | 'failed' | 'aborted';
  target?: MigrationTarget;
  progress?: { phase: 'disk' | 'memory' | 'switchover' | 'done'; diskDone?: number; diskTotal?: number; memoryDone?: number; memoryTotal?: number };
  error?: string;
  downtimeMs?: number;
}

/** What the controller wants of one instance on a host. */
export interface DesiredInstance {
  id: string;
  name: string;
  projectId: string;
  /** Bumped by every change the user asks for; the agent reports the generation it has applied. */
  generation: number;
  power: DesiredPower;
  /** Delete the guest and everything it left on the host. */
  deleted: boolean;
  flavor: { vcpus: number; ramMb: number; diskGb: number };
  imageId: string;
  configDrive: { metaData: Record<string, unknown>; userData?: string; networkData?: Record<string, unknown> };
  /**
   * Attach `configDrive` even though the guest has NICs (the user asked for config_drive). A guest
   * with NICs otherwise reads the same data from the metadata service, as in Nova.
   */
  forceConfigDrive?: boolean;
  /** Empty until the networking issue wires ports to taps. */
  nics: { id: string; mac: string; tap: string; mtu?: number }[];
  task?: AgentTask;
  /** Spawn from this moved disk (GET .../instances/{id}/disk) instead of the image. */
  disk?: DiskSource;
  migration?: DesiredMigration;
}

export interface DesiredState {
  /** Host revision: bumped on every change of any instance on the host (the watch cursor). */
  revision: number;
  instances: DesiredInstance[];
  /** Questions only the host can answer, waiting for the agent (answered with POST .../calls/{id}). */
  calls?: AgentCall[];
}

/** A question to the agent: console output (bytes from `offset`; negative = the last -offset bytes), VNC address. */
export type AgentCall =
  | { id: string; type: 'console'; instanceId: string; offset: number; maxBytes: number }
  | { id: string; type: 'vnc'; instanceId: string };

export interface CallResult {
  ok: boolean;
  error?: string;
  /** console: {data (base64), next, size}; vnc: {unixSocket} or {host, port}, or {} when not running. */
  result?: Record<string, unknown>;
}

export interface TaskResult {
  taskId: string;
  ok: boolean;
  error?: string;
  /** Snapshot: the file the agent wrote and its checksum. */
  result?: Record<string, unknown>;
}

/** What the agent sees of one instance. */
export interface ObservedInstance {
  id: string;
  /** `deleted`: the guest and its files are gone (answer to a desired delete). */
  powerState: ObservedPower | 'deleted';
  pid?: number;
  diskBytes?: number;
  /** The desired generation the agent has fully applied. */
  observedGeneration: number;
  busy?: boolean;
  /** Why applying the desired state failed (null clears it). */
  fault?: { message: string; at: string } | null;
  taskResult?: TaskResult;
  /** Free text about what the agent did on its own (adopted, stopped-unexpectedly). */
  event?: string;
  /** Where this host is in the instance's live migration (answers `DesiredInstance.migration`). */
  migration?: ObservedMigration;
}

export interface HostRegistration {
  hostname: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  cpuModel: string;
  hypervisorType: 'QEMU' | 'fake';
  accelerator: 'KVM' | 'TCG';
  hypervisorVersion: string;
  agentVersion: string;
}

export interface HostHeartbeat {
  /** Guests the agent runs and knows nothing desired about (left alone, reported). */
  orphans?: string[];
  usedDiskBytes?: number;
  load?: number;
  freeMemoryMb?: number;
}
