// Small image files and callers for the image tests.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthContext } from '../../src/core/auth.js';

export function workDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-img-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A qcow2 made by qemu-img (extra `-o` options, e.g. backing_file). */
export function qcow2(dir: string, name: string, size = '16M', opts: string[] = []): string {
  const path = join(dir, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...opts, path, size]);
  return path;
}

export function rawFile(dir: string, name: string, bytes = 256 * 1024): string {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(bytes));
  return path;
}

/** Files of a store directory, temporary ones included (to prove nothing was left behind). */
export function filesIn(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(e.name);
  return out;
}

export function caller(projectId: string, roles: string[], userId = `u-${projectId}`): AuthContext {
  return {
    token: 'test', userId, userName: userId, userDomainId: 'default', userDomainName: 'Default', projectId,
    projectName: projectId, projectDomainId: 'default', projectDomainName: 'Default', system: false, roles, roleIds: [],
    methods: ['password'], issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3600e3).toISOString(), auditIds: [],
  };
}
