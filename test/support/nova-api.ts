/**
 * Reads from the lab's nova-api over REST (loopback), for polling, and the
 * console output as Tempest asks for it: one HTTP round trip instead of a
 * CLI start-up per look, which on a loaded lab machine costs tens of
 * seconds. Actions still go through the stock CLI.
 */
import { KeystoneClient } from '../../src/clients/keystone/client.js';
import { pollUntil } from '../../src/common/poll.js';
import type { LabServer } from './lab.js';
import { LAB_ENDPOINTS } from './lab-env.js';

const NOVA = LAB_ENDPOINTS.nova;
const MICROVERSION = '2.37';

let keystone: KeystoneClient | undefined;

/** GET `path` (under /v2.1) as the lab admin; the parsed JSON body, or throws with the status. */
export async function novaGet<T>(path: string): Promise<T> {
  return await novaCall<T>('GET', path);
}

/** `os-getConsoleOutput` as Tempest's servers client sends it (length omitted: everything). */
export async function novaConsoleOutput(id: string, length?: number): Promise<string> {
  const body = { 'os-getConsoleOutput': length === undefined ? {} : { length } };
  return (await novaCall<{ output: string }>('POST', `/servers/${id}/action`, body)).output;
}

async function novaCall<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  keystone ??= new KeystoneClient({
    authUrl: LAB_ENDPOINTS.keystone,
    username: 'admin',
    password: 'labadmin',
    projectName: 'admin',
    userDomainName: 'Default',
    projectDomainName: 'Default',
  });
  const r = await fetch(`${NOVA}${path}`, {
    method,
    headers: {
      'X-Auth-Token': await keystone.getToken(),
      'OpenStack-API-Version': `compute ${MICROVERSION}`,
      Accept: 'application/json',
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(60_000),
  });
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

/** The server as `GET /servers/{id}` shows it (power_state is the integer). */
export async function novaServer(id: string): Promise<LabServer> {
  return (await novaGet<{ server: LabServer }>(`/servers/${id}`)).server;
}

/** Polls `GET /servers/{id}` every 250 ms until `done(server)` holds. */
export async function waitServerApi(
  id: string,
  done: (s: LabServer) => boolean,
  what: string,
  timeoutMs = 120_000,
): Promise<LabServer> {
  return await pollUntil(
    async () => {
      const s = await novaServer(id);
      return done(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 250, what: `server ${id}: ${what}` },
  );
}

export interface InstanceActionEvent {
  event: string;
  result?: string | null;
  traceback?: string | null;
  start_time?: string | null;
  finish_time?: string | null;
}

export interface InstanceAction {
  action: string;
  request_id: string;
  start_time?: string | null;
  message?: string | null;
  events?: InstanceActionEvent[];
}

/** The instance actions of a server, each with its events (admin sees them). */
export async function instanceActions(id: string): Promise<InstanceAction[]> {
  const list = await novaGet<{ instanceActions: InstanceAction[] }>(`/servers/${id}/os-instance-actions`);
  return await Promise.all(
    list.instanceActions.map(
      async (a) =>
        (await novaGet<{ instanceAction: InstanceAction }>(`/servers/${id}/os-instance-actions/${a.request_id}`))
          .instanceAction,
    ),
  );
}

/** A lab REST reply: the status, the body parsed when it is JSON (else undefined), the raw text and headers. */
export interface RestReply {
  status: number;
  body: unknown;
  text: string;
  headers: Headers;
}

export interface RestOptions {
  token?: string;
  /** JSON unless bytes. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * One request to a lab API (Keystone, Nova, Glance, Placement) for the benches and the fault suite, which
 * time or break the services and so read every status themselves: never throws on an HTTP status.
 */
export async function labRequest(method: string, url: string, opts: RestOptions = {}): Promise<RestReply> {
  const bytes = opts.body instanceof Uint8Array;
  const res = await fetch(url, {
    method,
    headers: {
      ...(opts.token ? { 'X-Auth-Token': opts.token } : {}),
      ...(opts.body !== undefined && !bytes ? { 'Content-Type': 'application/json' } : {}),
      ...opts.headers,
    },
    ...(opts.body === undefined ? {} : { body: bytes ? (opts.body as Uint8Array) : JSON.stringify(opts.body) }),
    signal: opts.signal ?? AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text, headers: res.headers };
}

/** A Keystone token of the lab admin scoped to `project`, with the user and project ids Keystone names. */
export async function labAdminToken(project = 'admin'): Promise<{ token: string; userId: string; projectId: string }> {
  const r = await labRequest('POST', `${LAB_ENDPOINTS.keystone}/auth/tokens`, {
    body: {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'admin', domain: { name: 'Default' }, password: 'labadmin' } },
        },
        scope: { project: { name: project, domain: { name: 'Default' } } },
      },
    },
    signal: AbortSignal.timeout(30_000),
  });
  const token = r.headers.get('x-subject-token');
  if (r.status !== 201 || !token) throw new Error(`keystone: HTTP ${r.status}, no token for project ${project}`);
  const b = r.body as { token?: { user?: { id?: string }; project?: { id?: string } } } | undefined;
  return { token, userId: b?.token?.user?.id ?? '', projectId: b?.token?.project?.id ?? '' };
}
