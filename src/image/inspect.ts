// What uploaded image data really is. An image that says qcow2 but points at a backing file or an
// external data file would make QEMU read host files when a guest boots from it (the classic
// Glance/Nova vulnerability class), so such images are refused before anything else opens them:
// the qcow2 header is parsed here first, then `qemu-img info` (under prlimit) confirms the format.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { badRequest } from '../core/errors.js';

/** Glance disk_format → the formats `qemu-img info` may report for it. */
const QEMU_FORMATS: Record<string, string[]> = {
  qcow2: ['qcow2'], raw: ['raw'], iso: ['raw'], vmdk: ['vmdk'], vdi: ['vdi'], vhd: ['vpc'], vhdx: ['vhdx'],
  ploop: ['parallels'], ami: ['raw'], ari: ['raw'], aki: ['raw'],
};
export const DISK_FORMATS = Object.keys(QEMU_FORMATS);
export const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'];
/** Formats `qemu-img convert` can write, for import conversion. */
export const CONVERTIBLE = { qcow2: 'qcow2', raw: 'raw', vmdk: 'vmdk', vdi: 'vdi', vhd: 'vpc', vhdx: 'vhdx' } as Record<string, string>;

export interface Inspection {
  /** qemu-img's name of the format. */
  format: string;
  virtualSize: number;
}

const LIMIT = existsSync('/usr/bin/prlimit') ? ['/usr/bin/prlimit', '--as=1073741824', '--cpu=30', '--'] : [];

function run(argv: string[], timeoutMs: number, limited: boolean): Promise<{ stdout: string; stderr: string }> {
  // Inspection of untrusted data runs under resource limits (a crafted header can make qemu-img spin).
  const [cmd, ...args] = [...(limited ? LIMIT : []), ...argv];
  return new Promise((resolve, reject) => {
    execFile(cmd!, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }));
      else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Why a qcow2 file must be refused (backing file, external data file), read from its header; or undefined. */
export async function qcow2Refusal(path: string): Promise<string | undefined> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const h = head.subarray(0, bytesRead);
    if (h.length < 72 || h.readUInt32BE(0) !== 0x514649fb) return undefined; // not qcow2
    const version = h.readUInt32BE(4);
    if (h.readBigUInt64BE(8) !== 0n || h.readUInt32BE(16) !== 0) return 'it names a backing file';
    if (version < 3) return undefined;
    if (h.length < 104) return 'its header is truncated';
    const incompatible = h.readBigUInt64BE(72);
    if (incompatible & 4n) return 'it uses an external data file';
    // Header extensions follow the header; 0x44415441 names the external data file.
    let off = h.readUInt32BE(100);
    while (off + 8 <= h.length) {
      const type = h.readUInt32BE(off);
      const len = h.readUInt32BE(off + 4);
      if (type === 0) break;
      if (type === 0x44415441) return 'it names an external data file';
      off += 8 + Math.ceil(len / 8) * 8;
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

/** Runs `qemu-img info` on a local file (never follows backing files: they are refused before). */
export async function qemuImgInfo(path: string): Promise<Inspection & { raw: any }> {
  let out: string;
  try {
    out = (await run(['qemu-img', 'info', '--output=json', path], 60_000, true)).stdout;
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n')[0];
    throw badRequest(`Image data could not be inspected: ${msg}`);
  }
  const raw = JSON.parse(out);
  return { format: String(raw.format), virtualSize: Number(raw['virtual-size'] ?? 0), raw };
}

/**
 * Checks that the file at `path` really is `diskFormat` and is safe to boot; returns what qemu-img
 * found. Throws a 400 with the reason otherwise.
 */
export async function verifyImageData(path: string, diskFormat: string): Promise<Inspection> {
  const refusal = await qcow2Refusal(path);
  if (refusal) throw badRequest(`Image data refused: ${refusal}, which could expose host files to a guest.`);
  const info = await qemuImgInfo(path);
  if (info.raw['backing-filename'] || info.raw['full-backing-filename']) {
    throw badRequest('Image data refused: it names a backing file, which could expose host files to a guest.');
  }
  if (info.raw['format-specific']?.data?.['data-file']) {
    throw badRequest('Image data refused: it uses an external data file, which could expose host files to a guest.');
  }
  if (info.format === 'vmdk') {
    const createType = info.raw['format-specific']?.data?.['create-type'];
    if (createType !== 'monolithicSparse' && createType !== 'streamOptimized') {
      throw badRequest(`Image data refused: vmdk create-type '${createType}' may reference other files.`);
    }
  }
  const allowed = QEMU_FORMATS[diskFormat];
  if (allowed && !allowed.includes(info.format)) {
    throw badRequest(`Image data does not match disk_format '${diskFormat}': the data is ${info.format}.`);
  }
  return { format: info.format, virtualSize: info.virtualSize };
}

/** Converts `src` (of qemu format `from`) to `to` at `dst` with qemu-img convert. */
export async function convertImage(src: string, from: string, dst: string, to: string): Promise<void> {
  try {
    await run(['qemu-img', 'convert', '-f', from, '-O', to, src, dst], 3_600_000, false);
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n')[0];
    throw badRequest(`Image conversion to ${to} failed: ${msg}`);
  }
}
