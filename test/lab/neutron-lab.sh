#!/bin/bash
# neutron-lab.sh up|down|status|env|check|daemon -- a real Neutron (Zed, Debian 12's
# packages) in place of the shared Zed lab's neutron-stub on 127.0.0.1:9696.
#
#   up      install what is missing, make Open vSwitch run (userspace datapath),
#           create the neutron DB and keystone user, stop the lab's neutron-stub,
#           start neutron-server (ML2/OVS), neutron-openvswitch-agent and
#           neutron-dhcp-agent (both with host = nova-docker-net), create the shared
#           test network; prints NETLAB-UP at the end.  Idempotent: running
#           services are reused (restarted only when their config changed).
#   down    stop what `up` started, clean the DHCP namespaces, restore the stub.
#   status  what runs; exit 0 when the lab is up.
#   env     shell assignments tests need (eval "$(neutron-lab.sh env)").
#   daemon NAME stop|start   one of neutron-server, neutron-openvswitch-agent,
#           neutron-dhcp-agent (e.g. the DHCP agent stopped for a plug-timeout test).
#   check   self-test without nova-docker code (neutron-lab-check.py).
#
# Everything is bound to 127.0.0.1 or lives in network namespaces: the tenant
# networks have no uplink, no router and no NAT (see README.md, "Neutron lab").
# Logs: /var/log/lab/neutron/   PIDs and config hashes: /run/neutron-lab/
# Root only.  Needs the shared Zed lab (openstack-up.sh) to be running.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin      # Debian's python (openstacksdk), not pyenv's
export DEBIAN_FRONTEND=noninteractive
HERE=$(cd "$(dirname "$0")" && pwd)
LOG=/var/log/lab/neutron RUN=/run/neutron-lab LAB_RUN=/run/lab
AGENT_HOST=nova-docker-net                     # [DEFAULT] host of both agents (= the agent under test's CONF.host)
API_PORT=9696                                  # the catalog's network endpoint, as for the stub
KS=http://127.0.0.1:5000
SVC_PASS=labservice DB_PASS=labdb
TRANSPORT="rabbit://openstack:labrabbit@127.0.0.1:5672/"
NET_NAME=nova-docker-lab-net SUBNET_NAME=nova-docker-lab-subnet SUBNET_CIDR=10.251.0.0/24
PHYSNET=physnet1 PHYS_BRIDGE=br-phys VLAN_RANGE=100:199
PKGS="neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent openvswitch-switch
 ethtool busybox-static iproute2 util-linux curl"
OVS_RUN=/var/run/openvswitch

T0=$(date +%s%N)
say() { local ds=$(( ($(date +%s%N) - T0) / 100000000 )); echo "[netlab $((ds/10)).$((ds%10))s] $*"; }
die() { echo "neutron-lab: $*" >&2; exit 1; }
port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_for() {    # wait_for DESC TIMEOUT_S CMD...: poll CMD every 0.5 s
  local desc=$1 t=$2; shift 2
  for _ in $(seq $((t*2))); do "$@" >/dev/null 2>&1 && { say "$desc ready"; return 0; }; sleep 0.5; done
  die "timeout waiting for $desc (logs: $LOG)"
}

