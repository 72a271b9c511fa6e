// The compute service's rules: desired state of instances and the hosts that run them.
// Every user action validates the current state, records what is wanted, bumps the instance's
// generation and its host's revision (waking the host agent's watch), and returns at once;
// the agent converges and reports (see agent-protocol.ts). This is the typed interface other
// services and tests call.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { badRequest, conflict, notFound } from '../core/errors.js';
import { nowIso, uuid } from '../core/ids.js';
import type {
  AgentTask, DesiredInstance, DesiredPower, DesiredState, HostHeartbeat, HostRegistration, ObservedInstance,
} from './agent-protocol.js';
import { ComputeStore, type HostRecord, type InstanceRecord } from './store.js';
import { AgentCalls } from './calls.js';
import { InstanceMoves, peerDesired } from './moves.js';
import { DiskTransfers } from './transfers.js';
import { LiveMoves } from './instance-moves.js';
import { applyReport } from './agent-reports.js';

export interface CreateInstanceInput {
  id?: string;
  projectId: string;
  userId?: string;
  name: string;
  imageId: string;
  vcpus: number;
  ramMb: number;
  /** 0: the image's size. */
  diskGb: number;
  /** Pinned host; otherwise the live host with the most free RAM. */
  host?: string;
  keys?: { name: string; publicKey: string }[];
  userData?: string;
  hostname?: string;
  metadata?: Record<string, string>;
  /** Guest NICs: the network ports bound to the host (tap = the port's tap name). */
  nics?: { id: string; mac: string; tap: string; mtu?: number }[];
  /** Power state to reach once built (default running). */
  power?: 'running' | 'shutoff';
  /** config_drive=true: a config drive even with NICs, carrying `networkData` as network_data.json. */
  configDrive?: boolean;
  networkData?: Record<string, unknown>;
}

/** A host is up when its agent sent a heartbeat within this many seconds. */
export const HOST_DOWN_AFTER_SEC = 60;

type Action = 'start' | 'stop' | 'pause' | 'unpause' | 'suspend' | 'resume';

// The desired power each action needs first, what it asks for, and its Nova-like task_state.
const ACTIONS: Record<Action, { from: DesiredPower[]; to: DesiredPower; taskState: string }> = {
  start: { from: ['shutoff'], to: 'running', taskState: 'powering-on' },
  stop: { from: ['running', 'paused', 'suspended'], to: 'shutoff', taskState: 'powering-off' },
  pause: { from: ['running'], to: 'paused', taskState: 'pausing' },
  unpause: { from: ['paused'], to: 'running', taskState: 'unpausing' },
  suspend: { from: ['running', 'paused'], to: 'suspended', taskState: 'suspending' },
  resume: { from: ['suspended'], to: 'running', taskState: 'resuming' },
};

export class ComputeService {
  readonly store: ComputeStore;
  readonly calls: AgentCalls;
  /** Live migrations between hosts (instance-moves.ts). */
  readonly moves: LiveMoves;
  /** Cold moves between hosts (cold migration, resize elsewhere): see moves.ts. */
  readonly coldMoves: InstanceMoves;
  /** 'host:<name>' on every desired change of that host; 'instance' with the record on every change. */
  readonly events = new EventEmitter();

  private closing = false;

  /** Ends pending watches (the controller is stopping). */
  close(): void {
    this.closing = true;
    this.events.emit('close');
  }

  /** Root disks in transit between hosts (staged on the controller). */
  readonly transfers: DiskTransfers;

  constructor(db: import('kysely').Kysely<any>, private readonly log: Logger, opts: { transfersDir: string }) {
    this.store = new ComputeStore(db);
    this.transfers = new DiskTransfers(opts.transfersDir);
    this.events.setMaxListeners(0);
    this.calls = new AgentCalls(db, this.store, this.events);
    this.moves = new LiveMoves(this.store, this.events, log);
    this.coldMoves = new InstanceMoves(this.store, (i, hosts) => {
      for (const h of hosts) this.events.emit(`host:${h}`);
      this.events.emit('instance', i);
    });
  }

