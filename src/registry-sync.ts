/**
 * `nova-docker registry-sync`: wiring and the run loop around
 * syncRegistry (src/virt/docker/registry-sync.ts). One pass by default; with
 * `--watch`, a pass every `--interval` seconds until SIGTERM/SIGINT.
 *
 * stdout carries one line per action and a summary line per pass; logs go to
 * stderr (or [DEFAULT] log_file).
 */
import type { Config } from './config/index.js';
import { createLogger, type Logger } from './common/log.js';
import { errorMessage } from './common/errors.js';
import type { ImageCreate } from './clients/glance/client.js';
import {
  formatReport,
  formatSummary,
  syncRegistry,
  type SyncDeps,
  type SyncReport,
} from './virt/docker/registry-sync.js';
import { buildRegistrySync } from './wiring.js';

const LOGGER = 'nova_docker.registry_sync';
const VISIBILITIES = ['public', 'private', 'shared', 'community'] as const;

export interface SyncArgs {
  watch: boolean;
  /** Seconds between the starts of two passes. */
  intervalS: number;
  /** `--repo PATTERN`, repeatable. */
  repositories: string[];
  visibility: NonNullable<ImageCreate['visibility']>;
}

export const SYNC_USAGE = `  registry-sync --config-file F [--watch [--interval S]] [--repo PATTERN ...] [--visibility V]
                      register every repo:tag of [docker] registry_url as a Glance image
                      (--interval default 60 s; --repo globs with *; --visibility default public)
`;

/** Parses what is left after `--config-file`/`--config-dir`; a string is the usage error. */
export function parseSyncArgs(rest: readonly string[]): SyncArgs | string {
  const out: SyncArgs = { watch: false, intervalS: 60, repositories: [], visibility: 'public' };
  let intervalGiven = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const m = /^(--[a-z-]+)(?:=(.*))?$/s.exec(arg);
    const flag = m?.[1];
    const value = (): string | undefined => {
      if (m?.[2] !== undefined) return m[2];
      const next = rest[i + 1];
      if (next === undefined || next.startsWith('--')) return undefined;
      i++;
      return next;
    };
    switch (flag) {
      case '--watch':
        if (m?.[2] !== undefined) return '--watch takes no value';
        out.watch = true;
        break;
      case '--interval': {
        const v = value();
        const n = Number(v);
        if (v === undefined || v.trim() === '' || !Number.isFinite(n) || n <= 0) {
          return `--interval needs a positive number of seconds, not ${JSON.stringify(v ?? '')}`;
        }
        out.intervalS = n;
        intervalGiven = true;
        break;
      }
      case '--repo': {
        const v = value();
        if (!v) return '--repo needs a repository name or pattern';
        out.repositories.push(v);
        break;
      }
      case '--visibility': {
        const v = value();
        const vis = VISIBILITIES.find((x) => x === v);
        if (!vis) return `--visibility must be one of ${VISIBILITIES.join(', ')}`;
        out.visibility = vis;
        break;
      }
      default:
        return `unexpected argument ${arg}`;
    }
  }
  if (intervalGiven && !out.watch) return '--interval needs --watch';
  return out;
}

/** A sleep that ends early when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/**
 * Runs the passes. `write` gets the stdout lines. One-shot: 0 when no action
 * failed, else 1. Watch: 0 after a signal; failed passes are logged and the
 * loop goes on.
 */
export async function runSyncLoop(
  deps: SyncDeps,
  args: SyncArgs,
  write: (line: string) => void,
  logger: Logger,
  signal: AbortSignal,
): Promise<number> {
  const opts = { repositories: args.repositories, visibility: args.visibility, signal };
  if (!args.watch) {
    let reports: SyncReport[];
    try {
      reports = await syncRegistry({ ...deps, logger }, opts);
    } catch (err) {
      logger.error(`registry-sync failed: ${errorMessage(err)}`, { logger: LOGGER });
      write(`registry-sync: failed: ${errorMessage(err)}`);
      return 1;
    }
    for (const r of reports) write(formatReport(r));
    write(formatSummary(reports));
    return reports.some((r) => r.action === 'failed') ? 1 : 0;
  }
  logger.info(`watching ${deps.registry.host} every ${args.intervalS} s`, { logger: LOGGER });
  /** removed-upstream images already printed (each is printed once while it stays removed). */
  let removedSeen = new Set<string>();
  while (!signal.aborted) {
    const started = Date.now();
    try {
      const reports = await syncRegistry({ ...deps, logger }, opts);
      const removedNow = new Set<string>();
      for (const r of reports) {
        if (r.action === 'unchanged') continue;
        if (r.action === 'removed-upstream') {
          const key = r.imageId ?? r.name;
          removedNow.add(key);
          if (removedSeen.has(key)) continue;
        }
        write(formatReport(r));
      }
      removedSeen = removedNow;
      if (!signal.aborted) write(formatSummary(reports));
    } catch (err) {
      logger.error(`registry-sync pass failed: ${errorMessage(err)}`, { logger: LOGGER });
      write(`registry-sync: pass failed: ${errorMessage(err)}`);
    }
    await sleep(Math.max(0, args.intervalS * 1000 - (Date.now() - started)), signal);
  }
  logger.info('registry-sync stopped', { logger: LOGGER });
  return 0;
}

/** `nova-docker registry-sync`: resolves with the exit code. */
export async function runRegistrySync(config: Config, args: SyncArgs): Promise<number> {
  const logger = createLogger({ debug: config.DEFAULT.debug, logFile: config.DEFAULT.log_file });
  const { registry, glance, authGroup } = buildRegistrySync(config, logger);
  logger.debug(`registry ${registry.baseURL}, Keystone credentials from [${authGroup}]`, { logger: LOGGER });
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) {
      // a second signal does not wait for a call that hangs (each is bounded by the 60 s client timeout)
      logger.warn(`Caught ${sig} again, exiting now`, { logger: LOGGER });
      process.exit(1);
    }
    logger.info(`Caught ${sig}, stopping after the step in progress`, { logger: LOGGER });
    ac.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await runSyncLoop(
      { registry, glance },
      args,
      (line) => process.stdout.write(`${line}\n`),
      logger,
      ac.signal,
    );
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