# ---------------------------------------------------------------- processes
# pid files: $RUN/NAME.pid; a pid counts only while its command line still
# names the program (a recycled pid is not ours).
alive() {       # alive NAME
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(cat "$RUN/$1.prog" 2>/dev/null)"
}
stop_pid() {    # stop_pid PID: TERM, up to 20 s, then KILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_svc() {    # stop_svc NAME
  if alive "$1"; then stop_pid "$(cat "$RUN/$1.pid")"; say "stopped $1"; fi
  rm -f "$RUN/$1.pid" "$RUN/$1.hash"
}
# start_svc NAME USER HASH CMD...: start CMD unless it runs with the same config
# hash; a running one with another hash is restarted.
start_svc() {
  local name=$1 user=$2 hash=$3; shift 3
  if alive "$name"; then
    if [ "$(cat "$RUN/$name.hash" 2>/dev/null)" = "$hash" ]; then say "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
    say "$name: config changed, restarting"; stop_svc "$name"
  fi
  echo "$1" > "$RUN/$name.prog"
  # 9>&-: the daemon must not inherit (and hold forever) the lock of up/down
  if [ "$user" = root ]; then setsid "$@" >>"$LOG/$name.out" 2>&1 </dev/null 9>&- &
  else setsid setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "$@" >>"$LOG/$name.out" 2>&1 </dev/null 9>&- & fi
  echo $! > "$RUN/$name.pid"; echo "$hash" > "$RUN/$name.hash"
  say "started $name (pid $!)"
}
conf_hash() { cat "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- packages
install_packages() {
  local missing=() p
  for p in $PKGS; do dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  # no dbconfig/keystone questions, and no packaged service may start (this script starts them)
  printf 'neutron-common neutron/configure_db boolean false\nneutron-common neutron/configure_rabbit boolean false\nneutron-common neutron/configure_ksat boolean false\nneutron-api neutron/configure_api-endpoint boolean false\n' | debconf-set-selections
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  say "installing ${missing[*]}"
  local opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  apt-get install "${opts[@]}" "${missing[@]}" >"$LOG/apt.log" 2>&1 ||
    { apt-get update -q >>"$LOG/apt.log" 2>&1 && apt-get install "${opts[@]}" "${missing[@]}" >>"$LOG/apt.log" 2>&1; } ||
    { tail -20 "$LOG/apt.log" >&2; die "apt-get install failed"; }
}

# ---------------------------------------------------------------- open vswitch (userspace datapath)
# No openvswitch.ko here: ovs-vswitchd runs with --disable-system and every
# bridge is datapath_type=netdev.  Started only when not answering; never restarted.
ovs_up() {
  mkdir -p $OVS_RUN /var/log/openvswitch
  if ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
    say "starting ovsdb-server"
    /usr/share/openvswitch/scripts/ovs-ctl --no-ovs-vswitchd --system-id=random start >>"$LOG/ovs-ctl.out" 2>&1
  fi
  if ! ovs-appctl --timeout=5 -t ovs-vswitchd version >/dev/null 2>&1; then
    say "starting ovs-vswitchd --disable-system"
    ovs-vswitchd --disable-system --pidfile --detach --log-file "unix:$OVS_RUN/db.sock" >>"$LOG/ovs-ctl.out" 2>&1
  fi
  wait_for ovs-vswitchd 30 ovs-appctl --timeout=5 -t ovs-vswitchd version
  local br
  for br in br-int $PHYS_BRIDGE; do
    ovs-vsctl --timeout=10 --may-exist add-br "$br" -- set Bridge "$br" datapath_type=netdev
  done
}

# ---------------------------------------------------------------- configs
write_conf() { [ -e "$1.dist" ] || { [ -e "$1" ] && cp -a "$1" "$1.dist"; } || true; cat > "$1"; }
ksa() {         # ksa SECTION USER: keystoneauth password options
cat <<EOF
[$1]
auth_type = password
auth_url = $KS/v3
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $SVC_PASS
region_name = RegionOne
EOF
}
write_configs() {
  write_conf /etc/neutron/neutron.conf <<EOF
# written by nova-docker test/lab/neutron-lab.sh
[DEFAULT]
core_plugin = ml2
# no router, metering or qos: tenant networks stay inside this host's namespaces
service_plugins =
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
connection = mysql+pymysql://neutron:$DB_PASS@127.0.0.1/neutron?charset=utf8
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = $SVC_PASS
service_token_roles_required = true
$(ksa nova nova)
endpoint_type = public
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
EOF
  write_conf /etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
# written by nova-docker test/lab/neutron-lab.sh
[ml2]
type_drivers = flat,vlan
# one host, no uplink: VLANs of $PHYSNET on the netdev bridge $PHYS_BRIDGE (no ports but the
# agent's patch); traffic between ports of a network never leaves br-int
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
# written by nova-docker test/lab/neutron-lab.sh
[DEFAULT]
host = $AGENT_HOST
[ovs]
integration_bridge = br-int
# userspace datapath (no openvswitch.ko): VIF type stays "ovs" (no dpdkvhostuser iface type)
datapath_type = netdev
bridge_mappings = $PHYSNET:$PHYS_BRIDGE
ovsdb_connection = unix:$OVS_RUN/db.sock
of_listen_address = 127.0.0.1
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
# written by nova-docker test/lab/neutron-lab.sh
[DEFAULT]
host = $AGENT_HOST
interface_driver = openvswitch
# a veth pair (tap in br-int, ns- in the qdhcp namespace) instead of an OVS internal
# port, which the netdev datapath cannot serve from another namespace; with
# datapath_type = netdev the agent also turns TX/RX checksum offload off on the ns- end
ovs_use_veth = true
enable_isolated_metadata = false
force_metadata = false
dnsmasq_local_resolv = false
[ovs]
integration_bridge = br-int
datapath_type = netdev
ovsdb_connection = unix:$OVS_RUN/db.sock
EOF
}

# ---------------------------------------------------------------- db + keystone
setup_db() {
  mysqladmin ping >/dev/null 2>&1 || die "MariaDB is not answering: run the shared lab's openstack-up.sh first"
  mysql -e "CREATE DATABASE IF NOT EXISTS neutron;
    CREATE USER IF NOT EXISTS 'neutron'@'localhost' IDENTIFIED BY '$DB_PASS';
    CREATE USER IF NOT EXISTS 'neutron'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON neutron.* TO 'neutron'@'localhost'; GRANT ALL ON neutron.* TO 'neutron'@'127.0.0.1';"
  # `upgrade heads` is slow (~40 s cold); skip it while the schema is at the packaged heads
  local heads cur
  heads=$(cat "$RUN/db.heads" 2>/dev/null || true)
  cur=$(dpkg-query -W -f='${Version}' neutron-common)
  if [ "$heads" != "$cur" ] || ! mysql -N neutron -e 'select count(*) from alembic_version' >/dev/null 2>&1; then
    say "neutron-db-manage upgrade heads"
    su -s /bin/sh neutron -c "neutron-db-manage --config-file /etc/neutron/neutron.conf \
      --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads" >>"$LOG/db-manage.out" 2>&1 ||
      { tail -20 "$LOG/db-manage.out" >&2; die "neutron-db-manage failed"; }
    echo "$cur" > "$RUN/db.heads"
  fi
}
keystone_user() {
  python3 - <<'EOF'
import openstack
c = openstack.connect(auth_url="http://127.0.0.1:5000/v3", username="admin", password="labadmin",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
idn = c.identity
proj = idn.find_project("service")
u = idn.find_user("neutron") or idn.create_user(name="neutron", password="labservice", domain_id="default")
idn.update_user(u, password="labservice")
for role in ("admin", "service"):
    idn.assign_project_role_to_user(proj, u, idn.find_role(role))
# the catalog's network endpoints (http://127.0.0.1:9696) were made for the stub: kept as they are
svc = next((s for s in idn.services() if s.type == "network"), None)
assert svc, "no network service in the catalog (openstack-up.sh makes it)"
urls = {e.url for e in idn.endpoints() if e.service_id == svc.id}
assert urls == {"http://127.0.0.1:9696"}, urls
EOF
}

# ---------------------------------------------------------------- the stub swap
# The shared lab's openstack-up.sh starts neutron-stub unless /run/lab/neutron-stub.pid
# is alive; when a later run does so while neutron-server holds 9696, the stub's
# bind fails (it exits) and openstack-up.sh's readiness probe (GET / on 9696) is
# answered by neutron-server: the lab stays up with the real Neutron.
stub_pid() {
  local pid
  pid=$(cat $LAB_RUN/neutron-stub.pid 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && grep -q neutron-stub "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}
stop_stub() {
  local pid
  pid=$(stub_pid) || return 0
  cp "/proc/$pid/cmdline" "$RUN/stub.cmdline"      # how `down` starts it again
  stat -c %U "/proc/$pid" > "$RUN/stub.user"
  stop_pid "$pid"; rm -f $LAB_RUN/neutron-stub.pid
  say "stopped the lab's neutron-stub (pid $pid)"
}
start_stub() {
  stub_pid >/dev/null && return 0
  port_open $API_PORT && die "port $API_PORT is still taken: stub not restarted"
  local cmd=() user
  if [ -s "$RUN/stub.cmdline" ]; then mapfile -d '' -t cmd < "$RUN/stub.cmdline"; user=$(cat "$RUN/stub.user")
  else
    local lab=${NOVA_DOCKER_SHARED_LAB:-$HERE/../../../shared/lab}
    [ -e "$lab/neutron-stub.py" ] || { say "no saved stub command and no $lab/neutron-stub.py: stub not restarted"; return 0; }
    cmd=(python3 "$lab/neutron-stub.py" --host 127.0.0.1 --port "$API_PORT" --log /var/log/lab/neutron-stub.log); user=nobody
  fi
  mkdir -p $LAB_RUN
  setsid setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "${cmd[@]}" >>/var/log/lab/neutron-stub.out 2>&1 </dev/null 9>&- &
  echo $! > $LAB_RUN/neutron-stub.pid
  wait_for neutron-stub 30 curl -sf -m 3 http://127.0.0.1:$API_PORT/
}

# ---------------------------------------------------------------- network for tests
# One shared tenant network (VLAN from the range, no router, gateway address
# unanswered) that any project can boot on; tests that need isolation make their own.
shared_network() {
  python3 - "$NET_NAME" "$SUBNET_NAME" "$SUBNET_CIDR" "$AGENT_HOST" <<'EOF'
import sys, time
import openstack
net_name, subnet_name, cidr, host = sys.argv[1:]
c = openstack.connect(auth_url="http://127.0.0.1:5000/v3", username="admin", password="labadmin",
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

# ---------------------------------------------------------------- commands
# ---------------------------------------------------------------- fast paths (a warm `up` in a few seconds)
token() {       # token USER PROJECT PASSWORD: a keystone token, or fail
  curl -sf -m 10 -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"'"$1"'","domain":{"name":"Default"},"password":"'"$3"'"}}},"scope":{"project":{"name":"'"$2"'","domain":{"name":"Default"}}}}}' \
    $KS/v3/auth/tokens | awk -F': ' 'tolower($1)=="x-subject-token" {sub(/\r$/, "", $2); print $2; ok=1} END {exit !ok}'
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

cmd_up() {
  [ "$(id -u)" = 0 ] || die "run as root"
  install_packages
  ovs_up
  write_configs
  setup_db
  if [ -e "$RUN/keystone.done" ] && token neutron service "$SVC_PASS" >/dev/null; then :; else
    keystone_user; touch "$RUN/keystone.done"; say "keystone user neutron ok"
  fi
  stop_stub
  mkdir -p /var/lib/neutron/lock && chown -R neutron:neutron /var/lib/neutron
  if ! alive neutron-server && port_open $API_PORT; then
    die "port $API_PORT is taken by something this script did not start (not the lab's stub)"
  fi
  start_daemon neutron-server
  # agents after the server answers: a state report sent before its RPC workers
  # consume is lost, and the agent then counts as down for ~30-60 s
  wait_for neutron-server 120 curl -sf -m 3 http://127.0.0.1:$API_PORT/
  start_daemon neutron-openvswitch-agent
  start_daemon neutron-dhcp-agent
  if lab_ready; then say "agents alive, network $NET_NAME there"; else shared_network; fi
  say "NETLAB-UP (neutron-server on 127.0.0.1:$API_PORT, agents on host $AGENT_HOST)"
}

# start_daemon NAME: one of the three, with its config files (see start_svc)
start_daemon() {
  local cfg
  case $1 in
    neutron-server) cfg=(/etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini) ;;
    neutron-openvswitch-agent) cfg=(/etc/neutron/neutron.conf /etc/neutron/plugins/ml2/openvswitch_agent.ini) ;;
    neutron-dhcp-agent) cfg=(/etc/neutron/neutron.conf /etc/neutron/dhcp_agent.ini) ;;
    *) die "unknown daemon $1 (neutron-server, neutron-openvswitch-agent, neutron-dhcp-agent)" ;;
  esac
  local user=root; [ "$1" = neutron-server ] && user=neutron
  start_svc "$1" $user "$(conf_hash "${cfg[@]}")" \
    "$1" --config-file "${cfg[0]}" --config-file "${cfg[1]}" --log-file "$LOG/$1.log"
}

