// Drives servers to what was asked: builds (schedule → claim → instance on the host → ACTIVE,
// retrying on another host when a build fails), deletes (guest gone → allocations released →
// record deleted), multi-step tasks (tasks.ts), and closes instance actions when the agent has
// applied them. Everything it needs is in the database, so after a controller crash the sweep
// picks up every unfinished server where it stopped: nothing is lost or leaked.
import type { Logger } from '../../core/log.js';
import { nowIso } from '../../core/ids.js';
import type { AggregateService } from '../aggregates.js';
import type { Scheduler, PlacementLike } from '../scheduler/index.js';
import type { ServerGroupService } from '../server-groups.js';
import type { MigrationService } from '../migrations/service.js';
import type { HostDirectory } from '../hosts.js';
import { liveMigrationStep } from './live-migration.js';
import { closeAction, openActions, type ActionLog } from './actions.js';
import type { ImageLookup, InstanceApi, InstanceLike } from './ports.js';
import type { ServerNetworking } from './networking.js';
import type { ServerRecord, ServerStore } from './store.js';
import { taskStep } from './tasks.js';

export interface ReconcilerDeps {
  store: ServerStore;
  actions: ActionLog;
  instances: InstanceApi;
  scheduler: Scheduler;
  placement: PlacementLike;
  groups: ServerGroupService;
  aggregates: AggregateService;
  migrations: MigrationService;
  hosts: HostDirectory;
  log: Logger;
  /** Hosts tried per build before ERROR (Nova's max_attempts). */
  maxAttempts: number;
  /** A build not ACTIVE after this long fails (and is retried elsewhere). */
  buildTimeoutMs: number;
  /** How often every unfinished server is looked at (crash recovery, other controllers' changes). */
  sweepMs: number;
  images?: () => ImageLookup;
  network?: () => ServerNetworking | undefined;
  /** Moves between hosts (cold migration, resize elsewhere). */
  moves?: import('./moves.js').ServerMoves;
}

export class ServerReconciler {
  private readonly queue = new Set<string>();
  private readonly running = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly onInstance = (i: InstanceLike) => this.kick(i.id);

  constructor(private readonly d: ReconcilerDeps) {}

  start(): void {
    this.stopped = false;
    this.d.instances.events.on('instance', this.onInstance);
    const sweep = async () => {
      try {
        for (const id of await this.d.store.unfinished()) this.kick(id);
      } catch (e) {
        if (!this.stopped) this.d.log.error({ err: e }, 'server sweep failed');
      }
      if (!this.stopped) this.timer = setTimeout(sweep, this.d.sweepMs);
    };
    void sweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.d.instances.events.off('instance', this.onInstance);
    while (this.running.size) await new Promise((r) => setTimeout(r, 20));
  }

  kick(id: string): void {
    if (this.stopped) return;
    this.queue.add(id);
    this.drain();
  }

  private drain(): void {
    for (const id of [...this.queue]) {
      if (this.running.size >= 8) return;
      if (this.running.has(id)) continue; // re-run after the current pass (it stays queued)
      this.queue.delete(id);
      this.running.add(id);
      void this.process(id)
        .catch((e) => { if (!this.stopped) this.d.log.error({ err: e, server: id }, 'server reconcile failed'); })
        .finally(() => { this.running.delete(id); this.drain(); });
    }
  }

  private async process(id: string): Promise<void> {
    const s = await this.d.store.get(id);
    if (!s || s.deleted) return;
    if (s.task?.type === 'delete') return this.deleteStep(s);
    if (s.vmState === 'building') return this.buildStep(s);
    const inst = await this.d.instances.getInstance(id);
    if (s.task?.type === 'live-migration') return liveMigrationStep(this.d, s);
    if (s.task) return taskStep(this.d, s, inst, () => this.kick(id));
    if (inst) await this.settleActions(s, inst);
  }

