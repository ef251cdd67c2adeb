#!/bin/bash
# release-lab.sh -- a real Nova 2025.1 or 2026.1 control plane, built from
# Debian's own packages inside a debootstrap'd root filesystem and run on this
# machine's loopback next to the shared Zed lab (../shared/lab), which keeps
# the standard ports.  See test/lab/README.md.
#
#   release-lab.sh build RELEASE        rootfs + packages only (cached)
#   release-lab.sh up RELEASE           build if needed, configure, start; idempotent
#   release-lab.sh down RELEASE         stop what `up` started (PID files), unmount; data kept
#   release-lab.sh status RELEASE       daemons, ports, mounts
#   release-lab.sh env RELEASE          `export` lines for the admin and the tests (NETLAB_*: Neutron)
#   release-lab.sh check RELEASE [--keep]  the lab's Neutron self-test (neutron-lab-check.py)
#   release-lab.sh exec RELEASE CMD...  CMD inside the rootfs, as root, admin env set
#   release-lab.sh fake-compute RELEASE start|stop|status
#                                       the release's real nova-compute, fake driver,
#                                       host lab-compute-RELEASE (stop deletes its record)
#   release-lab.sh smoke RELEASE        fake compute + server create --wait -> ACTIVE,
#                                       delete, fake compute stopped and its record deleted
#   release-lab.sh versions RELEASE     service/RPC/object versions of the installed python3-nova
#   release-lab.sh rabbitmqctl RELEASE ARGS...   the lab broker's rabbitmqctl (the fault suite)
#   release-lab.sh daemon RELEASE NAME stop|start  glance-api (the fault suite) or neutron-dhcp-agent
#                                       (the networked e2e's plug timeout)
#
# RELEASE = 2025.1 (Debian 13 trixie, nova 31.x) | 2026.1 (Debian testing, nova 33.x)
# Ports: the Zed lab's standard ports + 100 (2025.1) or + 200 (2026.1), all on 127.0.0.1.
# Credentials are the Zed lab's: admin/labadmin, service users */labservice,
# rabbit openstack/labrabbit, DB users */labdb.
# Neutron (ML2/OVS, as neutron-lab.sh runs it for Zed): neutron-api (uwsgi) and
# neutron-rpc-server in the rootfs, the OVS and DHCP agents in it as root with
# host nova-docker-net-2025-1 / -2026-1, on this machine's one Open vSwitch with bridges
# of their own (br-int25/br-phys25, br-int26/br-phys26).
#
# Layout (host paths):
#   /var/cache/nova-docker-lab/RELEASE/rootfs   the root filesystem (DBs, images, configs inside)
#   /run/nova-docker-lab/RELEASE/*.pid          PIDs of the daemons `up` started
#   /var/log/nova-docker-lab/RELEASE            -> ROOTFS/var/log/lab (symlink): <svc>.log, <svc>.out
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin      # Debian's tools, not pyenv's python
export DEBIAN_FRONTEND=noninteractive
LAB_DIR=$(cd "$(dirname "$0")" && pwd)
# the config writers all-in-one.sh uses too (run here on the host: they print,
# or write the path put_conf is given, which write_conf puts under the rootfs)
# shellcheck source=SCRIPTDIR/../../scripts/lib/openstack-conf.sh
. "$LAB_DIR/../../scripts/lib/openstack-conf.sh"

usage() { sed -n '7,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
CMD=${1:-}
REL=${2:-}
case $REL in
  2025.1) SUITE=trixie  DBS_SCRIPT=trixie OFF=100 ;;
  # Debian 12's debootstrap has no script that knows testing's current
  # layout better than sid's
  2026.1) SUITE=testing DBS_SCRIPT=/usr/share/debootstrap/scripts/sid OFF=200 ;;
  *) usage ;;
