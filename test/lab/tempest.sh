#!/bin/bash
# tempest.sh [RELEASE] [REGEX] -- Tempest, from the release lab's own Debian
# package, against that lab with one nova-docker agent as the only compute.
#
#   RELEASE  2026.1 (default; Debian testing's tempest 47.x) or 2025.1
#   REGEX    the test selection (default: the compute API, ^tempest\.api\.compute\.)
#
# Slow (tens of minutes on 2 cores): on demand, not part of `npm test`.
# Networks are on: the lab's Neutron, Tempest's own network, subnet and router
# per project (dynamic credentials), the agent as the lab's OVS agent host;
# TEMPEST_NEUTRON=0 runs without Neutron (every server --nic none).
# Environment: TEMPEST_CONCURRENCY (2), TEMPEST_KEEP_AGENT=1 leaves the agent
# running afterwards.  Prints passed/failed/skipped and every failure's test
# id and first error line; the whole subunit stream stays in the workspace
# (the rootfs's /var/lib/lab/tempest) for `stestr last`.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
REL=${1:-2026.1}
REGEX=${2:-'^tempest\.api\.compute\.'}
cd "$(dirname "$0")/../.."
REPO=$PWD
LAB=(bash "$REPO/test/lab/release-lab.sh")
NEUTRON=${TEMPEST_NEUTRON:-1}
WS=/var/lib/lab/tempest                  # inside the rootfs
STATE=/var/lib/nova-docker-tempest/$REL  # on the host: the agent's conf, log and state_path
say() { echo "[tempest.sh] $*"; }

"${LAB[@]}" up "$REL" >/dev/null
eval "$("${LAB[@]}" env "$REL")"
# ports are bound to the host of the lab's OVS agent: with networks the agent is that host
if [ "$NEUTRON" = 1 ]; then HOST=$NETLAB_AGENT_HOST; else HOST=tempest-compute-$REL; fi
onoff() { if [ "$NEUTRON" = 1 ]; then echo true; else echo false; fi; }
inlab() { "${LAB[@]}" exec "$REL" "$@"; }
[ -e dist/src/cli.js ] || npm run build >/dev/null

# ---------------------------------------------------------------- the only compute: one agent
# compute services of other hosts (earlier e2e runs that did not clean up)
# would be listed by the hypervisor tests: drop every one that is down
for id in $(inlab openstack --os-compute-api-version 2.53 compute service list --service nova-compute \
  -f value -c ID -c Host -c State | awk -v h="$HOST" '$2 != h && $3 == "down" {print $1}'); do
  inlab openstack --os-compute-api-version 2.53 compute service delete "$id"
done
mkdir -p "$STATE/state"
cat >"$STATE/nova.conf" <<EOF
[DEFAULT]
host = $HOST
transport_url = $NOVA_DOCKER_LAB_TRANSPORT_URL
my_ip = 127.0.0.1
state_path = $STATE/state
metrics_port = 0
[placement]
auth_type = password
auth_url = $NOVA_DOCKER_LAB_KEYSTONE
project_domain_name = Default
user_domain_name = Default
project_name = service
username = placement
password = labservice
region_name = RegionOne
[glance]
api_servers = $NOVA_DOCKER_LAB_GLANCE
[docker]
registry_url = $NOVA_DOCKER_LAB_REGISTRY
EOF
if [ "$NEUTRON" = 1 ]; then cat >>"$STATE/nova.conf" <<EOF
[neutron]
auth_type = password
auth_url = $NOVA_DOCKER_LAB_KEYSTONE
project_domain_name = Default
user_domain_name = Default
project_name = service
username = nova
password = labservice
region_name = RegionOne
ovs_bridge = $NETLAB_INTEGRATION_BRIDGE
EOF
fi
AGENT_PID=
if [ -s "$STATE/agent.pid" ] && kill -0 "$(cat "$STATE/agent.pid")" 2>/dev/null; then
  AGENT_PID=$(cat "$STATE/agent.pid")
  say "agent already running (pid $AGENT_PID)"
else
  setsid node dist/src/cli.js compute --config-file "$STATE/nova.conf" >"$STATE/agent.log" 2>&1 </dev/null &
  AGENT_PID=$!
  echo "$AGENT_PID" >"$STATE/agent.pid"
  say "agent started (pid $AGENT_PID, log $STATE/agent.log)"
fi
# shellcheck disable=SC2317 # the EXIT trap
stop_agent() {
  [ "${TEMPEST_KEEP_AGENT:-0}" = 1 ] && return 0
  kill -TERM "$AGENT_PID" 2>/dev/null || true
  rm -f "$STATE/agent.pid"
}
trap stop_agent EXIT
for _ in $(seq 120); do
  inlab openstack compute service list --service nova-compute --host "$HOST" -f value -c State 2>/dev/null | grep -qx up && break
  kill -0 "$AGENT_PID" 2>/dev/null || { tail -20 "$STATE/agent.log" >&2; exit 1; }
  sleep 1
done
inlab nova-manage cell_v2 discover_hosts >/dev/null

