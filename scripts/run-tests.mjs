#!/usr/bin/env node
// Runs every compiled test file under dist/test with node's test runner.
//   node scripts/run-tests.mjs [substring ...]   only files whose path contains one of them
// STRATUS_TEST_CONCURRENCY (default 2) files run at once; each file shares one cloud.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = 'dist/test';
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
})(root);

const filters = process.argv.slice(2);
const selected = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (!selected.length) {
  console.error('no test files selected');
  process.exit(1);
}
const concurrency = process.env.STRATUS_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath,
  ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...selected],
  { stdio: 'inherit' });
process.exit(r.status ?? 1);
