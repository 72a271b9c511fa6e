// Processes as this host sees them, shared by the CLI (controller pid files) and the agent (guests).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** True when `pid` exists, even if owned by another user (EPERM: alive but not ours to signal). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims `path` for this process: one owner at a time of something on this host (an agent's data
 * dir, a data-plane namespace prefix). The file holds the owner's pid (then `what`, if given); a live
 * owner whose command line still contains `marker` wins, and `refuse` says what the caller clashes
 * with. A stale file (owner dead or pid reused) is taken over. Returns a release function.
 */
export function claimOwnership(path: string, marker: string, refuse: (pid: number, owner: string) => string, what = ''): () => void {
  try {
    const [pidLine, owner = ''] = readFileSync(path, 'utf8').split('\n');
    const pid = Number(pidLine);
    if (pid > 0 && pid !== process.pid && isAlive(pid) && cmdline(pid).includes(marker)) throw new Error(refuse(pid, owner));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, what ? `${process.pid}\n${what}\n` : `${process.pid}\n`);
  return () => {
    try { if (Number(readFileSync(path, 'utf8').split('\n')[0]) === process.pid) rmSync(path, { force: true }); } catch { /* gone */ }
  };
}

function cmdline(pid: number): string {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return ''; }
}