  exportDisk(id: string, migrationId: string) { return this.coldMoves.exportDisk(id, migrationId); }
  beginMove(id: string, to: Parameters<InstanceMoves['beginMove']>[1]) { return this.coldMoves.beginMove(id, to); }
  /** The destination has the moved disk: the staged copy goes. */
  async finishMove(id: string): Promise<void> {
    const i = await this.store.getInstance(id);
    await this.coldMoves.finishMove(id);
    if (i?.diskSource) this.transfers.remove(i.diskSource.migrationId);
  }
  /** A move that ended (failed, rolled back): its staged disk goes, if any. */
  async discardTransfer(migrationId: string): Promise<void> { this.transfers.remove(migrationId); }
  dropPeer(id: string) { return this.coldMoves.dropPeer(id); }
  swapBack(id: string, power: DesiredPower) { return this.coldMoves.swapBack(id, power); }

  // --- instances: desired state ----------------------------------------------------------------

  async createInstance(input: CreateInstanceInput): Promise<InstanceRecord> {
    for (const [k, v] of [['vcpus', input.vcpus], ['ramMb', input.ramMb]] as const) {
      if (!Number.isInteger(v) || v < 1) throw badRequest(`${k} must be a positive integer`);
    }
    if (!Number.isInteger(input.diskGb) || input.diskGb < 0) throw badRequest('diskGb must be a non-negative integer');
    if (!input.name) throw badRequest('name is required');
    const host = input.host ?? (await this.pickHost(input.ramMb));
    if (!(await this.store.getHost(host))) throw badRequest(`unknown compute host '${host}'`);
    const id = input.id ?? uuid();
    if (await this.store.getInstance(id)) throw conflict(`instance ${id} already exists`);
    const now = nowIso();
    const rec: InstanceRecord = {
      id, projectId: input.projectId, userId: input.userId ?? null, name: input.name, host, imageId: input.imageId,
      vcpus: input.vcpus, ramMb: input.ramMb, diskGb: input.diskGb,
      keys: input.keys ?? [], userData: input.userData, hostname: input.hostname ?? sanitizeHostname(input.name),
      metadata: input.metadata ?? {}, nics: input.nics ?? [],
      ...(input.configDrive ? { configDrive: true } : {}), ...(input.networkData ? { networkData: input.networkData } : {}),
      desiredPower: input.power ?? 'running', deleted: false, task: null, taskState: 'spawning',
      generation: 1, powerState: null, observedGeneration: 0, pid: null, diskBytes: null, busy: false,
      fault: null, lastTaskResult: null, lastEvent: null, observedAt: null, createdAt: now, updatedAt: now,
      peer: null, diskSource: null,
    };
    await this.store.db.transaction().execute(async (tx) => {
      await this.store.insertInstance(rec, tx);
      await this.store.bumpRevision(host, tx);
    });
    this.log.info({ instance: id, host }, 'instance requested');
    this.changed(rec);
    return rec;
  }

  async getInstance(id: string): Promise<InstanceRecord | undefined> {
    return this.store.getInstance(id);
  }

  async listInstances(filter: { host?: string; projectId?: string } = {}): Promise<InstanceRecord[]> {
    return this.store.listInstances(filter);
  }

  start(id: string) { return this.powerAction(id, 'start'); }
  stop(id: string) { return this.powerAction(id, 'stop'); }
  pause(id: string) { return this.powerAction(id, 'pause'); }
  unpause(id: string) { return this.powerAction(id, 'unpause'); }
  suspend(id: string) { return this.powerAction(id, 'suspend'); }
  resume(id: string) { return this.powerAction(id, 'resume'); }

  async reboot(id: string, kind: 'soft' | 'hard'): Promise<InstanceRecord> {
    return this.mutate(id, (i) => {
      // Hard reboot also rescues a paused or suspended guest (as Nova allows).
      const allowed: DesiredPower[] = kind === 'hard' ? ['running', 'paused', 'suspended', 'shutoff'] : ['running'];
      this.requireState(i, allowed, `reboot`);
      i.task = { id: uuid(), type: 'reboot', kind };
      i.desiredPower = 'running';
      i.taskState = kind === 'hard' ? 'rebooting_hard' : 'rebooting';
    });
  }