  private async buildStep(s: ServerRecord): Promise<void> {
    const d = this.d;
    let inst = await d.instances.getInstance(s.id);
    // A failed attempt's guest must be gone before the server is placed again.
    if (s.request.retryFrom) {
      if (inst) { if (!inst.deleted) await d.instances.deleteInstance(s.id); return; }
      s.request.retryFrom = undefined;
      s.host = null;
      await this.save(s);
    }
    if (!s.host) {
      const decision = await d.scheduler.place({
        serverId: s.id, projectId: s.projectId, userId: s.userId,
        resources: { VCPU: s.flavor.vcpus, MEMORY_MB: s.flavor.ram, DISK_GB: Math.max(s.flavor.disk, 1) },
        flavorExtraSpecs: s.flavor.extraSpecs, imageProperties: s.request.imageProperties,
        zone: s.requestedAz ?? undefined, triedHosts: s.request.triedHosts, forcedHost: s.request.forcedHost,
        ...(await groupRequest(d, s)),
      });
      const now = await d.store.get(s.id);
      if (!now || now.deleted || now.task?.type === 'delete') { await d.placement.deleteAllocations(s.id); return; }
      if ('error' in decision) return this.fail(now, decision.error);
      now.host = decision.host;
      now.availabilityZone = (await d.aggregates.zoneMap([decision.host])).get(decision.host) ?? null;
      now.taskState = 'spawning';
      now.request.attempts += 1;
      await this.save(now);
      await this.event(now, 'compute_build_and_run_instance', { host: decision.host });
      s = now;
      inst = undefined;
    }
    if (!inst) {
      // Ports bound to the chosen host before the guest exists: its agent plugs the taps.
      const net = d.network?.();
      let nics: Awaited<ReturnType<ServerNetworking['plug']>> = [];
      if (net && s.request.nics?.length) {
        try {
          nics = await net.plug({ id: s.id, projectId: s.projectId, host: s.host!, availabilityZone: s.availabilityZone, nics: s.request.nics,
            securityGroups: s.request.securityGroups });
        } catch (e) {
          await d.placement.deleteAllocations(s.id);
          return this.fail(s, `Build of instance ${s.id} aborted: ${(e as Error).message}`, 400);
        }
      }
      await d.instances.createInstance({
        nics,
        id: s.id, projectId: s.projectId, userId: s.userId, name: s.name, imageId: s.imageId!, host: s.host!,
        vcpus: s.flavor.vcpus, ramMb: s.flavor.ram, diskGb: s.flavor.disk, hostname: s.hostname, metadata: s.metadata,
        keys: s.keyName && s.keyData ? [{ name: s.keyName, publicKey: s.keyData }] : [],
        ...(s.userData ? { userData: Buffer.from(s.userData, 'base64').toString('utf8') } : {}),
        // config_drive=true: the drive carries what the metadata service serves, network data included.
        ...(s.configDrive ? { configDrive: true, ...(net?.networkData ? { networkData: await net.networkData(s.id) } : {}) } : {}),
      });
      return;
    }
    const timedOut = Date.now() - Date.parse(s.updatedAt) > d.buildTimeoutMs;
    if ((inst.fault && inst.powerState !== 'running') || timedOut) {
      const why = inst.fault?.message ?? `the build did not finish within ${Math.round(d.buildTimeoutMs / 1000)} s`;
      d.log.warn({ server: s.id, host: s.host, why }, 'build failed on host');
      d.scheduler.recordFailure(s.host!);
      await this.event(s, 'compute_build_and_run_instance', { host: s.host, result: 'Error', details: why });
      await d.placement.deleteAllocations(s.id);
      if (s.request.attempts < d.maxAttempts && !s.request.forcedHost) {
        s.request.triedHosts.push(s.host!);
        s.request.retryFrom = s.host!;
        s.taskState = 'scheduling';
        await this.save(s);
        await d.instances.deleteInstance(s.id);
        return;
      }
      await d.instances.deleteInstance(s.id);
      const msg = s.request.attempts >= d.maxAttempts && !s.request.forcedHost
        ? `Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance ${s.id}. Last error: ${why}`
        : `Build of instance ${s.id} aborted: ${why}`;
      return this.fail(s, msg);
    }
    if (inst.powerState === 'running' && inst.observedGeneration >= inst.generation && !inst.busy) {
      s.vmState = 'active';
      s.taskState = null;
      s.launchedAt = nowIso();
      await this.save(s);
      d.scheduler.recordSuccess(s.host!);
      for (const a of await openActions(d.store.db, s.id)) if (a.action === 'create') await closeAction(d.store.db, a.id, 'Success');
      d.log.info({ server: s.id, host: s.host }, 'server active');
    }
  }

