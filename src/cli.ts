#!/usr/bin/env node
/** nova-docker command line: wiring only. */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const USAGE = `usage: nova-docker [--help] [--version] <command> [options]

commands:
  compute --config-file F [--config-file F2 ...] [--config-dir D]
                      run the compute agent (replaces nova-compute on this host)
  check-config --config-file F ...
                      validate the configuration and print it, secrets masked
`;

function main(argv: string[]): number {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  process.stderr.write(`nova-docker: unknown command ${argv[0]}\n${USAGE}`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
