// A simulated host agent for compute API tests (tests only): it registers a host through the
// compute service's typed interface, watches the host's desired state and reports it as
// reached, the way a real agent does after driving QEMU. Real guests boot in e2e tests.
import type { TestCloud } from '../helpers/cloud.js';
import { Readable } from 'node:stream';
import type { AgentCall, DesiredInstance, ObservedInstance } from '../../src/compute/agent-protocol.js';

export interface FakeHost {
  name: string;
  /** Make the next spawns on this host fail (the build is then retried elsewhere). */
  failSpawns: boolean;
  stop(): Promise<void>;
}

/** `answer`: how the host answers calls (console, vnc); without it calls go unanswered. */
export async function fakeHost(tc: TestCloud, name: string, size: { vcpus?: number; memoryMb?: number; diskGb?: number } = {},
  opts: { answer?: (call: AgentCall) => Promise<Record<string, unknown>> } = {}): Promise<FakeHost> {
  const svc = tc.cloud.compute.service;
  await svc.registerHost(name, {
    hostname: name, vcpus: size.vcpus ?? 4, memoryMb: size.memoryMb ?? 8192, diskGb: size.diskGb ?? 100,
    cpuModel: 'fake', hypervisorType: 'fake', accelerator: 'TCG', hypervisorVersion: '7.2.0', agentVersion: 'test',
  });
  let running = true;
  const power = new Map<string, ObservedInstance['powerState']>();
  const host: FakeHost = { name, failSpawns: false, async stop() { running = false; await loop; } };

  const observe = (d: DesiredInstance): ObservedInstance => {
    if (d.deleted) { power.delete(d.id); return { id: d.id, powerState: 'deleted', observedGeneration: d.generation }; }
    if (!power.has(d.id) && host.failSpawns) {
      return { id: d.id, powerState: 'shutdown', observedGeneration: 0, fault: { message: `fake spawn failure on ${name}`, at: new Date().toISOString() } };
    }
    const state = d.power === 'shutoff' ? 'shutdown' : d.power;
    power.set(d.id, state);
    const o: ObservedInstance = { id: d.id, powerState: state, observedGeneration: d.generation, pid: 4242, fault: null };
    if (d.task) {
      o.taskResult = d.task.type === 'snapshot'
        ? { taskId: d.task.id, ok: false, error: 'the fake host has no disks to snapshot' }
        : { taskId: d.task.id, ok: true };
    }
    return o;
  };
  // Cold migration: the fake disk goes through the controller's staging like a real one.
  const exported = new Map<string, ObservedInstance['taskResult']>();
  const exportDisk = async (d: DesiredInstance) => {
    if (d.task?.type !== 'export-disk' || exported.has(d.task.id)) return;
    const staged = await svc.transfers.receive(d.task.migrationId, Readable.from([Buffer.from(`fake disk of ${d.id}`)]), 1024);
    exported.set(d.task.id, { taskId: d.task.id, ok: true, result: { ...staged } });
  };

  const last = new Map<string, string>();
  let since = -1;
  const loop = (async () => {
    while (running) {
      const st = await svc.watch(name, since, 200);
      since = st.revision;
      await svc.heartbeat(name, {});
      for (const call of opts.answer ? st.calls ?? [] : []) {
        const result = await opts.answer!(call).then((r) => ({ ok: true, result: r }), (e: Error) => ({ ok: false, error: e.message }));
        await svc.calls.complete(name, call.id, result);
      }
      for (const d of st.instances) await exportDisk(d);
      const obs = st.instances.map((d) => {
        const o = observe(d);
        if (d.task && exported.has(d.task.id)) o.taskResult = exported.get(d.task.id);
        return o;
      }).filter((o) => {
        const key = JSON.stringify({ ...o, fault: o.fault && o.fault.message });
        if (last.get(o.id) === key) return false;
        last.set(o.id, key);
        return true;
      });
      if (obs.length) await svc.report(name, obs);
    }
  })().catch(() => { /* the cloud stopped under us */ });
  return host;
}
