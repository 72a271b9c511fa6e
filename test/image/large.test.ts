// A 2 GiB image goes up and comes back down with flat memory: the data is generated on the fly,
// streamed over HTTP, and the process's RSS (server and client: the cloud runs in-process) is
// sampled throughout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';

const SIZE = 2 * 1024 ** 3;
const CHUNK = randomBytes(1024 * 1024);
let tc: TestCloud;
let token: string;

before(async () => {
  tc = await startTestCloud();
  const r = await fetch(`${tc.url}/identity/v3/auth/tokens`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ auth: {
      identity: { methods: ['password'], password: { user: { name: 'demo', domain: { id: 'default' }, password: tc.demoPassword } } },
      scope: { project: { name: 'demo', domain: { id: 'default' } } },
    } }),
  });
  token = r.headers.get('x-subject-token')!;
});
after(async () => { await tc?.stop(); });

/** `size` bytes of CHUNK repeated (the last chunk cut). */
function generated(size: number): Readable {
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const c = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= c.length;
      this.push(c);
    },
  });
}

/** Checks streamed bytes against the generated pattern without hashing 2 GiB again (memcmp). */
function patternChecker() {
  let offset = 0;
  let ok = true;
  return {
    update(c: Buffer) {
      let i = 0;
      while (i < c.length) {
        const at = offset % CHUNK.length;
        const n = Math.min(c.length - i, CHUNK.length - at);
        if (ok && c.compare(CHUNK, at, at + n, i, i + n) !== 0) ok = false;
        i += n;
        offset += n;
      }
    },
    get ok() { return ok; },
    get bytes() { return offset; },
  };
}

function sampler() {
  const base = process.memoryUsage.rss();
  let peak = base;
  const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 20);
  return { stop: () => { clearInterval(t); return { base, growth: Math.max(0, peak - base) }; } };
}

test('2 GiB upload and download keep memory flat', { timeout: 600_000 }, async () => {
  const created = await api(tc.url, 'POST', '/image/v2/images', {
    token, body: { name: 'big', disk_format: 'raw', container_format: 'bare' },
  });
  assert.equal(created.status, 201);
  const id = created.body.id as string;
  const url = new URL(`${tc.url}/image/v2/images/${id}/file`);

  const up = sampler();
  const upStatus = await new Promise<number>((resolve, reject) => {
    const req = http.request(url, {
      method: 'PUT',
      headers: { 'X-Auth-Token': token, 'Content-Type': 'application/octet-stream', 'Content-Length': String(SIZE) },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); });
    req.on('error', reject);
    generated(SIZE).pipe(req);
  });
  const upMem = up.stop();
  assert.equal(upStatus, 204);
  const img = (await api(tc.url, 'GET', `/image/v2/images/${id}`, { token })).body;
  assert.equal(img.status, 'active');
  assert.equal(img.size, SIZE);
  assert.match(img.checksum, /^[0-9a-f]{32}$/);
  assert.equal(img.os_hash_algo, 'sha512');

  const down = sampler();
  const got = patternChecker();
  const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
    http.get(url, { headers: { 'X-Auth-Token': token } }, (res) => {
      res.on('data', (c: Buffer) => got.update(c));
      res.on('end', () => resolve(res.headers));
      res.on('error', reject);
    }).on('error', reject);
  });
  const downMem = down.stop();
  assert.equal(got.bytes, SIZE);
  assert.ok(got.ok, 'downloaded bytes are the uploaded ones');
  assert.equal(headers['content-md5'], img.checksum);

  const MiB = 1024 * 1024;
  console.log(`RSS growth: upload ${(upMem.growth / MiB).toFixed(0)} MiB, download ${(downMem.growth / MiB).toFixed(0)} MiB (base ${(upMem.base / MiB).toFixed(0)} MiB)`);
  assert.ok(upMem.growth < 200 * MiB, `upload grew RSS by ${upMem.growth / MiB} MiB`);
  assert.ok(downMem.growth < 200 * MiB, `download grew RSS by ${downMem.growth / MiB} MiB`);
  assert.equal((await api(tc.url, 'DELETE', `/image/v2/images/${id}`, { token })).status, 204);
});
