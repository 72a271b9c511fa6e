// The test guest image under plain QEMU (TCG), no agent: config drive, metadata service
// (OpenStack and EC2 paths), console markers, SSH login, ACPI power-off.
// Networking: QEMU user-mode networking with restrict=on only (the guest reaches nothing
// but what hostfwd/guestfwd name: SSH on 127.0.0.1 and a busybox httpd run by QEMU).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  GUEST_LOGIN_USER, guestImage, parseGuestMarkers, sshFingerprint, type GuestMarkers,
} from '../../src/agent/guest-image/markers.js';

const tmp = mkdtempSync(join(tmpdir(), 'stratus-guest-'));
const qemus: ChildProcess[] = [];
let image = '';
let pubKey = '';
let keyFingerprint = '';

before(() => {
  const b = spawnSync('bash', ['scripts/build-guest-image.sh'], { encoding: 'utf8' });
  assert.equal(b.status, 0, `build-guest-image.sh failed: ${b.stderr}`);
  image = guestImage().path;
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test@stratus', '-f', join(tmp, 'id')]);
  pubKey = readFileSync(join(tmp, 'id.pub'), 'utf8').trim();
  // "256 SHA256:... comment (ED25519)"
  keyFingerprint = execFileSync('ssh-keygen', ['-lf', join(tmp, 'id.pub')], { encoding: 'utf8' }).split(' ')[1]!;
});

