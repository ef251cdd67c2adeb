# shellcheck shell=bash
# neutron-common.sh -- sourced by neutron-lab.sh (the Zed lab's Neutron, on
# this machine) and release-lab.sh (the 2025.1 / 2026.1 labs' Neutron, inside
# their root filesystems): what both write and probe.  ML2/OVS on Open
# vSwitch's userspace datapath (see README.md, "Neutron lab").
#
# The caller defines   say MSG, die MSG, wait_for DESC TIMEOUT CMD...,
#                      write_conf FILE (FILE as the daemons see it; stdin = content),
# has sourced          scripts/lib/openstack-conf.sh (authtoken, ksa),
# and sets             KS (http://127.0.0.1:PORT, no /v3), TRANSPORT, SVC_PASS,
#                      NEUTRON_DB (SQLAlchemy URL), API_PORT, AGENT_HOST,
#                      INT_BRIDGE, PHYS_BRIDGE, PHYSNET, VLAN_RANGE,
#                      OVS_RUN (ovsdb-server's run directory, as the agents see it),
#                      NET_NAME, SUBNET_NAME, SUBNET_CIDR;
#                      optional OF_PORT (the OVS agent's OpenFlow controller port;
#                      unset: the agent's default 6633, the Zed lab's).

# ---------------------------------------------------------------- processes
stop_pid() {    # stop_pid PID: TERM, up to 20 s, then KILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
}
conf_hash() { cat "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- open vswitch (userspace datapath)
# No openvswitch.ko here: ovs-vswitchd runs with --disable-system and every
# bridge is datapath_type=netdev.  This machine's one ovsdb-server/ovs-vswitchd
# serve every lab; started only when not answering, never restarted.
# ovs_up LOGFILE BRIDGE...: OVS answering, BRIDGE... there (netdev).  9>&-: the
# daemons outlive the caller and must not hold its lock (fd 9) forever, or every
# later `neutron-lab.sh daemon` waits on it (CI's fresh machine starts OVS here).
ovs_up() {
  local out=$1 br; shift
  mkdir -p /var/run/openvswitch /var/log/openvswitch
  if ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
    say "starting ovsdb-server"
    /usr/share/openvswitch/scripts/ovs-ctl --no-ovs-vswitchd --system-id=random start >>"$out" 2>&1 9>&-
  fi
  if ! ovs-appctl --timeout=5 -t ovs-vswitchd version >/dev/null 2>&1; then
    say "starting ovs-vswitchd --disable-system"
    ovs-vswitchd --disable-system --pidfile --detach --log-file "unix:/var/run/openvswitch/db.sock" >>"$out" 2>&1 9>&-
  fi
  wait_for ovs-vswitchd 30 ovs-appctl --timeout=5 -t ovs-vswitchd version
  for br in "$@"; do
    ovs-vsctl --timeout=10 --may-exist add-br "$br" -- set Bridge "$br" datapath_type=netdev
  done
}

# ---------------------------------------------------------------- configs
# neutron.conf, ml2_conf.ini, openvswitch_agent.ini, dhcp_agent.ini under /etc/neutron
neutron_write_configs() {
  local marker=$1      # "written by ..." line
  write_conf /etc/neutron/neutron.conf <<EOF
# written by $marker
[DEFAULT]
core_plugin = ml2
# routers as API objects only (Tempest's per-project networks ask for one): no L3
# agent runs, so no gateway or NAT; tenant networks stay inside this host's namespaces
service_plugins = router
auth_strategy = keystone
bind_host = 127.0.0.1
bind_port = $API_PORT
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
transport_url = $TRANSPORT
state_path = /var/lib/neutron
# network-vif-plugged / -unplugged / -changed to nova-api (os-server-external-events)
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
send_events_interval = 2
dhcp_agents_per_network = 1
interface_driver = openvswitch
[agent]
# agents run as root: no sudo/rootwrap round trip per command
root_helper =
[database]
connection = $NEUTRON_DB
$(authtoken neutron)
$(ksa nova nova)
endpoint_type = public
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
EOF
  write_conf /etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
# written by $marker
[ml2]
type_drivers = flat,vlan
# one host, no uplink: VLANs of $PHYSNET on the netdev bridge $PHYS_BRIDGE (no ports but the
# agent's patch); traffic between ports of a network never leaves $INT_BRIDGE
tenant_network_types = vlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_vlan]
network_vlan_ranges = $PHYSNET:$VLAN_RANGE
[ml2_type_flat]
flat_networks = $PHYSNET
[securitygroup]
firewall_driver = openvswitch
enable_security_group = true
EOF
  write_conf /etc/neutron/plugins/ml2/openvswitch_agent.ini <<EOF
# written by $marker
[DEFAULT]
host = $AGENT_HOST
[ovs]
integration_bridge = $INT_BRIDGE
# userspace datapath (no openvswitch.ko): VIF type stays "ovs" (no dpdkvhostuser iface type)
datapath_type = netdev
bridge_mappings = $PHYSNET:$PHYS_BRIDGE
ovsdb_connection = unix:$OVS_RUN/db.sock
of_listen_address = 127.0.0.1${OF_PORT:+
# this machine's other labs' OVS agents listen on their own ports
of_listen_port = $OF_PORT}
[agent]
tunnel_types =
l2_population = false
[securitygroup]
# security groups as OpenFlow rules + userspace conntrack
firewall_driver = openvswitch
enable_security_group = true
enable_ipset = false
EOF
  write_conf /etc/neutron/dhcp_agent.ini <<EOF
# written by $marker
[DEFAULT]
host = $AGENT_HOST
interface_driver = openvswitch
# a veth pair (tap in $INT_BRIDGE, ns- in the qdhcp namespace) instead of an OVS internal
# port, which the netdev datapath cannot serve from another namespace; with
# datapath_type = netdev the agent also turns TX/RX checksum offload off on the ns- end
ovs_use_veth = true
enable_isolated_metadata = false
force_metadata = false
dnsmasq_local_resolv = false
[ovs]
integration_bridge = $INT_BRIDGE
datapath_type = netdev
ovsdb_connection = unix:$OVS_RUN/db.sock
EOF
}

