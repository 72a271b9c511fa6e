// `stratus up` starts the local agent as a child (it registers its host); `stratus down` stops both.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../helpers/agent.js';
import { isAlive } from '../../src/core/process.js';

const dir = mkdtempSync(join(tmpdir(), 'stratus-cli-agent-'));
const BIN = join(process.cwd(), 'bin', 'stratus');
const tag = Math.random().toString(36).slice(2, 7);

function stratus(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    // The agent's namespaces get a prefix of their own (never a real cloud's "stratus-").
    const env = { ...process.env, STRATUS_NETNS_PREFIX: `stratus-c${tag}-`, STRATUS_PROVIDER_NETNS: `stratus-c${tag}-provider` };
    execFile(process.execPath, [BIN, ...args], { timeout: 180_000, env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

after(async () => {
  await stratus(['down', '--data-dir', dir, '--purge']);
  rmSync(dir, { recursive: true, force: true });
});

test('up starts the local agent, which registers its host; down stops it', async () => {
  const port = await freePort();
  const up = await stratus(['up', '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--detach']);
  assert.equal(up.code, 0, up.out);
  // `up --detach` returns once the local agent has registered: a server can be scheduled at once.
  assert.match(readFileSync(join(dir, 'agent.log'), 'utf8'), /registered with the controller/);
  const token = readFileSync(join(dir, 'agent-token'), 'utf8').trim();
  assert.equal(readFileSync(join(dir, 'agent-token')).length > 40, true);
  const host = await until('host registered', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/compute/agent/v1/hosts/${hostname()}/desired`, { headers: { Authorization: `Bearer ${token}` } });
    return r.ok ? r.json() : undefined;
  }, 90_000);
  assert.equal(typeof (host as { revision: number }).revision, 'number');
  const agentPid = Number(readFileSync(join(dir, 'agent', 'agent.pid'), 'utf8'));
  assert.ok(isAlive(agentPid));

  const down = await stratus(['down', '--data-dir', dir]);
  assert.equal(down.code, 0, down.out);
  await until('agent gone', () => !isAlive(agentPid), 30_000);
});