after(async () => {
  for (const q of qemus) {
    if (q.exitCode === null && q.signalCode === null) {
      const gone = new Promise((r) => q.once('exit', r));
      q.kill('SIGKILL');
      await gone;
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Guest {
  proc: ChildProcess;
  console: string;
  qmp: string;
  startedAt: number;
  /** ms from QEMU start to the first marker and to "ssh ready" */
  timing: { init?: number; ssh?: number };
  waitFor(pred: (m: GuestMarkers) => boolean, what: string, timeoutMs?: number): Promise<GuestMarkers>;
}

function boot(name: string, extra: string[]): Guest {
  const dir = join(tmp, name);
  mkdirSync(dir);
  const disk = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, disk]);
  const consolePath = join(dir, 'console.log');
  const qmp = join(dir, 'qmp.sock');
  writeFileSync(consolePath, '');
  const proc = spawn('qemu-system-x86_64', [
    '-accel', 'tcg', '-cpu', 'max', '-m', '256', '-display', 'none', '-nodefaults', '-no-reboot',
    '-name', `stratus-test-${name}`, '-serial', `file:${consolePath}`,
    '-qmp', `unix:${qmp},server=on,wait=off`,
    '-drive', `file=${disk},if=virtio`, ...extra,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  qemus.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr += d; });
  const g: Guest = {
    proc, console: consolePath, qmp, startedAt: Date.now(), timing: {},
    async waitFor(pred, what, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = readFileSync(consolePath, 'utf8');
        const m = parseGuestMarkers(text);
        if (m.init) g.timing.init ??= Date.now() - g.startedAt;
        if (m.sshReady) g.timing.ssh ??= Date.now() - g.startedAt;
        if (pred(m)) return m;
        if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
          throw new Error(`guest ${name}: no ${what} (qemu ${proc.exitCode ?? proc.signalCode ?? 'running'})\n` +
            `qemu stderr: ${stderr}\nconsole:\n${text.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  return g;
}

/** One QMP command on a fresh connection (greeting, qmp_capabilities, command). */
async function qmpCommand(sock: string, execute: string, args?: Record<string, unknown>): Promise<unknown> {
  const c = createConnection(sock);
  const lines = createInterface({ input: c })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value as string) as Record<string, unknown>;
  try {
    await next(); // greeting
    c.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
    await next();
    c.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}) }) + '\n');
    for (;;) {
      const msg = await next();
      if ('return' in msg) return msg.return;
      if ('error' in msg) throw new Error(`QMP ${execute}: ${JSON.stringify(msg.error)}`);
    }
  } finally {
    c.destroy();
  }
}

function ssh(port: number, user: string, command: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ssh', [
    '-i', join(tmp, 'id'), '-p', String(port), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20',
    '-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${join(tmp, `known_hosts_${port}`)}`,
    '-o', 'LogLevel=ERROR', `${user}@127.0.0.1`, command,
  ], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
}

test('marker parser and fingerprints agree with ssh-keygen', () => {
  assert.equal(sshFingerprint(pubKey), keyFingerprint);
  const m = parseGuestMarkers([
    'SeaBIOS noise', 'STRATUS-GUEST: init', 'STRATUS-GUEST: net eth0 ip=10.0.0.5/24 mac=fa:16:3e:00:00:01',
    'STRATUS-GUEST: net eth1 ip=none mac=fa:16:3e:00:00:02', 'STRATUS-GUEST: metadata source=ec2',
    'STRATUS-GUEST: hostname vm-1', `STRATUS-GUEST: key stratus ${keyFingerprint}`,
    'STRATUS-GUEST: userdata rc=7', 'login: STRATUS-GUEST: shutdown',
  ].join('\r\n'));
  assert.deepEqual(m.nets, [
    { ifname: 'eth0', ip: '10.0.0.5/24', mac: 'fa:16:3e:00:00:01' },
    { ifname: 'eth1', ip: null, mac: 'fa:16:3e:00:00:02' },
  ]);
  assert.equal(m.metadataSource, 'ec2');
  assert.equal(m.hostname, 'vm-1');
  assert.deepEqual(m.keys, [{ user: 'stratus', fingerprint: keyFingerprint }]);
  assert.equal(m.userdataRc, 7);
  assert.equal(m.ready, false);
  assert.equal(m.shutdown, true);
});

test('guest shell helpers (run by busybox on the host): JSON flattening, fingerprints, hostnames', () => {
  const keys: string[] = [];
  for (const type of ['rsa', 'ecdsa']) {
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', join(tmp, `h-${type}`)]);
    keys.push(readFileSync(join(tmp, `h-${type}.pub`), 'utf8').trim());
  }
  const meta = {
    random_seed: 'a/b+c==', uuid: 'u-1', hostname: 'web-1.novalocal', name: 'say "hi"', launch_index: 0,
    meta: { nested: { list: [1, { x: null }] } }, devices: [], empty: '',
    public_keys: { a: keys[0] + '\n', b: keys[1] },
  };
  const file = join(tmp, 'meta.json');
  // Pretty-printed over lines, with a \u escape as some encoders write them.
  writeFileSync(file, JSON.stringify(meta, null, 1).replace('"web-1.', '"web\\u002d1.'));
  const script = `. ${join(process.cwd(), 'src/agent/guest-image/lib.sh')}
    json_flatten "$1" >"$1.flat"; cat "$1.flat"; echo ---
    awk -F '\t' '$1 ~ /^public_keys\./ { print $2 }' "$1.flat" | while read -r k; do key_fingerprint "$k"; done
    sanitize_hostname "$(json_get "$1.flat" hostname)"; sanitize_hostname 'My Server_1!'`;
  const out = execFileSync('busybox', ['sh', '-c', script, 'sh', file], { encoding: 'utf8' });
  const [flat, rest] = out.split('---\n') as [string, string];
  const rows = Object.fromEntries(flat.trim().split('\n').map((l) => l.split('\t') as [string, string]));
  assert.equal(rows['random_seed'], 'a/b+c==');
  assert.equal(rows['hostname'], 'web-1.novalocal');
  assert.equal(rows['name'], 'say "hi"');
  assert.equal(rows['meta.nested.list.1.x'], 'null');
  assert.equal(rows['empty'], '');
  assert.equal(rows['public_keys.a'], keys[0], 'the trailing newline of a Nova key is dropped');
  const fps = keys.map((k) => execFileSync('ssh-keygen', ['-lf', '-'], { input: k, encoding: 'utf8' }).split(' ')[1]);
  assert.deepEqual(rest.trim().split('\n'), [...fps, 'web-1', 'My-Server-1']);
});

test('boots from a config drive: key, hostname, user data, SSH login, NIC hot-plug, ACPI power-off', async (t) => {
  const cd = join(tmp, 'config-drive');
  writeTree(cd, {
    'openstack/latest/meta_data.json': JSON.stringify({
      uuid: '6f1e3c1a-0b7e-4c53-9a43-2f7d3c1f0a01', name: 'guest one', hostname: 'guest-one.novalocal',
      public_keys: { mykey: pubKey + '\n' }, keys: [{ name: 'mykey', type: 'ssh', data: pubKey + '\n' }],
    }),
    'openstack/latest/user_data': '#!/bin/sh\necho "user data ran as $(id -un)" > /home/stratus/ud.txt\necho done\n',
  });
  const iso = join(tmp, 'config-drive.iso');
  execFileSync('genisoimage', ['-quiet', '-o', iso, '-V', 'config-2', '-r', '-J', cd]);
  const port = await freePort();
  const g = boot('configdrive', [
    '-drive', `file=${iso},media=cdrom,if=ide,readonly=on`,
    '-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:22`,
    '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:01',
  ]);
  const m = await g.waitFor((x) => x.ready, 'ready marker');
  t.diagnostic(`TCG boot: first marker at ${g.timing.init} ms, ssh ready at ${g.timing.ssh} ms after QEMU start`);

  assert.equal(m.lines[0], 'init', 'the first marker is init');
  assert.equal(m.lines.at(-1), 'ready', 'the last marker is ready');
  assert.deepEqual(m.nets, [{ ifname: 'eth0', ip: '10.0.2.15/24', mac: '52:54:00:aa:bb:01' }]);
  assert.equal(m.metadataSource, 'config-drive');
  assert.equal(m.hostname, 'guest-one');
  assert.deepEqual(m.keys.filter((k) => k.user === GUEST_LOGIN_USER), [{ user: GUEST_LOGIN_USER, fingerprint: keyFingerprint }]);
  assert.deepEqual(m.keys.filter((k) => k.user === 'root'), [{ user: 'root', fingerprint: keyFingerprint }]);
  assert.equal(m.userdataRc, 0);
  assert.ok(m.sshReady);

  const r = ssh(port, GUEST_LOGIN_USER, 'id -un; hostname; cat ud.txt; ping -c1 -W5 127.0.0.1 >/dev/null && echo ping ok');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['stratus', 'guest-one', 'user data ran as root', 'ping ok']);
  // The host key we accepted is the one the console announced.
  const known = execFileSync('ssh-keygen', ['-lf', join(tmp, `known_hosts_${port}`)], { encoding: 'utf8' });
  const hostKeyFp = known.trim().split(/\s+/)[1];
  assert.ok(m.hostKeys.some((k) => k.fingerprint === hostKeyFp), `${hostKeyFp} not among ${JSON.stringify(m.hostKeys)}`);
  // No password login over SSH, even for the user that has a console password.
  const pw = spawnSync('ssh', ['-p', String(port), '-o', 'BatchMode=yes', '-o', 'PubkeyAuthentication=no',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
    `${GUEST_LOGIN_USER}@127.0.0.1`, 'true'], { encoding: 'utf8', timeout: 30_000 });
  assert.notEqual(pw.status, 0);

  // A NIC plugged in later (interface attach) gets DHCP and its marker.
  await qmpCommand(g.qmp, 'netdev_add', { type: 'user', id: 'n1', restrict: true });
  await qmpCommand(g.qmp, 'device_add', { driver: 'virtio-net-pci', netdev: 'n1', id: 'nic1', mac: '52:54:00:aa:bb:02' });
  const hot = await g.waitFor((x) => x.nets.length === 2, 'marker of the hot-plugged NIC', 60_000);
  assert.deepEqual(hot.nets[1], { ifname: 'eth1', ip: '10.0.2.15/24', mac: '52:54:00:aa:bb:02' });

  // ACPI power button (what the agent's soft power-off does): a clean, quick shutdown.
  const exited = new Promise((r) => g.proc.once('exit', r));
  const t0 = Date.now();
  await qmpCommand(g.qmp, 'system_powerdown');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error('no power-off within 60 s')), 60_000); })])
    .finally(() => clearTimeout(timer));
  t.diagnostic(`ACPI power-off took ${Date.now() - t0} ms`);
  const final = parseGuestMarkers(readFileSync(g.console, 'utf8'));
  assert.ok(final.shutdown, 'the shutdown marker is printed');
  assert.equal(new Set(final.lines).size, final.lines.length, `a marker printed twice: ${final.lines.join(' | ')}`);
});

