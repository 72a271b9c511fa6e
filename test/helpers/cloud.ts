// A whole cloud for one test file: temp data dir, its own database (SQLite, or a throwaway
// PostgreSQL database when STRATUS_TEST_DATABASE names an admin URL), a random port.
// Share one per test file (before/after), and always stop it in `after`.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig, type StratusConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/log.js';
import { startCloud, type Cloud } from '../../src/server.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestCloud {
  cloud: Cloud;
  url: string;
  dataDir: string;
  cloudsYaml: string;
  adminPassword: string;
  demoPassword: string;
  /** Runs the real `openstack` CLI as the admin (default) or demo cloud entry. */
  openstack(args: string[], opts?: { as?: 'admin' | 'demo'; env?: Record<string, string> }): Promise<CliResult>;
  /** Same with `-f json`, parsed; throws with stderr when the command fails. */
  openstackJson<T = any>(args: string[], opts?: { as?: 'admin' | 'demo' }): Promise<T>;
  stop(): Promise<void>;
}

export async function startTestCloud(overrides: Partial<StratusConfig> = {}): Promise<TestCloud> {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratus-test-'));
  const pgDb = await createPgDatabase();
  const cfg = loadConfig(dataDir, {
    listenHost: '127.0.0.1', listenPort: 0, startAgent: false,
    ...(pgDb ? { databaseUrl: pgDb.url } : {}),
    ...overrides,
  });
  const log = createLogger(process.env.STRATUS_TEST_LOG_LEVEL ?? 'silent');
  let cloud: Cloud;
  try {
    cloud = await startCloud(cfg, { log });
  } catch (e) {
    await pgDb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  if (!cloud.credentials) throw new Error('a fresh test cloud must have bootstrap credentials');
  const cloudsYaml = join(dataDir, 'clouds.yaml');

  const openstack: TestCloud['openstack'] = (args, opts = {}) =>
    new Promise((resolve) => {
      const env = {
        ...process.env,
        OS_CLIENT_CONFIG_FILE: cloudsYaml,
        OS_CLOUD: opts.as === 'demo' ? 'stratus-demo' : 'stratus',
        ...opts.env,
      };
      execFile('openstack', args, { env, timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });

  return {
    cloud, url: cloud.url, dataDir, cloudsYaml,
    adminPassword: cloud.credentials.adminPassword,
    demoPassword: cloud.credentials.demoPassword,
    openstack,
    async openstackJson(args, opts) {
      const r = await openstack([...args, '-f', 'json'], opts);
      if (r.code !== 0) throw new Error(`openstack ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
    },
    async stop() {
      await cloud.stop();
      await pgDb?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A fresh database on the PostgreSQL server named by STRATUS_TEST_DATABASE, if set. */
async function createPgDatabase(): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const adminUrl = process.env.STRATUS_TEST_DATABASE;
  if (!adminUrl) return undefined;
  const name = `stratus_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Plain HTTP against the cloud, for what the CLI cannot express (bad input, headers). */
export async function api(
  base: string, method: string, path: string,
  opts: { token?: string; body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any; text: string }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers['X-Auth-Token'] = opts.token;
  let body: string | Uint8Array | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] ??= 'application/json';
  }
  const r = await fetch(`${base}${path}`, { method, headers, body: body as BodyInit | undefined });
  const text = await r.text();
  let parsed: any;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
  return { status: r.status, headers: r.headers, body: parsed, text };
}
