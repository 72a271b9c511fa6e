// Identity benchmark: token issue, token validation and GET /v3/projects throughput and latency
// at concurrency 8 over keep-alive connections, plus the server's idle RSS. Starts its own cloud
// (a separate `stratus up` process on SQLite in a temp dir) and removes it afterwards.
//   node dist/bench/identity.js [--duration SECONDS] [--concurrency N] [--json]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '20' },
    concurrency: { type: 'string', default: '8' },
    json: { type: 'boolean', default: false },
  },
});
const DURATION_MS = Number(opts.duration) * 1000;
const CONCURRENCY = Number(opts.concurrency);

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

interface Res { status: number; headers: http.IncomingHttpHeaders; body: string }

function request(base: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const req = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname + u.search, method,
      headers: { ...headers, ...(body ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

interface Figures { name: string; requests: number; errors: number; seconds: number; rps: number; p50: number; p99: number }

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `one` from CONCURRENCY loops for `ms` (or `count` calls in all); latencies in ms. */
async function load(name: string, one: (i: number) => Promise<boolean>, ms: number, count = Infinity): Promise<Figures> {
  const lat: number[] = [];
  let errors = 0;
  let started = 0;
  const t0 = performance.now();
  const deadline = t0 + ms;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline && started < count) {
      const i = started++;
      const s = performance.now();
      const ok = await one(i).catch(() => false);
      lat.push(performance.now() - s);
      if (!ok) errors++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { name, requests: lat.length, errors, seconds, rps: lat.length / seconds, p50: pct(lat, 50), p99: pct(lat, 99) };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-identity-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const bin = fileURLToPath(new URL('../../bin/stratus', import.meta.url));
  const server = spawn(process.execPath, [bin, 'up', '--data-dir', dir, '--listen', `127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, STRATUS_LOG_LEVEL: 'warn' } });
  const stop = () => { if (server.exitCode === null) server.kill('SIGTERM'); };
  process.on('exit', stop);
  try {
    for (let i = 0; ; i++) {
      try { if ((await request(base, 'GET', '/healthz', {})).status === 200) break; } catch { /* not yet */ }
      if (i > 600 || server.exitCode !== null) throw new Error('the server did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
    const clouds = YAML.parse(readFileSync(join(dir, 'clouds.yaml'), 'utf8'));
    const adminPw: string = clouds.clouds.stratus.auth.password;
    const authBody = (user: string, password: string, project?: string) => JSON.stringify({ auth: {
      identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
      ...(project ? { scope: { project: { name: project, domain: { id: 'default' } } } } : {}),
    } });
    const adminAuth = authBody('admin', adminPw, 'admin');
    const first = await request(base, 'POST', '/identity/v3/auth/tokens', {}, adminAuth);
    const token = String(first.headers['x-subject-token']);

    await new Promise((r) => setTimeout(r, 3000));
    const idleRss = rssMb(server.pid!);

    const results: Figures[] = [];
    results.push(await load('token issue (password, project scope)', async () =>
      (await request(base, 'POST', '/identity/v3/auth/tokens', {}, adminAuth)).status === 201, DURATION_MS));
    results.push(await load('token validation (GET /v3/auth/tokens)', async () =>
      (await request(base, 'GET', '/identity/v3/auth/tokens', { 'X-Auth-Token': token, 'X-Subject-Token': token })).status === 200, DURATION_MS));
    results.push(await load('GET /v3/projects', async () =>
      (await request(base, 'GET', '/identity/v3/projects', { 'X-Auth-Token': token })).status === 200, DURATION_MS));

    // Cold logins: each user's first password check pays the full argon2id cost.
    const users = Math.max(CONCURRENCY * 4, 32);
    for (let i = 0; i < users; i++) {
      await request(base, 'POST', '/identity/v3/users', { 'X-Auth-Token': token },
        JSON.stringify({ user: { name: `bench-${i}`, password: `bench-password-${i}` } }));
    }
    results.push(await load('cold login (first argon2id check of a user)', async (i) =>
      (await request(base, 'POST', '/identity/v3/auth/tokens', {}, authBody(`bench-${i}`, `bench-password-${i}`))).status === 201,
    DURATION_MS * 10, users));
    const loadedRss = rssMb(server.pid!);

    if (opts.json) {
      console.log(JSON.stringify({ concurrency: CONCURRENCY, durationSeconds: DURATION_MS / 1000, idleRssMb: idleRss, rssAfterMb: loadedRss, results }, null, 2));
    } else {
      console.log(`Stratus identity bench — concurrency ${CONCURRENCY}, keep-alive, ${DURATION_MS / 1000} s per test, SQLite`);
      console.log('test'.padEnd(46) + 'req/s'.padStart(9) + 'p50 ms'.padStart(9) + 'p99 ms'.padStart(9) + 'errors'.padStart(8));
      for (const r of results) {
        console.log(r.name.padEnd(46) + r.rps.toFixed(1).padStart(9) + r.p50.toFixed(1).padStart(9) + r.p99.toFixed(1).padStart(9) + String(r.errors).padStart(8));
      }
      console.log(`server RSS: ${idleRss.toFixed(0)} MB idle, ${loadedRss.toFixed(0)} MB after the runs`);
    }
  } finally {
    stop();
    await new Promise((r) => (server.exitCode !== null ? r(null) : server.once('exit', r)));
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