# ---------------------------------------------------------------- probes (a warm `up` in a few seconds)
token() {       # token USER PROJECT PASSWORD: a keystone token, or fail
  curl -sf -m 10 -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"'"$1"'","domain":{"name":"Default"},"password":"'"$3"'"}}},"scope":{"project":{"name":"'"$2"'","domain":{"name":"Default"}}}}}' \
    "$KS/v3/auth/tokens" | awk -F': ' 'tolower($1)=="x-subject-token" {sub(/\r$/, "", $2); print $2; ok=1} END {exit !ok}'
}
# both agents alive and the shared network there, as a previous `up` left them
lab_ready() {
  local tok
  tok=$(token admin admin labadmin) || return 1
  curl -sf -m 10 -H "X-Auth-Token: $tok" "http://127.0.0.1:$API_PORT/v2.0/agents?host=$AGENT_HOST" |
    python3 -c 'import json,sys; a={x["agent_type"] for x in json.load(sys.stdin)["agents"] if x["alive"]}; sys.exit(not {"Open vSwitch agent","DHCP agent"} <= a)' || return 1
  curl -sf -m 10 -H "X-Auth-Token: $tok" "http://127.0.0.1:$API_PORT/v2.0/subnets?name=$SUBNET_NAME" |
    python3 -c 'import json,sys; sys.exit(not json.load(sys.stdin)["subnets"])'
}

# ---------------------------------------------------------------- network for tests
# One shared tenant network (VLAN from the range, no router, gateway address
# unanswered) that any project can boot on; tests that need isolation make their own.
# This machine's openstacksdk (Debian 12's) talks to every lab's Keystone and Neutron.
shared_network() {
  /usr/bin/python3 - "$KS/v3" "$NET_NAME" "$SUBNET_NAME" "$SUBNET_CIDR" "$AGENT_HOST" <<'EOF'
import sys, time
import openstack
auth_url, net_name, subnet_name, cidr, host = sys.argv[1:]
c = openstack.connect(auth_url=auth_url, username="admin", password="labadmin",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
n = c.network
# the agents have reported in (the server answers before they do)
deadline = time.time() + 90
while True:
    alive = {a.agent_type for a in n.agents(host=host) if a.is_alive}
    if {"Open vSwitch agent", "DHCP agent"} <= alive:
        break
    if time.time() > deadline:
        sys.exit(f"agents on {host} not alive: {sorted(alive)}")
    time.sleep(1)
net = n.find_network(net_name) or n.create_network(name=net_name, is_shared=True)
if not n.find_subnet(subnet_name, network_id=net.id):
    n.create_subnet(name=subnet_name, network_id=net.id, ip_version=4, cidr=cidr, enable_dhcp=True,
                    dns_nameservers=[])
print(f"network {net_name} ({net.id}, {net.provider_network_type} {net.provider_physical_network}"
      f" {net.provider_segmentation_id}) subnet {cidr}")
EOF
}

# ---------------------------------------------------------------- the DHCP agent's leftovers
# The agent leaves its dnsmasq processes, qdhcp- namespaces and their veths
# (tap... in the integration bridge) behind when it stops.
# dhcp_cleanup ROOT IN...: ROOT = the agents' root directory ("" on this
# machine), IN = the command prefix that runs `ip` where the agents run
dhcp_cleanup() {
  local root=$1 f ns pid; shift
  for f in "$root"/var/lib/neutron/dhcp/*/pid; do
    # only a dnsmasq under ROOT: a PID file that outlived its process may name another one now
    pid=$(cat "$f" 2>/dev/null) || continue
    if [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dnsmasq ] &&
      [ "$(readlink "/proc/$pid/root")" = "${root:-/}" ]; then
      stop_pid "$pid"
    fi
    rm -f "$f"
  done
  for ns in $("$@" ip netns list | awk '$1 ~ /^qdhcp-/ {print $1}'); do
    for f in $("$@" ip -n "$ns" -o link show | awk -F': ' '$2 ~ /^ns-/ {sub(/@.*/, "", $2); print $2}'); do
      ovs-vsctl --timeout=10 --if-exists del-port "$INT_BRIDGE" "tap${f#ns-}"
    done
    "$@" ip netns delete "$ns"
  done
}

# ---------------------------------------------------------------- env
# the variables tests read (NETLAB_*), for `neutron-lab.sh env` / `release-lab.sh env`
neutron_env() {
  cat <<EOF
NETLAB_NEUTRON_URL=http://127.0.0.1:$API_PORT
NETLAB_AGENT_HOST=$AGENT_HOST
NETLAB_INTEGRATION_BRIDGE=$INT_BRIDGE
NETLAB_DATAPATH_TYPE=netdev
NETLAB_NETWORK=$NET_NAME
NETLAB_SUBNET=$SUBNET_NAME
NETLAB_SUBNET_CIDR=$SUBNET_CIDR
NETLAB_PHYSNET=$PHYSNET
EOF
}