  /** Snapshot of the root disk into a new image file on the host; the task result carries its path. */
  async snapshot(id: string, opts: { name: string; imageId?: string }): Promise<{ instance: InstanceRecord; task: AgentTask }> {
    let task!: AgentTask;
    const instance = await this.mutate(id, (i) => {
      this.requireState(i, ['running', 'paused', 'shutoff', 'suspended'], 'createImage');
      task = { id: uuid(), type: 'snapshot', imageId: opts.imageId ?? uuid(), name: opts.name };
      i.task = task;
      i.taskState = 'image_snapshot';
    });
    return { instance, task };
  }

  /** New vCPUs/RAM (and a larger disk) for a stopped instance; applied before its next start. */
  async resize(id: string, flavor: { vcpus: number; ramMb: number; diskGb?: number }): Promise<InstanceRecord> {
    if (!Number.isInteger(flavor.vcpus) || flavor.vcpus < 1 || !Number.isInteger(flavor.ramMb) || flavor.ramMb < 1) {
      throw badRequest('vcpus and ramMb must be positive integers');
    }
    return this.mutate(id, (i) => {
      this.requireState(i, ['shutoff'], 'resize');
      if (flavor.diskGb !== undefined && flavor.diskGb < i.diskGb) throw badRequest('the root disk cannot shrink');
      i.vcpus = flavor.vcpus;
      i.ramMb = flavor.ramMb;
      if (flavor.diskGb !== undefined) i.diskGb = flavor.diskGb;
      i.taskState = 'resize_prep';
    });
  }

  /** Interface attach/detach: the guest's NICs (the agent hot-plugs the difference). */
  async setNics(id: string, nics: { id: string; mac: string; tap: string; mtu?: number }[]): Promise<InstanceRecord> {
    return this.mutate(id, (i) => { i.nics = nics; });
  }

  async deleteInstance(id: string): Promise<InstanceRecord> {
    return this.mutate(id, (i) => {
      i.deleted = true;
      i.task = null;
      i.taskState = 'deleting';
      // A copy left on another host by a move goes too.
      if (i.peer && !i.peer.deleted) { i.peer.deleted = true; i.peer.generation += 1; }
    }, { allowDeleted: true, allowTask: true });
  }

  /**
   * Serial console output, read by the host's agent: bytes from `offset` (negative: the last
   * -offset bytes), at most `maxBytes`. `next` is the offset to ask for next time.
   */
  async consoleOutput(id: string, opts: { offset?: number; maxBytes?: number } = {}): Promise<{ text: string; next: number; size: number }> {
    const i = await this.store.getInstance(id);
    if (!i) throw notFound(`Instance ${id} could not be found.`);
    const r = await this.calls.ask(i.host, { type: 'console', instanceId: id, offset: opts.offset ?? 0, maxBytes: Math.min(opts.maxBytes ?? 65536, 1024 * 1024) });
    return { text: Buffer.from(String(r.data ?? ''), 'base64').toString('utf8'), next: Number(r.next ?? 0), size: Number(r.size ?? 0) };
  }

  /** Where the guest's VNC server listens on its host (for the console proxy); undefined when not running. */
  async vncAddress(id: string): Promise<{ unixSocket: string } | { host: string; port: number } | undefined> {
    const i = await this.store.getInstance(id);
    if (!i) throw notFound(`Instance ${id} could not be found.`);
    const r = await this.calls.ask(i.host, { type: 'vnc', instanceId: id });
    if (typeof r.unixSocket === 'string') return { unixSocket: r.unixSocket };
    if (typeof r.host === 'string' && typeof r.port === 'number') return { host: r.host, port: r.port };
    return undefined;
  }

