/**
 * `nova-docker compute`: wiring only. Connects to the broker, registers the
 * host with Nova (service, compute node, Placement), serves the compute topic
 * and /metrics until SIGTERM/SIGINT, then stops consuming, lets handlers in
 * flight finish (bounded) and exits 0. SIGHUP reopens the log file.
 */
import type { Config } from './config/index.js';
import { createLogger, reopenLogFiles, type Logger } from './common/log.js';
import { errorMessage } from './common/errors.js';
import { baseApiEndpoint } from './rpc/baseapi.js';
import { messagingOptionsFromConfig } from './rpc/config.js';
import { Messaging } from './rpc/messaging.js';
import { placementReporter } from './compute/placement-reporter.js';
import { AgentMetrics } from './metrics/metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics/server.js';
import { buildAgent, type Agent } from './wiring.js';
import { ConductorAPI } from './objects/conductor.js';
import { describeControlPlane, resolveRelease } from './objects/release-select.js';
import { ZED, type NovaRelease } from './objects/releases.js';
import { adminContext } from './rpc/context.js';

const LOGGER = 'nova_docker.service';
/** How long SIGTERM waits for handlers in flight before closing. */
const DRAIN_MS = 30_000;

export interface RunningService {
  messaging: Messaging;
  /** The /metrics endpoint, when [DEFAULT] metrics_port is not 0 and it could bind. */
  metricsServer: MetricsServer | undefined;
  stop(): Promise<void>;
}

/**
 * Connects, waits for the conductor and the hypervisor, registers and serves.
 * A failure, or `signal` aborting before it serves, closes what it opened
 * (connection, /metrics, timers) and rejects, so the process can exit.
 */
export async function startComputeService(
  config: Config,
  logger: Logger,
  version = '0.0.0',
  signal?: AbortSignal,
  configDirs: readonly string[] = [],
): Promise<RunningService> {
  const D = config.DEFAULT;
  const metrics = D.metrics_port > 0 ? new AgentMetrics({ version, host: D.host }) : undefined;
  const messaging = new Messaging({ ...messagingOptionsFromConfig(config, logger), rpcObserver: metrics?.rpc });
  logger.info(`Starting compute node (nova-docker ${version}) on host ${D.host}`, { logger: LOGGER });
  // a stop asked for while the broker is still out of reach ends the wait for it
  const onAbort = (): void => void messaging.close(0);
  signal?.addEventListener('abort', onAbort, { once: true });
  let agent: Agent | undefined;
  let metricsServer: MetricsServer | undefined;
  let lastTopics: readonly string[] = [];
  try {
    await messaging.start();
    signal?.throwIfAborted();
    const release = await chooseRelease(config, messaging, logger, signal);
    lastTopics = release.computeTopics.slice(1);
    const makePlacement: Parameters<typeof buildAgent>[4] = (keystone) => placementReporter(keystone, config, logger);
    agent = buildAgent(config, release, messaging, logger, makePlacement, configDirs, {
      images: metrics?.images,
      boot: metrics?.boot,
      vifs: metrics?.vifs,
      vifWait: metrics?.vifWait,
    });
    if (metrics) {
      const driver = agent.driver;
      metrics.watchInstances(() => driver.listInstancePowerStates());
      try {
        metricsServer = await startMetricsServer(metrics, D.metrics_host, D.metrics_port);
        logger.info(`Serving metrics on http://${D.metrics_host}:${metricsServer.port}/metrics`, { logger: LOGGER });
      } catch (err) {
        // metrics are for the operator; the compute service itself still works without them
        logger.error(`could not serve metrics on ${D.metrics_host}:${D.metrics_port}: ${errorMessage(err)}`, {
          logger: LOGGER,
        });
      }
    }
    // waits for nova-conductor and the hypervisor: not up, no compute queue until both answer
    await agent.manager.start(signal);
    for (const topic of release.computeTopics) {
      await messaging.server(topic, D.host, [agent.manager.endpoint(), baseApiEndpoint(topic)]);
    }
  } catch (err) {
    agent?.manager.stop();
    await metricsServer?.close().catch(() => undefined);
    await messaging.close(0).catch(() => undefined);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  const manager = agent.manager;
  const served = metricsServer;
  let stopping: Promise<void> | undefined;
  return {
    messaging,
    metricsServer: served,
    stop: () =>
      (stopping ??= (async () => {
        manager.stop();
        // compute-alt (2026.1) last: in-flight operations get their next steps there
        await messaging.close(DRAIN_MS, lastTopics);
        await served?.close();
      })()),
  };
}

/** [docker] nova_release against the control plane nova-conductor reports (release-select.ts). */
async function chooseRelease(
  config: Config,
  messaging: Messaging,
  logger: Logger,
  signal: AbortSignal | undefined,
): Promise<NovaRelease> {
  // the Service calls used to ask are the same in every release's tables
  const conductor = new ConductorAPI(messaging.client('conductor'), ZED);
  const setting = config.docker.nova_release;
  const { release, controlPlane } = await resolveRelease(conductor, adminContext(), setting, (attempt, err) => {
    signal?.throwIfAborted();
    logger.warn(`Timed out waiting for nova-conductor (attempt ${attempt}): ${errorMessage(err)}`, { logger: LOGGER });
  });
  logger.info(
    `Speaking Nova ${release.name} (service version ${release.serviceVersion}, compute RPC ${release.computeRpcVersion}, ` +
      `topics ${release.computeTopics.join(', ')}) to ${describeControlPlane(controlPlane)}; [docker] nova_release = ${setting}`,
    { logger: LOGGER },
  );
  return release;
}

/** Runs until a signal; resolves with the process exit code. */
export async function runCompute(
  config: Config,
  version?: string,
  configDirs: readonly string[] = [],
): Promise<number> {
  const logger = createLogger({
    debug: config.DEFAULT.debug,
    logFile: config.DEFAULT.log_file,
    logDir: config.DEFAULT.log_dir,
  });
  // logrotate's postrotate sends SIGHUP; without a handler Node would exit on it
  process.on('SIGHUP', () => {
    const files = reopenLogFiles(logger);
    logger.info(files.length ? `Caught SIGHUP, reopened ${files.join(', ')}` : 'Caught SIGHUP, no log file to reopen', {
      logger: LOGGER,
    });
  });
  let service: RunningService | undefined;
  let signalled = false;
  const starting = new AbortController();
  const done = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      if (signalled) return;
      signalled = true;
      logger.info(`Caught ${sig}, stopping children`, { logger: LOGGER });
      starting.abort();
      void (async () => {
        try {
          await service?.stop();
          resolve(0);
        } catch (err) {
          logger.error(`unclean shutdown: ${errorMessage(err)}`, { logger: LOGGER });
          resolve(1);
        }
      })();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  try {
    service = await startComputeService(config, logger, version, starting.signal, configDirs);
    if (signalled) await service.stop();
  } catch (err) {
    // stopped while still waiting (for the broker, the conductor or the hypervisor): a clean stop
    if (signalled) return 0;
    // what waiting does not fix (the hypervisor refuses us, Nova refuses the service): exit,
    // so the service manager sees the failure (systemd's Restart=on-failure)
    logger.error(`compute service failed to start: ${errorMessage(err)}`, { logger: LOGGER });
    return 1;
  }
  return await done;
}