# daemon NAME stop|start: one daemon of a lab that is up, e.g. the DHCP agent
# stopped so no port's DHCP provisioning block clears (a network-vif-plugged
# that never comes); `start` reuses the config `up` wrote.
cmd_daemon() {
  [ "$(id -u)" = 0 ] || die "run as root"
  local name=${1:-} action=${2:-}
  case $action in
    stop) case $name in
            neutron-server|neutron-openvswitch-agent|neutron-dhcp-agent) stop_svc "$name" ;;
            *) die "unknown daemon $name" ;;
          esac ;;
    start) [ -e /etc/neutron/neutron.conf.dist ] || die "run up first"; start_daemon "$name" ;;
    *) die "usage: daemon NAME stop|start" ;;
  esac
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "run as root"
  # in parallel: each takes 5-15 s to exit on a loaded machine
  local s
  for s in neutron-dhcp-agent neutron-openvswitch-agent neutron-server; do stop_svc $s & done
  wait
  # dnsmasq of the DHCP agent, and its namespaces/ports (the agent leaves them behind)
  local f ns
  for f in /var/lib/neutron/dhcp/*/pid; do [ -s "$f" ] && stop_pid "$(cat "$f")"; rm -f "$f"; done
  for ns in $(ip netns list | awk '$1 ~ /^qdhcp-/ {print $1}'); do
    for f in $(ip -n "$ns" -o link show | awk -F': ' '$2 ~ /^ns-/ {sub(/@.*/, "", $2); print $2}'); do
      ovs-vsctl --timeout=10 --if-exists del-port br-int "tap${f#ns-}"
    done
    ip netns delete "$ns"
  done
  start_stub
  say "neutron lab down, stub restored"
}

