// The metadata proxy: runs inside a router (or DHCP) namespace, started by the data plane with
// `ip netns exec NS node metadata-proxy.js CONFIG`. Listens on 169.254.169.254:80 and forwards
// each request over a unix socket (which never leaves the host) with the signed requester
// headers of metadata-contract.ts. Config (JSON): { listen, port, socketPath, secret,
// routerId | networkId }.
import { createServer, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { H_FORWARDED_FOR, signRequester } from './metadata-contract.js';

interface ProxyConfig {
  listen: string;
  port: number;
  socketPath: string;
  secret: string;
  routerId?: string;
  networkId?: string;
}

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8')) as ProxyConfig;

const server = createServer((req, res) => {
  const ip = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    // A guest must not be able to claim to be someone else.
    if (v === undefined || k.startsWith('x-stratus-') || k === H_FORWARDED_FOR || k === 'forwarded') continue;
    headers[k] = v;
  }
  Object.assign(headers, signRequester({ ip, routerId: cfg.routerId, networkId: cfg.networkId }, cfg.secret));
  const up = request({ socketPath: cfg.socketPath, method: req.method, path: req.url, headers, timeout: 30_000 }, (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    ur.pipe(res);
  });
  up.on('timeout', () => up.destroy(new Error('timeout')));
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('metadata service unavailable\n');
  });
  req.pipe(up);
});
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;
server.listen(cfg.port, cfg.listen);
process.on('SIGTERM', () => process.exit(0));
