// Running the host's network tools (ip, bridge, nft, iptables-restore, sysctl) for the data plane.
// Every mutating call goes through `Host.change` so that converge() can count what it changed
// (0 changes = the host already matched) and so tests can see the exact commands.
import { execFile, spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly cmd: string, readonly args: string[], readonly stderr: string, readonly code: number | null) {
    super(`${cmd} ${args.join(' ')}: ${stderr.trim() || `exit ${code}`}`);
  }
}

/** Runs a command, resolving with its stdout; stdin optional. */
export function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 60_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(cmd, args, String(stderr), typeof err.code === 'number' ? err.code : null));
      else resolve(String(stdout));
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs `cmd` inside a network namespace (`ip netns exec` execs it, so the pid is the command's). */
export function runIn(netns: string, cmd: string, args: string[], input?: string): Promise<string> {
  return run('ip', ['netns', 'exec', netns, cmd, ...args], input);
}

/** Starts a long-running process inside a namespace, detached from us; returns its pid. */
export function spawnIn(netns: string, cmd: string, args: string[], logFd: number): number {
  const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args],
    { detached: true, stdio: ['ignore', logFd, logFd] });
  if (child.pid === undefined) throw new Error(`cannot start ${cmd} in ${netns}`);
  child.unref();
  return child.pid;
}

/** Counts the changes made during one converge; read-only calls go through `run` directly. */
export class ChangeLog {
  count = 0;
  readonly lines: string[] = [];
  async change(cmd: string, args: string[], input?: string): Promise<string> {
    this.count++;
    this.lines.push(`${cmd} ${args.join(' ')}`);
    return run(cmd, args, input);
  }
  note(what: string): void {
    this.count++;
    this.lines.push(what);
  }
}
