// The agent's side of a live migration (DesiredInstance.migration): what this host does for the
// step the controller asks, and what it reports back. The state of each step is kept in the
// instance's reconcile record (reconcile.ts), so a repeated desired state (watch, restart)
// answers with the recorded outcome instead of redoing the step.
import type { Logger } from 'pino';
import type { DesiredInstance, ObservedMigration } from '../compute/agent-protocol.js';
import type { BaseImage, HypervisorDriver, InstanceSpec, MigrationListen } from './hypervisor/driver.js';

export interface MigrationStepsOptions {
  driver: HypervisorDriver;
  ensureImage(imageId: string): Promise<BaseImage>;
  /** Where this host listens for incoming migrations. */
  listen: MigrationListen;
  /** Progress of an outgoing migration, reported while the step runs (throttled). */
  progress(id: string, m: ObservedMigration): void;
  log: Logger;
  /**
   * Resolves once the data plane plugged these ports' taps into their networks (with their
   * security groups): the destination reports `prepared` only then. Absent: no data plane here.
   */
  portsPlugged?(portIds: string[]): Promise<void>;
  /** Longest a migration may take before it is cancelled (default 10 min). */
  timeoutMs?: number;
}

export interface StepOutcome {
  state: ObservedMigration;
  /** True: the guest is in the middle of a move; the normal convergence (power, devices) must wait. */
  hold: boolean;
}

export class MigrationSteps {
  private readonly aborts = new Map<string, AbortController>();
  private readonly forces = new Map<string, AbortController>();

  constructor(private readonly o: MigrationStepsOptions) {}

  /** Called on every new desired state: cancels (or forces) an outgoing migration, as the controller asks. */
  notice(d: DesiredInstance): void {
    if (d.migration?.role !== 'source') return;
    if (d.migration.abort) this.aborts.get(d.id)?.abort();
    if (d.migration.forceComplete) this.forces.get(d.id)?.abort();
  }

  async step(d: DesiredInstance, spec: InstanceSpec, prev: ObservedMigration | undefined, log: Logger): Promise<StepOutcome> {
    const m = d.migration!;
    const same = prev?.id === m.id ? prev : undefined;
    const { driver } = this.o;

    if (m.role === 'destination' && m.phase === 'prepare') {
      if (same && (same.state === 'prepared' || same.state === 'failed')) return { state: same, hold: true };
      try {
        log.info({ migration: m.id }, 'preparing for an incoming live migration');
        const image = await this.o.ensureImage(d.imageId);
        const drive = d.nics.length && !d.forceConfigDrive ? undefined : d.configDrive;
        const target = await driver.prepareIncoming(spec, image, drive, this.o.listen);
        // QEMU made the guest's taps (same names as on the source: each host's data plane moves
        // them into its own bridge namespace); the guest must have its network when it resumes.
        if (d.nics.length && this.o.portsPlugged) {
          await this.o.portsPlugged(d.nics.map((n) => n.id));
          log.info({ migration: m.id, ports: d.nics.map((n) => n.id) }, 'ports plugged for the incoming guest');
        }
        return { state: { id: m.id, state: 'prepared', target }, hold: true };
      } catch (e) {
        log.error({ migration: m.id, err: (e as Error).message }, 'preparing the live migration failed');
        // What was started for it goes; the controller drops this copy.
        await driver.destroy(d.id).catch(() => undefined);
        return { state: { id: m.id, state: 'failed', error: (e as Error).message }, hold: true };
      }
    }

    if (m.role === 'destination') {
      if (same?.state !== 'finished') {
        await driver.finishIncoming(d.id, 60_000);
        log.info({ migration: m.id }, 'live migration arrived');
      }
      return { state: { id: m.id, state: 'finished' }, hold: false };
    }

    // Source.
    if (same && ['completed', 'aborted', 'failed'].includes(same.state)) return { state: same, hold: true };
    if (m.abort) {
      await driver.abortOutgoing(d.id);
      return { state: { id: m.id, state: 'aborted' }, hold: true };
    }
    const ctl = new AbortController();
    const force = new AbortController();
    if (m.forceComplete) force.abort();
    this.aborts.set(d.id, ctl);
    this.forces.set(d.id, force);
    let last = 0;
    try {
      log.info({ migration: m.id, to: m.target.uri }, 'live migration starting');
      const r = await driver.migrateOut(d.id, m.target, {
        signal: ctl.signal, forceComplete: force.signal, timeoutMs: this.o.timeoutMs ?? 600_000,
        onProgress: (p) => {
          if (Date.now() - last < 1000 && p.phase !== 'switchover') return;
          last = Date.now();
          this.o.progress(d.id, { id: m.id, state: 'running', progress: p });
        },
      });
      return { state: { id: m.id, state: 'completed', ...(r.downtimeMs !== undefined ? { downtimeMs: r.downtimeMs } : {}) }, hold: true };
    } catch (e) {
      if (ctl.signal.aborted) return { state: { id: m.id, state: 'aborted' }, hold: true };
      log.error({ migration: m.id, err: (e as Error).message }, 'live migration failed; the guest stays here');
      // Whatever QEMU still has in flight for it (a job left by a QMP timeout) is cancelled.
      await driver.abortOutgoing(d.id).catch(() => undefined);
      return { state: { id: m.id, state: 'failed', error: (e as Error).message }, hold: true };
    } finally {
      this.aborts.delete(d.id);
      this.forces.delete(d.id);
    }
  }
}
