// bench/image: upload and download throughput of a 1 GiB image through the image API, against a
// plain streamed file copy of the same data (read → write → fsync) in the same run.
// Rounds interleave the three paths so that a busy disk slows them alike; medians are printed.
//   node dist/bench/image.js [--size-mib N] [--rounds N] [--database URL]
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/log.js';
import { startCloud } from '../src/server.js';

const { values } = parseArgs({ options: { 'size-mib': { type: 'string' }, rounds: { type: 'string' }, database: { type: 'string' } } });
const MiB = 1024 * 1024;
const size = Number(values['size-mib'] ?? 1024) * MiB;
const rounds = Number(values.rounds ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r');
  await fh.sync();
  await fh.close();
}

function curl(args: string[], token: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--fail-with-body', '-H', `X-Auth-Token: ${token}`, ...args], { maxBuffer: 1024 * 1024 },
      (err, _out, stderr) => (err ? reject(new Error(`curl ${args[0]}: ${stderr || err.message}`)) : resolve()));
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t) / 1e9, value };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-image-'));
  const cloud = await startCloud(loadConfig(join(dir, 'data'), {
    listenHost: '127.0.0.1', listenPort: 0, startAgent: false, databaseUrl: values.database,
  }), { log: createLogger('warn'), skipClientConfig: true });
  try {
    // The source: `size` bytes on disk, written once (a random MiB repeated; data is opaque to all paths).
    const src = join(dir, 'source.raw');
    const chunk = randomBytes(MiB);
    const w = createWriteStream(src);
    for (let left = size; left > 0; left -= MiB) if (!w.write(chunk)) await new Promise<void>((r) => w.once('drain', () => r()));
    await new Promise<void>((r) => w.end(() => r()));
    await fsync(src);

    const auth = await fetch(`${cloud.url}/identity/v3/auth/tokens`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ auth: {
        identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: cloud.credentials!.adminPassword } } },
        scope: { project: { name: 'admin', domain: { id: 'default' } } },
      } }),
    });
    const token = auth.headers.get('x-subject-token')!;
    const times = { copy: [] as number[], upload: [] as number[], download: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      const copy = await timed(async () => {
        const dst = join(dir, 'copy.raw');
        await pipeline(createReadStream(src, { highWaterMark: MiB }), createWriteStream(dst, { highWaterMark: MiB }));
        await fsync(dst);
        rmSync(dst);
      });
      const created = await (await fetch(`${cloud.url}/image/v2/images`, {
        method: 'POST', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: `bench-${round}`, disk_format: 'raw', container_format: 'bare' }),
      })).json() as { id: string };
      const url = new URL(`${cloud.url}/image/v2/images/${created.id}/file`);

      // The client is curl in its own process, as a real client would be (the cloud runs in this one).
      const upload = await timed(() => curl(['-T', src, '-H', 'Content-Type: application/octet-stream', url.href], token));
      const download = await timed(async () => {
        const dst = join(dir, 'download.raw');
        await curl(['-o', dst, url.href], token);
        await fsync(dst);
        rmSync(dst);
      });
      times.copy.push(copy.seconds);
      times.upload.push(upload.seconds);
      times.download.push(download.seconds);
      await fetch(`${cloud.url}/image/v2/images/${created.id}`, { method: 'DELETE', headers: { 'X-Auth-Token': token } });
    }
    const copySeconds = median(times.copy);
    const rate = (s: number) => size / MiB / s;
    const row = (name: string, s: number) =>
      `${name.padEnd(40)} ${s.toFixed(2).padStart(7)} s ${rate(s).toFixed(0).padStart(6)} MiB/s   ${(rate(s) / rate(copySeconds)).toFixed(2)}× copy`;
    console.log(`image bench: ${size / MiB} MiB, median of ${rounds} rounds, ${cloud.db.engine}, ${new Date().toISOString()}, `
      + `${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(row('plain copy (read, write, fsync)', copySeconds));
    console.log(row('upload (curl -T: md5+sha512, fsync)', median(times.upload)));
    console.log(row('download (curl -o, then fsync)', median(times.download)));
    console.log(`ratios: upload/copy ${(copySeconds / median(times.upload)).toFixed(2)}, download/copy ${(copySeconds / median(times.download)).toFixed(2)}`);
  } finally {
    await cloud.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
