// The agent's side of the agent API (see compute/agent-protocol.ts): plain fetch with the agent token.
import type { Readable } from 'node:stream';
import { Readable as NodeReadable } from 'node:stream';
import { createReadStream, statSync } from 'node:fs';
import { writeStreamAtomic } from '../core/files.js';
import type {
  CallResult, DesiredState, HostHeartbeat, HostRegistration, ObservedInstance,
} from '../compute/agent-protocol.js';

export class ControllerClient {
  private readonly base: string;

  /**
   * `callTimeoutMs` bounds each small call (and a long poll beyond its wait): a controller that
   * vanished without closing the connection must not stall the agent for Node's 5 minutes.
   * Streams (images, disks, snapshots) have no overall bound: they take as long as their bytes.
   */
  constructor(controllerUrl: string, private readonly token: string, readonly host: string, private readonly callTimeoutMs = 30_000) {
    this.base = `${controllerUrl.replace(/\/+$/, '')}/compute/agent/v1`;
  }

  async register(reg: HostRegistration): Promise<{ revision: number }> {
    const r = await this.call('PUT', `/hosts/${encodeURIComponent(this.host)}`, reg);
    return (await r.json() as { host: { revision: number } }).host;
  }

  async heartbeat(hb: HostHeartbeat): Promise<void> {
    await this.call('POST', `/hosts/${encodeURIComponent(this.host)}/heartbeat`, hb);
  }

  /** Long poll: returns when the host's revision differs from `since`, or after `waitSec`. */
  async watch(since: number, waitSec: number, signal?: AbortSignal): Promise<DesiredState> {
    const r = await this.call('GET', `/hosts/${encodeURIComponent(this.host)}/desired?since=${since}&wait=${waitSec}`, undefined, signal,
      waitSec * 1000 + this.callTimeoutMs);
    return await r.json() as DesiredState;
  }

  async report(instances: ObservedInstance[]): Promise<void> {
    if (!instances.length) return;
    await this.call('POST', `/hosts/${encodeURIComponent(this.host)}/observed`, { instances });
  }

  async completeCall(id: string, result: CallResult): Promise<void> {
    await this.call('POST', `/hosts/${encodeURIComponent(this.host)}/calls/${encodeURIComponent(id)}`, result);
  }

  /** Image bytes with the controller's checksum and format. */
  async image(id: string, method: 'GET' | 'HEAD' = 'GET'): Promise<{ sha256: string; format: 'qcow2' | 'raw'; size: number; body?: Readable }> {
    const r = await this.call(method, `/images/${encodeURIComponent(id)}`, undefined, undefined, method === 'HEAD' ? this.callTimeoutMs : 0);
    const sha256 = r.headers.get('x-image-sha256') ?? '';
    const format = r.headers.get('x-image-disk-format') === 'raw' ? 'raw' : 'qcow2';
    const size = Number(r.headers.get('content-length') ?? 0);
    if (method === 'HEAD' || !r.body) return { sha256, format, size };
    return { sha256, format, size, body: NodeReadable.fromWeb(r.body as import('node:stream/web').ReadableStream) };
  }

  /** Cold migration: uploads a moved guest's disk (streamed); the controller answers with what it stored. */
  async putDisk(instanceId: string, migrationId: string, path: string): Promise<{ sha256: string; sizeBytes: number }> {
    const size = statSync(path).size;
    const r = await this.call('PUT', `/hosts/${encodeURIComponent(this.host)}/instances/${encodeURIComponent(instanceId)}/disk?migration=${encodeURIComponent(migrationId)}`,
      { stream: createReadStream(path, { highWaterMark: 1024 * 1024 }), size }, undefined, 0);
    return await r.json() as { sha256: string; sizeBytes: number };
  }

  /**
   * A snapshot streamed into the image service (PUT .../snapshots/{image}). False when the
   * controller does not take it (409: no image service waits for it): the caller keeps the file.
   */
  async putSnapshot(imageId: string, path: string): Promise<boolean> {
    try {
      await this.call('PUT', `/hosts/${encodeURIComponent(this.host)}/snapshots/${encodeURIComponent(imageId)}`,
        { stream: createReadStream(path, { highWaterMark: 1024 * 1024 }), size: statSync(path).size }, undefined, 0);
      return true;
    } catch (e) {
      if (e instanceof ControllerError && e.status === 409) return false;
      throw e;
    }
  }

  /** Cold migration: the moved disk of an instance being spawned here, verified against `sha256`. */
  async getDisk(instanceId: string, dest: string, sha256: string): Promise<void> {
    const r = await this.call('GET', `/hosts/${encodeURIComponent(this.host)}/instances/${encodeURIComponent(instanceId)}/disk`, undefined, undefined, 0);
    if (!r.body) throw new Error('the controller sent no disk');
    await writeStreamAtomic(NodeReadable.fromWeb(r.body as import('node:stream/web').ReadableStream), dest, { expectSha256: sha256 });
  }

  /** `timeoutMs` 0: no bound (streams); default: `callTimeoutMs`. */
  private async call(method: string, path: string, body?: unknown, signal?: AbortSignal, timeoutMs = this.callTimeoutMs): Promise<Response> {
    if (timeoutMs > 0) signal = signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    let payload: string | ReadableStream | undefined;
    if (isUpload(body)) {
      headers['Content-Type'] = 'application/octet-stream';
      headers['Content-Length'] = String(body.size);
      payload = NodeReadable.toWeb(body.stream) as ReadableStream;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const r = await fetch(`${this.base}${path}`, { method, headers, body: payload, signal, ...(isUpload(body) ? { duplex: 'half' } : {}) } as RequestInit);
    if (!r.ok) {
      const text = await r.text().catch(() => '');
      throw new ControllerError(r.status, `${method} ${path}: HTTP ${r.status} ${text.slice(0, 500)}`);
    }
    return r;
  }
}

interface Upload { stream: Readable; size: number }
const isUpload = (b: unknown): b is Upload => !!b && typeof b === 'object' && 'stream' in b && typeof (b as Upload).stream?.pipe === 'function';

export class ControllerError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ControllerError';
  }
}
