// claimOwnership: one live owner at a time; stale owners (dead, or a reused pid that isn't the
// kind of process named) are taken over; release only removes our own claim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimOwnership } from '../../src/core/process.js';

const refuse = (pid: number, owner: string) => `taken by ${pid} (${owner})`;

test('a live owner wins; a dead one is taken over; release removes only our claim', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-claim-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'x.owner');
  // A live process whose command line names what we look for.
  const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'fake-agent'], { stdio: 'ignore' });
  t.after(() => { other.kill('SIGKILL'); });
  await new Promise((r) => other.once('spawn', r));
  writeFileSync(file, `${other.pid}\ndata dir /somewhere\n`);

  assert.throws(() => claimOwnership(file, 'agent', refuse, 'me'), { message: `taken by ${other.pid} (data dir /somewhere)` });
  // The same live pid is not "the kind of process" for another marker: taken over as stale.
  const release1 = claimOwnership(file, 'no-such-marker', refuse, 'me');
  assert.equal(readFileSync(file, 'utf8'), `${process.pid}\nme\n`);
  release1();
  assert.equal(existsSync(file), false);

  writeFileSync(file, `${other.pid}\n`);
  other.kill('SIGKILL');
  await new Promise((r) => other.once('exit', r));
  const release2 = claimOwnership(file, 'agent', refuse);
  assert.equal(readFileSync(file, 'utf8'), `${process.pid}\n`, 'without a description the file is a plain pid file');
  // Someone else's claim is not ours to release.
  writeFileSync(file, '1\n');
  release2();
  assert.equal(readFileSync(file, 'utf8'), '1\n');
});
