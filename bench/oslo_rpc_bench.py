#!/usr/bin/python3
"""Python→Python oslo.messaging call round trip on the lab broker, for bench/rpc.

  oslo_rpc_bench.py N URL  -> prints one JSON line {"p50_ms":…, "p99_ms":…, "n":N}

Server and client live in this one process on separate transports (as the TS
side does), with the `threading` executor nova uses outside eventlet.
"""
import json, sys, time, uuid
from oslo_config import cfg
import oslo_messaging as om

n, url = int(sys.argv[1]), sys.argv[2]
cfg.CONF.set_override("metrics_thread_stop_timeout", 0, "oslo_messaging_metrics")
topic = "ndbench_py_%s" % uuid.uuid4().hex[:8]


class Endpoint:
    target = om.Target(version="6.1")

    def echo(self, ctxt, **kw):
        return kw


st = om.get_rpc_transport(cfg.CONF, url=url)
server = om.get_rpc_server(st, om.Target(exchange="nova", topic=topic, server="bench"), [Endpoint()], executor="threading")
server.start()
ct = om.get_rpc_transport(cfg.CONF, url=url)
client = om.get_rpc_client(ct, om.Target(exchange="nova", topic=topic)).prepare(version="6.0", server="bench")
payload = {"instance_uuid": str(uuid.uuid4()), "data": "x" * 512}
for _ in range(20):                      # warm-up
    client.call({}, "echo", **payload)
times = []
for _ in range(n):
    t0 = time.perf_counter()
    client.call({}, "echo", **payload)
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
pct = lambda p: times[min(len(times) - 1, int(p / 100 * len(times)))]
print(json.dumps({"n": n, "p50_ms": round(pct(50), 3), "p99_ms": round(pct(99), 3), "topic": topic}))
server.stop(); server.wait(); st.cleanup(); ct.cleanup()
