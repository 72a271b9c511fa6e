// One real guest (the project's test image, TCG) through the agent's own interface: the compute
// service records desired state, a real `stratus agent` process converges it, and we check what
// QEMU, the console and the files say.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { guestPids, serveTestImage, testAgent, TEST_IMAGE_ID, until, type TestAgent } from '../helpers/agent.js';
import { QmpClient } from '../../src/agent/hypervisor/qemu/qmp.js';
import { QemuDriver } from '../../src/agent/hypervisor/qemu/driver.js';
import { cgroupRoot } from '../../src/agent/hypervisor/qemu/process.js';
import pino from 'pino';
import type { ComputeService } from '../../src/compute/service.js';
import type { InstanceRecord } from '../../src/compute/store.js';

let tc: TestCloud;
let agent: TestAgent;
let svc: ComputeService;
let keyDir: string;
let id: string;

const dirOf = (i: string) => join(tc.dataDir, 'agent', 'instances', i);
const consoleText = (i: string) => { try { return readFileSync(join(dirOf(i), 'console.log'), 'utf8'); } catch { return ''; } };
const consoleSize = (i: string) => Buffer.byteLength(consoleText(i));
const consoleSince = (i: string, off: number) => Buffer.from(consoleText(i)).subarray(off).toString();
const waitConsole = (i: string, re: RegExp, from = 0, ms = 180_000) => until(`console ${re}`, () => re.exec(consoleSince(i, from)), ms);

async function qmpStatus(i: string): Promise<string> {
  return until('QMP query-status', async () => {
    const c = await QmpClient.connect(join(dirOf(i), 'qmp.sock'), 3000);
    try { return (await c.execute<{ status: string }>('query-status')).status; } finally { c.close(); }
  }, 30_000);
}

/** Waits until the agent has applied the latest desired state and reports `power`. */
function settled(i: string, power: string, ms = 180_000): Promise<InstanceRecord> {
  return svc.waitFor(i, (r) => !!r && r.observedGeneration >= r.generation && !r.task && !r.busy && r.powerState === power, ms)
    .then((r) => r!);
}

function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
}

before(async () => {
  tc = await startTestCloud();
  svc = tc.cloud.compute.service;
  serveTestImage(tc);
  agent = testAgent(tc);
  await agent.start();
  keyDir = mkdtempSync(join(tmpdir(), 'stratus-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', join(keyDir, 'id')]);
});

