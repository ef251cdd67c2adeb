/**
 * oslo.messaging transport URLs (TransportURL.parse + the rabbit driver's
 * defaults):
 *
 *   rabbit://user:pass@host:port[,userN:passN@hostN:portN]/virtual_host?query
 *
 * Hosts are comma separated, each with optional `user:pass@` (percent-decoded)
 * and optional port (default 5672); IPv6 hosts go in brackets. The path
 * (percent-decoded, without its leading `/`) is the virtual host; an empty
 * one means `/`. Query parameters override [oslo_messaging_rabbit] options of
 * the same name (`?ssl=1`).
 *
 * Python's urlparse ends the host list at the first `/`, `?` or `#`, so a
 * password containing one of them must be percent-encoded (`#` → `%23`);
 * we reject a `#` rather than silently connect somewhere else.
 */
import { ConfigError } from './errors.js';

export interface TransportHost {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

export interface TransportUrl {
  readonly scheme: string;
  readonly hosts: readonly TransportHost[];
  readonly virtualHost: string;
  readonly ssl: boolean;
  /** Query parameters (repeated ones joined with `,`, as oslo does). */
  readonly query: Readonly<Record<string, string>>;
}

export const DEFAULT_AMQP_PORT = 5672;
const MASK = '***';

/** Python urllib.parse.unquote: bad escapes stay as they are, bad UTF-8 becomes U+FFFD. */
export function unquote(s: string, plusIsSpace = false): string {
  const text = plusIsSpace ? s.replace(/\+/g, ' ') : s;
  if (!text.includes('%')) return text;
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) =>
    new TextDecoder().decode(Uint8Array.from(run.slice(1).split('%'), (h) => parseInt(h, 16))),
  );
}

/**
 * Masks the password of every `user:password@host` in a URL, including the
 * second and later hosts of a multi-host transport URL. Over-masks rather
 * than leaks when the URL is malformed (e.g. a raw `,` or `#` in a password).
 */
export function maskUrl(url: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)$/s.exec(url);
  if (m === null) return url;
  const prefix = m[1] ?? '';
  const rest = m[2] ?? '';
  const lastAt = rest.lastIndexOf('@');
  if (lastAt < 0) return url;
  // everything up to the last '@' plus the host after it
  const hostEnd = rest.slice(lastAt).search(/[/?]/);
  const authorityEnd = hostEnd < 0 ? rest.length : lastAt + hostEnd;
  const authority = rest.slice(0, authorityEnd);
  const out: string[] = [];
  let pending: string[] = [];
  for (const seg of authority.split(',')) {
    pending.push(seg);
    if (!seg.includes('@')) continue;
    const piece = pending.join(',');
    pending = [];
    const at = piece.lastIndexOf('@');
    const colon = piece.indexOf(':');
    out.push(colon >= 0 && colon < at ? `${piece.slice(0, colon + 1)}${MASK}${piece.slice(at)}` : piece);
  }
  out.push(...pending);
  return prefix + out.join(',') + rest.slice(authorityEnd);
}

const BOOL_TRUE = ['true', '1', 'on', 'yes'];
const BOOL_FALSE = ['false', '0', 'off', 'no'];

type Parsed = { ok: true; url: TransportUrl } | { ok: false; problem: string };

/** Parses without throwing; problems never contain the password. */
export function tryParseTransportUrl(url: string, defaults: { ssl?: boolean } = {}): Parsed {
  const bad = (problem: string): Parsed => ({ ok: false, problem: `${JSON.stringify(maskUrl(url))} ${problem}` });
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(url.trim());
  if (m === null) return bad('has no scheme (expected rabbit://...)');
  const scheme = (m[1] ?? '').toLowerCase();
  let rest = m[2] ?? '';
  if (scheme !== 'rabbit') return bad(`uses the ${scheme}:// transport; nova-docker speaks only rabbit://`);
  if (rest.includes('#')) {
    return bad("contains '#', which ends a URL; write a '#' in a user name or password as %23");
  }
  let netloc = '';
  if (rest.startsWith('//')) {
    rest = rest.slice(2);
    const end = rest.search(/[/?]/);
    netloc = end < 0 ? rest : rest.slice(0, end);
    rest = end < 0 ? '' : rest.slice(end);
  }
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const queryText = q < 0 ? '' : rest.slice(q + 1);

  const query: Record<string, string> = {};
  for (const part of queryText.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = unquote(eq < 0 ? part : part.slice(0, eq), true);
    const value = eq < 0 ? '' : unquote(part.slice(eq + 1), true);
    if (value === '') continue; // parse_qs drops blank values
    query[key] = key in query ? `${query[key]},${value}` : value;
  }

  const hosts: TransportHost[] = [];
  let index = 0;
  for (const item of netloc.split(',')) {
    if (item === '') continue;
    index++;
    let hostname = item;
    let username: string | undefined;
    let password: string | undefined;
    const at = item.lastIndexOf('@');
    if (at >= 0) {
      let user = item.slice(0, at);
      hostname = item.slice(at + 1);
      const colon = user.indexOf(':');
      if (colon >= 0) {
        password = unquote(user.slice(colon + 1));
        user = user.slice(0, colon);
      }
      username = unquote(user);
    }
    let portText: string | undefined;
    if (hostname.startsWith('[')) {
      const close = hostname.indexOf(']');
      if (close < 0) return bad(`host ${index} has an unclosed '[' (IPv6 address)`);
      const after = hostname.slice(close);
      portText = after.includes(':') ? after.slice(after.indexOf(':') + 1) : undefined;
      hostname = hostname.slice(1, close);
    } else if (hostname.includes(':')) {
      portText = hostname.slice(hostname.indexOf(':') + 1);
      hostname = hostname.slice(0, hostname.indexOf(':'));
    }
    if (hostname === '') return bad(`host ${index} has no host name`);
    let port = DEFAULT_AMQP_PORT;
    if (portText !== undefined && portText !== '') {
      if (!/^\d+$/.test(portText)) return bad(`host ${index} has an invalid port ${JSON.stringify(portText)}`);
      port = Number(portText);
      if (port < 1 || port > 65535) return bad(`host ${index} has an out-of-range port ${port}`);
    }
    hosts.push(Object.freeze({ host: hostname, port, username, password }));
  }
  if (hosts.length === 0) return bad('names no broker host');

  let ssl = defaults.ssl ?? false;
  const sslText = query['ssl'];
  if (sslText !== undefined) {
    const s = sslText.toLowerCase();
    if (BOOL_TRUE.includes(s)) ssl = true;
    else if (BOOL_FALSE.includes(s)) ssl = false;
    else return bad(`has ssl=${JSON.stringify(sslText)}, which is not a boolean`);
  }
  const vhost = path.startsWith('/') ? unquote(path.slice(1)) : '';
  return {
    ok: true,
    url: Object.freeze({
      scheme,
      hosts: Object.freeze(hosts),
      virtualHost: vhost === '' ? '/' : vhost,
      ssl,
      query: Object.freeze(query),
    }),
  };
}

/**
 * Parses a transport URL the way oslo.messaging does. `defaults.ssl` is
 * [oslo_messaging_rabbit] ssl, which a `?ssl=` query parameter overrides.
 * Throws ConfigError naming [DEFAULT] transport_url, password masked.
 */
export function parseTransportUrl(url: string, defaults: { ssl?: boolean } = {}): TransportUrl {
  const parsed = tryParseTransportUrl(url, defaults);
  if (!parsed.ok) throw new ConfigError([`[DEFAULT] transport_url: ${parsed.problem}`]);
  return parsed.url;
}
