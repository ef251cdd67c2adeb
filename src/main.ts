/**
 * `nova-docker compute`: wiring only. Connects to the broker, registers the
 * host with Nova (service, compute node, Placement), serves the compute topic
 * until SIGTERM/SIGINT, then stops consuming, lets handlers in flight finish
 * (bounded) and exits 0.
 */
import type { Config } from './config/index.js';
import { createLogger, type Logger } from './common/log.js';
import { errorMessage } from './common/errors.js';
import { baseApiEndpoint } from './rpc/baseapi.js';
import { messagingOptionsFromConfig } from './rpc/config.js';
import { Messaging } from './rpc/messaging.js';
import { placementReporter } from './compute/placement-reporter.js';
import { buildAgent } from './wiring.js';

const LOGGER = 'nova_docker.service';
/** How long SIGTERM waits for handlers in flight before closing. */
const DRAIN_MS = 30_000;

export interface RunningService {
  messaging: Messaging;
  stop(): Promise<void>;
}

export async function startComputeService(config: Config, logger: Logger): Promise<RunningService> {
  const messaging = new Messaging(messagingOptionsFromConfig(config, logger));
  logger.info(`Starting compute node (nova-docker) on host ${config.DEFAULT.host}`, { logger: LOGGER });
  await messaging.start();
  const agent = buildAgent(config, messaging, logger, (keystone) => placementReporter(keystone, config, logger));
  await agent.manager.start();
  await messaging.server('compute', config.DEFAULT.host, [agent.manager.endpoint(), baseApiEndpoint('compute')]);
  let stopping: Promise<void> | undefined;
  return {
    messaging,
    stop: () =>
      (stopping ??= (async () => {
        agent.manager.stop();
        await messaging.close(DRAIN_MS);
      })()),
  };
}

/** Runs until a signal; resolves with the process exit code. */
export async function runCompute(config: Config): Promise<number> {
  const logger = createLogger({ debug: config.DEFAULT.debug, logFile: config.DEFAULT.log_file });
  let service: RunningService | undefined;
  let signalled = false;
  const done = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      if (signalled) return;
      signalled = true;
      logger.info(`Caught ${sig}, stopping children`, { logger: LOGGER });
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
    service = await startComputeService(config, logger);
    if (signalled) await service.stop();
  } catch (err) {
    logger.error(`compute service failed to start: ${errorMessage(err)}`, { logger: LOGGER });
    return 1;
  }
  return await done;
}
