// Hot-plugging disks and NICs into a running QEMU over QMP (blockdev-add + device_add; device_del
// + blockdev-del once the guest has released the device), as measured in HOST-FACTS, and the
// driver's attach/detach built on them (the spec on disk follows the live machine).
import { existsSync } from 'node:fs';
import { InvalidStateError, type DiskSpec, type InstanceSpec, type NicSpec } from '../driver.js';
import { diskDevice, diskNode, netdevId, nicDevice, serialOf } from './cmdline.js';
import type { GuestOps } from './guest-ops.js';
import type { QmpClient } from './qmp.js';

async function hasDevice(c: QmpClient, id: string): Promise<boolean> {
  const tree = await c.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' });
  return tree.some((p) => p.name === id);
}

export async function plugDisk(c: QmpClient, d: DiskSpec): Promise<void> {
  if (await hasDevice(c, diskDevice(d.id))) return;
  const nodes = await c.execute<{ 'node-name': string }[]>('query-named-block-nodes');
  if (!nodes.some((n) => n['node-name'] === diskNode(d.id))) {
    await c.execute('blockdev-add', {
      driver: d.format, 'node-name': diskNode(d.id), 'read-only': !!d.readOnly,
      file: { driver: d.path.startsWith('/dev/') ? 'host_device' : 'file', filename: d.path },
    });
  }
  await c.execute('device_add', { driver: 'virtio-blk-pci', id: diskDevice(d.id), drive: diskNode(d.id), serial: serialOf(d.id) });
}

export async function unplugDisk(c: QmpClient, volumeId: string, timeoutMs: number): Promise<void> {
  await unplug(c, diskDevice(volumeId), timeoutMs);
  // The device lets go of its node a moment after it leaves the QOM tree ("is in use" until then).
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = await c.execute<{ 'node-name': string }[]>('query-named-block-nodes');
    if (!nodes.some((n) => n['node-name'] === diskNode(volumeId))) return;
    try {
      await c.execute('blockdev-del', { 'node-name': diskNode(volumeId) });
      return;
    } catch (e) {
      if (!/in use/i.test((e as Error).message) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function plugNic(c: QmpClient, nic: NicSpec): Promise<void> {
  if (await hasDevice(c, nicDevice(nic.id))) return;
  await c.execute('netdev_add', { type: 'tap', id: netdevId(nic.id), ifname: nic.tap, script: 'no', downscript: 'no' })
    .catch((e: Error) => { if (!/Duplicate|already/i.test(e.message)) throw e; });
  await c.execute('device_add', {
    driver: 'virtio-net-pci', id: nicDevice(nic.id), netdev: netdevId(nic.id), mac: nic.mac, ...(nic.mtu ? { host_mtu: nic.mtu } : {}),
  });
}

export async function unplugNic(c: QmpClient, portId: string, timeoutMs: number): Promise<void> {
  await unplug(c, nicDevice(portId), timeoutMs);
  await c.execute('netdev_del', { id: netdevId(portId) }).catch(() => undefined);
}

/** device_del, then wait until the guest has let go (DEVICE_DELETED, or the device is gone). */
async function unplug(c: QmpClient, device: string, timeoutMs: number): Promise<void> {
  if (!(await hasDevice(c, device))) return;
  await c.execute('device_del', { id: device }).catch((e: Error) => { if (!/not found/i.test(e.message)) throw e; });
  const deadline = Date.now() + timeoutMs;
  while (await hasDevice(c, device)) {
    if (Date.now() > deadline) throw new Error(`the guest did not release ${device} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// --- the driver's side: persisted spec + live machine ---------------------------------------

/** A change of devices: how the persisted spec changes and what to do to the running machine. */
export interface DeviceChange {
  edit(spec: InstanceSpec): void;
  live(c: QmpClient): Promise<void>;
}

export const attachDiskChange = (disk: DiskSpec): DeviceChange => ({
  edit: (spec) => { spec.disks = [...(spec.disks ?? []).filter((d) => d.id !== disk.id), disk]; },
  live: (c) => plugDisk(c, disk),
});
export const detachDiskChange = (diskId: string): DeviceChange => ({
  edit: (spec) => { spec.disks = (spec.disks ?? []).filter((d) => d.id !== diskId); },
  live: (c) => unplugDisk(c, diskId, 30_000),
});
export const attachNicChange = (nic: NicSpec): DeviceChange => ({
  edit: (spec) => { spec.nics = [...spec.nics.filter((n) => n.id !== nic.id), nic]; },
  live: (c) => plugNic(c, nic),
});
export const detachNicChange = (nicId: string): DeviceChange => ({
  edit: (spec) => { spec.nics = spec.nics.filter((n) => n.id !== nicId); },
  live: (c) => unplugNic(c, nicId, 30_000),
});

/**
 * Changes the persisted spec and, when the guest runs, the live machine. Attach: plug first,
 * then record (a failed plug changes nothing). Detach: unplug first, then forget.
 * A suspended guest cannot change devices (its saved state must match them).
 */
export async function applyDeviceChange(h: GuestOps, id: string, change: DeviceChange): Promise<void> {
  const p = h.requireGuest(id);
  if (!h.livePid(id) && existsSync(p.state)) throw new InvalidStateError(`guest ${id} is suspended; resume it before changing its devices`);
  if (h.livePid(id)) await h.qmp(id, change.live, 5000);
  const spec = h.readSpec(id)!;
  change.edit(spec);
  h.writeSpec(id, spec);
  h.log.info({ instance: id, disks: spec.disks?.map((d) => d.id) ?? [], nics: spec.nics.map((n) => n.id) }, 'devices changed');
}
