// Processes as this host sees them, shared by the CLI (controller pid files) and the agent (guests).

/** True when `pid` exists, even if owned by another user (EPERM: alive but not ours to signal). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
