#!/usr/bin/env node
/** nova-docker command line: wiring only. */
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, parseArgs, renderConfig } from './config/index.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const USAGE = `usage: nova-docker [--help] [--version] <command> [options]

commands:
  compute --config-file F [--config-file F2 ...] [--config-dir D]
                      run the compute agent (replaces nova-compute on this host)
  check-config --config-file F [--config-file F2 ...] [--config-dir D]
                      validate the configuration and print it, secrets masked
`;

function printConfigError(err: ConfigError): void {
  process.stderr.write(`nova-docker: invalid configuration:\n${err.problems.map((p) => `  ${p}\n`).join('')}`);
}

/** `check-config`: 0 and the effective config on stdout, 1 and every problem on stderr, 2 on usage errors. */
function checkConfig(args: string[]): number {
  let parsed;
  try {
    parsed = parseArgs(args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`nova-docker check-config: ${err.problems.join('; ')}\n${USAGE}`);
    return 2;
  }
  if (parsed.rest.length > 0) {
    process.stderr.write(`nova-docker check-config: unexpected argument ${parsed.rest[0]}\n${USAGE}`);
    return 2;
  }
  if (parsed.configFiles.length === 0 && parsed.configDirs.length === 0) {
    process.stderr.write(`nova-docker check-config: give at least one --config-file or --config-dir\n${USAGE}`);
    return 2;
  }
  try {
    const config = loadConfig({
      configFiles: parsed.configFiles,
      configDirs: parsed.configDirs,
      warn: (message) => process.stderr.write(`nova-docker: warning: ${message}\n`),
    });
    process.stdout.write(renderConfig(config));
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printConfigError(err);
    return 1;
  }
}

function main(argv: string[]): number {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version') {
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  switch (command) {
    case 'check-config':
      return checkConfig(args);
    // case 'compute': the compute agent — load the config with parseArgs + loadConfig
    // (printConfigError and exit 1 on ConfigError), then start the service.
    default:
      process.stderr.write(`nova-docker: unknown command ${command}\n${USAGE}`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
