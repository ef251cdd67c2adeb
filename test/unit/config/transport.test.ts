import assert from 'node:assert/strict';
import { ConfigError, maskUrl, parseTransportUrl } from '../../../src/config/index.js';

function problem(url: string): string {
  try {
    parseTransportUrl(url);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, 1);
    return err.problems[0] ?? '';
  }
  assert.fail(`expected ${url} to be rejected`);
}

describe('config/transport', () => {
  it('parses a single host with defaults: port 5672, vhost /', () => {
    const t = parseTransportUrl('rabbit://openstack:secret@10.0.0.1');
    assert.deepEqual(t.hosts, [{ host: '10.0.0.1', port: 5672, username: 'openstack', password: 'secret' }]);
    assert.equal(t.virtualHost, '/');
    assert.equal(t.ssl, false);
    assert.equal(t.scheme, 'rabbit');
    assert.equal(parseTransportUrl('rabbit://u:p@h:5672/').virtualHost, '/');
    assert.equal(parseTransportUrl('rabbit://u:p@h:5672//').virtualHost, '/');
  });

  it('parses several comma-separated hosts and a virtual host', () => {
    const t = parseTransportUrl('rabbit://u:p@h1:5673,u2:p2@h2,h3:5674/nova');
    assert.deepEqual(t.hosts, [
      { host: 'h1', port: 5673, username: 'u', password: 'p' },
      { host: 'h2', port: 5672, username: 'u2', password: 'p2' },
      { host: 'h3', port: 5674, username: undefined, password: undefined },
    ]);
    assert.equal(t.virtualHost, 'nova');
  });

  it('percent-decodes user, password and virtual host', () => {
    const t = parseTransportUrl('rabbit://us%40er:p%23ss%3Aw%2Fo%3Frd%25@h/%2Fprod%20vh');
    assert.deepEqual(t.hosts[0], { host: 'h', port: 5672, username: 'us@er', password: 'p#ss:w/o?rd%' });
    assert.equal(t.virtualHost, '/prod vh');
    // a password may hold a raw ':' and '@' (split at the first ':' and the last '@')
    assert.deepEqual(parseTransportUrl('rabbit://u:a:b@c@h').hosts[0], {
      host: 'h',
      port: 5672,
      username: 'u',
      password: 'a:b@c',
    });
  });

  it('reads ssl from the query, overriding the [oslo_messaging_rabbit] default', () => {
    assert.equal(parseTransportUrl('rabbit://u:p@h/?ssl=1').ssl, true);
    assert.equal(parseTransportUrl('rabbit://u:p@h/?ssl=true').ssl, true);
    assert.equal(parseTransportUrl('rabbit://u:p@h/', { ssl: true }).ssl, true);
    assert.equal(parseTransportUrl('rabbit://u:p@h/?ssl=off', { ssl: true }).ssl, false);
    assert.deepEqual(parseTransportUrl('rabbit://u:p@h/?a=1&a=2&b=x+y&empty=').query, { a: '1,2', b: 'x y' });
  });

  it('parses bracketed IPv6 hosts', () => {
    assert.deepEqual(parseTransportUrl('rabbit://u:p@[fd00::1]:5671,[::1]/').hosts, [
      { host: 'fd00::1', port: 5671, username: 'u', password: 'p' },
      { host: '::1', port: 5672, username: undefined, password: undefined },
    ]);
  });

  it('rejects invalid URLs, naming [DEFAULT] transport_url and masking the password', () => {
    const cases: [string, RegExp][] = [
      ['rabbit://u:hunter2@h:abc/', /host 1 has an invalid port "abc"/],
      ['rabbit://u:hunter2@h:0/', /out-of-range port 0/],
      ['rabbit://u:hunter2@/', /host 1 has no host name/],
      ['rabbit:///', /names no broker host/],
      ['rabbit://u:hunter2@[::1/', /unclosed '\['/],
      ['amqp://u:hunter2@h/', /only rabbit:\/\//],
      ['no-scheme', /has no scheme/],
      ['rabbit://u:hunt#er2@h/', /write a '#' .* as %23/],
      ['rabbit://u:hunter2@h/?ssl=maybe', /ssl="maybe", which is not a boolean/],
    ];
    for (const [url, re] of cases) {
      const p = problem(url);
      assert.match(p, /^\[DEFAULT\] transport_url: /, p);
      assert.match(p, re, p);
      assert.ok(!p.includes('hunter2') && !p.includes('er2'), p);
    }
  });

  it('masks every password of a URL, even malformed ones', () => {
    assert.equal(maskUrl('rabbit://openstack:secret@127.0.0.1:5672/'), 'rabbit://openstack:***@127.0.0.1:5672/');
    assert.equal(
      maskUrl('rabbit://u:p@h1:5672,u2:p2@h2:5672/vhost?ssl=1'),
      'rabbit://u:***@h1:5672,u2:***@h2:5672/vhost?ssl=1',
    );
    assert.equal(maskUrl('rabbit://u:pa#ss,w@rd@h/'), 'rabbit://u:***@h/');
    assert.equal(maskUrl('rabbit://h1,h2/'), 'rabbit://h1,h2/');
    assert.equal(maskUrl('unix:///var/run/docker.sock'), 'unix:///var/run/docker.sock');
  });
});
