// The agent API (/compute/agent/v1): host agents register, heartbeat, watch their host's desired
// state, report what they observe and download images. Authenticated by the shared agent token
// (DATA_DIR/agent-token), not by Keystone tokens: agents are part of the cloud, not its users.
import { timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { ApiError, badRequest, conflict, notFound, unauthorized } from '../../core/errors.js';
import type { App } from '../../core/http.js';
import type { ImageSource } from '../images.js';
import type { ComputeService } from '../service.js';

const HostName = Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const HostParams = Type.Object({ host: HostName });

const Registration = Type.Object({
  hostname: Type.String({ minLength: 1, maxLength: 255 }),
  vcpus: Type.Integer({ minimum: 1 }),
  memoryMb: Type.Integer({ minimum: 1 }),
  diskGb: Type.Integer({ minimum: 0 }),
  cpuModel: Type.String({ maxLength: 255 }),
  hypervisorType: Type.Union([Type.Literal('QEMU'), Type.Literal('fake')]),
  accelerator: Type.Union([Type.Literal('KVM'), Type.Literal('TCG')]),
  hypervisorVersion: Type.String({ maxLength: 255 }),
  agentVersion: Type.String({ maxLength: 64 }),
}, { additionalProperties: false });

const Heartbeat = Type.Object({
  orphans: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 10_000 })),
  usedDiskBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  load: Type.Optional(Type.Number({ minimum: 0 })),
  freeMemoryMb: Type.Optional(Type.Integer({ minimum: 0 })),
}, { additionalProperties: false });

const Observed = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64 }),
  powerState: Type.Union([Type.Literal('running'), Type.Literal('paused'), Type.Literal('suspended'), Type.Literal('shutdown'),
    Type.Literal('crashed'), Type.Literal('deleted')]),
  pid: Type.Optional(Type.Integer({ minimum: 1 })),
  diskBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  observedGeneration: Type.Integer({ minimum: 0 }),
  busy: Type.Optional(Type.Boolean()),
  fault: Type.Optional(Type.Union([Type.Null(), Type.Object({ message: Type.String({ maxLength: 4096 }), at: Type.String({ maxLength: 64 }) })])),
  taskResult: Type.Optional(Type.Object({
    taskId: Type.String({ maxLength: 64 }),
    ok: Type.Boolean(),
    error: Type.Optional(Type.String({ maxLength: 4096 })),
    result: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  })),
  event: Type.Optional(Type.String({ maxLength: 255 })),
  migration: Type.Optional(Type.Object({
    id: Type.String({ minLength: 1, maxLength: 64 }),
    state: Type.Union([Type.Literal('prepared'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('finished'),
      Type.Literal('failed'), Type.Literal('aborted')]),
    target: Type.Optional(Type.Object({ uri: Type.String({ maxLength: 512 }), diskUri: Type.String({ maxLength: 512 }) })),
    progress: Type.Optional(Type.Object({
      phase: Type.Union([Type.Literal('disk'), Type.Literal('memory'), Type.Literal('switchover'), Type.Literal('done')]),
      diskDone: Type.Optional(Type.Number({ minimum: 0 })), diskTotal: Type.Optional(Type.Number({ minimum: 0 })),
      memoryDone: Type.Optional(Type.Number({ minimum: 0 })), memoryTotal: Type.Optional(Type.Number({ minimum: 0 })),
    })),
    error: Type.Optional(Type.String({ maxLength: 4096 })),
    downtimeMs: Type.Optional(Type.Number({ minimum: 0 })),
  })),
});

const Report = Type.Object({ instances: Type.Array(Observed, { maxItems: 10_000 }) }, { additionalProperties: false });

export interface SnapshotSink {
  /** True when the image exists and waits for its data (queued). */
  accepts(imageId: string): Promise<boolean>;
  upload(imageId: string, data: Readable): Promise<unknown>;
}

