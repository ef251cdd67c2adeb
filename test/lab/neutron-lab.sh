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
SVC_PASS=labservice DB_PASS=labdb DB_ADDR=127.0.0.1
TRANSPORT="rabbit://openstack:labrabbit@127.0.0.1:5672/"
NET_NAME=nova-docker-lab-net SUBNET_NAME=nova-docker-lab-subnet SUBNET_CIDR=10.251.0.0/24
PHYSNET=physnet1 INT_BRIDGE=br-int PHYS_BRIDGE=br-phys VLAN_RANGE=100:199
PKGS="neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent openvswitch-switch
 ethtool busybox-static iproute2 util-linux curl"
OVS_RUN=/var/run/openvswitch

# the config writers all-in-one.sh and the release labs use too (ksa, authtoken, dbc, put_conf, poll)
# shellcheck source=SCRIPTDIR/../../scripts/lib/openstack-conf.sh
. "$HERE/../../scripts/lib/openstack-conf.sh"
NEUTRON_DB=$(dbc neutron neutron)
# shellcheck source-path=SCRIPTDIR source=neutron-common.sh
. "$HERE/neutron-common.sh"

T0=$(date +%s%N)
say() { local ds=$(( ($(date +%s%N) - T0) / 100000000 )); echo "[netlab $((ds/10)).$((ds%10))s] $*"; }
die() { echo "neutron-lab: $*" >&2; exit 1; }
wait_for() {    # wait_for DESC TIMEOUT_S CMD...: poll CMD every 0.5 s
  poll "$2" "${@:3}" || die "timeout waiting for $1 (logs: $LOG)"
  say "$1 ready"
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

# ---------------------------------------------------------------- configs
write_conf() { put_conf "$1"; }   # (neutron-common.sh's writer: the files as the daemons see them)
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

cmd_up() {
  [ "$(id -u)" = 0 ] || die "run as root"
  install_packages
  ovs_up "$LOG/ovs-ctl.out" "$INT_BRIDGE" "$PHYS_BRIDGE"
  neutron_write_configs "nova-docker test/lab/neutron-lab.sh"
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
  dhcp_cleanup "" env
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
  neutron_env
  echo "NETLAB_LOG_DIR=$LOG"
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
