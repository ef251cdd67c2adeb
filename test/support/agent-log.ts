/**
 * Reading the agent's own log (oslo format, `YYYY-MM-DD HH:MM:SS.mmm pid LEVEL logger [ctx] [instance: uuid] …`)
 * for timings the API does not show: the benches (bench/) and the networked e2e file read the same lines.
 */

/** The epoch ms of an agent log line (`YYYY-MM-DD HH:MM:SS.mmm …`, local time), or undefined. */
export function logTime(line: string): number | undefined {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3})/.exec(line);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s, ms).getTime();
}

/** How the agent plugged an instance's VIFs at boot (its first plug in the log). */
export interface PlugTiming {
  /** Epoch ms of the "plugged N VIF(s) (…) in X ms" line: the plug's end. */
  pluggedAt: number;
  /** The plug's own duration, as that line reports it (veth pair, OVS port, addresses inside). */
  plugMs: number;
  /**
   * ms from that line to "Received event network-vif-plugged…" for the instance (Neutron saw the OVS port,
   * set the port ACTIVE and told nova-api, which cast it here); undefined while no such event is logged.
   * Negative when the event overtook the plug's last step (addresses inside the namespace).
   */
  plugToEventMs: number | undefined;
}

/** The first plug of instance `uuid`'s VIFs in `log` and the network-vif-plugged event after it, or undefined. */
export function plugTiming(log: string, uuid: string): PlugTiming | undefined {
  let plug: { at: number; ms: number } | undefined;
  let event: number | undefined;
  for (const line of log.split('\n')) {
    if (!line.includes(uuid)) continue;
    if (plug === undefined) {
      const m = /plugged \d+ VIF\(s\) \(.*\) in (\d+) ms/.exec(line);
      const at = m ? logTime(line) : undefined;
      if (m && at !== undefined) plug = { at, ms: Number(m[1]) };
    }
    if (event === undefined && /Received event network-vif-plugged/.test(line)) event = logTime(line);
  }
  if (plug === undefined) return undefined;
  return { pluggedAt: plug.at, plugMs: plug.ms, plugToEventMs: event === undefined ? undefined : event - plug.at };
}
