// Cheap long polls for the host agents. Every waiting agent used to recompute its host's state
// every second; now a host's state is recomputed only when the network revision (one row in the
// database, bumped by every committed change host states depend on) moved since it was last
// computed, and one shared loop watches that revision for all waiting agents of this process.
import { createHash } from 'node:crypto';
import type { HostNetworkState } from '../agent/dataplane/model.js';
import type { NetworkService } from '../network/service.js';
import type { HostNetworkDesired } from './protocol.js';

interface Cached extends HostNetworkDesired {
  /** The network revision read before this state was computed. */
  networkRevision: number;
}

export class HostStateCache {
  private readonly byHost = new Map<string, Cached>();
  private readonly waiters = new Set<{ since: number; wake: () => void }>();
  private timer?: NodeJS.Timeout;
  private current = 0;
  private readonly unsubscribe: () => void;
  /** Host states computed (for tests and measurements). */
  computed = 0;

  constructor(private readonly network: NetworkService, private readonly pollMs = 1000) {
    this.unsubscribe = network.onStateChange(() => void this.check());
  }

  /**
   * The host's desired state and its content revision (a digest, so every controller copy and a
   * restarted controller agree on it). Costs one primary-key read while nothing changed.
   */
  async desired(host: string): Promise<Cached> {
    let rev = await this.network.stateRevision();
    this.current = Math.max(this.current, rev);
    const hit = this.byHost.get(host);
    if (hit && hit.networkRevision === rev) return hit;
    // Whatever is unplaced came with a change (the revision moved): place it, then compute
    // against the revision read after the placement, which is part of the state.
    await this.network.scheduleUnhosted(host);
    rev = await this.network.stateRevision();
    const state: HostNetworkState = await this.network.builtHostState(host);
    this.computed++;
    const revision = createHash('sha256').update(JSON.stringify(state)).digest('hex').slice(0, 24);
    const entry: Cached = { revision, state, networkRevision: rev };
    // Keep the newest: a slower concurrent computation must not replace a later one.
    const now = this.byHost.get(host);
    if (!now || now.networkRevision <= rev) this.byHost.set(host, entry);
    return entry;
  }

  /** Resolves when the network revision is past `since`, or after `ms`. */
  wait(since: number, ms: number): Promise<void> {
    if (this.current > since || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const w = {
        since,
        wake: () => { clearTimeout(t); this.waiters.delete(w); resolve(); },
      };
      const t = setTimeout(w.wake, ms);
      this.waiters.add(w);
      this.schedule();
    });
  }

  /** Stops watching; every waiter returns now. */
  close(): void {
    this.unsubscribe();
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of [...this.waiters]) w.wake();
  }

  // One revision read per `pollMs` for all waiters together (changes made by other controller
  // copies); changes made by this process wake the waiters at once through onStateChange.
  private schedule(): void {
    if (this.timer || !this.waiters.size) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.check().finally(() => this.schedule()); }, this.pollMs);
  }

  private async check(): Promise<void> {
    try {
      this.current = Math.max(this.current, await this.network.stateRevision());
    } catch { return; /* database briefly unavailable: the next round retries */ }
    for (const w of [...this.waiters]) if (this.current > w.since) w.wake();
  }
}
