// Long-running helper processes of the data plane (dnsmasq, metadata proxies): one directory
// each under the state dir, holding its config, its pid and the exact command line it runs.
// A process is only ever signalled by its recorded pid, and only if /proc/PID/cmdline still
// mentions its own directory (so a recycled pid of a foreign process is never hit).
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnIn } from './exec.js';
import { cmdlineOf, killPid, pidAlive, sleep } from './linux.js';

export interface ProcSpec {
  netns: string;
  cmd: string;
  args: string[];
}

export class ProcDir {
  constructor(readonly dir: string) {}
  path(name: string): string { return join(this.dir, name); }
  ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
  }
  /** Writes a file if its content differs; true if it changed. */
  writeIfChanged(name: string, content: string, mode = 0o644): boolean {
    const p = this.path(name);
    if (existsSync(p) && readFileSync(p, 'utf8') === content) return false;
    writeFileSync(p, content, { mode });
    return true;
  }
  /** The pid of our live process, or null. */
  pid(): number | null {
    let pid: number;
    try { pid = Number(readFileSync(this.path('pid'), 'utf8').trim()); } catch { return null; }
    if (!pid || !pidAlive(pid)) return null;
    return cmdlineOf(pid).includes(this.dir) ? pid : null;
  }
  /** The spec the running process was started with (to decide whether it must restart). */
  startedWith(): string | null {
    try { return readFileSync(this.path('spec.json'), 'utf8'); } catch { return null; }
  }
  start(spec: ProcSpec): number {
    this.ensure();
    const log = openSync(this.path('log'), 'a');
    try {
      const pid = spawnIn(spec.netns, spec.cmd, spec.args, log);
      writeFileSync(this.path('pid'), `${pid}\n`);
      writeFileSync(this.path('spec.json'), JSON.stringify(spec));
      return pid;
    } finally { closeSync(log); }
  }
  signal(sig: NodeJS.Signals): boolean {
    const pid = this.pid();
    if (pid === null) return false;
    killPid(pid, sig);
    return true;
  }
  async stop(): Promise<boolean> {
    const pid = this.pid();
    if (pid !== null) {
      killPid(pid);
      for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(20);
      if (pidAlive(pid)) killPid(pid, 'SIGKILL');
    }
    return pid !== null;
  }
  async remove(): Promise<boolean> {
    const stopped = await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
    return stopped;
  }
}

/** The sub-directories of a state directory (each one a process dir). */
export function procDirs(parent: string): string[] {
  try { return readdirSync(parent, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name); } catch { return []; }
}
