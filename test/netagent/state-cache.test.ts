// HostStateCache against a stand-in network service (no database): a slow computation that
// started before a change must not replace the newer state computed meanwhile (that would cost
// every later poll a needless recomputation until the next change).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostStateCache } from '../../src/netagent/revision.js';
import type { NetworkService } from '../../src/network/service.js';

test('a slow, older computation does not replace a newer cached state', async () => {
  let rev = 1;
  let release: (() => void) | undefined;
  const fake = {
    onStateChange: () => () => {},
    stateRevision: async () => rev,
    scheduleUnhosted: async () => {},
    builtHostState: async (host: string) => {
      const seen = rev;
      if (seen === 1) await new Promise<void>((r) => { release = r; });   // the first one is slow
      return { hostId: host, seen } as never;
    },
  } as unknown as NetworkService;
  const cache = new HostStateCache(fake, 60_000);
  const slow = cache.desired('h');                   // reads revision 1, then waits
  await new Promise((r) => setImmediate(r));
  rev = 2;                                           // a change commits meanwhile
  const fresh = await cache.desired('h');            // computed against revision 2
  assert.equal(fresh.networkRevision, 2);
  release!();
  assert.equal((await slow).networkRevision, 1);
  assert.equal(cache.computed, 2);
  const again = await cache.desired('h');            // nothing changed since revision 2
  assert.equal(again.revision, fresh.revision);
  assert.equal(cache.computed, 2, 'the revision-2 state stayed cached');
  cache.close();
});
