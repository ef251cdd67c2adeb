/**
 * DockerClient over tcp+TLS against a local https server (127.0.0.1) with a
 * throw-away self-signed certificate: verification is on by default, `ca`
 * trusts it, `insecure` skips it, client certificates are sent.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { DockerClient } from '../../../src/clients/docker/client.js';
import { UnavailableError } from '../../../src/clients/errors.js';

describe('clients/docker DockerClient over TLS', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let server: https.Server;
  let port: number;
  const clientCerts: (string | undefined)[] = [];

  before(async () => {
    nock.enableNetConnect();
    dir = mkdtempSync(join(tmpdir(), 'nova-docker-tls-'));
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    server = https.createServer(
      {
        key: readFileSync(key),
        cert: readFileSync(cert),
        ca: readFileSync(cert),
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        clientCerts.push(peer && Object.keys(peer).length ? String(peer.subject.CN) : undefined);
        res.setHeader('Content-Type', 'application/json');
        if (req.url === '/version') res.end(JSON.stringify({ Version: '20.10.24', ApiVersion: '1.41' }));
        else if (req.url === '/v1.41/info') res.end(JSON.stringify({ ServerVersion: '20.10.24' }));
        else {
          res.statusCode = 404;
          res.end(JSON.stringify({ message: 'page not found' }));
        }
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies the server certificate by default: an untrusted one is refused', async () => {
    const c = new DockerClient({ baseURL: `tcp://127.0.0.1:${port}`, tls: {} });
    await assert.rejects(c.info(), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /self.signed|certificate/i);
      return true;
    });
  });

  it('trusts the given CA; sends the client certificate', async () => {
    const c = new DockerClient({ baseURL: `tcp://127.0.0.1:${port}`, tls: { ca: cert, cert, key } });
    assert.equal((await c.info()).ServerVersion, '20.10.24');
    assert.equal(clientCerts.at(-1), 'localhost');
  });

  it('insecure skips verification', async () => {
    const c = new DockerClient({ baseURL: `https://127.0.0.1:${port}`, tls: { insecure: true } });
    assert.equal((await c.info()).ServerVersion, '20.10.24');
  });
});
