// API errors and the OpenStack error bodies each service family uses.
// Services throw ApiError (or a helper below); the service's error handler renders it in its
// family's shape, so clients that parse error bodies (openstackclient, openstacksdk) show the message.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: {
      /** Neutron's error `type`, e.g. `NetworkNotFound`. */
      type?: string;
      /** Extra response headers, e.g. `Retry-After`. */
      headers?: Record<string, string>;
      /** Extra members of the error body (Placement's 406 carries min_version/max_version). */
      fields?: Record<string, unknown>;
    } = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string, type?: string) => new ApiError(400, message, { type });
export const unauthorized = (message = 'The request you have made requires authentication.') =>
  new ApiError(401, message);
export const forbidden = (message = 'You are not authorized to perform the requested action.', type?: string) =>
  new ApiError(403, message, { type });
export const notFound = (message: string, type?: string) => new ApiError(404, message, { type });
export const methodNotAllowed = (message = 'The method is not allowed for the requested URL.') =>
  new ApiError(405, message);
export const conflict = (message: string, type?: string) => new ApiError(409, message, { type });
export const payloadTooLarge = (message: string) => new ApiError(413, message);
export const unsupportedMediaType = (message: string) => new ApiError(415, message);
export const notImplemented = (message: string) => new ApiError(501, message);

export const HTTP_TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 409: 'Conflict', 410: 'Gone',
  411: 'Length Required', 413: 'Request Entity Too Large', 415: 'Unsupported Media Type',
  416: 'Requested Range Not Satisfiable', 422: 'Unprocessable Entity', 429: 'Too Many Requests',
  500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
};

export interface ErrorInfo {
  status: number;
  message: string;
  type?: string;
  /** The request's X-OpenStack-Request-Id (Placement puts it in the body). */
  requestId?: string;
  fields?: Record<string, unknown>;
}

/** Renders an error as the body one family of OpenStack services returns. */
export type ErrorFormatter = (e: ErrorInfo) => unknown;

/** Keystone: {"error": {"code", "title", "message"}}. */
export const keystoneError: ErrorFormatter = ({ status, message }) => ({
  error: { code: status, title: HTTP_TITLES[status] ?? 'Error', message },
});

const NOVA_KEYS: Record<number, string> = {
  400: 'badRequest', 401: 'unauthorized', 403: 'forbidden', 404: 'itemNotFound',
  405: 'badMethod', 409: 'conflictingRequest', 413: 'overLimit', 415: 'badMediaType',
  429: 'overLimit', 501: 'notImplemented', 503: 'serviceUnavailable',
};

/** Nova and Cinder: {"itemNotFound": {"code", "message"}}. */
export const novaError: ErrorFormatter = ({ status, message }) => ({
  [NOVA_KEYS[status] ?? 'computeFault']: { code: status, message },
});

const NEUTRON_TYPES: Record<number, string> = {
  400: 'HTTPBadRequest', 401: 'HTTPUnauthorized', 403: 'HTTPForbidden', 404: 'HTTPNotFound',
  405: 'HTTPMethodNotAllowed', 409: 'HTTPConflict', 413: 'HTTPRequestEntityTooLarge',
  415: 'HTTPUnsupportedMediaType', 500: 'HTTPInternalServerError', 501: 'HTTPNotImplemented',
};

/** Neutron: {"NeutronError": {"type", "message", "detail"}}. */
export const neutronError: ErrorFormatter = ({ status, message, type }) => ({
  NeutronError: { type: type ?? NEUTRON_TYPES[status] ?? 'HTTPError', message, detail: '' },
});

/** Glance (webob JSON form): {"code": "404 Not Found", "title", "message"}. */
export const glanceError: ErrorFormatter = ({ status, message }) => {
  const title = HTTP_TITLES[status] ?? 'Error';
  return { code: `${status} ${title}`, title, message };
};

/** Placement: {"errors": [{"status", "title", "detail", "code", "request_id"}]}; `type` is the code. */
export const placementError: ErrorFormatter = ({ status, message, type, requestId, fields }) => ({
  errors: [{
    status, title: HTTP_TITLES[status] ?? 'Error', detail: message,
    code: type ?? 'placement.undefined_code', request_id: requestId, ...fields,
  }],
});
