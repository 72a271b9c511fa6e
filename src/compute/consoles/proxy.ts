// The console proxy (Nova's novncproxy): a WebSocket endpoint on the controller's listener that
// checks the console token, connects to the guest's VNC server where its host agent says it is
// (a unix socket for an agent on this machine, host:port for one started with a console listen
// address), and pipes binary frames both ways. It also serves the noVNC web client.
import { createReadStream, statSync } from 'node:fs';
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { ApiError } from '../../core/errors.js';
import type { App } from '../../core/http.js';
import type { Logger } from '../../core/log.js';
import type { ConsoleService, ConsoleTarget, VncAddress } from './service.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.png': 'image/png', '.svg': 'image/svg+xml', '.ico': 'image/x-icon',
  '.ttf': 'font/ttf', '.woff': 'font/woff', '.mp3': 'audio/mpeg', '.oga': 'audio/ogg',
};
/** Guest → browser bytes buffered before the VNC socket is paused. */
const HIGH_WATER = 1024 * 1024;
/** A browser that answers no ping for this long is gone (half-open TCP): its console is closed. */
const PING_MS = 30_000;

export class ConsoleProxy {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  private readonly live = new Set<() => void>();
  private server: Server | undefined;

  /** `wsPath`: the WebSocket's path on this listener (the compute prefix + /console/websockify). */
  constructor(private readonly consoles: ConsoleService, private readonly log: Logger, private readonly wsPath = '/compute/console/websockify') {}

  /** Open proxied consoles (for tests and metrics). */
  get connections(): number { return this.live.size; }

  /** Takes WebSocket upgrades for the proxy's path on `server`; leaves every other upgrade alone. */
  attach(server: Server): void {
    this.server = server;
    server.on('upgrade', this.onUpgrade);
  }

  /** GET <prefix>/console/... serves the noVNC client (no token needed: the pages hold no secret). */
  routes(app: App, novncDir: string): void {
    const root = normalize(novncDir);
    app.get('/console/*', async (req, reply) => {
      const rel = (req.params as { '*': string })['*'] || 'vnc_lite.html';
      const file = normalize(join(root, rel));
      let st;
      try { st = file.startsWith(root + sep) ? statSync(file) : undefined; } catch { st = undefined; }
      if (!st?.isFile()) {
        reply.code(404).type('text/plain');
        return st === undefined && rel === 'vnc_lite.html' ? `noVNC is not installed in ${root} (Debian package novnc)\n` : 'Not found\n';
      }
      reply.type(TYPES[extname(file)] ?? 'application/octet-stream').header('Content-Length', st.size).header('Cache-Control', 'no-cache');
      return reply.send(createReadStream(file));
    });
  }

  /** Ends every open console and stops taking upgrades. */
  close(): void {
    this.server?.off('upgrade', this.onUpgrade);
    for (const end of [...this.live]) end();
    this.wss.close();
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://proxy.invalid');
    if (url.pathname !== this.wsPath) {
      // Node closes unclaimed upgrades only while nobody listens: with us alone, refuse them here.
      if (this.server?.listenerCount('upgrade') === 1) refuse(socket, 404, 'No WebSocket endpoint here.');
      return;
    }
    socket.on('error', () => socket.destroy());
    this.handle(req, socket, head, url).catch((e) => {
      this.log.error({ err: e }, 'console proxy failed');
      refuse(socket, 500, 'The console proxy failed.');
    });
  };

  private async handle(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
    if (!this.originAllowed(req)) return refuse(socket, 403, 'Origin not allowed for the console proxy.');
    const token = url.searchParams.get('token') ?? cookie(req, 'token') ?? '';
    const target = await this.consoles.validate(token);
    if (!target) return refuse(socket, 401, 'The console token is invalid or has expired.');
    const found = await this.consoles.vncAddress(target.instanceId).then((a) => ({ a }), (e: unknown) => ({ e }));
    // The host agent not answering (504) is said as such, not as a guest without a VNC server.
    if ('e' in found && found.e instanceof ApiError && found.e.status === 504) return refuse(socket, 504, found.e.message);
    const addr = 'a' in found ? found.a : undefined;
    if (!addr) return refuse(socket, 409, `Instance ${target.instanceId} has no VNC server now (is it running?).`);
    const vnc = await open(addr).catch((e: Error) => e);
    if (vnc instanceof Error) return refuse(socket, 502, `Cannot reach the guest's VNC server: ${vnc.message}`);
    // Until bridged, the VNC socket is ours to close: the library refuses a bad handshake (400)
    // without calling back, and an unheard socket error would take the process down.
    let bridged = false;
    vnc.on('error', () => vnc.destroy());
    socket.once('close', () => { if (!bridged) vnc.destroy(); });
    if (socket.destroyed) { vnc.destroy(); return; }
    this.wss.handleUpgrade(req, socket, head, (ws) => { bridged = true; this.bridge(ws, vnc, target); });
  }

  private bridge(ws: WebSocket, vnc: Socket, target: ConsoleTarget): void {
    const started = Date.now();
    let bytesIn = 0; let bytesOut = 0;
    let answered = true;
    const heartbeat = setInterval(() => {
      if (!answered) { end(); return; }
      answered = false;
      ws.ping();
    }, PING_MS);
    heartbeat.unref();
    ws.on('pong', () => { answered = true; });
    const end = () => {
      if (!this.live.delete(end)) return;
      clearInterval(heartbeat);
      vnc.destroy();
      if (ws.readyState === ws.OPEN) ws.close(1000); else ws.terminate();
      this.log.info({ instance: target.instanceId, ms: Date.now() - started, bytesIn, bytesOut }, 'console closed');
    };
    this.live.add(end);
    this.log.info({ instance: target.instanceId }, 'console opened');
    vnc.on('data', (d) => {
      bytesOut += d.length;
      ws.send(d, { binary: true }, () => { if (vnc.isPaused() && ws.bufferedAmount < HIGH_WATER / 2) vnc.resume(); });
      if (ws.bufferedAmount > HIGH_WATER) vnc.pause();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary) { ws.close(1003, 'binary frames only'); return; }
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      bytesIn += buf.length;
      if (!vnc.write(buf)) { ws.pause(); vnc.once('drain', () => ws.resume()); }
    });
    ws.on('close', end);
    ws.on('error', end);
    vnc.on('close', end);
    vnc.on('error', end);
  }

  /** Browsers send Origin: it must be this host (or the proxy's public host, or a configured one). */
  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin) return true; // not a browser: the token is the credential
    let host: string;
    try { host = new URL(origin).host.toLowerCase(); } catch { return false; }
    const allowed = new Set([req.headers.host?.toLowerCase(), new URL(this.consoles.proxyBase()).host.toLowerCase(),
      ...this.consoles.cfg.allowedOrigins.map((o) => o.toLowerCase())]);
    return allowed.has(host) || allowed.has(host.replace(/:\d+$/, ''));
  }
}

function open(addr: VncAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = 'unixSocket' in addr ? connect({ path: addr.unixSocket }) : connect({ host: addr.host, port: addr.port });
    const t = setTimeout(() => { s.destroy(); reject(new Error('timed out')); }, 10_000);
    s.once('connect', () => { clearTimeout(t); s.removeAllListeners('error'); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/** Answers an upgrade request with a plain HTTP error (before any WebSocket handshake). */
function refuse(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: { code: status, message } });
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
