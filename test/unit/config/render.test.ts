import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadConfig, parseIni, renderConfig, renderSample } from '../../../src/config/index.js';
import { loadConfigWith } from '../../../src/config/loader.js';
import { OPTIONS } from '../../../src/config/options.js';
import { DOCS_PATH, SAMPLE_PATH, withReference } from '../../../src/config/sample-cli.js';
import { TmpDir } from './tmp.js';

const ROOT = new URL('../../../../', import.meta.url);

describe('config/render', () => {
  let tmp: TmpDir;
  beforeEach(() => {
    tmp = new TmpDir();
  });
  afterEach(() => tmp.cleanup());

  it('renderConfig masks secrets, including the password inside transport_url', () => {
    const file = tmp.write(
      'nova.conf',
      '[DEFAULT]\ntransport_url = rabbit://openstack:s3cr%23t@127.0.0.1:5672/\n' +
        '[docker]\nregistry_username = reg\nregistry_password = hunter2\n[placement]\npassword = pl4cement\nusername = nova\n',
    );
    const text = renderConfig(loadConfig({ configFiles: [file] }));
    assert.match(text, /^transport_url = rabbit:\/\/openstack:\*\*\*@127\.0\.0\.1:5672\/$/m);
    assert.match(text, /^registry_password = \*\*\*$/m);
    assert.match(text, /^registry_username = reg$/m);
    assert.match(text, /^username = nova$/m);
    assert.match(text, /^#ca_file = <None>$/m);
    for (const secret of ['s3cr', 'hunter2', 'pl4cement']) assert.ok(!text.includes(secret), secret);
  });

  it('renderConfig output reads back to the same values (secrets aside)', () => {
    const file = tmp.write(
      'nova.conf',
      '[DEFAULT]\ntransport_url = rabbit://u@h/\nmy_ip = " padded "\nlog_file = a\n  b\n[docker]\ncap_add = A,B\n',
    );
    const config = loadConfig({ configFiles: [file] });
    const again = loadConfig({ configFiles: [tmp.write('again.conf', renderConfig(config))] });
    assert.deepEqual(again, config);
  });

  it('the sample is valid INI that loads to the defaults', () => {
    const sample = renderSample();
    assert.ok(parseIni(sample).length > 1);
    const file = tmp.write('sample.conf', sample);
    assert.deepEqual(
      loadConfigWith(
        OPTIONS.filter((o) => o.name !== 'transport_url'),
        { configFiles: [file] },
      ).docker,
      loadConfigWith(
        OPTIONS.filter((o) => o.name !== 'transport_url'),
        { configFiles: [] },
      ).docker,
    );
  });

  it(`${SAMPLE_PATH} is up to date (run: npm run build && npm run gen-config)`, () => {
    assert.equal(readFileSync(new URL(SAMPLE_PATH, ROOT), 'utf8'), renderSample());
  });

  it(`${DOCS_PATH} option reference is up to date (run: npm run build && npm run gen-config)`, () => {
    const doc = readFileSync(new URL(DOCS_PATH, ROOT), 'utf8');
    assert.equal(doc, withReference(doc));
  });
});
