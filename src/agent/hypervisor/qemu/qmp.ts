// A small QMP client: line-delimited JSON over QEMU's unix socket. The greeting arrives first,
// `qmp_capabilities` leaves negotiation mode, then each command carries an id so replies can be
// matched; lines with an `event` key are asynchronous events.
// QEMU's monitor accepts one client at a time, so callers keep connections short (QemuDriver
// serializes its operations per guest).
import { createConnection, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(readonly klass: string, message: string) {
    super(message);
    this.name = 'QmpError';
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class QmpClient extends EventEmitter {
  private buf = '';
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private closed = false;
  readonly events: QmpEvent[] = [];

  private constructor(private readonly sock: Socket) {
    super();
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const sock = createConnection(path);
    const client = new QmpClient(sock);
    const greeting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`QMP ${path}: no greeting within ${timeoutMs} ms (another client connected?)`));
      }, timeoutMs);
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
      client.once('greeting', () => { clearTimeout(timer); resolve(); });
    });
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => client.onData(chunk));
    sock.on('close', () => client.onClose());
    sock.on('error', () => { /* surfaced through close / pending rejections */ });
    await greeting;
    await client.execute('qmp_capabilities', undefined, timeoutMs);
    return client;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP connection closed before ${command}`));
    const id = `s${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: Record<string, unknown> = { execute: command, id };
      if (args) msg.arguments = args;
      this.sock.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Resolves with the first event named `name` (already received or arriving within the timeout). */
  waitEvent(name: string, timeoutMs: number): Promise<QmpEvent> {
    const seen = this.events.find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.off('event', on); reject(new Error(`QMP: no ${name} event within ${timeoutMs} ms`)); }, timeoutMs);
      const on = (e: QmpEvent) => {
        if (e.event !== name) return;
        clearTimeout(timer);
        this.off('event', on);
        resolve(e);
      };
      this.on('event', on);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, any>;
      try { msg = JSON.parse(line); } catch { continue; }
      if (msg.QMP) { this.emit('greeting', msg.QMP); continue; }
      if (msg.event) {
        const ev = msg as QmpEvent;
        this.events.push(ev);
        if (this.events.length > 100) this.events.shift();
        this.emit('event', ev);
        continue;
      }
      const p = typeof msg.id === 'string' ? this.pending.get(msg.id) : undefined;
      if (!p) continue;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new QmpError(msg.error.class ?? 'GenericError', msg.error.desc ?? 'QMP error'));
      else p.resolve(msg.return);
    }
  }

  private onClose(): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error('QMP connection closed'));
      this.pending.delete(id);
    }
    this.emit('close');
  }
}

/** Connects, runs `fn`, always disconnects. */
export async function withQmp<T>(path: string, fn: (c: QmpClient) => Promise<T>, timeoutMs?: number): Promise<T> {
  const c = await QmpClient.connect(path, timeoutMs);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
