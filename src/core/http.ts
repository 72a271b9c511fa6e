// HTTP plumbing shared by every service: one Fastify listener, request ids, metrics, error bodies.
import Fastify, {
  LogController,
  type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest,
  type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AjvCompiler } from '@fastify/ajv-compiler';
import client from 'prom-client';
import type { Logger } from './log.js';
import { ApiError, badRequest, type ErrorFormatter, keystoneError } from './errors.js';
import { requestId } from './ids.js';

/** A Fastify scope with TypeBox schemas typing each route's request. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression,
  FastifyBaseLogger, TypeBoxTypeProvider>;

const REQUEST_ID_HEADER = 'x-openstack-request-id';
const VALID_REQUEST_ID = /^req-[0-9a-f-]{36}$/;

export interface HttpOptions {
  logger: Logger;
  /** Largest JSON body accepted (bytes); streamed uploads have their own parsers. */
  bodyLimit?: number;
}

// Querystrings, params and headers are text: they are coerced to the schema's types ("5" -> 5, a
// repeated key -> array). JSON bodies carry their own types and are validated as sent, so
// `["a"]` or `1` is no string and `"true"` no boolean unless a schema says so.
const AJV_COMMON = { removeAdditional: false, allErrors: false, useDefaults: true } as const;
const strictPool = AjvCompiler();
const coercingPool = AjvCompiler();
type RouteSchema = { schema: unknown; httpPart?: string; method: string; url: string };
function buildValidator(external: Record<string, never>, opts: Record<string, unknown> = {}) {
  const strict = strictPool(external, { ...opts, customOptions: { ...AJV_COMMON, coerceTypes: false } }) as unknown as (r: RouteSchema) => unknown;
  const coercing = coercingPool(external, { ...opts, customOptions: { ...AJV_COMMON, coerceTypes: 'array' } }) as unknown as (r: RouteSchema) => unknown;
  return (route: RouteSchema) => (route.httpPart === 'body' ? strict : coercing)(route);
}