test('reads the OpenStack metadata service, and the EC2 paths when only those answer', async () => {
  // User-mode networking on 169.254.0.0/16, so the guest reaches 169.254.169.254 on-link;
  // guestfwd hands each connection to a busybox httpd (inetd mode) serving a directory.
  const guestWith = (name: string, files: Record<string, string>) => {
    const dir = join(tmp, `${name}-md`);
    writeTree(dir, files);
    return boot(name, [
      '-netdev', 'user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,' +
        `guestfwd=tcp:169.254.169.254:80-cmd:busybox httpd -i -h ${dir}`,
      '-device', 'virtio-net-pci,netdev=n0',
    ]);
  };
  const os = guestWith('openstack', {
    'openstack/latest/meta_data.json': JSON.stringify({
      uuid: '6f1e3c1a-0b7e-4c53-9a43-2f7d3c1f0a02', name: 'md-guest', hostname: 'md-guest',
      public_keys: { k: pubKey },
    }),
    'openstack/latest/user_data': '#!/bin/sh\nexit 3\n',
  });
  const ec2 = guestWith('ec2', {
    'latest/meta-data/instance-id': 'i-0000abcd',
    'latest/meta-data/hostname': 'ec2-guest.example.org',
    // busybox httpd serves a directory URL from its index.html: "0=name" lines.
    'latest/meta-data/public-keys/index.html': '0=k\n',
    'latest/meta-data/public-keys/0/openssh-key': pubKey + '\n',
    'latest/user-data': 'not a script: ignored\n',
  });
  const [a, b] = await Promise.all([os.waitFor((x) => x.ready, 'ready marker'), ec2.waitFor((x) => x.ready, 'ready marker')]);

  assert.equal(a.metadataSource, 'metadata-service');
  assert.equal(a.hostname, 'md-guest');
  assert.equal(a.nets[0]?.ip, '169.254.0.15/16');
  assert.ok(a.keys.some((k) => k.user === GUEST_LOGIN_USER && k.fingerprint === keyFingerprint));
  assert.equal(a.userdataRc, 3);

  assert.equal(b.metadataSource, 'ec2');
  assert.equal(b.hostname, 'ec2-guest');
  assert.ok(b.keys.some((k) => k.user === GUEST_LOGIN_USER && k.fingerprint === keyFingerprint));
  assert.equal(b.userdataRc, undefined, 'user data that is not a script does not run');
});