  /** Resolves with the instance once `pred` holds (or undefined once it is gone), rejects on timeout. */
  waitFor(id: string, pred: (i: InstanceRecord | undefined) => boolean, timeoutMs: number): Promise<InstanceRecord | undefined> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err: Error | undefined, v?: InstanceRecord) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        this.events.off('instance', onChange);
        if (err) reject(err); else resolve(v);
      };
      const check = async () => {
        const i = await this.store.getInstance(id);
        if (pred(i)) finish(undefined, i);
        return i;
      };
      const onChange = (i: InstanceRecord) => { if (i.id === id) void check(); };
      const timer = setTimeout(() => {
        void this.store.getInstance(id).then((i) => finish(new Error(`timed out waiting for instance ${id}: ${JSON.stringify(i && {
          desiredPower: i.desiredPower, powerState: i.powerState, generation: i.generation,
          observedGeneration: i.observedGeneration, taskState: i.taskState, fault: i.fault })}`)));
      }, timeoutMs);
      const poll = setInterval(() => void check(), 1000); // other controllers' writes
      this.events.on('instance', onChange);
      void check();
    });
  }

  // --- hosts and agents ----------------------------------------------------------------------------

  async registerHost(name: string, reg: HostRegistration): Promise<HostRecord> {
    const now = nowIso();
    const prev = await this.store.getHost(name);
    const rec: HostRecord = {
      name, vcpus: reg.vcpus, memoryMb: reg.memoryMb, diskGb: reg.diskGb, cpuModel: reg.cpuModel,
      hypervisorType: reg.hypervisorType, hypervisorVersion: reg.hypervisorVersion, accelerator: reg.accelerator,
      agentVersion: reg.agentVersion, revision: prev?.revision ?? 0, usage: prev?.usage ?? {},
      registeredAt: prev?.registeredAt ?? now, heartbeatAt: now,
    };
    await this.store.upsertHost(rec);
    this.log.info({ host: name, accelerator: reg.accelerator, vcpus: reg.vcpus, memoryMb: reg.memoryMb }, 'compute host registered');
    return (await this.store.getHost(name))!;
  }

  async heartbeat(name: string, hb: HostHeartbeat): Promise<void> {
    if (!(await this.store.touchHost(name, nowIso(), hb as Record<string, unknown>))) throw notFound(`compute host ${name} is not registered`);
    if (hb.orphans?.length) this.log.warn({ host: name, orphans: hb.orphans }, 'host runs guests the controller does not know');
  }

  async listHosts(): Promise<(HostRecord & { up: boolean })[]> {
    return (await this.store.listHosts()).map((h) => ({ ...h, up: isUp(h) }));
  }

  async getHost(name: string): Promise<(HostRecord & { up: boolean }) | undefined> {
    const h = await this.store.getHost(name);
    return h && { ...h, up: isUp(h) };
  }

  /** The desired state of a host's instances once its revision passes `since` (long poll). */
  async watch(host: string, since: number, timeoutMs: number, signal?: AbortSignal): Promise<DesiredState> {
    const deadline = Date.now() + timeoutMs;
    const ev = `host:${host}`;
    for (;;) {
      // Subscribe before reading, so a change between the read and the wait is not missed.
      let wake!: () => void;
      const woken = new Promise<void>((r) => { wake = r; });
      this.events.on(ev, wake);
      this.events.on('close', wake);
      signal?.addEventListener('abort', wake);
      let timer: NodeJS.Timeout | undefined;
      try {
        const h = await this.store.getHost(host);
        if (!h) throw notFound(`compute host ${host} is not registered`);
        if (h.revision !== since || Date.now() >= deadline || this.closing || signal?.aborted) {
          const [instances, calls] = await Promise.all([this.store.listForHost(host), this.calls.pending(host)]);
          // Copies left here by a cold move (peers), then live migrations' steps, copies and tombstones.
          const peers = instances.filter((i) => i.host !== host).map((i) => peerDesired(i, toDesired(i)));
          const own = instances.filter((i) => i.host === host).map(toDesired);
          const desired = [...await this.moves.desired(host, own, toDesired), ...peers];
          return { revision: h.revision, instances: desired, ...(calls.length ? { calls } : {}) };
        }
        // Re-read every 2 s as well: another controller may have made the change.
        await Promise.race([woken, new Promise<void>((r) => { timer = setTimeout(r, Math.min(2000, Math.max(0, deadline - Date.now()))); })]);
      } finally {
        clearTimeout(timer);
        this.events.off(ev, wake);
        this.events.off('close', wake);
        signal?.removeEventListener('abort', wake);
      }
    }
  }

  /** Applies an agent's observations (agent-reports.ts), then wakes whoever waits on them. */
  async report(host: string, observed: ObservedInstance[]): Promise<void> {
    const deps = { store: this.store, moves: this.moves, coldMoves: this.coldMoves, log: this.log };
    for (const o of observed) {
      const { rec, removed, bumped, wake } = await applyReport(deps, host, o);
      for (const h of new Set(wake)) this.events.emit(`host:${h}`);
      if (!rec) continue;
      if (removed) this.log.info({ instance: rec.id, host }, 'instance deleted from its host');
      if (bumped) this.events.emit(`host:${rec.host}`);
      this.events.emit('instance', rec);
    }
  }

  // --- internals ----------------------------------------------------------------------------------

  private async powerAction(id: string, action: Action): Promise<InstanceRecord> {
    const a = ACTIONS[action];
    return this.mutate(id, (i) => {
      this.requireState(i, a.from, action);
      i.desiredPower = a.to;
      i.taskState = a.taskState;
    });
  }

  private requireState(i: InstanceRecord, allowed: DesiredPower[], action: string): void {
    if (!allowed.includes(i.desiredPower)) {
      throw conflict(`Cannot '${action}' instance ${i.id} while it is in power state ${i.desiredPower}`);
    }
  }

  private async mutate(id: string, fn: (i: InstanceRecord) => void,
    opts: { allowDeleted?: boolean; allowTask?: boolean } = {}): Promise<InstanceRecord> {
    const rec = await this.store.db.transaction().execute(async (tx) => {
      const i = await this.store.getInstanceForUpdate(id, tx);
      if (!i) throw notFound(`Instance ${id} could not be found.`);
      if (i.deleted && !opts.allowDeleted) throw conflict(`Instance ${id} is being deleted`);
      if (i.task && !opts.allowTask) {
        throw conflict(`Cannot act on instance ${id} while it is in task_state ${i.taskState ?? i.task.type}`);
      }
      fn(i);
      i.generation += 1;
      i.updatedAt = nowIso();
      await this.store.updateInstance(i, tx);
      await this.store.bumpRevision(i.host, tx);
      if (i.peer) await this.store.bumpRevision(i.peer.host, tx);
      return i;
    });
    this.changed(rec);
    return rec;
  }

  private changed(i: InstanceRecord): void {
    this.events.emit(`host:${i.host}`);
    if (i.peer) this.events.emit(`host:${i.peer.host}`);
    this.events.emit('instance', i);
  }

  private async pickHost(ramMb: number): Promise<string> {
    const hosts = (await this.store.listHosts()).filter(isUp);
    let best: { name: string; free: number } | undefined;
    for (const h of hosts) {
      const used = (await this.store.listInstances({ host: h.name })).reduce((s, i) => s + i.ramMb, 0);
      const free = h.memoryMb - used;
      if (free >= ramMb && (!best || free > best.free)) best = { name: h.name, free };
    }
    if (!best) throw conflict('No valid host was found. There are not enough hosts available.');
    return best.name;
  }
}