export function createHttpApp(opts: HttpOptions): App {
  const app: App = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    // Reuse a caller's well-formed request id (as OpenStack services do for service-to-service calls).
    genReqId: (req) => {
      const given = req.headers[REQUEST_ID_HEADER];
      return typeof given === 'string' && VALID_REQUEST_ID.test(given) ? given : requestId();
    },
    // One line per request is logged by the onResponse hook below, with the request id.
    logController: new LogController({ requestIdLogLabel: 'request_id', disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, caseSensitive: true },
    schemaController: { compilersFactory: { buildValidator: buildValidator as never } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const requests = new client.Counter({
    name: 'stratus_http_requests_total', help: 'HTTP requests by service, method and status',
    labelNames: ['service', 'method', 'status'], registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'stratus_http_request_duration_seconds', help: 'HTTP request latency by service',
    labelNames: ['service', 'method'], registers: [registry],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  app.decorate('metrics', registry);

  app.addHook('onRequest', async (req, reply) => {
    reply.header('X-OpenStack-Request-Id', req.id);
    // OpenStack clients (tempest's rest client, keystoneauth) send Content-Type: application/json
    // on body-less requests (DELETE, GET, Keystone's role-assignment PUT): that is no body, not an
    // empty JSON document. Routes that need a body still refuse it through their schema.
    const h = req.headers;
    if ((h['content-length'] ?? '0') === '0' && h['transfer-encoding'] === undefined) {
      delete h['content-type'];
    }
  });
  // PostgreSQL cannot store a NUL character in text (SQLite can): refuse it at the edge with a 400
  // in the route's error style, so both engines answer the same and nothing reaches the database.
  app.addHook('preValidation', async (req) => {
    if (/%00/.test(req.url) || hasNul(req.params) || hasNul(req.query)
      // A body parsed as text (text/plain) is someone's data, for its route to refuse or keep.
      || (typeof req.body === 'object' && hasNul(req.body))) {
      throw badRequest('NUL characters are not allowed in requests.');
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    const service = serviceOf(req.url);
    const seconds = reply.elapsedTime / 1000;
    requests.inc({ service, method: req.method, status: String(reply.statusCode) });
    duration.observe({ service, method: req.method }, seconds);
    req.log.info({ method: req.method, url: redactTokens(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request');
  });

  // Outside any service: Keystone-style errors (the first thing clients talk to).
  app.setErrorHandler(errorHandler(keystoneError));
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(keystoneError({ status: 404, message: `The resource could not be found: ${req.method} ${req.url}` }));
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', registry.contentType);
    return registry.metrics();
  });
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: client.Registry;
  }
}

/**
 * Credentials carried in URLs stay out of logs: console tokens in `token=` (also URL-encoded
 * inside `path=`) and in the path of the admin's `os-console-auth-tokens/{token}` lookup.
 */
export function redactTokens(url: string): string {
  return url.replace(/(token(?:=|%3D))[^&%#]+/gi, '$1***').replace(/(os-console-auth-tokens\/)[^/?#]+/g, '$1***');
}

function serviceOf(url: string): string {
  const first = url.split('?')[0]!.split('/')[1] ?? '';
  return /^[a-z-]+$/.test(first) ? first : 'other';
}

/** The error handler of one service: renders ApiError and framework errors as `format` says. */
export function errorHandler(format: ErrorFormatter) {
  return (err: FastifyError | ApiError | Error, req: FastifyRequest, reply: FastifyReply) => {
    const { status, message, type, headers, fields } = describeError(err);
    if (status >= 500) req.log.error({ err }, 'request failed');
    else req.log.debug({ err: err.message }, 'request refused');
    if (headers) reply.headers(headers);
    reply.code(status).type('application/json').send(format({ status, message, type, requestId: String(req.id), fields }));
  };
}

/** Installs `format` as the error and not-found style of a service's encapsulated plugin. */
export function useErrorStyle(app: App, format: ErrorFormatter): void {
  app.setErrorHandler(errorHandler(format));
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).type('application/json')
      .send(format({ status: 404, message: `The resource could not be found: ${req.method} ${req.url.split('?')[0]}`, requestId: String(req.id) }));
  });
}

function describeError(err: FastifyError | ApiError | Error): {
  status: number; message: string; type?: string; headers?: Record<string, string>; fields?: Record<string, unknown>;
} {
  if (err instanceof ApiError) {
    return { status: err.status, message: err.message, type: err.extra.type, headers: err.extra.headers, fields: err.extra.fields };
  }
  const fe = err as FastifyError;
  if (fe.validation) {
    const v = fe.validation[0];
    const where = v?.instancePath ? `'${v.instancePath.replace(/^\//, '').replace(/\//g, '.')}'` : fe.validationContext ?? 'request';
    const detail = v?.keyword === 'additionalProperties'
      ? `Additional properties are not allowed ('${(v.params as { additionalProperty?: string }).additionalProperty}' was unexpected)`
      : v?.message ?? fe.message;
    return { status: 400, message: `Invalid input for field/attribute ${where}. ${detail}`.trim() };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: 'Request entity is too large.' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: `Unsupported Content-Type: ${fe.message}` };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'The request body is empty but Content-Type says JSON.' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, message: 'Content-Length does not match the body.' };
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    // JSON parse errors and the like: Fastify gives them a 400 with a useful message.
    const msg = err instanceof SyntaxError ? `Malformed JSON in request body: ${err.message}` : fe.message;
    return { status: fe.statusCode, message: msg };
  }
  return { status: 500, message: 'An unexpected error prevented the server from fulfilling your request.' };
}

/** True when a parsed JSON value (not a stream or buffer) holds a string with a NUL character. */
function hasNul(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (v === null || typeof v !== 'object' || depth > 64) return false;
  if (Array.isArray(v)) return v.some((x) => hasNul(x, depth + 1));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x, depth + 1));
}
