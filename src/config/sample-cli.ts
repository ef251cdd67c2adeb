/**
 * Generates the option documentation from the table in options.ts.
 *   node dist/src/config/sample-cli.js            sample file to stdout
 *   node dist/src/config/sample-cli.js --write    rewrite etc/nova-docker.conf.sample
 *                                                 and the reference in docs/configuration.md
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderMarkdownReference, renderSample } from './render.js';

export const SAMPLE_PATH = 'etc/nova-docker.conf.sample';
export const DOCS_PATH = 'docs/configuration.md';
export const BEGIN_MARKER = '<!-- BEGIN GENERATED OPTION REFERENCE (npm run gen-config) -->';
export const END_MARKER = '<!-- END GENERATED OPTION REFERENCE -->';

/** `doc` with the text between the markers replaced by the generated reference. */
export function withReference(doc: string): string {
  const begin = doc.indexOf(BEGIN_MARKER);
  const end = doc.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error(`${DOCS_PATH} lacks the generated-reference markers`);
  return `${doc.slice(0, begin + BEGIN_MARKER.length)}\n\n${renderMarkdownReference()}\n${doc.slice(end)}`;
}

function main(argv: string[]): void {
  if (!argv.includes('--write')) {
    process.stdout.write(renderSample());
    return;
  }
  const root = new URL('../../../', import.meta.url);
  writeFileSync(new URL(SAMPLE_PATH, root), renderSample());
  const docs = new URL(DOCS_PATH, root);
  writeFileSync(docs, withReference(readFileSync(docs, 'utf8')));
  process.stdout.write(`wrote ${SAMPLE_PATH} and ${DOCS_PATH}\n`);
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  try {
    return entry !== undefined && realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) main(process.argv.slice(2));
