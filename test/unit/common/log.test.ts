import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLogger,
  logFilePath,
  MASK,
  redact,
  redactText,
  reopenLogFiles,
  type Logger,
} from '../../../src/common/log.js';
import { pollUntil } from '../../../src/common/poll.js';
import { contextFromValues, contextLogFields } from '../../../src/rpc/context.js';

describe('common/log redaction', () => {
  it('masks the password of a transport URL', () => {
    assert.equal(
      redactText('connecting to rabbit://openstack:s3cr#t@127.0.0.1:5672/'),
      `connecting to rabbit://openstack:${MASK}@127.0.0.1:5672/`,
    );
  });

  it('masks secret-named keys at any depth and leaves others', () => {
    const out = redact({ user: 'nova', password: 'pw', nested: { auth_token: 'gAAAA', roles: ['admin'] } });
    assert.deepEqual(out, { user: 'nova', password: MASK, nested: { auth_token: MASK, roles: ['admin'] } });
  });

  it('masks inline token assignments in free text', () => {
    assert.equal(
      redactText('X-Auth-Token: gAAAAabc and password=hunter2'),
      `X-Auth-Token: ${MASK} and password=${MASK}`,
    );
  });

  it('masks key=value, quoted key/value, header and query-string forms', () => {
    const cases: Array<[string, string]> = [
      ['admin_password=hunter2 next', `admin_password=${MASK} next`],
      ['GET /v2/x?auth_token=abc&limit=1', `GET /v2/x?auth_token=${MASK}&limit=1`],
      ['{"user": "nova", "password": "p\\"w", "x": 1}', `{"user": "nova", "password": "${MASK}", "x": 1}`],
      ["{'_context_auth_token': 'gAAAA', 'roles': []}", `{'_context_auth_token': '${MASK}', 'roles': []}`],
      [
        '{"oslo.message": "{\\"_context_auth_token\\": \\"gAAAA\\", \\"method\\": \\"ping\\"}"}',
        `{"oslo.message": "{\\"_context_auth_token\\": \\"${MASK}\\", \\"method\\": \\"ping\\"}"}`,
      ],
      ['curl -H "X-Subject-Token: gAAAA" -H "x"', `curl -H "X-Subject-Token: ${MASK}" -H "x"`],
      ['X-Registry-Auth: eyJwYXNz', `X-Registry-Auth: ${MASK}`],
      ['Authorization: Bearer abc.def', `Authorization: Bearer ${MASK}`],
      ['Authorization: Basic dXNlcjpwdw==', `Authorization: Basic ${MASK}`],
      ['{"client_secret":"s"}', `{"client_secret":"${MASK}"}`],
    ];
    for (const [input, want] of cases) assert.equal(redactText(input), want, input);
  });

  it('leaves prose that merely mentions a password or token alone', () => {
    for (const prose of [
      'the admin password: containers have none to set',
      'the admin password was ignored (containers have none to set)',
      'token expired: re-authenticating with Keystone',
      'Authorization: failed for user nova',
      'password reset requested; secret santa: none',
      'passwords: 3 given, token = not logged',
    ]) {
      assert.equal(redactText(prose), prose);
    }
  });
});

describe('common/log lines', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nd-log-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function lines(file: string, n: number): Promise<string[]> {
    return await pollUntil(
      () => {
        const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
        const got = text.split('\n').filter((l) => l !== '');
        return got.length >= n ? got : undefined;
      },
      { timeoutMs: 2000, intervalMs: 10, what: `${n} line(s) in ${file}` },
    );
  }

  function close(logger: Logger): void {
    for (const t of logger.transports) t.close?.();
  }

  it('writes oslo.log-shaped lines with the request context and instance', async () => {
    const file = join(dir, 'a.log');
    const logger = createLogger({ logFile: file });
    const ctx = contextFromValues({
      request_id: 'req-1f0c2f7a-0000-4000-8000-000000000001',
      global_request_id: null,
      user_id: 'u1',
      project_id: 'p1',
      user_identity: 'u1 p1 - default default',
      auth_token: 'gAAAAsecret',
    });
    const uuid = '6d1f5d0e-0c8f-4f0e-9a38-4f2c1c7f0001';
    logger.info('Starting instance...', {
      logger: 'nova_docker.compute.manager',
      ...contextLogFields(ctx),
      instance_uuid: uuid,
    });
    logger.warn('no context here', { logger: 'nova_docker.rpc' });
    logger.info('global id', {
      ...contextLogFields(contextFromValues({ request_id: 'req-2', global_request_id: 'req-g' })),
    });
    const [first, second, third] = await lines(file, 3);
    close(logger);
    assert.match(
      first ?? '',
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${process.pid} INFO nova_docker\\.compute\\.manager ` +
          `\\[None req-1f0c2f7a-0000-4000-8000-000000000001 u1 p1 - default default\\] ` +
          `\\[instance: ${uuid}\\] Starting instance\\.\\.\\.$`,
      ),
    );
    assert.match(second ?? '', / \d+ WARNING nova_docker\.rpc \[-\] no context here$/);
    assert.match(third ?? '', / INFO nova_docker \[req-g req-2 - - - - -\] global id$/);
    assert.ok(!readFileSync(file, 'utf8').includes('gAAAAsecret'));
  });

  it('masks secrets in messages and in extra fields', async () => {
    const file = join(dir, 'b.log');
    const logger = createLogger({ logFile: file });
    logger.info('login with password=hunter2', { body: { auth: { password: 'pw2', name: 'nova' } } });
    const [line] = await lines(file, 1);
    close(logger);
    assert.ok(line?.includes(`password=${MASK}`), line);
    assert.ok(line?.includes(`{"body":{"auth":{"password":"${MASK}","name":"nova"}}}`), line);
    assert.ok(!line?.includes('hunter2') && !line?.includes('pw2'));
  });

  it('logs DEBUG only when debug is on', async () => {
    const quiet = join(dir, 'quiet.log');
    const loud = join(dir, 'loud.log');
    for (const [file, debug] of [
      [quiet, false],
      [loud, true],
    ] as const) {
      const logger = createLogger({ logFile: file, debug });
      logger.debug('a debug line');
      logger.info('an info line');
      await lines(file, 1);
      close(logger);
    }
    assert.ok(!readFileSync(quiet, 'utf8').includes('a debug line'));
    assert.match((await lines(loud, 2))[0] ?? '', / DEBUG nova_docker \[-\] a debug line$/);
  });

  it('combines log_file and log_dir as oslo does', () => {
    assert.equal(logFilePath(undefined, undefined), undefined);
    assert.equal(logFilePath('/var/log/nova/a.log', undefined), '/var/log/nova/a.log');
    assert.equal(logFilePath('a.log', '/var/log/nova'), '/var/log/nova/a.log');
    assert.equal(logFilePath('/var/log/nova/compute.log', '/var/log/nova'), '/var/log/nova/compute.log');
    assert.equal(logFilePath(undefined, '/var/log/nova'), '/var/log/nova/nova-docker.log');
  });

  it('reopens its file after a rotation (SIGHUP)', async () => {
    const file = join(dir, 'r.log');
    const logger = createLogger({ logDir: dir, logFile: 'r.log' });
    logger.info('before rotation');
    await lines(file, 1);
    renameSync(file, `${file}.1`);
    assert.deepEqual(reopenLogFiles(logger), [file]);
    logger.info('after rotation');
    const [after] = await lines(file, 1);
    close(logger);
    assert.match(after ?? '', /after rotation$/);
    assert.match(readFileSync(`${file}.1`, 'utf8'), /before rotation\n$/);
  });
});
