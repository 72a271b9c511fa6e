// What the server layer needs from its neighbours, as narrow interfaces: compute's instance
// service (desired state for agents), and the image service (or the agents' image source).
import type { EventEmitter } from 'node:events';
import type { AuthContext } from '../../core/auth.js';

export interface InstanceLike {
  id: string;
  host: string;
  desiredPower: 'running' | 'shutoff' | 'paused' | 'suspended';
  deleted: boolean;
  taskState: string | null;
  task: { id: string; type: string } | null;
  generation: number;
  observedGeneration: number;
  powerState: 'running' | 'paused' | 'suspended' | 'shutdown' | 'crashed' | null;
  busy: boolean;
  fault: { message: string; at: string } | null;
  lastTaskResult: Record<string, unknown> | null;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  /** The copy on another host during a move (compute/moves.ts). */
  peer?: { host: string; migrationId: string; deleted: boolean; powerState: string | null; observedGeneration: number; generation: number } | null;
}

type Nic = { id: string; mac: string; tap: string; mtu?: number };

export interface InstanceApi {
  readonly events: EventEmitter;
  createInstance(input: {
    id: string; projectId: string; userId?: string; name: string; imageId: string; vcpus: number; ramMb: number; diskGb: number;
    host: string; keys?: { name: string; publicKey: string }[]; userData?: string; hostname?: string; metadata?: Record<string, string>;
    power?: 'running' | 'shutoff';
    nics?: { id: string; mac: string; tap: string; mtu?: number }[];
    configDrive?: boolean;
    networkData?: Record<string, unknown>;
  }): Promise<InstanceLike>;
  getInstance(id: string): Promise<InstanceLike | undefined>;
  listInstances(filter?: { host?: string; projectId?: string }): Promise<InstanceLike[]>;
  start(id: string): Promise<InstanceLike>;
  stop(id: string): Promise<InstanceLike>;
  pause(id: string): Promise<InstanceLike>;
  unpause(id: string): Promise<InstanceLike>;
  suspend(id: string): Promise<InstanceLike>;
  resume(id: string): Promise<InstanceLike>;
  reboot(id: string, kind: 'soft' | 'hard'): Promise<InstanceLike>;
  resize(id: string, flavor: { vcpus: number; ramMb: number; diskGb?: number }): Promise<InstanceLike>;
  snapshot(id: string, opts: { name: string; imageId?: string }): Promise<{ instance: InstanceLike; task: { id: string } }>;
  deleteInstance(id: string): Promise<InstanceLike>;
  /** Moves between hosts (cold migration, resize elsewhere): see compute/moves.ts. */
  exportDisk(id: string, migrationId: string): Promise<{ instance: InstanceLike; task: { id: string } }>;
  beginMove(id: string, to: { host: string; migrationId: string; flavor: { vcpus: number; ramMb: number; diskGb: number };
    power: 'running' | 'shutoff'; disk: { migrationId: string; sha256: string; sizeBytes: number }; nics?: Nic[] }): Promise<InstanceLike>;
  finishMove(id: string): Promise<void>;
  discardTransfer(migrationId: string): Promise<void>;
  dropPeer(id: string): Promise<InstanceLike>;
  swapBack(id: string, power: 'running' | 'shutoff'): Promise<InstanceLike>;
  /** Interface attach/detach (the NICs the agent gives the guest). */
  setNics?(id: string, nics: { id: string; mac: string; tap: string; mtu?: number }[]): Promise<InstanceLike>;
  getNics?(id: string): Promise<{ id: string; mac: string; tap: string; mtu?: number }[]>;
  /** Live migrations at the agents' level (compute's instance-moves.ts). */
  moves?: MovesLike;
  /** Serial console bytes read by the host's agent (negative offset: the last -offset bytes). */
  consoleOutput(id: string, opts: { offset?: number; maxBytes?: number }): Promise<{ text: string; next: number; size: number }>;
  /** Where the guest's VNC server listens, asked of its host agent (remote consoles). */
  vncAddress?(id: string): Promise<{ unixSocket: string } | { host: string; port: number } | undefined>;
}

/** A live migration between two hosts as compute's instance service drives it. */
export interface MoveLike {
  migrationId: string;
  source: string;
  dest: string;
  phase: 'preparing' | 'migrating' | 'aborting' | 'finishing' | 'done' | 'failed' | 'aborted';
  progress: { phase: string; diskDone?: number; diskTotal?: number; memoryDone?: number; memoryTotal?: number } | null;
  error: string | null;
  destDone: boolean;
  updatedAt: string;
}

export interface MovesLike {
  start(instanceId: string, opts: { migrationId: string; dest: string }): Promise<MoveLike>;
  abort(instanceId: string): Promise<MoveLike>;
  forceComplete(instanceId: string): Promise<MoveLike>;
  get(instanceId: string): Promise<MoveLike | undefined>;
}

export interface ImageInfo {
  id: string;
  name: string | null;
  status: string;
  minDisk: number;
  minRam: number;
  size: number | null;
  virtualSize: number | null;
  properties: Record<string, string>;
}

export interface ImageLookup {
  getImage(id: string, as: AuthContext | 'system'): Promise<ImageInfo>;
  /** Snapshots: a queued image, then its data (absent when no image service is wired in). */
  createImage?(as: AuthContext | 'system', meta: Record<string, unknown>): Promise<{ id: string }>;
  uploadImageData?(id: string, as: AuthContext | 'system', data: { path: string } | import('node:stream').Readable): Promise<unknown>;
}