# ---------------------------------------------------------------- images (docker save tarballs)
image_id() {   # image_id NAME DOCKER_IMAGE: the Glance image, uploaded once
  local id
  id=$(inlab openstack image show "$1" -f value -c id 2>/dev/null || true)
  if [ -z "$id" ]; then
    local root=/var/cache/nova-docker-lab/$REL/rootfs tar=/tmp/$1.tar
    docker save "$2" -o "$root$tar" || return 1
    id=$(inlab openstack image create --container-format docker --disk-format raw --public \
      --file "$tar" "$1" -f value -c id)
    rm -f "$root$tar"
  fi
  echo "$id"
}
IMG=$(image_id tempest-busybox busybox:latest)
IMG_ALT=$(image_id tempest-httpd lab/httpd:latest)
if [ -z "$IMG" ] || [ -z "$IMG_ALT" ]; then echo "tempest.sh: the images could not be uploaded" >&2; exit 1; fi

# ---------------------------------------------------------------- tempest itself: the release's own package
if ! inlab sh -c 'command -v tempest' >/dev/null; then
  say "installing the tempest package in the $REL rootfs"
  inlab apt-get install -y -q tempest >"$STATE/tempest-install.log" 2>&1 ||
    { tail -20 "$STATE/tempest-install.log" >&2; exit 1; }
fi

# ---------------------------------------------------------------- tempest.conf
# the newest compute microversion this lab's Nova serves
MAX_MV=$(inlab openstack versions show --service compute --interface public -f value -c 'Max Microversion' | grep -E '^[0-9.]+$' | sort -V | tail -n 1)
inlab sh -c "[ -d $WS/etc ] || { mkdir -p ${WS%/*} && tempest init $WS >/dev/null; }"
inlab sh -c "cat > $WS/etc/tempest.conf" <<EOF
[DEFAULT]
log_dir = $WS/logs
log_file = tempest.log
[oslo_concurrency]
lock_path = $WS/lock
[auth]
use_dynamic_credentials = true
# a network, subnet and router of its own per project (the lab's Neutron has no external network)
create_isolated_networks = $(onoff)
admin_username = admin
admin_password = labadmin
admin_project_name = admin
admin_domain_name = Default
default_credentials_domain_name = Default
[identity]
uri_v3 = $NOVA_DOCKER_LAB_KEYSTONE
auth_version = v3
region = RegionOne
[identity-feature-enabled]
api_v2 = false
[service_available]
nova = true
glance = true
placement = true
neutron = $(onoff)
cinder = false
swift = false
horizon = false
heat = false
[compute]
image_ref = $IMG
image_ref_alt = $IMG_ALT
flavor_ref = 1
flavor_ref_alt = 2
min_compute_nodes = 1
# the lab's own maximum: "latest" makes a newer tempest run tests of microversions this Nova lacks
max_microversion = $MAX_MV
build_timeout = 120
[compute-feature-enabled]
# what a container host does (see the README's support matrix)
resize = true
pause = true
suspend = true
snapshot = true
console_output = true
shelve = true
shelve_migrate = false
cold_migration = false
live_migration = false
rescue = false
stable_rescue = false
change_password = false
interface_attach = $(onoff)
vnc_console = false
spice_console = false
serial_console = false
personality = false
config_drive = false
metadata_service = false
attach_encrypted_volume = false
swap_volume = false
volume_multiattach = false
block_migration_for_live_migration = false
hostname_fqdn_sanitization = true
[validation]
run_validation = false
[image-feature-enabled]
api_v2 = true
[network]
# tempest's project networks: clear of the labs' own 10.251.x and the e2e tests' 10.253/10.254
project_network_cidr = 10.120.0.0/16
project_network_mask_bits = 28
[network-feature-enabled]
# no external network in the lab (tenant traffic never leaves this machine): no floating IP pool
floating_ips = false
ipv6 = false
EOF

# ---------------------------------------------------------------- run
say "tempest run --regex '$REGEX' against the $REL lab (agent host $HOST)"
t0=$SECONDS
rc=0
inlab sh -c "cd $WS && tempest run --concurrency ${TEMPEST_CONCURRENCY:-2} --regex '$REGEX'" >"$STATE/tempest-run.log" 2>&1 || rc=$?
say "tempest run: $((SECONDS - t0)) s, exit $rc (log $STATE/tempest-run.log)"
grep -E '^ - (Passed|Failed|Skipped|Expected Fail|Unexpected Success):' "$STATE/tempest-run.log" || tail -20 "$STATE/tempest-run.log"
# every failure's id (stestr failing), and its error lines from the run log
inlab sh -c "cd $WS && stestr failing --list" 2>/dev/null | sed 's/\[.*//' | sort -u >"$STATE/failed.txt" || true
while read -r t; do
  echo "FAILED $t"
  # the first Details line of its traceback (the API's answer), else the first exception line
  awk -v t="$t" 'index($0, t) && / FAILED$/ {f = 1} f' "$STATE/tempest-run.log" |
    grep -m1 -E '^ *Details:|^ *[A-Za-z_.]+(Error|Exception|Failure|Mismatch)[A-Za-z]*:' | sed 's/^ */    /' || true
done <"$STATE/failed.txt"
exit $rc