cmd_status() {
  local rc=0 s
  for s in neutron-server neutron-openvswitch-agent neutron-dhcp-agent; do
    if alive $s; then echo "$s: running (pid $(cat $RUN/$s.pid))"; else echo "$s: stopped"; rc=1; fi
  done
  if pid=$(stub_pid); then echo "neutron-stub: running (pid $pid)"; else echo "neutron-stub: stopped"; fi
  if ovs-appctl --timeout=5 -t ovs-vswitchd version >/dev/null 2>&1; then echo "ovs-vswitchd: running"; else echo "ovs-vswitchd: stopped"; rc=1; fi
  return $rc
}

cmd_env() {
  cat <<EOF
NETLAB_NEUTRON_URL=http://127.0.0.1:$API_PORT
NETLAB_AGENT_HOST=$AGENT_HOST
NETLAB_INTEGRATION_BRIDGE=br-int
NETLAB_DATAPATH_TYPE=netdev
NETLAB_NETWORK=$NET_NAME
NETLAB_SUBNET=$SUBNET_NAME
NETLAB_SUBNET_CIDR=$SUBNET_CIDR
NETLAB_PHYSNET=$PHYSNET
NETLAB_LOG_DIR=$LOG
EOF
}

mkdir -p "$LOG" "$RUN"
case ${1:-} in
  up|down|daemon)
    exec 9>"$RUN/lock"
    flock -w 900 9 || die "another neutron-lab.sh up/down/daemon holds $RUN/lock"
    chown neutron: "$LOG" 2>/dev/null || true
    "cmd_$1" "${@:2}" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  check) exec python3 "$HERE/neutron-lab-check.py" "${@:2}" ;;
  *) echo "usage: $0 up|down|status|env|check|daemon NAME stop|start" >&2; exit 2 ;;
esac
