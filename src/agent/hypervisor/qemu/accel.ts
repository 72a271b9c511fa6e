// Chooses the accelerator by a real probe: KVM only when a Linux test guest actually boots under it
// (on some hosts /dev/kvm exists and even runs a BIOS, yet a kernel hangs or QEMU aborts on an MSR).
// The verdict is cached per (QEMU version, kernel, probe image) until the host reboots.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { run } from '../../exec.js';
import type { Accelerator } from './cmdline.js';

export interface ProbeResult {
  accel: Accelerator;
  reason: string;
}

export interface ProbeOptions {
  binary?: string;
  /** A bootable Linux image that prints `STRATUS-GUEST:` on its serial console. */
  probeImage?: string;
  /** 'auto' probes; 'kvm'/'tcg' force. */
  mode?: 'auto' | 'kvm' | 'tcg';
  log: Logger;
  timeoutMs?: number;
}

const MARKER = 'STRATUS-GUEST:';

export async function chooseAccelerator(o: ProbeOptions): Promise<ProbeResult> {
  const binary = o.binary ?? 'qemu-system-x86_64';
  if (o.mode === 'tcg') return { accel: 'TCG', reason: 'forced by configuration' };
  if (o.mode === 'kvm') return { accel: 'KVM', reason: 'forced by configuration' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'TCG', reason: '/dev/kvm is missing or not accessible' };
  }
  if (!o.probeImage || !existsSync(o.probeImage)) {
    return { accel: 'TCG', reason: `no probe image (${o.probeImage ?? 'none'}) to prove KVM with; TCG is the safe choice` };
  }
  const version = (await run(binary, ['--version'])).split('\n')[0] ?? '';
  const st = statSync(o.probeImage);
  const key = `${version}|${release()}|${o.probeImage}|${st.size}|${st.mtimeMs}`;
  const cacheDir = existsSync('/run') && process.getuid?.() === 0 ? '/run/stratus' : join(tmpdir(), 'stratus-run');
  const cacheFile = join(cacheDir, 'accel-probe.json');
  let cache: Record<string, ProbeResult> = {};
  try { cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, ProbeResult>; } catch { /* no cache */ }
  const hit = cache[key];
  if (hit?.accel) return { accel: hit.accel, reason: `${hit.reason} (cached probe)` };
  o.log.info({ image: o.probeImage }, 'probing KVM with a test guest');
  const started = Date.now();
  const booted = await bootsUnderKvm(binary, o.probeImage, o.timeoutMs ?? 15_000);
  const result: ProbeResult = booted.ok
    ? { accel: 'KVM', reason: `a test guest booted under KVM in ${Date.now() - started} ms` }
    : { accel: 'TCG', reason: `KVM probe failed: ${booted.why}` };
  mkdirSync(cacheDir, { recursive: true });
  try { cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, ProbeResult>; } catch { /* none */ }
  cache[key] = result;
  writeFileSync(`${cacheFile}.${process.pid}`, JSON.stringify(cache));
  renameSync(`${cacheFile}.${process.pid}`, cacheFile);
  return result;
}

function bootsUnderKvm(binary: string, image: string, timeoutMs: number): Promise<{ ok: boolean; why: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-kvm-probe-'));
  const consoleFile = join(dir, 'console.log');
  const child = spawn(binary, [
    '-accel', 'kvm', '-cpu', 'host', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-drive', `file=${image},format=qcow2,if=virtio,snapshot=on`, '-serial', `file:${consoleFile}`, '-nic', 'none',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += String(d); });
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok: boolean, why: string) => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      resolve({ ok, why });
    };
    const poll = setInterval(() => {
      try { if (readFileSync(consoleFile, 'utf8').includes(MARKER)) finish(true, 'booted'); } catch { /* not yet */ }
    }, 200);
    const timer = setTimeout(() => finish(false, `no boot marker within ${timeoutMs} ms`), timeoutMs);
    child.on('exit', (code, sig) => finish(false, `qemu exited (${code ?? sig}): ${stderr.trim().split('\n').slice(-2).join(' ')}`));
  });
}
