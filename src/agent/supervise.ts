// `stratus up` runs the local agent as a child process (its own process, so that a crash of
// either side does not take the other down) and restarts it if it dies.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

export interface AgentSupervisor {
  pid(): number | undefined;
  stop(): Promise<void>;
}

export function superviseLocalAgent(opts: { controllerUrl: string; dataDir: string; log: Logger; extraArgs?: string[] }): AgentSupervisor {
  const bin = fileURLToPath(new URL('../../../bin/stratus', import.meta.url));
  const logPath = join(opts.dataDir, 'agent.log');
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  const start = () => {
    const out = openSync(logPath, 'a');
    child = spawn(process.execPath, [bin, 'agent', '--controller', opts.controllerUrl, '--data-dir', opts.dataDir, ...(opts.extraArgs ?? [])],
      { stdio: ['ignore', out, out] });
    closeSync(out);
    const startedAt = Date.now();
    opts.log.info({ pid: child.pid, log: logPath }, 'local agent started');
    child.on('exit', (code, signal) => {
      if (stopping) return;
      if (Date.now() - startedAt > 60_000) restarts = 0;
      restarts++;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(restarts, 5));
      opts.log.error({ code, signal, restartInMs: delay }, `local agent exited; see ${logPath}`);
      setTimeout(() => { if (!stopping) start(); }, delay).unref();
    });
  };
  start();
  return {
    pid: () => child?.pid,
    async stop() {
      stopping = true;
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 25_000);
      await exited;
      clearTimeout(t);
    },
  };
}
