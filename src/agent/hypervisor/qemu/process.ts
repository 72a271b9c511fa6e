// QEMU processes as the host sees them: pid files checked against /proc (a pid is only ours if
// its command line carries the guest's -uuid, so a recycled pid is never mistaken for a guest),
// a cgroup per guest when cgroup v2 is writable, and waiting for exits.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** True when `pid` is a live QEMU whose command line names guest `id` (zombies count as dead). */
export function isGuestProcess(pid: number, id: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('-uuid');
    return i >= 0 && argv[i + 1] === id;
  } catch {
    return false;
  }
}

export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves true once `pid` is gone (or no longer the guest), false on timeout. */
export async function waitGone(pid: number, id: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isGuestProcess(pid, id)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// --- cgroups -------------------------------------------------------------------------------

/**
 * Where guest cgroups go: a `stratus` group under the cgroup v2 hierarchy, when it is writable;
 * with a `tag` (an agent sharing the machine with others), its own `host-TAG.slice` inside it.
 */
export function cgroupRoot(tag?: string): string | undefined {
  const candidates = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
  for (const base of candidates) {
    if (!existsSync(join(base, 'cgroup.procs')) || !existsSync(join(base, 'cgroup.max.depth'))) continue;
    const root = join(base, 'stratus.slice', ...(tag ? [`host-${tag.replace(/[^A-Za-z0-9_.-]/g, '_')}.slice`] : []));
    try {
      mkdirSync(root, { recursive: true });
      return root;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function guestCgroup(root: string | undefined, id: string): string | undefined {
  return root ? join(root, `instance-${id}.scope`) : undefined;
}

/** Kills every process left in the guest's cgroup and removes it. */
export async function removeCgroup(dir: string | undefined): Promise<void> {
  if (!dir || !existsSync(dir)) return;
  try { writeFileSync(join(dir, 'cgroup.kill'), '1'); } catch { /* older kernels: pids are killed by the caller */ }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Runs `qemu-system-x86_64 args` with -daemonize: resolves once the launcher exits (QEMU has
 * opened its sockets and written the pid file). With a cgroup, the launcher enters it before
 * exec, so the daemonized QEMU is born inside it and never runs untracked.
 */
export function launchQemu(binary: string, args: string[], opts: { cgroup?: string; logFile: string }): Promise<void> {
  let cmd = binary;
  let argv = args;
  if (opts.cgroup) {
    mkdirSync(opts.cgroup, { recursive: true });
    cmd = '/bin/sh';
    argv = ['-c', 'echo $$ > "$STRATUS_CGROUP/cgroup.procs" && exec "$0" "$@"', binary, ...args];
  }
  const log = openSync(opts.logFile, 'a');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      stdio: ['ignore', log, log],
      env: { ...process.env, STRATUS_CGROUP: opts.cgroup ?? '' },
    });
    closeSync(log);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        let tail = '';
        try { tail = readFileSync(opts.logFile, 'utf8').split('\n').slice(-6).join('\n'); } catch { /* none */ }
        reject(new Error(`qemu exited with ${code ?? signal} while starting: ${tail.trim()}`));
      }
    });
  });
}
