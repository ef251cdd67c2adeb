/** nova.conf → messaging options (the oslo.messaging rabbit driver's option names). */
import { hostname } from 'node:os';
import { parseTransportUrl, type Config } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import type { Logger } from '../common/log.js';
import type { MessagingOptions } from './messaging.js';

export function messagingOptionsFromConfig(config: Config, logger: Logger): MessagingOptions {
  const url = config.DEFAULT.transport_url;
  if (!url) throw new ConfigError(['[DEFAULT] transport_url: required to run the compute agent']);
  const t = parseTransportUrl(url, { ssl: config.oslo_messaging_rabbit.ssl });
  const r = config.oslo_messaging_rabbit;
  return {
    // oslo's defaults for a URL without credentials
    hosts: t.hosts.map((h) => ({
      host: h.host,
      port: h.port,
      username: h.username ?? 'guest',
      password: h.password ?? 'guest',
    })),
    virtualHost: t.virtualHost,
    tls: t.ssl ? { caFile: r.ssl_ca_file, certFile: r.ssl_cert_file, keyFile: r.ssl_key_file } : undefined,
    heartbeatS: r.heartbeat_timeout_threshold,
    retryIntervalS: r.rabbit_retry_interval,
    retryBackoffS: r.rabbit_retry_backoff,
    retryMaxS: r.rabbit_interval_max,
    prefetchCount: r.rabbit_qos_prefetch_count,
    connectionName: `nova-docker-compute:${process.pid}:${hostname()}`,
    logger,
    exchange: config.DEFAULT.control_exchange,
    flags: {
      durable: r.amqp_durable_queues,
      autoDelete: r.amqp_auto_delete,
      haQueues: r.rabbit_ha_queues,
      quorum: r.rabbit_quorum_queue,
      transientQueuesTtlS: r.rabbit_transient_queues_ttl,
    },
    rpcResponseTimeoutS: config.DEFAULT.rpc_response_timeout,
    maxMessageBytes: r.max_message_bytes,
  };
}
