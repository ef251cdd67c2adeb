/**
 * DockerDriver.initHost tells a Docker Engine that does not answer yet
 * (HypervisorUnavailable: the agent waits for it) from one that refuses the
 * agent or is no Docker Engine (HypervisorRefusedError: waiting would not
 * help), over a real unix socket where it can and a client stub for the
 * errors root cannot provoke (permission denied) or that need a TLS peer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nock from 'nock';
import { DockerClient } from '../../../src/clients/docker/client.js';
import { httpErrorFor } from '../../../src/clients/errors.js';
import { HttpRequestError } from '../../../src/clients/http.js';
import { NovaError } from '../../../src/common/errors.js';
import { DockerDriver } from '../../../src/virt/docker/driver.js';
import type { ImageResolver } from '../../../src/virt/docker/image-resolver.js';
import { HypervisorRefusedError } from '../../../src/virt/errors.js';

const HOST = 'init-host-test';
const resolver = {} as ImageResolver;

function driverOn(docker: DockerClient): DockerDriver {
  return new DockerDriver(docker, resolver, { host: HOST });
}

const unavailable = (err: unknown): boolean => {
  assert.ok(err instanceof NovaError, String(err));
  assert.equal(err.novaClass, 'HypervisorUnavailable');
  return true;
};

/** A client whose version calls fail the way the socket call does with Node error `code` (nothing is dialled). */
class FailingClient extends DockerClient {
  constructor(private readonly err: Error) {
    super({ socketPath: '/nonexistent/docker.sock' });
  }
  override version(): Promise<never> {
    return Promise.reject(this.err);
  }
  override apiPrefix(): Promise<never> {
    return Promise.reject(this.err);
  }
}

function failingWith(code: string): DockerClient {
  return new FailingClient(
    httpErrorFor({
      service: 'docker',
      method: 'GET',
      path: '/version',
      body: `${code} connect ${code}`,
      cause: new HttpRequestError(`connect ${code}`, { code, method: 'GET', path: '/version' }),
    }),
  );
}

describe('virt/docker initHost: wait or give up', () => {
  let dir: string;
  let server: Server | undefined;
  let status = 200;

  before(() => {
    nock.enableNetConnect();
    dir = mkdtempSync(join(tmpdir(), 'nd-init-host-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });

  async function listen(path: string): Promise<void> {
    server = createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? JSON.stringify({ Version: '26.1.5', ApiVersion: '1.45' }) : '{"message":"nope"}');
    });
    await new Promise<void>((r) => server?.listen(path, r));
  }

  it('no socket yet, or nothing listening: HypervisorUnavailable (wait)', async () => {
    await assert.rejects(
      driverOn(new DockerClient({ socketPath: join(dir, 'none.sock') })).initHost(HOST),
      unavailable,
    );
    await assert.rejects(driverOn(failingWith('ECONNREFUSED')).initHost(HOST), unavailable);
  });

  it('an Engine that answers 5xx (starting, failing): HypervisorUnavailable (wait)', async () => {
    const path = join(dir, 'e500.sock');
    status = 500;
    await listen(path);
    await assert.rejects(driverOn(new DockerClient({ socketPath: path })).initHost(HOST), unavailable);
  });

  it('something that is no Docker Engine (404 on /version): refused, waiting would not help', async () => {
    const path = join(dir, 'e404.sock');
    status = 404;
    await listen(path);
    await assert.rejects(driverOn(new DockerClient({ socketPath: path })).initHost(HOST), HypervisorRefusedError);
  });

  it('permission denied on the socket, or a certificate that does not verify: refused', async () => {
    for (const code of ['EACCES', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']) {
      await assert.rejects(driverOn(failingWith(code)).initHost(HOST), (err: unknown) => {
        assert.ok(err instanceof HypervisorRefusedError, `${code}: ${String(err)}`);
        assert.match(err.message, new RegExp(`^the Docker Engine cannot be used: .*${code}`));
        return true;
      });
    }
  });

  it('an Engine that answers: fine', async () => {
    const path = join(dir, 'ok.sock');
    status = 200;
    await listen(path);
    await driverOn(new DockerClient({ socketPath: path })).initHost(HOST);
  });
});