esac
MIRROR=http://deb.debian.org/debian
CACHE=/var/cache/nova-docker-lab/$REL
R=$CACHE/rootfs
# Glance is not in Debian testing (removed; sid's 2026.2 glance wants sid's
# oslo libraries, and trixie's glance will not run on testing's Python 3.14):
# the 2026.1 lab runs trixie's glance-api (2025.1, Python 3.13) from a second,
# small trixie rootfs.  Same loopback, same MariaDB and Keystone, logs in the
# main rootfs's log directory.
MAIN_R=$R GR=$R
[ "$SUITE" = trixie ] || GR=$CACHE/glance/rootfs
RUN=/run/nova-docker-lab/$REL
LOGLINK=/var/log/nova-docker-lab/$REL
LOG=/var/log/lab ETC=/etc/lab           # inside the rootfs
ADMIN_PASS=labadmin SVC_PASS=labservice DB_PASS=labdb RABBIT_PASS=labrabbit
P_DB=$((3306 + OFF)) P_AMQP=$((5672 + OFF)) P_EPMD=$((4369 + OFF)) P_DIST=$((25672 + OFF))
P_KS=$((5000 + OFF)) P_GLANCE=$((9292 + OFF)) P_PLACEMENT=$((8778 + OFF)) P_NOVA=$((8774 + OFF))
P_NEUTRON=$((9696 + OFF)) P_REG=$((5042 + OFF))
DB_ADDR=127.0.0.1:$P_DB
KS=http://127.0.0.1:$P_KS
TRANSPORT="rabbit://openstack:${RABBIT_PASS}@127.0.0.1:$P_AMQP/"
RABBIT_NODE=rabbit${REL//./}@localhost     # rabbit20251@localhost: not the Zed broker's name
COMPUTE_HOST=lab-compute-$REL
# Neutron (names and config shared with neutron-lab.sh: neutron-common.sh).
# The host's one ovs-vswitchd serves every lab: each OVS agent gets bridges of
# its own (two agents on one integration bridge delete each other's flows),
# its own OpenFlow controller port, and the shared network its own subnet
# (all netdev bridges share one datapath, whose conntrack zones are the
# agents' local VLAN numbers)
# (a host name, as oslo.config's HostAddress wants it: no all-digit last label)
AGENT_HOST=nova-docker-net-${REL//./-}
INT_BRIDGE=br-int${REL:2:2} PHYS_BRIDGE=br-phys${REL:2:2}
PHYSNET=physnet1 VLAN_RANGE=100:199
OF_PORT=$((6633 + OFF)) API_PORT=$P_NEUTRON OVS_RUN=/var/run/openvswitch
NEUTRON_DB=$(dbc neutron neutron)
NET_NAME=nova-docker-lab-net SUBNET_NAME=nova-docker-lab-subnet SUBNET_CIDR=10.251.$OFF.0/24
CHECK_CIDR=10.252.$OFF.0/24
NEUTRON_DAEMONS="neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent"
PKGS="mariadb-server rabbitmq-server keystone placement-api nova-api
 nova-conductor nova-scheduler python3-openstackclient python3-novaclient python3-amqp curl
 neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent ethtool"
[ "$GR" != "$R" ] || PKGS=${PKGS/keystone /keystone glance-api }
# docker-registry is added when the suite has it (see pkgs_wanted)
T0=$(date +%s%N)
say() { local ds=$((($(date +%s%N) - T0) / 100000000)); echo "[$((ds / 10)).$((ds % 10))s] $*"; }
die() { echo "release-lab: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, mounts)"
# shellcheck source-path=SCRIPTDIR source=neutron-common.sh
. "$LAB_DIR/neutron-common.sh"

# ---------------------------------------------------------------- running things inside the rootfs
# a clean environment: nothing of the host's (pyenv PATH, OS_* variables) leaks in
CENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb)
in_root() { chroot "$R" "${CENV[@]}" HOME=/root "$@"; }
home_of() { in_root getent passwd "$1" | cut -d: -f6; }
# as USER CMD...: CMD inside the rootfs as USER (its own primary group and groups)
as() {
  local user=$1; shift
  chroot "$R" "${CENV[@]}" HOME="$(home_of "$user")" \
    setpriv --reuid="$user" --regid="$(in_root id -g "$user")" --init-groups "$@"
}
admin_env() {
  cat <<EOF
OS_AUTH_URL=$KS/v3
OS_IDENTITY_API_VERSION=3
OS_USERNAME=admin
OS_PASSWORD=$ADMIN_PASS
OS_PROJECT_NAME=admin
OS_USER_DOMAIN_NAME=Default
OS_PROJECT_DOMAIN_NAME=Default
OS_REGION_NAME=RegionOne
OS_COMPUTE_API_VERSION=2.37
EOF
}
# openstack ARGS...: the rootfs's own CLI as the admin
openstack_() { mapfile -t e < <(admin_env); in_root "${e[@]}" openstack "$@"; }
mysql_() { in_root mysql "$@"; }

# ---------------------------------------------------------------- mounts
MOUNTS="proc sys dev dev/pts dev/shm run"
mounted() { mountpoint -q "$R/$1"; }
mount_all() {
  # the rootfs a mount point of its own: `ip netns exec` (the DHCP agent's)
  # makes / a slave mount in its new mount namespace, which fails (EINVAL)
  # where / is a mere directory
  if ! mountpoint -q "$R"; then
    if mounted proc; then die "$R has mounts but is no mount point (an older release-lab.sh's up): run down $REL first"; fi
    mount --bind "$R" "$R"
  fi
  mounted proc || mount -t proc proc "$R/proc"
  mounted sys || mount -t sysfs -o ro sysfs "$R/sys"
  mounted dev || mount --bind /dev "$R/dev"
  mounted dev/pts || mount --bind /dev/pts "$R/dev/pts"
  # private tmpfs: the rootfs's /run and /dev/shm start empty after every
  # `down`, like a booted system's (no stale sockets, PID or lock files)
  mounted dev/shm || mount -t tmpfs -o mode=1777,nosuid,nodev lab-shm "$R/dev/shm"
  mounted run || mount -t tmpfs -o mode=755,nosuid,nodev lab-run "$R/run"
  mkdir -p "$R/run/lock" && chmod 1777 "$R/run/lock"
  # Glance's own rootfs writes its logs where the rest of the lab does
  if [ "$R" != "$MAIN_R" ]; then
    mkdir -p "$R$LOG" "$MAIN_R$LOG"
    mounted "${LOG#/}" || mount --bind "$MAIN_R$LOG" "$R$LOG"
  fi
}
# umount_all: every mount at or below the rootfs, children first: mount_all's,
# Glance's log directory, what Neutron mounted below /run (the host's Open
# vSwitch run directory, the agents' network namespaces), the rootfs itself
umount_all() {
  local m rc=0 list=()
  mapfile -t list < <(awk -v r="$R" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r)
  for m in "${list[@]}"; do umount "$m" || { echo "could not unmount $m" >&2; rc=1; }; done
  return $rc
}

# ---------------------------------------------------------------- rootfs + packages (cached)
ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  say "installing debootstrap on the host"
  apt-get install -y -q -o DPkg::Lock::Timeout=600 debootstrap >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=600 debootstrap >/dev/null; }
}
# pkgs_wanted: the package list, plus docker-registry if the suite still ships it
pkgs_wanted() {
  local p=$PKGS
  if [ "$R" = "$MAIN_R" ] && in_root apt-cache show docker-registry >/dev/null 2>&1; then p="$p docker-registry"; fi
  echo "$p" | tr -s ' \n' ' '
}
# in_glance_root CMD...: CMD (a function of this script) with the rootfs
# variables pointing at Glance's rootfs (bash's dynamic scoping)
in_glance_root() {
  local R=$GR CACHE=$CACHE SUITE=$SUITE DBS_SCRIPT=$DBS_SCRIPT PKGS=$PKGS
  if [ "$GR" != "$MAIN_R" ]; then
    CACHE=$CACHE/glance SUITE=trixie DBS_SCRIPT=trixie PKGS="glance-api curl"
  fi
  "$@"
}
build_rootfs() {
  mkdir -p "$CACHE"
  if [ ! -e "$R/.lab-debootstrap-done" ]; then
    ensure_debootstrap
    local part=$CACHE/rootfs.partial
    # a half-built rootfs cannot be resumed reliably: start it over
    if [ -e "$part" ]; then
      grep -o " $part/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount "$m" || true; done
      rm -rf --one-file-system "$part"
    fi
    say "debootstrap --variant=minbase $SUITE (log: $CACHE/debootstrap.log)"
    local t=$SECONDS
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$part" "$MIRROR" "$DBS_SCRIPT" \
      >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
    touch "$part/.lab-debootstrap-done"
    [ -e "$R" ] && rm -rf --one-file-system "$R"
    mv "$part" "$R"
    say "debootstrap done in $((SECONDS - t)) s"
  fi
  # apt sources, apt options, the host's CA (the registries are reached
  # through a TLS proxy whose CA only the host trusts), name resolution
  if [ "$SUITE" = trixie ]; then
    cat >"$R/etc/apt/sources.list" <<EOF
deb $MIRROR trixie main
deb $MIRROR trixie-updates main
deb http://deb.debian.org/debian-security trixie-security main
EOF
  else
    echo "deb $MIRROR testing main" >"$R/etc/apt/sources.list"
    # testing's Release file, as this machine sees it, is past its Valid-Until
    echo 'Acquire::Check-Valid-Until "false";' >"$R/etc/apt/apt.conf.d/99lab-valid-until"
    rm -f "$R/etc/apt/sources.list.d/lab-trixie.list" "$R/etc/apt/preferences.d/50lab-trixie"
  fi
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$R/etc/apt/apt.conf.d/99lab-no-recommends"
  mkdir -p "$R/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/hosts "$R/etc/hosts"
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  # no daemon starts from a postinst (there is no init in the rootfs anyway)
  printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
  mount_all
  in_root update-ca-certificates >/dev/null 2>&1
  local want have=""
  [ -e "$R/.lab-packages" ] && have=$(cat "$R/.lab-packages")
  # cheap check first: the stamp names the packages installed last time
  if [ -n "$have" ] && [ "$(echo "$PKGS" | tr -s ' \n' ' ' | sed 's/ $//')" = "$(cut -d'|' -f1 <<<"$have")" ]; then
    return 0
  fi
  say "apt-get update + install in the rootfs (log: $CACHE/apt-install.log)"
  # no maintainer script (openvswitch-switch's) may reach this machine's Open vSwitch
  if mounted run/openvswitch; then umount "$R/run/openvswitch"; fi
  local t=$SECONDS
  in_root apt-get update -q >"$CACHE/apt-install.log" 2>&1 || { tail -20 "$CACHE/apt-install.log" >&2; die "apt-get update failed"; }
  # the OpenStack packages' debconf defaults are already "do not configure
  # db / rabbit / endpoints"; preseed them anyway, as the Zed lab does
  local q
  for q in keystone/configure_db keystone/create-admin-tenant keystone/register-endpoint \
    glance/configure_db glance/configure_rabbit glance/configure_ksat glance/configure_api-endpoint \
    placement/configure_db placement/configure_ksat placement/configure_api-endpoint \
    nova/configure_db novaapi/configure_db nova/configure_rabbit nova/configure_ksat \
    nova/configure_neutron nova/configure_placement nova/configure_api-endpoint \
    neutron/configure_db neutron/configure_rabbit neutron/configure_ksat neutron/configure_api-endpoint; do
    echo "${q%%/*} $q boolean false"
  done | sed 's/^novaapi /nova-api /; s/^nova /nova-common /; s/^glance /glance-common /; s/^placement /placement-common /; s/^neutron \(neutron\/configure_api\)/neutron-api \1/; s/^neutron /neutron-common /' |
    in_root debconf-set-selections
  want=$(pkgs_wanted)
  # no fsync per file (a build that dies is redone: the stamp below is written last)
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  in_root apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    -o Dpkg::Options::=--force-unsafe-io $want \
    >>"$CACHE/apt-install.log" 2>&1 || { tail -30 "$CACHE/apt-install.log" >&2; die "package install failed"; }
  in_root apt-get clean
  echo "$(echo "$PKGS" | tr -s ' \n' ' ' | sed 's/ $//')|$want" >"$R/.lab-packages"
  say "packages installed in $((SECONDS - t)) s: nova $(nova_version)"
}
has_registry() { [ -x "$R/usr/bin/docker-registry" ]; }

