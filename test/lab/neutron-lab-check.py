#!/usr/bin/python3
"""neutron-lab-check.py -- self-test of the Neutron lab (`neutron-lab.sh check`).

No nova-docker code: it does by hand what the agent does for a server on the lab.
1. a network + subnet, two ports bound to host nova-docker-net (device_owner
   compute:nova, a made-up instance uuid as device_id), VIF type "ovs";
2. each port plugged as Nova/os-vif plugs an "ovs" VIF: veth tap<port[:11]> in
   the integration bridge (br-int) with external_ids iface-id, iface-status=active, attached-mac, vm-uuid;
   the other end (eth0) in a fresh netns with the port's MAC and IP; TX
   checksum/TSO/GSO offload off on both ends (netdev datapath + veth);
3. waits for both ports to go ACTIVE (timed from the plug) and for Neutron's
   network-vif-plugged POST to nova-api (404 there: the instance is made up);
4. ping, a DHCP lease (busybox udhcpc) and an HTTP transfer between the namespaces;
5. port B moved to a security group that allows nothing incoming: the ping must
   fail; back in the default group: it must pass again;
6. removes everything it made (ports, group, network, OVS ports, veths, netns).
Prints timings; exit 0 and NETLAB-CHECK PASSED, or exit 1 and the reason.

    neutron-lab-check.py [--keep]     (--keep: leave everything for a look)

The defaults are the Zed lab's (neutron-lab.sh); release-lab.sh check passes its
release's Keystone, agent host, integration bridge, nova-api log and subnet.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

import openstack

TAG = "netlab-check-%d" % os.getpid()
T0 = time.monotonic()


class CheckFailed(Exception):
    pass


def say(msg):
    print("[check %5.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def sh(*cmd, ns=None, check=True, timeout=60):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise CheckFailed("%s: rc %d: %s" % (" ".join(cmd), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def poll(desc, timeout, fn, interval=0.2):
    """Calls fn until it returns a true value; returns (value, seconds)."""
    start = time.monotonic()
    while True:
        v = fn()
        if v:
            return v, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise CheckFailed("timeout (%ds) waiting for %s" % (timeout, desc))
        time.sleep(interval)


def external_events_posts(nova_api_out):
    try:
        with open(nova_api_out, errors="replace") as f:
            return re.findall(r"POST /v2\.1/os-server-external-events .*\(HTTP/1\.1 (\d+)\)", f.read())
    except FileNotFoundError:
        return None


def plug(port, mtu, ns, vm_uuid, bridge, prefixlen):
    """What os-vif's ovs plugin + nova-docker's vif driver do for VIF type ovs."""
    dev = "tap" + port.id[:11]
    ip = port.fixed_ips[0]["ip_address"]
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", dev, "mtu", str(mtu), "type", "veth", "peer", "name", "eth0", "mtu", str(mtu), "netns", ns)
    sh("ip", "-n", ns, "link", "set", "eth0", "address", port.mac_address)
    sh("ip", "-n", ns, "addr", "add", "%s/%d" % (ip, prefixlen), "dev", "eth0")
    for args, where in ((("-K", dev), None), (("-K", "eth0"), ns)):
        sh("ethtool", *args, "tx", "off", "tso", "off", "gso", "off", ns=where)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "link", "set", dev, "up")
    sh("ovs-vsctl", "--timeout=10", "--", "--may-exist", "add-port", bridge, dev,
       "--", "set", "Interface", dev,
       "external_ids:iface-id=" + port.id, "external_ids:iface-status=active",
       "external_ids:attached-mac=" + port.mac_address, "external_ids:vm-uuid=" + vm_uuid)
    return dev, ip


def ping(ns, ip, count=3):
    """Number of replies (busybox ping: iputils is not a dependency of the lab)."""
    r = sh("busybox", "ping", "-c", str(count), "-i", "0.2", "-W", "1", "-w", str(count + 1), ip, ns=ns, check=False)
    m = re.search(r"(\d+) packets received", r.stdout)
    return int(m.group(1)) if m else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="leave what the check made")
    ap.add_argument("--auth-url", default="http://127.0.0.1:5000/v3", help="the lab's Keystone")
    ap.add_argument("--host", default="nova-docker-net", help="the agents' host (binding:host_id)")
    ap.add_argument("--bridge", default="br-int", help="the OVS agent's integration bridge")
    ap.add_argument("--nova-api-log", default="/var/log/lab/nova-api.out", help="nova-api's uwsgi request log")
    ap.add_argument("--cidr", default="10.252.0.0/24", help="the check network's subnet")
    args = ap.parse_args()
    host = args.host
    prefixlen = int(args.cidr.split("/")[1])
    if os.geteuid() != 0:
        sys.exit("neutron-lab-check: run as root")
    c = openstack.connect(auth_url=args.auth_url, username="admin", password="labadmin",
                          project_name="admin", user_domain_name="Default", project_domain_name="Default",
                          region_name="RegionOne")
    n = c.network
    made = {"ports": [], "devs": [], "ns": [], "procs": [], "sg": None, "net": None, "tmp": None}
    timings = {}
    try:
        agents = {a.agent_type for a in n.agents(host=host) if a.is_alive}
        if not {"Open vSwitch agent", "DHCP agent"} <= agents:
            raise CheckFailed("agents alive on %s: %s (neutron-lab.sh up?)" % (host, sorted(agents)))
        t = time.monotonic()
        net = made["net"] = n.create_network(name=TAG)
        n.create_subnet(name=TAG, network_id=net.id, ip_version=4, cidr=args.cidr,
                        gateway_ip=None, enable_dhcp=True)
        net = n.get_network(net.id)
        say("network %s: %s/%s seg %s, mtu %s" % (TAG, net.provider_network_type, net.provider_physical_network,
                                                  net.provider_segmentation_id, net.mtu))
        vms = [str(uuid.uuid4()) for _ in range(2)]
        ports = []
        for i, vm in enumerate(vms):
            p = n.create_port(network_id=net.id, name="%s-%d" % (TAG, i), device_owner="compute:nova",
                              device_id=vm, binding_host_id=host)
            made["ports"].append(p)
            if p.binding_vif_type != "ovs":
                raise CheckFailed("port %s: binding:vif_type %s (want ovs; vif_details %s)"
                                  % (p.id, p.binding_vif_type, p.binding_vif_details))
            ports.append(p)
        timings["network+subnet+2 ports"] = time.monotonic() - t
        say("ports bound: vif_type ovs, vif_details %s" % ports[0].binding_vif_details)

        posts_before = external_events_posts(args.nova_api_log)
        addrs, plugged_at = [], []
        for i, (p, vm) in enumerate(zip(ports, vms)):
            ns = "%s-%s" % (TAG, "ab"[i])
            made["ns"].append(ns)
            dev, ip = plug(p, net.mtu, ns, vm, args.bridge, prefixlen)
            made["devs"].append(dev)
            plugged_at.append(time.monotonic())
            addrs.append((ns, ip))
            say("plugged %s (%s %s) into %s, eth0 in %s" % (dev, p.mac_address, ip, args.bridge, ns))
        for i, p in enumerate(ports):
            poll("port %s ACTIVE" % p.id, 90, lambda: n.get_port(p.id).status == "ACTIVE")
            timings["plug -> ACTIVE, port %s" % "ab"[i]] = time.monotonic() - plugged_at[i]
        say("both ports ACTIVE")
        if posts_before is not None:
            _, dt = poll("network-vif-plugged POSTs to nova-api", 30,
                         lambda: len(external_events_posts(args.nova_api_log)) > len(posts_before))
            codes = external_events_posts(args.nova_api_log)[len(posts_before):]
            say("Neutron POSTed os-server-external-events to nova-api %.1fs after ACTIVE (HTTP %s: "
                "unknown instance, as expected)" % (dt, ",".join(codes)))

        (ns_a, ip_a), (ns_b, ip_b) = addrs
        _, dt = poll("ping %s -> %s" % (ns_a, ip_b), 30, lambda: ping(ns_a, ip_b, 1), interval=0.1)
        timings["ACTIVE -> first ping"] = dt
        if ping(ns_a, ip_b, 5) != 5 or ping(ns_b, ip_a, 5) != 5:
            raise CheckFailed("ping between the namespaces is lossy or fails")
        say("ping a <-> b ok")

        # DHCP: the agent's dnsmasq (behind a veth in its qdhcp namespace) hands out the port's address
        t = time.monotonic()
        r = sh("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", "/bin/true",
               ns=ns_a, check=False, timeout=30)
        m = re.search(r"lease of (\S+) obtained", r.stdout + r.stderr)
        if not m or m.group(1) != ip_a:
            raise CheckFailed("DHCP in %s: want %s, got %r" % (ns_a, ip_a, (r.stdout + r.stderr).strip()[-300:]))
        timings["DHCP lease (udhcpc)"] = time.monotonic() - t
        say("DHCP lease of %s from the lab's dnsmasq" % ip_a)

        tmp = made["tmp"] = tempfile.mkdtemp(prefix="netlab-check-")
        with open(os.path.join(tmp, "blob"), "wb") as f:
            f.write(os.urandom(4 << 20))
        srv = subprocess.Popen(["ip", "netns", "exec", ns_b, "python3", "-m", "http.server", "8080", "--bind", ip_b,
                                "--directory", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        made["procs"].append(srv)
        poll("http server in %s" % ns_b, 20,
             lambda: ":8080" in sh("ss", "-ltn", ns=ns_b).stdout)
        r = sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", "--max-time", "20",
               "http://%s:8080/blob" % ip_b, ns=ns_a, check=False)
        parts = r.stdout.split()
        if r.returncode != 0 or len(parts) != 3 or parts[0] != "200" or int(parts[1]) != 4 << 20:
            raise CheckFailed("HTTP transfer a <- b failed: rc %d, %r" % (r.returncode, r.stdout))
        timings["HTTP 4 MiB b -> a"] = float(parts[2])
        say("HTTP GET of 4 MiB from %s ok" % ip_b)

        # security groups: nothing incoming allowed on b
        default_sg = ports[1].security_group_ids
        sg = made["sg"] = n.create_security_group(name=TAG, description="netlab check: no ingress")
        if any(r["direction"] == "ingress" for r in sg.security_group_rules):
            raise CheckFailed("new group has ingress rules: %s" % sg.security_group_rules)
        n.update_port(ports[1].id, security_group_ids=[sg.id])
        _, dt = poll("ping %s -> %s to fail" % (ns_a, ip_b), 60, lambda: not ping(ns_a, ip_b, 1), interval=0.1)
        timings["SG without ingress -> ping blocked"] = dt
        if ping(ns_a, ip_b, 3):
            raise CheckFailed("ping passes again with no ingress allowed")
        say("ping a -> b blocked by group %s" % TAG)
        n.update_port(ports[1].id, security_group_ids=default_sg)
        _, dt = poll("ping %s -> %s again" % (ns_a, ip_b), 60, lambda: ping(ns_a, ip_b, 1), interval=0.1)
        timings["default SG back -> ping passes"] = dt
        say("ping a -> b passes again in the default group")
    except CheckFailed as e:
        say("NETLAB-CHECK FAILED: %s" % e)
        return_code = 1
    else:
        return_code = 0
    finally:
        if args.keep:
            say("--keep: left %s" % {k: v for k, v in made.items() if v})
        else:
            cleanup(n, made, args.bridge)
    for k, v in timings.items():
        print("  %-36s %6.2f s" % (k, v))
    say("NETLAB-CHECK PASSED" if return_code == 0 else "NETLAB-CHECK FAILED")
    return return_code


def cleanup(n, made, bridge):
    errors = []

    def attempt(fn, *a, **kw):
        try:
            fn(*a, **kw)
        except Exception as e:  # cleanup goes on; the errors are reported
            errors.append("%s: %s" % (getattr(fn, "__name__", fn), e))

    for p in made["procs"]:
        p.terminate()
        attempt(p.wait, 10)
    for dev in made["devs"]:
        attempt(sh, "ovs-vsctl", "--timeout=10", "--if-exists", "del-port", bridge, dev)
        attempt(sh, "ip", "link", "del", dev, check=False)
    for ns in made["ns"]:
        attempt(sh, "ip", "netns", "del", ns)
    for p in made["ports"]:
        attempt(n.delete_port, p.id, ignore_missing=True)
    if made["sg"]:
        attempt(n.delete_security_group, made["sg"].id, ignore_missing=True)
    if made["net"]:
        attempt(n.delete_network, made["net"].id, ignore_missing=True)
    if made["tmp"]:
        attempt(sh, "rm", "-rf", made["tmp"])
    say("cleaned up" + ("" if not errors else " with errors: %s" % errors))


if __name__ == "__main__":
    sys.exit(main())