  private async deleteStep(s: ServerRecord): Promise<void> {
    const d = this.d;
    const inst = await d.instances.getInstance(s.id);
    if (inst) { if (!inst.deleted) await d.instances.deleteInstance(s.id); return; }
    await d.network?.()?.release(s.id);
    await d.placement.deleteAllocations(s.id);
    // A move cut short (or waiting for confirm): its source allocation and staged disk go too.
    for (const m of await d.migrations.list({ instanceUuid: s.id, inProgress: true })) {
      await d.placement.deleteAllocations(m.uuid);
      await d.instances.discardTransfer(m.uuid);
      const confirmed = m.status === 'finished' || m.status === 'confirming';
      await d.migrations.update(m.uuid, confirmed ? { status: 'confirmed' } : { status: 'error', error: 'the server was deleted' });
    }
    await d.groups.removeMember(s.id);
    const actionId = s.task?.type === 'delete' ? s.task.actionId : undefined;
    s.deleted = true;
    s.vmState = 'deleted';
    s.taskState = null;
    s.task = null;
    s.terminatedAt = nowIso();
    await this.save(s);
    for (const a of await openActions(d.store.db, s.id)) await closeAction(d.store.db, a.id, a.id === actionId ? 'Success' : 'Error', a.id === actionId ? undefined : 'the server was deleted');
    d.log.info({ server: s.id }, 'server deleted');
  }

  /** Closes the server's open actions once the agent has applied everything asked. */
  private async settleActions(s: ServerRecord, inst: InstanceLike): Promise<void> {
    if (inst.taskState || inst.task || inst.busy || inst.observedGeneration < inst.generation) return;
    for (const a of await openActions(this.d.store.db, s.id)) {
      await closeAction(this.d.store.db, a.id, inst.fault ? 'Error' : 'Success', inst.fault?.message);
    }
  }

  private groupOf(s: ServerRecord) {
    return groupRequest(this.d, s);
  }

  private async fail(s: ServerRecord, message: string, code = 500): Promise<void> {
    s.vmState = 'error';
    s.taskState = null;
    s.fault = { code, message, created: nowIso() };
    await this.save(s);
    for (const a of await openActions(this.d.store.db, s.id)) await closeAction(this.d.store.db, a.id, 'Error', message);
    this.d.log.warn({ server: s.id, message }, 'server in ERROR');
  }

  private async event(s: ServerRecord, event: string, e: { host?: string | null; result?: 'Success' | 'Error'; details?: string }): Promise<void> {
    const open = await openActions(this.d.store.db, s.id);
    const a = open.find((x) => x.action === 'create') ?? open[0];
    if (a) await this.d.actions.event(a.id, { event, ...e });
  }

  private async save(s: ServerRecord): Promise<void> {
    s.updatedAt = nowIso();
    await this.d.store.update(s);
  }
}

/** The scheduler's view of the server's group: its policy and where the other members run. */
export async function groupRequest(d: Pick<ReconcilerDeps, 'groups' | 'store'>, s: ServerRecord) {
  if (!s.request.groupId) return {};
  const g = await d.groups.get(s.request.groupId).catch(() => undefined);
  if (!g) return {};
  const others = g.members.filter((m) => m !== s.id);
  const hosts: string[] = [];
  for (const m of others) {
    const o = await d.store.get(m);
    if (o?.host && !o.deleted) hosts.push(o.host);
  }
  const soft = g.policy === 'soft-affinity' || g.policy === 'soft-anti-affinity' ? g.policy : undefined;
  return {
    group: { policy: g.policy, memberHosts: hosts, maxPerHost: g.rules.max_server_per_host },
    ...(soft ? { groupSoftPolicy: soft } : {}),
  };
}