function isUp(h: HostRecord): boolean {
  return Date.now() - Date.parse(h.heartbeatAt) < HOST_DOWN_AFTER_SEC * 1000;
}

function sanitizeHostname(name: string): string {
  const h = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return h || 'instance';
}

export function toDesired(i: InstanceRecord): DesiredInstance {
  const publicKeys = Object.fromEntries(i.keys.map((k) => [k.name, k.publicKey]));
  return {
    id: i.id, name: i.name, projectId: i.projectId, generation: i.generation, power: i.desiredPower,
    deleted: i.deleted, flavor: { vcpus: i.vcpus, ramMb: i.ramMb, diskGb: i.diskGb }, imageId: i.imageId,
    configDrive: {
      metaData: {
        uuid: i.id, name: i.name, hostname: i.hostname, project_id: i.projectId, launch_index: 0,
        availability_zone: 'nova', public_keys: publicKeys,
        keys: i.keys.map((k) => ({ name: k.name, type: 'ssh', data: k.publicKey })), meta: i.metadata,
      },
      ...(i.userData !== undefined ? { userData: i.userData } : {}),
      ...(i.networkData ? { networkData: i.networkData } : {}),
    },
    ...(i.configDrive ? { forceConfigDrive: true } : {}),
    nics: i.nics,
    ...(i.task ? { task: i.task } : {}),
    ...(i.diskSource ? { disk: i.diskSource } : {}),
  };
}
