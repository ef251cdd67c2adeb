#!/usr/bin/env node
/** nova-docker command line: wiring only. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, loadConfig, parseArgs, renderConfig, type Config } from './config/index.js';
import { errorMessage } from './common/errors.js';
import { logFilePath } from './common/log.js';
import { runCompute } from './main.js';
import { parseSyncArgs, runRegistrySync, SYNC_USAGE, type SyncArgs } from './registry-sync.js';
import { formatStatusJson, formatStatusTable, gatherStatus } from './status.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const USAGE = `usage: nova-docker [--help] [--version] <command> [options]

commands:
  compute --config-file F [--config-file F2 ...] [--config-dir D]
                      run the compute agent (replaces nova-compute on this host)
  check-config --config-file F [--config-file F2 ...] [--config-dir D]
                      validate the configuration and print it, secrets masked
  status --config-file F [...] [--format table|json]
                      this host's containers with their Nova instance names and
                      states (Docker only, with a note, when RabbitMQ does not answer)
${SYNC_USAGE}`;

function printConfigError(err: ConfigError): void {
  process.stderr.write(`nova-docker: invalid configuration:\n${err.problems.map((p) => `  ${p}\n`).join('')}`);
}

/**
 * Parses `--config-file`/`--config-dir` and loads them; a number is the exit
 * code of a failure. `extra` gets the other arguments (else they are usage
 * errors) and answers a usage error, if any.
 */
function loadFromArgs(
  command: string,
  args: string[],
  extra?: (rest: string[]) => string | undefined,
): Config | number {
  let parsed;
  try {
    parsed = parseArgs(args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`nova-docker ${command}: ${err.problems.join('; ')}\n${USAGE}`);
    return 2;
  }
  const extraError = extra ? extra(parsed.rest) : undefined;
  if (extraError !== undefined) {
    process.stderr.write(`nova-docker ${command}: ${extraError}\n${USAGE}`);
    return 2;
  }
  if (!extra && parsed.rest.length > 0) {
    process.stderr.write(`nova-docker ${command}: unexpected argument ${parsed.rest[0]}\n${USAGE}`);
    return 2;
  }
  if (parsed.configFiles.length === 0 && parsed.configDirs.length === 0) {
    process.stderr.write(`nova-docker ${command}: give at least one --config-file or --config-dir\n${USAGE}`);
    return 2;
  }
  try {
    return loadConfig({
      configFiles: parsed.configFiles,
      configDirs: parsed.configDirs,
      warn: (message) => process.stderr.write(`nova-docker: warning: ${message}\n`),
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printConfigError(err);
    return 1;
  }
}

/**
 * `check-config`: 0 and the effective config on stdout, 1 and every problem on
 * stderr, 2 on usage errors. The last line names the file the compute agent
 * logs to (log_file, log_dir), so scripts point at the log the agent writes.
 */
function checkConfig(args: string[]): number {
  const config = loadFromArgs('check-config', args);
  if (typeof config === 'number') return config;
  const logFile = logFilePath(config.DEFAULT.log_file, config.DEFAULT.log_dir);
  process.stdout.write(`${renderConfig(config)}\n# the compute agent logs to ${logFile ?? 'stderr'}\n`);
  return 0;
}

/** `status`: 0 and the report on stdout; 1 when Docker does not answer; 2 on usage errors. */
async function status(args: string[]): Promise<number> {
  let format = 'table';
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const m = /^--format(?:=(.*))?$/.exec(arg);
    if (!m) {
      rest.push(arg);
      continue;
    }
    format = m[1] ?? args[++i] ?? '';
  }
  if (format !== 'table' && format !== 'json') {
    process.stderr.write(`nova-docker status: --format must be table or json\n${USAGE}`);
    return 2;
  }
  const config = loadFromArgs('status', rest);
  if (typeof config === 'number') return config;
  let report;
  try {
    report = await gatherStatus(config);
  } catch (err) {
    process.stderr.write(`nova-docker status: Docker did not answer: ${errorMessage(err)}\n`);
    return 1;
  }
  process.stdout.write(format === 'json' ? formatStatusJson(report) : formatStatusTable(report));
  return 0;
}

/** `compute`: runs the agent until SIGTERM. */
async function compute(args: string[]): Promise<number> {
  const config = loadFromArgs('compute', args);
  if (typeof config === 'number') return config;
  if (!config.DEFAULT.transport_url) {
    process.stderr.write(
      'nova-docker: invalid configuration:\n  [DEFAULT] transport_url: required to run the compute agent\n',
    );
    return 1;
  }
  // compute_id is also looked for next to the config files, as nova does (DevStack writes /etc/nova/compute_id)
  const configDirs = [...new Set(parseArgs(args).configFiles.map((f) => dirname(resolve(f))))];
  return await runCompute(config, pkg.version, configDirs);
}

/** `registry-sync`: one pass (exit 0, or 1 when an action failed), or `--watch` until a signal. */
async function registrySync(args: string[]): Promise<number> {
  const parsed: { args?: SyncArgs } = {};
  const config = loadFromArgs('registry-sync', args, (rest) => {
    const r = parseSyncArgs(rest);
    if (typeof r === 'string') return r;
    parsed.args = r;
    return undefined;
  });
  if (typeof config === 'number') return config;
  if (!parsed.args) return 2;
  try {
    return await runRegistrySync(config, parsed.args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printConfigError(err);
    return 1;
  }
}

async function main(argv: string[]): Promise<number> {
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
    case 'compute':
      return await compute(args);
    case 'registry-sync':
      return await registrySync(args);
    case 'status':
      return await status(args);
    default:
      process.stderr.write(`nova-docker: unknown command ${command}\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
