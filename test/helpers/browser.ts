// A real browser for tests, when Debian's chromium is installed: headless Chromium driven over the
// DevTools protocol with the `ws` package (no extra npm dependency). Started in its own process
// group and killed by that group's id in close().
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

export interface BrowserPage {
  /** Evaluates a JavaScript expression in the page; its value (JSON-serialisable). */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** A PNG of the page. */
  screenshot(): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Chromium's command line. Tests send packets to loopback only: Chromium's own background traffic
 * (DNS to the machine's resolver, component updates, safe browsing, media-router discovery) is
 * switched off, every host name but localhost and 127.0.0.1 resolves to nothing, and anything not
 * on loopback would go to a proxy on a dead loopback port. test/compute/browser-offline.test.ts
 * checks both that and that loopback pages and WebSockets still work.
 */
export function chromiumArgs(profile: string, url: string): string[] {
  return ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${profile}`,
    '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', '--window-size=1024,768',
    '--disable-background-networking', '--disable-component-update', '--disable-domain-reliability', '--disable-sync', '--no-pings',
    '--disable-breakpad', '--disable-client-side-phishing-detection', '--disable-default-apps', '--metrics-recording-only',
    '--disable-features=MediaRouter,DialMediaRouteProvider,OptimizationHints,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1', '--proxy-server=http://127.0.0.1:9',
    '--force-webrtc-ip-handling-policy=disable_non_proxied_udp', url];
}

/** Opens `url` in a fresh headless Chromium. */
export async function openPage(url: string): Promise<BrowserPage> {
  if (!CHROMIUM) throw new Error('chromium is not installed');
  const profile = mkdtempSync(join(tmpdir(), 'stratus-chromium-'));
  const child: ChildProcess = spawn(CHROMIUM, chromiumArgs(profile, 'about:blank'), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const kill = () => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`chromium did not start: ${err.slice(-500)}`)), 30_000);
      child.stderr!.on('data', (d) => {
        err += String(d);
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) { clearTimeout(t); resolve(m[1]!); }
      });
      child.once('exit', () => { clearTimeout(t); reject(new Error(`chromium exited: ${err.slice(-500)}`)); });
    });
    const port = new URL(endpoint).port;
    const target = await (await fetch(`http://127.0.0.1:${port}/json/new?${url}`, { method: 'PUT' })).json() as { webSocketDebuggerUrl: string };
    const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    let next = 1;
    const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
    ws.on('message', (d) => {
      const msg = JSON.parse(String(d)) as { id?: number; result?: any; error?: { message: string } };
      const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
      if (!p) return;
      pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(msg.error.message)); else p.resolve(msg.result);
    });
    const call = (method: string, params: Record<string, unknown> = {}) => new Promise<any>((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
    return {
      async evaluate<T>(expression: string) {
        const r = await call('Runtime.evaluate', { expression, returnByValue: true });
        if (r.exceptionDetails) throw new Error(`page error: ${JSON.stringify(r.exceptionDetails).slice(0, 500)}`);
        return r.result.value as T;
      },
      async screenshot() {
        return Buffer.from((await call('Page.captureScreenshot', { format: 'png' })).data, 'base64');
      },
      async close() {
        ws.terminate();
        kill();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    kill();
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}