after(async () => {
  await agent?.cleanup();
  await tc?.stop();
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

test('the agent registers its host with real facts', async () => {
  const h = await svc.getHost(agent.host);
  assert.ok(h, 'host registered');
  assert.equal(h.up, true);
  assert.equal(h.hypervisorType, 'QEMU');
  assert.ok(['KVM', 'TCG'].includes(h.accelerator));
  assert.equal(h.vcpus, cpus().length);
  assert.ok(h.memoryMb > 100 && h.diskGb > 0);
  assert.match(agent.log(), /accelerator chosen/);
});

test('boots the test image with a config drive; the console shows the key fingerprint', async () => {
  const pub = readFileSync(join(keyDir, 'id.pub'), 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-lf', join(keyDir, 'id.pub')], { encoding: 'utf8' }).split(' ')[1]!;
  assert.match(fingerprint, /^SHA256:/);
  const rec = await svc.createInstance({
    projectId: 'p1', name: 'Life Cycle', imageId: TEST_IMAGE_ID, vcpus: 1, ramMb: 256, diskGb: 1,
    host: agent.host, keys: [{ name: 'mykey', publicKey: pub }], userData: '#!/bin/sh\necho user-data-ran\n',
  });
  id = rec.id;
  const running = await settled(id, 'running');
  assert.ok(running.pid);
  const m = await waitConsole(id, /STRATUS-GUEST: key (\S+) (SHA256:\S+)/);
  assert.equal(m[2], fingerprint);
  await waitConsole(id, /STRATUS-GUEST: hostname life-cycle/);
  await waitConsole(id, /STRATUS-GUEST: ready/);
  // An operator finds the guest with ps: its UUID and name are on the command line; no NIC.
  const argv = cmdline(running.pid!);
  assert.equal(argv[argv.indexOf('-uuid') + 1], id);
  assert.ok(argv.includes(`guest=instance-${id},debug-threads=on`));
  assert.equal(argv[argv.indexOf('-nic') + 1], 'none');
  const cg = readFileSync(`/proc/${running.pid}/cgroup`, 'utf8');
  if (existsSync('/sys/fs/cgroup/unified/stratus.slice') || existsSync('/sys/fs/cgroup/stratus.slice')) {
    assert.match(cg, new RegExp(`stratus.slice/(host-[^/]+\\.slice/)?instance-${id}.scope`));
  }
  assert.equal(await qmpStatus(id), 'running');
});

test('console output and VNC address come from the host through the agent', async () => {
  const tail = await svc.consoleOutput(id, { offset: -4096 });
  assert.match(tail.text, /STRATUS-GUEST: ready/);
  assert.equal(tail.next, tail.size);
  const head = await svc.consoleOutput(id, { offset: 0, maxBytes: 100 });
  assert.equal(head.next, 100);
  assert.equal(head.text, consoleText(id).slice(0, 100));
  const vnc = await svc.vncAddress(id);
  assert.ok(vnc && 'unixSocket' in vnc && existsSync(vnc.unixSocket), JSON.stringify(vnc));
  await assert.rejects(svc.consoleOutput('00000000-0000-0000-0000-000000000000'), /could not be found/);
});

test('driver: a data disk hot-plugs into the running guest and unplugs cleanly', async () => {
  const drv = new QemuDriver({ instancesDir: join(tc.dataDir, 'agent', 'instances'), accel: 'TCG', log: pino({ level: 'silent' }), cgroups: false });
  const vol = join(keyDir, 'vol.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', vol, '64M']);
  const volumeId = 'c0ffee00-1111-4222-8333-444455556666';
  const blockDevices = async () => until('QMP query-block', async () => {
    const c = await QmpClient.connect(join(dirOf(id), 'qmp.sock'), 3000);
    try { return (await c.execute<{ device: string; qdev: string }[]>('query-block')).map((b) => b.qdev); } finally { c.close(); }
  }, 30_000);
  const off = consoleSize(id);
  await drv.attachDisk(id, { id: volumeId, path: vol, format: 'qcow2' });
  assert.ok((await blockDevices()).some((q) => q.includes('disk-c0ffee00')), 'QEMU has the disk');
  assert.equal(JSON.parse(readFileSync(join(dirOf(id), 'spec.json'), 'utf8')).disks[0].id, volumeId, 'kept for later boots');
  await drv.attachDisk(id, { id: volumeId, path: vol, format: 'qcow2' }); // idempotent
  await new Promise((r) => setTimeout(r, 2000)); // the guest binds the new PCI device
  await drv.detachDisk(id, volumeId); // waits until the guest has released it (ACPI eject)
  assert.ok(!(await blockDevices()).some((q) => q.includes('disk-c0ffee00')), 'unplugged');
  assert.equal(JSON.parse(readFileSync(join(dirOf(id), 'spec.json'), 'utf8')).disks.length, 0);
  assert.doesNotMatch(consoleSince(id, off), /STRATUS-GUEST: (init|shutdown)/);
});

test('pause and unpause', async () => {
  const pid = (await svc.getInstance(id))!.pid;
  await svc.pause(id);
  await settled(id, 'paused');
  assert.equal(await qmpStatus(id), 'paused');
  await svc.unpause(id);
  const r = await settled(id, 'running');
  assert.equal(await qmpStatus(id), 'running');
  assert.equal(r.pid, pid, 'same process');
});

test('suspend saves the guest to disk and resume restores it without a reboot', async () => {
  const before = (await svc.getInstance(id))!;
  await svc.suspend(id);
  const s = await settled(id, 'suspended');
  assert.equal(s.pid, null);
  assert.deepEqual(guestPids(tc.dataDir), [], 'no QEMU while suspended');
  assert.ok(existsSync(join(dirOf(id), 'memory.state')), 'state saved to disk');
  const off = consoleSize(id);
  await svc.resume(id);
  const r = await settled(id, 'running');
  assert.notEqual(r.pid, before.pid);
  assert.equal(await qmpStatus(id), 'running');
  assert.ok(!existsSync(join(dirOf(id), 'memory.state')));
  await new Promise((res) => setTimeout(res, 1500));
  assert.doesNotMatch(consoleSince(id, off), /STRATUS-GUEST: init/, 'resumed, not rebooted');
});

test('snapshot copies the root disk to a flat qcow2 while the guest keeps running', async () => {
  const { task } = await svc.snapshot(id, { name: 'snap-one' });
  const r = await svc.waitFor(id, (i) => !!i && !i.task && i.lastTaskResult?.taskId === task.id, 120_000);
  const res = r!.lastTaskResult as { ok: boolean; result: { path: string; sha256: string; virtualSizeBytes: number } };
  assert.equal(res.ok, true, JSON.stringify(res));
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', res.result.path], { encoding: 'utf8' }));
  assert.equal(info.format, 'qcow2');
  assert.equal(info['backing-filename'], undefined, 'flattened: no backing file');
  assert.equal(info['virtual-size'], 1024 ** 3);
  const sha = execFileSync('sha256sum', [res.result.path], { encoding: 'utf8' }).split(' ')[0];
  assert.equal(sha, res.result.sha256);
  execFileSync('qemu-img', ['check', '-q', res.result.path]); // throws on a damaged image
  // It holds the guest's bytes, not an empty disk: as large as the used part of the base image at least.
  assert.ok(info['actual-size'] > 8 * 1024 * 1024, `snapshot has data (${info['actual-size']} bytes)`);
  assert.equal(await qmpStatus(id), 'running');
});

test('soft reboot goes through ACPI shutdown; hard reboot does not', async () => {
  const pid0 = (await svc.getInstance(id))!.pid;
  let off = consoleSize(id);
  await svc.reboot(id, 'soft');
  const r1 = await settled(id, 'running');
  assert.notEqual(r1.pid, pid0);
  const soft = await waitConsole(id, /STRATUS-GUEST: shutdown[\s\S]*STRATUS-GUEST: init[\s\S]*STRATUS-GUEST: ready/, off);
  assert.ok(soft);
  off = consoleSize(id);
  await svc.reboot(id, 'hard');
  const r2 = await settled(id, 'running');
  assert.notEqual(r2.pid, r1.pid);
  await waitConsole(id, /STRATUS-GUEST: init/, off);
  assert.doesNotMatch(consoleSince(id, off), /STRATUS-GUEST: shutdown/);
  await waitConsole(id, /STRATUS-GUEST: ready/, off);
});

test('power off is clean, resize applies to the stopped guest, power on boots it again', async () => {
  const pid = (await svc.getInstance(id))!.pid!;
  const off = consoleSize(id);
  await svc.stop(id);
  const s = await settled(id, 'shutdown');
  assert.equal(s.desiredPower, 'shutoff');
  assert.match(consoleSince(id, off), /STRATUS-GUEST: shutdown/, 'the guest saw the power button');
  assert.ok(!existsSync(`/proc/${pid}`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(id));
  assert.ok(existsSync(join(dirOf(id), 'disk.qcow2')), 'disk kept');
  assert.ok(!existsSync(join(dirOf(id), 'qmp.sock')), 'no stale socket');

  await assert.rejects(svc.pause(id), /Cannot 'pause'/);
  await svc.resize(id, { vcpus: 2, ramMb: 384, diskGb: 2 });
  await settled(id, 'shutdown');
  const spec = JSON.parse(readFileSync(join(dirOf(id), 'spec.json'), 'utf8'));
  assert.equal(spec.vcpus, 2);
  assert.equal(spec.ramMb, 384);

  const off2 = consoleSize(id);
  await svc.start(id);
  const r = await settled(id, 'running');
  const argv = cmdline(r.pid!);
  assert.equal(argv[argv.indexOf('-smp') + 1], '2');
  assert.equal(argv[argv.indexOf('-m') + 1], '384');
  await waitConsole(id, /STRATUS-GUEST: init/, off2);
  const disk = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', join(dirOf(id), 'disk.qcow2')], { encoding: 'utf8' }));
  assert.equal(disk['virtual-size'], 2 * 1024 ** 3);
});

test('delete leaves no process, file, socket or cgroup behind', async () => {
  const pid = (await svc.getInstance(id))!.pid!;
  await svc.deleteInstance(id);
  await svc.waitFor(id, (i) => i === undefined, 60_000);
  assert.ok(!existsSync(`/proc/${pid}`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(id), 'QEMU gone');
  assert.ok(!existsSync(dirOf(id)), 'instance directory gone');
  assert.ok(!existsSync(join(tc.dataDir, 'agent', 'state', `${id}.json`)), 'agent record gone');
  for (const root of ['/sys/fs/cgroup/unified/stratus.slice', '/sys/fs/cgroup/stratus.slice', cgroupRoot(agent.host) ?? '/nonexistent']) {
    assert.ok(!existsSync(join(root, `instance-${id}.scope`)), 'cgroup gone');
  }
  const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  assert.ok(!ps.includes(id), 'no process mentions the instance');
  assert.deepEqual(readdirSync(join(tc.dataDir, 'agent', 'instances')), []);
});
