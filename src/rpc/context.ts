/**
 * The request context that travels as `_context_*` keys (protocol ref §1.7).
 * The raw dict is kept so a context received from Nova is forwarded verbatim
 * on the calls made on its behalf (instance actions are found by request_id).
 */
import { randomUUID } from 'node:crypto';

export interface RequestContext {
  readonly request_id: string;
  readonly global_request_id: string | null;
  readonly user_id: string | null;
  readonly project_id: string | null;
  readonly roles: readonly string[];
  readonly is_admin: boolean;
  /** Keystone token of the caller: a secret, never logged. */
  readonly auth_token: string | null;
  /** Every context field as received or built, for re-encoding. */
  readonly values: Readonly<Record<string, unknown>>;
}

const PREFIX = '_context_';

export function newRequestId(): string {
  return `req-${randomUUID()}`;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

export function contextFromValues(values: Record<string, unknown>): RequestContext {
  const roles = Array.isArray(values.roles) ? values.roles.filter((r): r is string => typeof r === 'string') : [];
  return {
    request_id: str(values.request_id) ?? newRequestId(),
    global_request_id: str(values.global_request_id),
    user_id: str(values.user_id) ?? str(values.user),
    project_id: str(values.project_id) ?? str(values.project),
    roles,
    is_admin: values.is_admin === true,
    auth_token: str(values.auth_token),
    values,
  };
}

/** Pulls the `_context_*` keys out of an oslo message. */
export function contextFromMessage(message: Record<string, unknown>): RequestContext {
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(message)) if (k.startsWith(PREFIX)) values[k.slice(PREFIX.length)] = v;
  return contextFromValues(values);
}

/** The `_context_*` keys for an outgoing message. */
export function contextToMessageFields(ctx: RequestContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ctx.values)) out[PREFIX + k] = v;
  return out;
}

/** nova's `timestamp` context format: %Y-%m-%dT%H:%M:%S.%f, UTC, no zone suffix. */
function contextTimestamp(d = new Date()): string {
  return `${d.toISOString().slice(0, 23)}000`;
}

/** nova.context.get_admin_context(): what the agent uses for its own calls. */
export function adminContext(requestId = newRequestId()): RequestContext {
  return contextFromValues({
    user: null,
    project: null,
    system_scope: null,
    project_id: null,
    user_id: null,
    domain: null,
    user_domain: null,
    project_domain: null,
    is_admin: true,
    read_only: false,
    show_deleted: false,
    auth_token: null,
    request_id: requestId,
    global_request_id: null,
    resource_uuid: null,
    roles: [],
    user_identity: '- - - - -',
    is_admin_project: true,
    read_deleted: 'no',
    remote_address: null,
    timestamp: contextTimestamp(),
    quota_class: null,
    user_name: null,
    project_name: null,
    service_catalog: [],
  });
}

/** Log fields of a context: request ids and identity, never the token. */
export function contextLogFields(ctx: RequestContext): Record<string, string> {
  const identity = str(ctx.values.user_identity) ?? `${ctx.user_id ?? '-'} ${ctx.project_id ?? '-'} - - -`;
  return {
    request_id: ctx.request_id,
    ...(ctx.global_request_id ? { global_request_id: ctx.global_request_id } : {}),
    user_identity: identity,
  };
}
