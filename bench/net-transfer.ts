// bench/network's measuring tools: one TCP transfer with busybox `nc` fed by `dd if=/dev/zero`,
// run the same way (same busybox binary, same script) between two plain namespaces on the host
// and between two guests of the test image (over SSH); and iperf3 between namespaces.
import { execFile, spawn } from 'node:child_process';

export function sh(cmd: string, a: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, a, { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, out, errOut) =>
    err ? reject(new Error(`${cmd} ${a.join(' ')}: ${errOut || err.message}`)) : resolve(String(out))));
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a busybox shell script somewhere: the command line that does it. */
export type Place = (script: string) => string[];
/** A plain namespace of the host (the host's busybox, which is also the guest image's). */
export const inNamespace = (ns: string): Place => (script) => ['ip', 'netns', 'exec', ns, 'busybox', 'sh', '-c', script];
/** A test guest, as root over SSH from `fromNs` (its login shell is busybox sh). */
export const inGuest = (fromNs: string, key: string, ip: string): Place => (script) => ['ip', 'netns', 'exec', fromNs, 'ssh', '-i', key,
  '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5',
  '-o', 'LogLevel=ERROR', `root@${ip}`, script];

export const run = (place: Place, script: string, timeoutMs = 120_000) => { const [c, ...a] = place(script); return sh(c!, a, timeoutMs); };

const PORT = 5001;
const BLOCK = 65536;
// The receiver's stdin is a FIFO opened read-write: it never reaches EOF, so nc does not
// half-close early; nc exits when the sender's side closes, and wc counts what arrived.
const receiver = `f=/tmp/stratus-bench-fifo; rm -f $f; mkfifo $f; nc -l -p ${PORT} <>$f | wc -c; rm -f $f`;
// The sender times from before dd to nc's exit, which follows the receiver's close: every byte
// was delivered. /proc/uptime has 10 ms resolution (busybox date has no %N).
const sender = (ip: string, blocks: number) =>
  `read s x </proc/uptime; dd if=/dev/zero bs=${BLOCK} count=${blocks} 2>/dev/null | nc ${ip} ${PORT} || exit 3; read e x </proc/uptime; echo "T $s $e"`;

/** One transfer of `bytes` (rounded to 64 KiB blocks) from `from` to `to` (listening on `ip`): bits per second and seconds. */
export async function ncTransfer(from: Place, to: Place, ip: string, bytes: number): Promise<{ bps: number; seconds: number }> {
  const blocks = Math.max(1, Math.round(bytes / BLOCK));
  const [c, ...a] = to(receiver);
  const recv = spawn(c!, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  let got = '';
  let recvErr = '';
  recv.stdout.on('data', (d) => { got += String(d); });
  recv.stderr.on('data', (d) => { recvErr += String(d); });
  const done = new Promise<number | null>((r) => recv.once('exit', (code) => r(code)));
  try {
    let timing: RegExpExecArray | null = null;
    let lastErr = '';
    // Until the receiver listens (an SSH session to a TCG guest takes a moment), nc is refused: retry.
    for (let i = 0; i < 60 && !timing; i++) {
      if (recv.exitCode !== null) throw new Error(`receiver exited (${recv.exitCode}): ${recvErr}`);
      try {
        timing = /^T ([\d.]+) ([\d.]+)$/m.exec(await run(from, sender(ip, blocks), 600_000));
      } catch (e) { lastErr = (e as Error).message; await sleep(500); }
    }
    if (!timing) throw new Error(`sender never got through: ${lastErr}`);
    const code = await Promise.race([done, sleep(30_000).then(() => 'timeout' as const)]);
    if (code !== 0) throw new Error(`receiver ended with ${code}: ${recvErr}`);
    const received = Number(got.trim());
    if (received !== blocks * BLOCK) throw new Error(`received ${received} bytes of ${blocks * BLOCK}`);
    const seconds = Number(timing[2]) - Number(timing[1]);
    return { bps: (received * 8) / Math.max(seconds, 0.01), seconds };
  } finally {
    if (recv.exitCode === null) recv.kill('SIGKILL');
  }
}

/** iperf3 from namespace `client` to `ip` (server in namespace `server`), in bits per second. */
export async function iperf(server: string, client: string, ip: string, seconds: number): Promise<number> {
  const srv = spawn('ip', ['netns', 'exec', server, 'iperf3', '-s', '-1', '-B', ip], { stdio: 'ignore' });
  try {
    let lastErr: unknown;
    for (let i = 0; i < 30; i++) {
      try {
        const out = await sh('ip', ['netns', 'exec', client, 'iperf3', '-c', ip, '-t', String(seconds), '-J', '-O', '1']);
        return JSON.parse(out).end.sum_received.bits_per_second as number;
      } catch (e) { lastErr = e; await sleep(200); }
    }
    throw lastErr;
  } finally { srv.kill(); }
}
