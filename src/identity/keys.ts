// Token key repository, Fernet-style: DATA_DIR/token-keys/<n>, each 32 random bytes (base64url),
// mode 0600. Key 0 is "staged" (the next primary, already accepted so that every server of a
// cloud can decrypt before any starts encrypting with it); the highest number is the primary
// (encrypts); the rest are secondaries (decrypt only). Rotation promotes 0 to max+1, stages a new
// 0 and drops the oldest beyond MAX_ACTIVE_KEYS, which invalidates the tokens it encrypted.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Staged + primary + one secondary, as Keystone's default max_active_keys (3). */
export const MAX_ACTIVE_KEYS = 3;

/** Key repositories: token keys, and the keys that seal stored credential blobs (credentials.ts). */
export type KeyRepo = 'token-keys' | 'credential-keys';
export const keyDir = (dataDir: string, repo: KeyRepo = 'token-keys') => join(dataDir, repo);

function writeKey(dir: string, n: number): void {
  const tmp = join(dir, `.tmp-${n}-${process.pid}`);
  writeFileSync(tmp, randomBytes(32).toString('base64url'), { mode: 0o600 });
  renameSync(tmp, join(dir, String(n)));
}

function keyNumbers(dir: string): number[] {
  return readdirSync(dir).filter((f) => /^\d+$/.test(f)).map(Number).sort((a, b) => a - b);
}

/** Creates the repository (staged key 0 and primary key 1) if it does not exist yet. */
export function ensureKeys(dataDir: string, repo: KeyRepo = 'token-keys'): void {
  const dir = keyDir(dataDir, repo);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const nums = keyNumbers(dir);
  if (!nums.includes(0)) writeKey(dir, 0);
  if (!nums.some((n) => n > 0)) writeKey(dir, 1);
}

/** Rotates the keys; a running server notices the change on its next token operation. */
export async function rotateKeys(dataDir: string): Promise<{ primary: number; kept: number }> {
  ensureKeys(dataDir);
  const dir = keyDir(dataDir);
  const nums = keyNumbers(dir);
  const primary = Math.max(...nums) + 1;
  renameSync(join(dir, '0'), join(dir, String(primary)));
  writeKey(dir, 0);
  const secondaries = keyNumbers(dir).filter((n) => n !== 0 && n !== primary);
  const keep = MAX_ACTIVE_KEYS - 2;
  for (const n of secondaries.slice(0, Math.max(0, secondaries.length - keep))) unlinkSync(join(dir, String(n)));
  return { primary, kept: keyNumbers(dir).length };
}

/** The keys as a running server sees them; re-read whenever the directory changes. */
export class KeyRing {
  private keys = new Map<number, Buffer>();
  private primaryId = 0;
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(private readonly dataDir: string, private readonly recheckMs = 500, private readonly repo: KeyRepo = 'token-keys') {
    ensureKeys(dataDir, repo);
    this.reload();
  }

  /** Re-reads the directory if its mtime moved (checked at most every `recheckMs`, or when forced). */
  refresh(force = false): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < this.recheckMs) return;
    this.checkedAt = now;
    const dir = keyDir(this.dataDir, this.repo);
    let m: number;
    try { m = statSync(dir).mtimeMs; } catch { m = -2; }
    if (m !== this.mtimeMs) this.reload();
  }

  private reload(): void {
    const dir = keyDir(this.dataDir, this.repo);
    if (!existsSync(dir)) ensureKeys(this.dataDir, this.repo);
    this.mtimeMs = statSync(dir).mtimeMs;
    const keys = new Map<number, Buffer>();
    for (const n of keyNumbers(dir)) {
      try {
        const k = Buffer.from(readFileSync(join(dir, String(n)), 'utf8').trim(), 'base64url');
        if (k.length === 32) keys.set(n, k);
      } catch { /* removed meanwhile: skip */ }
    }
    if (keys.size === 0) throw new Error(`no usable keys in ${dir}`);
    this.keys = keys;
    this.primaryId = Math.max(...keys.keys());
  }

  primary(): { id: number; key: Buffer } {
    this.refresh();
    return { id: this.primaryId, key: this.keys.get(this.primaryId)! };
  }

  get(id: number): Buffer | undefined {
    this.refresh();
    let k = this.keys.get(id);
    // A key we do not know may have been created by a rotation since our last check.
    if (!k && id > this.primaryId) { this.refresh(true); k = this.keys.get(id); }
    return k;
  }
}
