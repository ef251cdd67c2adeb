/** Shared nock fixtures for the client unit tests (fake services on unused loopback ports). */
import nock from 'nock';

export const KEYSTONE = 'http://127.0.0.1:65001';
export const GLANCE = 'http://127.0.0.1:65002';
export const GLANCE_OTHER_REGION = 'http://127.0.0.1:65003';
export const REGISTRY = 'http://127.0.0.1:65004';

export const KS_OPTS = {
  authUrl: `${KEYSTONE}/v3`,
  username: 'nova',
  password: 's3cret-pw',
  projectName: 'service',
  userDomainName: 'Default',
  projectDomainName: 'Default',
  regionName: 'RegionOne',
};

export function tokenBody(expiresAt: Date): Record<string, unknown> {
  return {
    token: {
      expires_at: expiresAt.toISOString(),
      issued_at: new Date().toISOString(),
      catalog: [
        {
          type: 'image',
          name: 'glance',
          endpoints: [
            { interface: 'public', region: 'RegionOne', region_id: 'RegionOne', url: `${GLANCE}/` },
            { interface: 'internal', region: 'RegionTwo', region_id: 'RegionTwo', url: GLANCE_OTHER_REGION },
            { interface: 'admin', region: 'RegionOne', region_id: 'RegionOne', url: 'http://127.0.0.1:65009' },
          ],
        },
        { type: 'identity', endpoints: [{ interface: 'public', region_id: 'RegionOne', url: `${KEYSTONE}/v3` }] },
      ],
    },
  };
}

/** Answers one POST /v3/auth/tokens with `token`; counts calls in `counter.n`. */
export function mockAuth(token: string, opts: { expiresInMs?: number; counter?: { n: number } } = {}): nock.Scope {
  return nock(KEYSTONE)
    .post('/v3/auth/tokens')
    .reply(function () {
      if (opts.counter) opts.counter.n++;
      return [201, tokenBody(new Date(Date.now() + (opts.expiresInMs ?? 3600_000))), { 'X-Subject-Token': token }];
    });
}

export function setupNock(): void {
  before(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  after(() => nock.enableNetConnect());
}
