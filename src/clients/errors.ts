/**
 * Errors of the HTTP services the agent talks to (Docker Engine, Glance,
 * Keystone, Neutron, Placement, the registry). Classify with `instanceof` / `findCause`,
 * never by message text.
 */
import { AgentError, type ErrorFields } from '../common/errors.js';

export type ServiceName = 'docker' | 'glance' | 'keystone' | 'neutron' | 'placement' | 'registry';

export interface HttpErrorDetails {
  service: ServiceName;
  method: string;
  /** Path without query string (queries may carry secrets). */
  path: string;
  status?: number;
  /** First few hundred bytes of the response body. */
  body?: string;
  /** x-openstack-request-id of the response, when the service sent one. */
  remoteRequestId?: string;
  fields?: ErrorFields;
  cause?: unknown;
}

export class HttpError extends AgentError {
  readonly service: ServiceName;
  readonly method: string;
  readonly path: string;
  readonly status: number | undefined;
  readonly body: string | undefined;
  readonly remoteRequestId: string | undefined;

  constructor(message: string, d: HttpErrorDetails) {
    super(message, {
      cause: d.cause,
      fields: { ...d.fields, service: d.service, ...(d.status === undefined ? {} : { status: d.status }) },
    });
    this.service = d.service;
    this.method = d.method;
    this.path = d.path;
    this.status = d.status;
    this.body = d.body;
    this.remoteRequestId = d.remoteRequestId;
  }
}

/** 404 */
export class NotFoundError extends HttpError {}
/** 409 */
export class ConflictError extends HttpError {}
/** 401 / 403 */
export class UnauthorizedError extends HttpError {}
/** 5xx, connection refused, socket missing, timeouts: the service is down or failing; retryable. */
export class UnavailableError extends HttpError {}

/** Picks the class for a status (undefined status = no answer at all). */
export function httpErrorFor(d: HttpErrorDetails): HttpError {
  const what = `${d.service} ${d.method} ${d.path}`;
  const s = d.status;
  const suffix = d.body ? `: ${d.body.slice(0, 300)}` : '';
  if (s === undefined) return new UnavailableError(`${what}: no answer${suffix}`, d);
  if (s === 404) return new NotFoundError(`${what}: not found (404)${suffix}`, d);
  if (s === 409) return new ConflictError(`${what}: conflict (409)${suffix}`, d);
  if (s === 401 || s === 403) return new UnauthorizedError(`${what}: unauthorized (${s})${suffix}`, d);
  if (s >= 500) return new UnavailableError(`${what}: server error (${s})${suffix}`, d);
  return new HttpError(`${what}: HTTP ${s}${suffix}`, d);
}
