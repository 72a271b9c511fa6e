// The QEMU command line of a guest, built from its spec alone, so that the same guest gets the
// same machine after a restart, a resume (migration needs identical devices) or by hand (bench).
import { join } from 'node:path';
import type { InstanceSpec } from '../driver.js';

export type Accelerator = 'KVM' | 'TCG';

export interface GuestPaths {
  dir: string;
  spec: string;
  disk: string;
  configDrive: string;
  console: string;
  qmp: string;
  vnc: string;
  pid: string;
  /** Memory and device state of a suspended guest. */
  state: string;
  /** QEMU's own stderr (start-up errors). */
  log: string;
}

export function guestPaths(instancesDir: string, id: string): GuestPaths {
  const dir = join(instancesDir, id);
  return {
    dir,
    spec: join(dir, 'spec.json'),
    disk: join(dir, 'disk.qcow2'),
    configDrive: join(dir, 'config.iso'),
    console: join(dir, 'console.log'),
    qmp: join(dir, 'qmp.sock'),
    vnc: join(dir, 'vnc.sock'),
    pid: join(dir, 'qemu.pid'),
    state: join(dir, 'memory.state'),
    log: join(dir, 'qemu.log'),
  };
}

export interface CmdlineOptions {
  accel: Accelerator;
  hasConfigDrive: boolean;
  /** Start waiting for an incoming migration (resume from a saved state). */
  incoming?: boolean;
  /** Foreground (bench "by hand" runs): no -daemonize / -pidfile. */
  foreground?: boolean;
  /** VNC on TCP at this address (first free port from 5900) instead of the unix socket. */
  vncListen?: string;
}

/** TCP VNC servers take the first free display of 0..VNC_DISPLAYS-1 (ports 5900 and up). */
export const VNC_DISPLAYS = 1000;

/** Escapes a value for QEMU's comma-separated option syntax. */
const q = (v: string) => v.replace(/,/g, ',,');

export function qemuArgs(spec: InstanceSpec, p: GuestPaths, o: CmdlineOptions): string[] {
  const args = [
    // Operators find a guest with `ps`: its UUID and name are on the command line.
    '-name', `guest=instance-${spec.id},debug-threads=on`,
    '-uuid', spec.id,
    '-nodefaults', '-no-user-config',
    '-machine', 'pc',
    ...(o.accel === 'KVM' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-smp', String(spec.vcpus),
    '-m', String(spec.ramMb),
    '-display', 'none',
    '-vga', 'std',
    // A unix socket for a controller on this machine; TCP when controllers are elsewhere.
    '-vnc', o.vncListen ? `${o.vncListen.includes(':') ? `[${o.vncListen}]` : o.vncListen}:0,to=${VNC_DISPLAYS - 1}` : `unix:${q(p.vnc)}`,
    // Appending keeps offsets valid across restarts of the guest (console read by offset).
    '-chardev', `file,id=console0,path=${q(p.console)},append=on`,
    '-serial', 'chardev:console0',
    '-qmp', `unix:${q(p.qmp)},server=on,wait=off`,
    '-drive', `file=${q(p.disk)},format=qcow2,if=virtio,cache=writeback,discard=unmap`,
    // Entropy for the guest (dropbear must not wait for it).
    '-device', 'virtio-rng-pci',
  ];
  for (const d of spec.disks ?? []) {
    args.push('-blockdev', `driver=${d.format},node-name=${diskNode(d.id)},file.driver=${d.path.startsWith('/dev/') ? 'host_device' : 'file'},file.filename=${q(d.path)}${d.readOnly ? ',read-only=on' : ''}`,
      '-device', `virtio-blk-pci,drive=${diskNode(d.id)},id=${diskDevice(d.id)},serial=${serialOf(d.id)}`);
  }
  if (o.hasConfigDrive) {
    args.push('-drive', `file=${q(p.configDrive)},format=raw,if=virtio,readonly=on`);
  }
  // Networking: one tap per NIC (created by the dataplane); none at all otherwise.
  if (spec.nics.length === 0) args.push('-nic', 'none');
  for (const nic of spec.nics) {
    args.push('-netdev', `tap,id=${netdevId(nic.id)},ifname=${q(nic.tap)},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=${netdevId(nic.id)},id=${nicDevice(nic.id)},mac=${nic.mac}${nic.mtu ? `,host_mtu=${nic.mtu}` : ''}`);
  }
  if (o.incoming) args.push('-incoming', 'defer');
  if (!o.foreground) args.push('-daemonize', '-pidfile', p.pid);
  return args;
}

// QEMU ids: letters, digits, '-', '.', '_', starting with a letter; node names at most 31 characters.
const short = (id: string) => id.replace(/[^A-Za-z0-9]/g, '').slice(0, 20);
export const diskNode = (volumeId: string) => `vol${short(volumeId)}`;
export const diskDevice = (volumeId: string) => `disk-${short(volumeId)}`;
/** virtio-blk serials hold 20 bytes; the guest sees /dev/disk/by-id/virtio-<serial>. */
export const serialOf = (volumeId: string) => volumeId.slice(0, 20);
export const netdevId = (portId: string) => `net-${short(portId)}`;
export const nicDevice = (portId: string) => `nic-${short(portId)}`;
