// The Status objects the real API server answers errors with
// (k8s.io/apimachinery api/errors), kept to the shapes and texts clients
// look at: kubectl prints them, client libraries branch on code and reason.
import type { JsonObject } from './patch';

export class ApiError extends Error {
  constructor(readonly status: JsonObject) {
    super(status.message as string);
  }
  get code(): number {
    return this.status.code as number;
  }
}

export function statusObject(code: number, reason: string, message: string, details?: JsonObject): JsonObject {
  const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message };
  if (reason) s.reason = reason;
  if (details) s.details = details;
  s.code = code;
  return s;
}

export const fail = (code: number, reason: string, message: string, details?: JsonObject) => new ApiError(statusObject(code, reason, message, details));

// The reason and text the real server's generic responses carry for a code.
const GENERIC: Record<number, [string, string]> = {
  400: ['BadRequest', 'the server rejected our request for an unknown reason'],
  401: ['Unauthorized', 'Unauthorized'],
  403: ['Forbidden', 'forbidden'],
  404: ['NotFound', 'the server could not find the requested resource'],
  405: ['MethodNotAllowed', 'the server does not allow this method on the requested resource'],
  409: ['Conflict', 'the server reported a conflict'],
  410: ['Expired', 'too old resource version'],
  422: ['Invalid', 'the server rejected our request due to an error in our request'],
  429: ['TooManyRequests', 'the server has received too many requests and has asked us to try again later'],
  500: ['InternalError', 'Internal error occurred: injected failure'],
  503: ['ServiceUnavailable', 'the server is currently unable to handle the request'],
  504: ['Timeout', 'the server was unable to return a response in the time allotted, but may still be processing the request'],
};

export function genericError(code: number, message?: string): ApiError {
  const [reason, text] = GENERIC[code] ?? [code >= 500 ? 'InternalError' : '', `the server responded with the status code ${code}`];
  return fail(code, reason, message ?? text, code === 429 ? { retryAfterSeconds: 1 } : undefined);
}

export const notFound = (resource: string, name: string) => fail(404, 'NotFound', `${resource} ${JSON.stringify(name)} not found`, { name, kind: resource });

export const conflict = (name: string, why: string) =>
  fail(409, 'Conflict', `Operation cannot be fulfilled on nodes ${JSON.stringify(name)}: ${why}`, { name, kind: 'nodes' });

export const OPTIMISTIC_LOCK = 'the object has been modified; please apply your changes to the latest version and try again';

/** A 422 for one field of a Node, worded as field.ErrorList renders it. */
export function invalid(name: string, field: string, detail: string, causeReason = 'FieldValueInvalid'): ApiError {
  return fail(422, 'Invalid', `Node ${JSON.stringify(name)} is invalid: ${field}: ${detail}`, {
    name,
    kind: 'Node',
    causes: [{ reason: causeReason, message: detail, field }],
  });
}