# shellcheck disable=SC2016 # ${Version} is dpkg-query's
nova_version() { in_root dpkg-query -W -f='${Version}' python3-nova; }

# ---------------------------------------------------------------- daemons
# name -> a word its command line contains (the PID-file sanity check)
pattern_of() {
  case $1 in
    mariadb) echo mariadbd ;; rabbitmq) echo rabbit ;; placement-api) echo placement ;;
    docker-registry) echo registry ;; *) echo "$1" ;;
  esac
}
root_of() { if [ "$1" = glance-api ]; then echo "$GR"; else echo "$MAIN_R"; fi; }
# alive NAME: the PID file names a live process of that daemon, in this rootfs
alive() {
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [[ $pid =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] || return 1
  [ "$(readlink "/proc/$pid/root")" = "$(root_of "$1")" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(pattern_of "$1")"
}
# /run may outlive the processes it names (a machine restored from an image,
# a reused PID): drop every PID file that does not name its daemon
drop_stale_pids() {
  local f
  for f in "$RUN"/*.pid; do
    [ -e "$f" ] || continue
    alive "$(basename "$f" .pid)" || rm -f "$f"
  done
}
# free_port NAME PORT: nobody but our own NAME may listen on PORT
free_port() {
  if ! alive "$1" && port_open "$2"; then
    die "port 127.0.0.1:$2 (for $1) is taken by something this lab did not start: $(ss -ltnpH "sport = :$2" | head -1)"
  fi
}
# start NAME USER CMD...: CMD in the rootfs as USER unless NAME is alive;
# setsid, chroot, env and setpriv all exec, so $! is the daemon's own PID.
# fd 9 (the command lock) is closed: a daemon holding it would block every
# later command of this script for as long as it runs
start() {
  local name=$1 user=$2; shift 2
  if alive "$name"; then say "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
  if [ "$user" = root ]; then
    setsid chroot "$R" "${CENV[@]}" HOME=/root "$@" >>"$R$LOG/$name.out" 2>&1 </dev/null 9>&- &
  else
    setsid chroot "$R" "${CENV[@]}" HOME="$(home_of "$user")" \
      setpriv --reuid="$user" --regid="$(in_root id -g "$user")" --init-groups "$@" >>"$R$LOG/$name.out" 2>&1 </dev/null 9>&- &
  fi
  echo $! >"$RUN/$name.pid"
  say "started $name (pid $!)"
}
stop() {   # stop NAME: SIGTERM the saved PID's process group, wait up to 20 s, then SIGKILL
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$1"; then
    # the whole process group (start's setsid made the daemon its leader):
    # forked workers (nova-scheduler's, uwsgi's) go with their master
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 40); do pgrep -g "$pid" >/dev/null || break; sleep 0.5; done
    if pgrep -g "$pid" >/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    say "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}
# wait_for DESC TIMEOUT CMD...: poll CMD until it succeeds
wait_for() {
  poll "$2" "${@:3}" || { echo "TIMEOUT waiting for $1 (logs: $LOGLINK)" >&2; return 1; }
  say "$1 ready"
}
# shellcheck disable=SC2317 # called through wait_for
http_up() { curl -s -o /dev/null -m 3 "$1"; }      # any HTTP answer counts
# write_conf FILE (path inside the rootfs): replace a packaged config by ours, keeping FILE.dist once
write_conf() {
  mkdir -p "$(dirname "$R$1")"
  put_conf "$R$1"
}
# wsgi_app CANDIDATE...: the first WSGI script that exists in the rootfs, or
# else the last candidate (a module: the packages moved from pbr's
# wsgi_scripts to modules over the releases)
wsgi_app() {
  local c
  for c in "$@"; do case $c in /*) [ -e "$R$c" ] && { echo "$c"; return; } ;; *) echo "$c"; return ;; esac; done
  die "no WSGI entry point among: $*"
}

# ---------------------------------------------------------------- up
cmd_up() {
  mkdir -p "$RUN" "$(dirname "$LOGLINK")"
  build_rootfs
  mount_all
  mkdir -p "$R$LOG" "$R$ETC" && chmod 1777 "$R$LOG"
  if [ "$GR" != "$R" ]; then in_glance_root build_rootfs; in_glance_root mount_all; fi
  ln -sfn "$R$LOG" "$LOGLINK"
  drop_stale_pids

  # ---------------- mariadb: own port, own socket (the rootfs's /run/mysqld)
  write_conf /etc/mysql/mariadb.conf.d/99-lab.cnf <<EOF
[mysqld]
bind-address = 127.0.0.1
port = $P_DB
socket = /run/mysqld/mysqld.sock
max_connections = 1000
innodb_buffer_pool_size = 128M
log_error = $LOG/mariadb.log
[client]
port = $P_DB
socket = /run/mysqld/mysqld.sock
EOF
  mkdir -p "$R/run/mysqld" && in_root chown mysql:mysql /run/mysqld
  if [ ! -d "$R/var/lib/mysql/mysql" ]; then
    in_root mariadb-install-db --user=mysql >"$R$LOG/mariadb-install-db.out" 2>&1
  fi
  free_port mariadb "$P_DB"
  start mariadb root /usr/sbin/mariadbd --user=mysql
  wait_for mariadb 60 in_root mysqladmin ping
  local db u
  for db in keystone glance placement nova_api nova nova_cell0 neutron; do
    u=${db%%_*}
    mysql_ -e "CREATE DATABASE IF NOT EXISTS $db;
      CREATE USER IF NOT EXISTS '$u'@'localhost' IDENTIFIED BY '$DB_PASS';
      CREATE USER IF NOT EXISTS '$u'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
      GRANT ALL ON $db.* TO '$u'@'localhost'; GRANT ALL ON $db.* TO '$u'@'127.0.0.1';"
  done

  # ---------------- rabbitmq: own AMQP, epmd and distribution ports, own node name
  write_conf /etc/rabbitmq/rabbitmq-env.conf <<EOF
NODENAME=$RABBIT_NODE
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=$P_AMQP
DIST_PORT=$P_DIST
LOGS=$LOG/rabbitmq.log
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_PORT=$P_EPMD
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
  write_conf /etc/rabbitmq/rabbitmq.conf <<EOF
listeners.tcp.default = 127.0.0.1:$P_AMQP
EOF
  free_port rabbitmq "$P_AMQP"
  free_port epmd "$P_EPMD"
  start rabbitmq rabbitmq env ERL_EPMD_PORT="$P_EPMD" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_NODENAME="$RABBIT_NODE" /usr/lib/rabbitmq/bin/rabbitmq-server
  wait_for rabbitmq 120 rabbitmqctl -q await_startup
  # epmd is forked by the broker: remember it so that `down` stops it too
  alive epmd || pid_in_root epmd >"$RUN/epmd.pid" || rm -f "$RUN/epmd.pid"
  rabbitmqctl -q list_users | grep -q '^openstack' || rabbitmqctl -q add_user openstack "$RABBIT_PASS"
  rabbitmqctl -q change_password openstack "$RABBIT_PASS"
  rabbitmqctl -q set_user_tags openstack administrator
  rabbitmqctl -q set_permissions -p / openstack '.*' '.*' '.*'

  # ---------------- keystone
  keystone_conf | write_conf /etc/keystone/keystone.conf
  as keystone keystone-manage db_sync
  mkdir -p "$R/etc/keystone/fernet-keys" "$R/etc/keystone/credential-keys"
  in_root chown keystone:keystone /etc/keystone/fernet-keys /etc/keystone/credential-keys
  [ -e "$R/etc/keystone/fernet-keys/0" ] || in_root keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
  [ -e "$R/etc/keystone/credential-keys/0" ] || in_root keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
  as keystone keystone-manage bootstrap --bootstrap-password "$ADMIN_PASS" \
    --bootstrap-admin-url "$KS/v3" --bootstrap-internal-url "$KS/v3" --bootstrap-public-url "$KS/v3" \
    --bootstrap-region-id RegionOne >>"$R$LOG/keystone-bootstrap.log" 2>&1
  uwsgi_ini "$P_KS" keystone "$(wsgi_app /usr/bin/keystone-wsgi-public keystone.wsgi.api:application)" 1 |
    write_conf "$ETC/keystone-uwsgi.ini"
  free_port keystone "$P_KS"
  start keystone root uwsgi --ini "$ETC/keystone-uwsgi.ini"
  wait_for keystone 60 curl -sf -m 3 "$KS/v3"

  # ---------------- keystone catalog (before any service authenticates); idempotent
  keystone_catalog_py | in_root ADMIN_PASS="$ADMIN_PASS" SVC_PASS="$SVC_PASS" python3 - "$KS/v3" "glance nova placement neutron" \
    "glance image http://127.0.0.1:$P_GLANCE" "placement placement http://127.0.0.1:$P_PLACEMENT" \
    "nova compute http://127.0.0.1:$P_NOVA/v2.1" "neutron network http://127.0.0.1:$P_NEUTRON"
  echo "keystone catalog ok"
  say "catalog done"

  # ---------------- neutron: early, so that its start overlaps the other
  # services' DB syncs; the agents in the background, once the RPC server consumes
  neutron_server_up
  neutron_agents_up 9>&- &
  local agents_job=$!

  # ---------------- glance (configured now, started with the rest)
  in_glance_root glance_configure

  # ---------------- placement
  placement_conf | write_conf /etc/placement/placement.conf
  as placement placement-manage db sync
  uwsgi_ini "$P_PLACEMENT" placement "$(wsgi_app /usr/bin/placement-api placement.wsgi.api:application)" 1 |
    write_conf "$ETC/placement-api-uwsgi.ini"

  # ---------------- nova (api, conductor, scheduler)
  nova_conf "[cinder]
os_region_name = RegionOne
[glance]
region_name = RegionOne" | write_conf /etc/nova/nova.conf
  mkdir -p "$R/var/lib/nova/tmp" && in_root chown -R nova:nova /var/lib/nova
  as nova nova-manage api_db sync
  as nova nova-manage cell_v2 map_cell0 >/dev/null
  as nova nova-manage cell_v2 list_cells | grep -q ' cell1 ' || as nova nova-manage cell_v2 create_cell --name=cell1
  as nova nova-manage db sync
  uwsgi_ini "$P_NOVA" nova "$(wsgi_app /usr/bin/nova-api-wsgi nova.wsgi.osapi_compute:application)" 1 |
    write_conf "$ETC/nova-api-uwsgi.ini"

  # ---------------- start the rest
  free_port glance-api "$P_GLANCE"
  in_glance_root glance_start
  free_port placement-api "$P_PLACEMENT"
  start placement-api root uwsgi --ini "$ETC/placement-api-uwsgi.ini"
  free_port nova-api "$P_NOVA"
  start nova-api root uwsgi --ini "$ETC/nova-api-uwsgi.ini"
  start nova-conductor nova nova-conductor --config-file /etc/nova/nova.conf
  start nova-scheduler nova nova-scheduler --config-file /etc/nova/nova.conf
  if has_registry; then
    registry_yml "$P_REG" info | write_conf "$ETC/registry.yml"
    mkdir -p "$R/var/lib/docker-registry" && in_root chown docker-registry: /var/lib/docker-registry
    free_port docker-registry "$P_REG"
    start docker-registry docker-registry docker-registry serve "$ETC/registry.yml"
  fi

  wait_for glance-api 60 curl -sf -m 3 "http://127.0.0.1:$P_GLANCE/versions"
  wait_for placement-api 60 http_up "http://127.0.0.1:$P_PLACEMENT/"
  wait_for nova-api 90 curl -sf -m 3 "http://127.0.0.1:$P_NOVA/"
  if has_registry; then wait_for docker-registry 30 curl -sf -m 3 "http://127.0.0.1:$P_REG/v2/"; fi

  # ---------------- flavors
  in_root python3 - <<EOF
import openstack
c = openstack.connect(auth_url="$KS/v3", username="admin", password="$ADMIN_PASS",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
for fid, name, ram, vcpus, disk in (("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 2048, 1, 20)):
    if not c.compute.find_flavor(name):
        c.compute.create_flavor(id=fid, name=name, ram=ram, vcpus=vcpus, disk=disk)
print("flavors:", sorted(f.name for f in c.compute.flavors()))
EOF
  wait_for "nova-conductor+scheduler" 90 nova_svcs_up
  wait "$agents_job" || die "the neutron agents did not start (logs: $LOGLINK)"
  neutron_network_up
  say "ALL SERVICES READY ($REL: nova $(nova_version), keystone $KS/v3)"
}
# glance_configure / glance_start: run through in_glance_root (file store;
# container_formats include docker)
# shellcheck disable=SC2317 # called through in_glance_root
glance_configure() {
  mkdir -p "$R$ETC"
  glance_api_conf "$P_GLANCE" | write_conf /etc/glance/glance-api.conf
  mkdir -p "$R/var/lib/glance/images" "$R/var/lib/glance/lock" && in_root chown -R glance:glance /var/lib/glance
  as glance glance-manage db_sync >>"$R$LOG/glance-manage.out" 2>&1
}
# shellcheck disable=SC2317 # called through in_glance_root
glance_start() {
  if [ "$(glance_mode)" = uwsgi ]; then
    uwsgi_ini "$P_GLANCE" glance "$(wsgi_app /usr/bin/glance-wsgi-api glance.wsgi.api:application)" 1 |
      write_conf "$ETC/glance-api-uwsgi.ini"
    start glance-api root uwsgi --ini "$ETC/glance-api-uwsgi.ini"
  else
    start glance-api glance glance-api --config-file /etc/glance/glance-api.conf
  fi
}
# glance_mode: "eventlet" while the release still ships the eventlet
# glance-api server, "uwsgi" once it is gone
# shellcheck disable=SC2317 # called through glance_start
glance_mode() {
  if in_root python3 -c 'import glance.cmd.api' >/dev/null 2>&1 && [ -x "$R/usr/bin/glance-api" ]; then echo eventlet; else echo uwsgi; fi
}
# ---------------------------------------------------------------- neutron
# The rootfs's own Neutron: neutron-api (uwsgi, as Debian runs it) and
# neutron-rpc-server as user neutron; the OVS and DHCP agents as root, on this
# machine's Open vSwitch (its run directory bind-mounted into the rootfs's
# /run), their network namespaces in the rootfs's own /run/netns (not the
# host's, where neutron-lab.sh down deletes every qdhcp- namespace).
# The configuration is neutron-lab.sh's (neutron-common.sh), with this lab's
# ports, host name and bridges.
mount_ovs() {
  mkdir -p "$R/run/openvswitch"
  mounted run/openvswitch || mount --bind /var/run/openvswitch "$R/run/openvswitch"
}
# restart_if_changed NAME HASH: stop NAME if it runs with another config hash
restart_if_changed() {
  if alive "$1" && [ "$(cat "$RUN/$1.hash" 2>/dev/null)" != "$2" ]; then
    say "$1: config changed, restarting"
    stop "$1"
  fi
  echo "$2" >"$RUN/$1.hash"
}
# neutron_hash FILE...: hash of the rootfs's FILEs
neutron_hash() { local f a=(); for f in "$@"; do a+=("$R$f"); done; conf_hash "${a[@]}"; }
neutron_db_sync() {
  # `upgrade heads` is slow: skipped while the schema is at the installed package's heads
  local stamp=$R/var/lib/neutron/.lab-db-heads cur
  # shellcheck disable=SC2016 # ${Version} is dpkg-query's
  cur=$(in_root dpkg-query -W -f='${Version}' neutron-common)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$cur" ] && mysql_ -N neutron -e 'select count(*) from alembic_version' >/dev/null 2>&1; then
    return 0
  fi
  say "neutron-db-manage upgrade heads"
  as neutron neutron-db-manage --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads >>"$R$LOG/neutron-db-manage.out" 2>&1 ||
    { tail -20 "$R$LOG/neutron-db-manage.out" >&2; die "neutron-db-manage failed"; }
  echo "$cur" >"$stamp"
  say "neutron DB at heads"
}
neutron_server_up() {
  command -v ovs-vsctl >/dev/null || die "Open vSwitch is not installed on this machine (install.sh --test-deps)"
  stop neutron-stub     # what this lab ran on $P_NEUTRON before it had Neutron
  ovs_up "$R$LOG/ovs-ctl.out" "$INT_BRIDGE" "$PHYS_BRIDGE"
  mount_ovs
  neutron_write_configs "nova-docker test/lab/release-lab.sh ($REL)"
  mkdir -p "$R/var/lib/neutron/lock" && in_root chown -R neutron:neutron /var/lib/neutron
  neutron_db_sync
  uwsgi_ini "$P_NEUTRON" neutron "$(wsgi_app /usr/bin/neutron-api neutron.wsgi.api:application)" 1 \
    "pyargv = --log-file $LOG/neutron-api.log" | write_conf "$ETC/neutron-api-uwsgi.ini"
  local srv=(/etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini)
  restart_if_changed neutron-api "$(neutron_hash "${srv[@]}" "$ETC/neutron-api-uwsgi.ini")"
  free_port neutron-api "$P_NEUTRON"
  start neutron-api root uwsgi --ini "$ETC/neutron-api-uwsgi.ini"
  restart_if_changed neutron-rpc-server "$(neutron_hash "${srv[@]}")"
  start neutron-rpc-server neutron neutron-rpc-server --config-file "${srv[0]}" --config-file "${srv[1]}" \
    --log-file "$LOG/neutron-rpc-server.log"
}
# shellcheck disable=SC2317 # called through wait_for
rpc_consuming() {     # neutron-rpc-server consumes the agents' RPC and state reports
  rabbitmqctl -q list_queues name consumers |
    awk '$1 == "q-plugin" && $2 > 0 {p = 1} $1 == "q-reports-plugin" && $2 > 0 {r = 1} END {exit !(p && r)}'
}
neutron_agents_up() {
  wait_for neutron-api 120 curl -sf -m 3 "http://127.0.0.1:$P_NEUTRON/"
  # agents once the RPC server consumes: an agent's first state report sent
  # before that is lost, and the agent counts as dead until its RPC timeout
  wait_for neutron-rpc-server 120 rpc_consuming
  local ovs=(/etc/neutron/neutron.conf /etc/neutron/plugins/ml2/openvswitch_agent.ini)
  local dhcp=(/etc/neutron/neutron.conf /etc/neutron/dhcp_agent.ini)
  restart_if_changed neutron-openvswitch-agent "$(neutron_hash "${ovs[@]}")"
  start neutron-openvswitch-agent root neutron-openvswitch-agent --config-file "${ovs[0]}" --config-file "${ovs[1]}" \
    --log-file "$LOG/neutron-openvswitch-agent.log"
  restart_if_changed neutron-dhcp-agent "$(neutron_hash "${dhcp[@]}")"
  start neutron-dhcp-agent root neutron-dhcp-agent --config-file "${dhcp[0]}" --config-file "${dhcp[1]}" \
    --log-file "$LOG/neutron-dhcp-agent.log"
}
# both agents alive, then the shared test network
neutron_network_up() {
  if lab_ready; then say "neutron agents alive, network $NET_NAME there"; else shared_network; fi
  say "neutron ready (agents on host $AGENT_HOST, bridge $INT_BRIDGE)"
}
neutron_down() {
  local s p
  # in parallel: each takes seconds to exit on a loaded machine
  for s in neutron-dhcp-agent neutron-openvswitch-agent neutron-rpc-server neutron-api; do stop $s & done
  wait
  rm -f "$RUN"/neutron-*.hash
  mounted proc || return 0
  # dnsmasq, the qdhcp- namespaces and their veths; the agents' privsep
  # daemons (they detach from the agents' process groups)
  dhcp_cleanup "$R" in_root
  for p in $(procs_in_root); do
    case $(cat "/proc/$p/comm" 2>/dev/null) in privsep-helper | dnsmasq) stop_pid "$p" ;; esac
  done
  # this lab's bridges (ports of servers left behind go with them); `up` makes them again
  if ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
    ovs-vsctl --timeout=10 --if-exists del-br "$INT_BRIDGE" -- --if-exists del-br "$PHYS_BRIDGE"
  fi
}

# conductor and scheduler are up once they registered in the services table
# shellcheck disable=SC2317 # called through wait_for
nova_svcs_up() {
  mysql_ -N nova <<'SQL' | grep -qx 2
select count(*) from services where deleted=0 and `binary` in ('nova-conductor','nova-scheduler')
  and coalesce(updated_at,created_at) > utc_timestamp() - interval 60 second;
SQL
}
# rabbitmqctl ARGS...: the rootfs's CLI against this lab's node
rabbitmqctl() {
  as rabbitmq env ERL_EPMD_PORT="$P_EPMD" RABBITMQ_NODENAME="$RABBIT_NODE" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"
}
# pid_in_root COMM: the PID of the process named COMM whose root is this rootfs
pid_in_root() {
  local p
  for p in $(pgrep -x "$1"); do
    [ "$(readlink "/proc/$p/root")" = "$R" ] && { echo "$p"; return 0; }
  done
  return 1
}

# ---------------------------------------------------------------- down / status
DAEMONS="mariadb rabbitmq epmd keystone glance-api placement-api nova-api nova-conductor nova-scheduler docker-registry $NEUTRON_DAEMONS"
cmd_down() {
  [ -d "$R" ] || { echo "no rootfs at $R"; return 0; }
  local s
  stop nova-compute
  neutron_down
  for s in neutron-stub docker-registry nova-scheduler nova-conductor nova-api \
    placement-api glance-api keystone; do stop $s; done
  if alive rabbitmq; then rabbitmqctl -q stop >/dev/null 2>&1 || true; fi
  stop rabbitmq
  stop epmd
  stop mariadb
  local left
  left="$(procs_in_root) $(in_glance_root procs_in_root)"
  if [ -n "${left// /}" ]; then
    echo "processes not started by this script still run in $R or $GR (pids: $left): not unmounting" >&2
    return 1
  fi
  [ "$GR" = "$R" ] || in_glance_root umount_all
  umount_all
  echo "$REL lab down (data kept in $R)"
}
# procs_in_root: PIDs of every process whose root is this rootfs
procs_in_root() {
  local p out=""
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ]; then out="$out ${p#/proc/}"; fi
  done
  echo "$out"
}
umount_all_if_idle() { [ -n "$(procs_in_root)" ] || umount_all; }
cmd_status() {
  local s port
  for s in $DAEMONS nova-compute; do
    if alive "$s"; then printf '%-16s running  pid %s\n' "$s" "$(cat "$RUN/$s.pid")"
    else printf '%-16s stopped\n' "$s"; fi
  done
  for port in $P_DB $P_AMQP $P_EPMD $P_DIST $P_KS $P_GLANCE $P_PLACEMENT $P_NOVA $P_NEUTRON $P_REG; do
    port_open "$port" && echo "port $port open" || echo "port $port closed"
  done
  echo "mounts: $(for m in $MOUNTS run/openvswitch; do mounted "$m" && printf '%s ' "$m"; done)"
  echo "bridges: $(for b in $INT_BRIDGE $PHYS_BRIDGE; do ovs-vsctl --timeout=5 br-exists "$b" 2>/dev/null && printf '%s ' "$b"; done)"
}
cmd_env() {
  admin_env | sed 's/^/export /'
  cat <<EOF
export NOVA_DOCKER_LAB_RELEASE=$REL
export NOVA_DOCKER_LAB_TRANSPORT_URL=$TRANSPORT
export NOVA_DOCKER_LAB_KEYSTONE=$KS/v3
export NOVA_DOCKER_LAB_GLANCE=http://127.0.0.1:$P_GLANCE
export NOVA_DOCKER_LAB_PLACEMENT=http://127.0.0.1:$P_PLACEMENT
export NOVA_DOCKER_LAB_NOVA=http://127.0.0.1:$P_NOVA/v2.1
EOF
  # no registry package in the suite: the Zed lab's registry serves every release
  if has_registry; then echo "export NOVA_DOCKER_LAB_REGISTRY=127.0.0.1:$P_REG"
  else echo "export NOVA_DOCKER_LAB_REGISTRY=127.0.0.1:5042"; fi
  # Neutron, as neutron-lab.sh env prints it for Zed: an agent under test
  # wants host = NETLAB_AGENT_HOST for its ports to be bound
  { neutron_env; echo "NETLAB_LOG_DIR=$LOGLINK"; } | sed 's/^/export /'
}
# cmd_check ARGS...: neutron-lab.sh check for this lab (neutron-lab-check.py)
cmd_check() {
  mounted proc || die "the $REL lab is not up (release-lab.sh up $REL)"
  exec /usr/bin/python3 "$LAB_DIR/neutron-lab-check.py" --auth-url "$KS/v3" --host "$AGENT_HOST" \
    --bridge "$INT_BRIDGE" --nova-api-log "$R$LOG/nova-api.out" --cidr "$CHECK_CIDR" "$@"
}
cmd_exec() {
  [ $# -gt 0 ] || usage
  mounted proc || die "the $REL lab is not up (release-lab.sh up $REL)"
  mapfile -t e < <(admin_env)
  exec chroot "$R" "${CENV[@]}" HOME=/root "${e[@]}" "$@"
}

# cmd_daemon NAME stop|start: what the fault suite and the networked e2e
# need to break and mend: glance-api, or the DHCP agent (stopped, no port's
# DHCP provisioning block clears: a network-vif-plugged that never comes, as
# `neutron-lab.sh daemon neutron-dhcp-agent` for Zed); `start` waits until it
# serves again (the agent: reported alive)
cmd_daemon() {
  mounted proc || die "the $REL lab is not up (release-lab.sh up $REL)"
  case ${1:-}/${2:-} in
    glance-api/stop) stop glance-api ;;
    glance-api/start)
      in_glance_root glance_start
      wait_for glance-api 90 curl -sf -m 3 "http://127.0.0.1:$P_GLANCE/versions"
      ;;
    neutron-dhcp-agent/stop) stop neutron-dhcp-agent ;;
    neutron-dhcp-agent/start)
      local dhcp=(/etc/neutron/neutron.conf /etc/neutron/dhcp_agent.ini)
      start neutron-dhcp-agent root neutron-dhcp-agent --config-file "${dhcp[0]}" --config-file "${dhcp[1]}" \
        --log-file "$LOG/neutron-dhcp-agent.log"
      wait_for "neutron agents on $AGENT_HOST" 120 lab_ready
      ;;
    *) die "daemon: expected glance-api|neutron-dhcp-agent stop|start" ;;
  esac
}

# ---------------------------------------------------------------- fake compute
# the release's real nova-compute (python3-nova's nova.cmd.compute:main, the
# nova-compute package hard-depends on a hypervisor) with the fake driver
cmd_fake_compute() {
  local state=/var/lib/lab/nova-compute
  case ${1:-} in
    start)
      alive nova-compute && { echo "nova-compute already running (pid $(cat "$RUN/nova-compute.pid"))"; return 0; }
      mkdir -p "$R$state/instances" "$R$state/tmp" && in_root chown -R nova:nova "$state"
      write_conf "$ETC/nova-compute.conf" <<EOF
[DEFAULT]
host = $COMPUTE_HOST
compute_driver = ${DRIVER:-fake.FakeDriver}
transport_url = $TRANSPORT
my_ip = 127.0.0.1
state_path = $state
instances_path = $state/instances
log_file = $LOG/nova-compute.log
debug = true
[oslo_concurrency]
lock_path = $state/tmp
[vnc]
enabled = false
[glance]
region_name = RegionOne
[cinder]
os_region_name = RegionOne
$(ksa placement placement)
$(ksa neutron nova)
$(ksa service_user nova)
send_service_user_token = true
EOF
      printf '#!/usr/bin/python3\nimport sys\nfrom nova.cmd.compute import main\nsys.exit(main())\n' >"$R$state/nova-compute"
      chmod 755 "$R$state/nova-compute"
      start nova-compute nova "$state/nova-compute" --config-file "$ETC/nova-compute.conf"
      wait_for "compute node of $COMPUTE_HOST" 120 compute_node_up
      as nova nova-manage cell_v2 discover_hosts
      ;;
    stop)
      stop nova-compute
      # no forced-down record of it may stay behind (service delete also
      # removes its compute node, host mapping and resource provider)
      local id
      for id in $(openstack_ --os-compute-api-version 2.53 compute service list --service nova-compute \
        --host "$COMPUTE_HOST" -f value -c ID); do
        openstack_ --os-compute-api-version 2.53 compute service delete "$id" && echo "deleted service record $id ($COMPUTE_HOST)"
      done
      ;;
    status) alive nova-compute && ps -o pid,rss,etime,cmd -p "$(cat "$RUN/nova-compute.pid")" || echo "not running" ;;
    *) usage ;;
  esac
}
# shellcheck disable=SC2317 # called through wait_for
compute_node_up() {
  mysql_ -N nova -e "select count(*) from compute_nodes where deleted=0 and host='$COMPUTE_HOST'" | grep -qx 1
}

# ---------------------------------------------------------------- smoke
cmd_smoke() {
  mounted proc || die "the $REL lab is not up"
  cmd_fake_compute start
  if ! openstack_ image show lab-busybox >/dev/null 2>&1; then
    # any tar will do for the fake driver; a real `docker save` when we have one
    if command -v docker >/dev/null && docker image inspect busybox:latest >/dev/null 2>&1; then
      docker save busybox:latest -o "$R/tmp/lab-busybox.tar"
    else
      tar -C "$R/etc" -cf "$R/tmp/lab-busybox.tar" hostname
    fi
    openstack_ image create --container-format docker --disk-format raw --file /tmp/lab-busybox.tar --public lab-busybox -f value -c status
    rm -f "$R/tmp/lab-busybox.tar"
  fi
  local t=$SECONDS rc=0
  openstack_ server create --flavor m1.tiny --image lab-busybox --nic none --wait lab-smoke -f value -c status || rc=1
  say "server create --wait: $((SECONDS - t)) s"
  openstack_ server show lab-smoke -f value -c status -c OS-EXT-SRV-ATTR:host || rc=1
  openstack_ server delete --wait lab-smoke || rc=1
  cmd_fake_compute stop
  if [ $rc = 0 ]; then say "SMOKE OK"; else say "SMOKE FAILED"; return 1; fi
}

# ---------------------------------------------------------------- versions
cmd_versions() {
  [ -d "$R/usr/lib/python3/dist-packages/nova" ] || die "python3-nova is not installed in $R"
  echo "python3-nova $(nova_version)"
  in_root python3 - <<'EOF'
from nova.objects import service
from nova.compute import manager
from nova import objects
objects.register_all()
print("SERVICE_VERSION", service.SERVICE_VERSION)
print("ComputeManager target", manager.ComputeManager.target.version)
reg = objects.base.NovaObjectRegistry.obj_classes()
for n in ("Instance InstanceList Migration MigrationList ImageMetaProps ImageMeta RequestSpec "
          "ConsoleAuthToken Service ComputeNode ComputeNodeList BlockDeviceMapping "
          "BlockDeviceMappingList InstanceAction InstanceActionEvent InstanceFault "
          "MigrationContext Flavor").split():
    print(n, reg[n][0].VERSION)
EOF
}

# ---------------------------------------------------------------- main
# (a function, read whole before it runs: editing this file while a long
# `up` runs cannot change what that run does)
main() {
  mkdir -p "$CACHE" "$RUN"
  exec 9>"$CACHE/.lock"
  # one command at a time per release (exec and status do not need the lock)
  case $CMD in exec | status | env | rabbitmqctl | check) ;; *) flock -w 600 9 || die "another release-lab.sh $REL command holds $CACHE/.lock" ;; esac
  shift 2
  case $CMD in
    build) build_rootfs; umount_all_if_idle; in_glance_root build_rootfs; in_glance_root umount_all_if_idle ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    check) cmd_check "$@" ;;
    exec) cmd_exec "$@" ;;
    fake-compute) cmd_fake_compute "$@" ;;
    smoke) cmd_smoke ;;
    versions) cmd_versions ;;
    rabbitmqctl) rabbitmqctl "$@" ;;
    daemon) cmd_daemon "$@" ;;
    *) usage ;;
  esac
}
main "$@"; exit $?