export function agentRoutes(app: App, opts: { service: ComputeService; images: ImageSource; token: () => string; snapshots?: SnapshotSink }): void {
  const expected = () => Buffer.from(opts.token());
  const requireAgent = async (req: FastifyRequest): Promise<void> => {
    const h = req.headers.authorization;
    const given = Buffer.from(typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : '');
    const want = expected();
    // An empty token file must not make an empty bearer valid.
    if (want.length === 0 || given.length !== want.length || !timingSafeEqual(given, want)) throw unauthorized('A valid agent token is required.');
  };

  app.register(async (plain) => {
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    scope.addHook('preHandler', requireAgent);

    scope.put('/hosts/:host', { schema: { params: HostParams, body: Registration } }, async (req) => {
      const h = await opts.service.registerHost(req.params.host, req.body);
      return { host: { name: h.name, revision: h.revision } };
    });

    scope.post('/hosts/:host/heartbeat', { schema: { params: HostParams, body: Heartbeat } }, async (req, reply) => {
      await opts.service.heartbeat(req.params.host, req.body);
      reply.code(204);
    });

    scope.get('/hosts/:host/desired', {
      schema: {
        params: HostParams,
        querystring: Type.Object({
          since: Type.Optional(Type.Integer({ minimum: -1 })),
          wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60 })),
        }),
      },
    }, async (req) => {
      const since = req.query.since ?? -1;
      // The agent hanging up (restart, kill) ends the wait.
      const gone = new AbortController();
      req.raw.once('close', () => gone.abort());
      return opts.service.watch(req.params.host, since, (req.query.wait ?? 0) * 1000, gone.signal);
    });

    scope.post('/hosts/:host/observed', { schema: { params: HostParams, body: Report } }, async (req, reply) => {
      if (!(await opts.service.getHost(req.params.host))) throw notFound(`compute host ${req.params.host} is not registered`);
      await opts.service.report(req.params.host, req.body.instances);
      reply.code(204);
    });

    scope.post('/hosts/:host/calls/:id', {
      schema: {
        params: Type.Object({ host: HostName, id: Type.String({ minLength: 1, maxLength: 64 }) }),
        body: Type.Object({
          ok: Type.Boolean(),
          error: Type.Optional(Type.String({ maxLength: 4096 })),
          result: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
        }, { additionalProperties: false }),
      },
      bodyLimit: 4 * 1024 * 1024, // console output, base64
    }, async (req, reply) => {
      if (!(await opts.service.calls.complete(req.params.host, req.params.id, req.body))) {
        throw notFound(`call ${req.params.id} is not waiting (answered or timed out)`);
      }
      reply.code(204);
    });

    // Cold migration: the source agent uploads a stopped guest's disk for the export task it was
    // given; the destination agent downloads it while spawning the moved guest.
    const DiskParams = Type.Object({ host: HostName, id: Type.String({ minLength: 1, maxLength: 64 }) });
    scope.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    scope.put('/hosts/:host/instances/:id/disk', {
      schema: { params: DiskParams, querystring: Type.Object({ migration: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }) },
    }, async (req) => {
      const i = await opts.service.getInstance(req.params.id);
      const task = i?.task;
      if (!i || i.host !== req.params.host || task?.type !== 'export-disk' || task.migrationId !== req.query.migration) {
        throw conflict(`instance ${req.params.id} on ${req.params.host} is not exporting its disk for migration ${req.query.migration}`);
      }
      if (!(req.body && typeof (req.body as Readable).pipe === 'function')) throw badRequest('send the disk as application/octet-stream');
      // A flattened root disk is at most its virtual size plus qcow2 metadata.
      const max = Math.max(i.diskGb, 1) * 1024 ** 3 * 1.1 + 64 * 1024 ** 2;
      return opts.service.transfers.receive(req.query.migration, req.body as Readable, max);
    });
    scope.get('/hosts/:host/instances/:id/disk', { schema: { params: DiskParams } }, async (req, reply) => {
      const i = await opts.service.getInstance(req.params.id);
      if (!i || i.host !== req.params.host || !i.diskSource) throw notFound(`instance ${req.params.id} on ${req.params.host} has no moved disk to fetch`);
      const staged = opts.service.transfers.open(i.diskSource.migrationId);
      if (!staged) throw notFound(`the disk of migration ${i.diskSource.migrationId} is not staged`);
      reply.header('Content-Type', 'application/octet-stream');
      reply.header('Content-Length', String(staged.sizeBytes));
      reply.header('X-Disk-Sha256', staged.sha256);
      return reply.send(staged.stream);
    });

    // Snapshots from agents that do not share the controller's file system: the stream goes
    // straight into the image service, for an image a snapshot task of this host waits for.
    scope.put('/hosts/:host/snapshots/:image', {
      schema: { params: Type.Object({ host: HostName, image: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }) },
    }, async (req, reply) => {
      const waiting = (await opts.service.listInstances({ host: req.params.host }))
        .some((i) => i.task?.type === 'snapshot' && i.task.imageId === req.params.image);
      const body = req.body as Readable | undefined;
      if (!(body && typeof body.pipe === 'function')) throw badRequest('send the image as application/octet-stream');
      if (!waiting || !opts.snapshots || !(await opts.snapshots.accepts(req.params.image))) {
        for await (const _ of body) { /* read to the end, so the agent gets the answer: it keeps its file */ }
        throw conflict(`no snapshot upload is expected for image ${req.params.image}`);
      }
      await opts.snapshots.upload(req.params.image, body);
      reply.code(204);
    });

    scope.get('/images/:id', {
      schema: { params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }) }) },
    }, async (req, reply) => {
      const info = await opts.images.describe(req.params.id);
      if (!info) throw notFound(`Image ${req.params.id} could not be found.`);
      const stream = await opts.images.open(req.params.id).catch((e: Error) => {
        throw new ApiError(503, `image ${req.params.id} cannot be read: ${e.message}`);
      });
      reply.header('Content-Type', 'application/octet-stream');
      reply.header('Content-Length', String(info.sizeBytes));
      reply.header('X-Image-Sha256', info.sha256);
      reply.header('X-Image-Disk-Format', info.diskFormat);
      return reply.send(stream);
    });
  }, { prefix: '/agent/v1' });
}
