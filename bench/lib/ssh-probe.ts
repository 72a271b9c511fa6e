// The readiness check of the SSH benches, run inside a namespace (`ip netns exec NS node
// ssh-probe.js HOST [PORT] [TIMEOUT_S]`): connects over and over until the server sends its SSH
// banner ("SSH-2.0-..."), then prints `READY <epoch ms> <banner>` and exits 0 (1 on timeout).
// Started before the guest, so its own start-up is not counted.
import { connect } from 'node:net';

const [host, port = '22', timeoutS = '600'] = process.argv.slice(2);
if (!host) { console.error('usage: ssh-probe HOST [PORT] [TIMEOUT_S]'); process.exit(2); }
const deadline = Date.now() + Number(timeoutS) * 1000;

function attempt(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(port) });
    let buf = '';
    const done = (v: string | undefined) => { s.destroy(); clearTimeout(t); resolve(v); };
    // A guest that accepted but says nothing yet: try again rather than wait forever.
    const t = setTimeout(() => done(undefined), 3000);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const line = /^(SSH-[^\r\n]*)\r?\n/m.exec(buf);
      if (line) done(line[1]);
    });
    s.on('error', () => done(undefined));
    s.on('close', () => done(undefined));
  });
}

// A SYN sent before the guest (or its ARP entry) exists is lost and TCP retries it only after 1 s,
// then 3 s: overlapping attempts, a new one every 100 ms, keep the resolution at ~0.1 s.
console.log('PROBING');
let inFlight = 0;
setInterval(() => {
  if (Date.now() > deadline) { console.error(`no SSH banner from ${host}:${port}`); process.exit(1); }
  if (inFlight >= 40) return;
  inFlight++;
  void attempt().then((banner) => {
    inFlight--;
    if (banner) { console.log(`READY ${Date.now()} ${banner}`); process.exit(0); }
  });
}, 100);
