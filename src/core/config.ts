// Runtime configuration: embedded defaults, then DIR/stratus.yaml, then command-line flags.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';

export interface StratusConfig {
  dataDir: string;
  listenHost: string;
  listenPort: number;
  /** Base URL published in the catalog; derived from the listen address when unset. */
  publicUrl?: string;
  /** `sqlite:` path or `postgres://` URL; SQLite in the data dir by default. */
  databaseUrl?: string;
  logLevel: string;
  regionId: string;
  identity: {
    tokenExpirationSeconds: number;
    /** Failed password attempts before a user is locked out (0 disables). */
    lockoutFailureAttempts: number;
    lockoutDurationSeconds: number;
    /** Optional YAML file overriding default policy rules. */
    policyFile?: string;
  };
  /** Whether `up` starts the local host agent (later issues). */
  startAgent: boolean;
  /** Free-form sections for services that add their own settings. */
  [section: string]: unknown;
}

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/stratus' : join(homedir(), '.local', 'share', 'stratus');
}

export function defaultConfig(dataDir = defaultDataDir()): StratusConfig {
  return {
    dataDir,
    listenHost: '127.0.0.1',
    listenPort: 8080,
    logLevel: process.env.STRATUS_LOG_LEVEL ?? 'info',
    regionId: 'RegionOne',
    identity: {
      tokenExpirationSeconds: 3600,
      lockoutFailureAttempts: 6,
      lockoutDurationSeconds: 300,
    },
    startAgent: true,
  };
}

/** Merges DIR/stratus.yaml (if present) over the defaults, then `overrides` over that. */
export function loadConfig(dataDir: string, overrides: Partial<StratusConfig> = {}): StratusConfig {
  const cfg = defaultConfig(dataDir);
  const file = join(dataDir, 'stratus.yaml');
  if (existsSync(file)) {
    const fromFile = YAML.parse(readFileSync(file, 'utf8')) ?? {};
    deepMerge(cfg, fromFile);
  }
  deepMerge(cfg, overrides);
  cfg.dataDir = dataDir;
  return cfg;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen wants HOST:PORT, got '${listen}'`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

export function publicBaseUrl(cfg: StratusConfig, boundPort?: number): string {
  if (cfg.publicUrl) return cfg.publicUrl.replace(/\/+$/, '');
  const host = cfg.listenHost === '0.0.0.0' || cfg.listenHost === '::' ? '127.0.0.1' : cfg.listenHost;
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${boundPort ?? cfg.listenPort}`;
}

function deepMerge(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined) continue;
    const cur = into[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) {
      deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      into[k] = v;
    }
  }
}
