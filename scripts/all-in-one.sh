#!/bin/bash
# all-in-one.sh -- a single-node OpenStack Zed control plane for nova-docker on
# this machine, from Debian packages only, every service bound to 127.0.0.1:
# MariaDB, RabbitMQ, Keystone, Glance (docker among container_formats),
# Placement, nova-api/conductor/scheduler, a docker registry on 5042 and a
# stand-in for neutron (instances boot with --nic none). Then it starts the
# agent (install.sh's operator install), maps its host into the cell and uploads a busybox image, and prints
# the `openstack server create` line to try. Called by `install.sh --all-in-one`.
#
# Idempotent: re-running rewrites the configs, reuses every service that
# already answers on its port and creates only what is missing.
# Credentials are generated on first run into /etc/nova-docker/all-in-one.env
# (root only) unless given in the environment: NOVA_DOCKER_AIO_ADMIN_PASS,
# _SERVICE_PASS, _DB_PASS, _RABBIT_PASS. NOVA_DOCKER_AIO_HOST names the compute
# host (default: this machine's hostname).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin    # Debian's python3, which has the OpenStack modules
export DEBIAN_FRONTEND=noninteractive
SRC=$(cd "$(dirname "$0")/.." && pwd)
# install.sh's paths and steps (sourced, it only defines them): where the agent
# is installed ($AGENT_DIR), its configuration and where it logs (agent_logs)
# shellcheck source-path=SCRIPTDIR/.. source=install.sh
. "$SRC/install.sh"
LOG=/var/log/nova-docker RUN=/run/nova-docker ETC=/etc/nova-docker
mkdir -p $LOG $RUN $ETC && chmod 1777 $LOG   # every service logs here as its own user
T0=$(date +%s)
say() { echo "[all-in-one +$(($(date +%s) - T0))s] $*"; }

# ---------------------------------------------------------------- credentials
ENV_FILE=$ETC/all-in-one.env
# shellcheck source=/dev/null
[ -s $ENV_FILE ] && . $ENV_FILE
gen() { head -c 18 /dev/urandom | base64 | tr -d '/+=' ; }
ADMIN_PASS=${NOVA_DOCKER_AIO_ADMIN_PASS:-${ADMIN_PASS:-$(gen)}}
SVC_PASS=${NOVA_DOCKER_AIO_SERVICE_PASS:-${SVC_PASS:-$(gen)}}
DB_PASS=${NOVA_DOCKER_AIO_DB_PASS:-${DB_PASS:-$(gen)}}
RABBIT_PASS=${NOVA_DOCKER_AIO_RABBIT_PASS:-${RABBIT_PASS:-$(gen)}}
AGENT_HOST=${NOVA_DOCKER_AIO_HOST:-${AGENT_HOST:-$(hostname)}}
(umask 077 && cat > $ENV_FILE <<EOF
ADMIN_PASS=$ADMIN_PASS
SVC_PASS=$SVC_PASS
DB_PASS=$DB_PASS
RABBIT_PASS=$RABBIT_PASS
AGENT_HOST=$AGENT_HOST
EOF
)
KS=http://127.0.0.1:5000
DB_ADDR=127.0.0.1
TRANSPORT="rabbit://openstack:${RABBIT_PASS}@127.0.0.1:5672/"
# ---------------------------------------------------------------- packages
PKGS="mariadb-server rabbitmq-server keystone glance-api placement-api nova-api nova-conductor
 nova-scheduler python3-openstackclient python3-novaclient docker-registry docker.io busybox-static
 uwsgi-plugin-python3 curl"
missing_pkgs=$(for p in $PKGS; do dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || echo "$p"; done)
if [ -n "$missing_pkgs" ]; then
  # the OpenStack packages must not configure DBs/endpoints nor start daemons themselves
  for q in keystone/configure_db keystone/create-admin-tenant keystone/register-endpoint \
           glance-common/configure_db glance-common/configure_rabbit glance-common/configure_ksat \
           glance-common/configure_api-endpoint placement-common/configure_db placement-common/configure_ksat \
           placement-common/configure_api-endpoint nova-common/configure_db nova-api/configure_db \
           nova-common/configure_rabbit nova-common/configure_ksat nova-common/configure_neutron \
           nova-common/configure_placement nova-common/configure_api-endpoint; do
    echo "${q%%/*} $q boolean false"
  done | debconf-set-selections
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  say "installing ${missing_pkgs//$'\n'/ }"
  apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # shellcheck disable=SC2086
  apt-get install "${apt_opts[@]}" $missing_pkgs >$LOG/apt-all-in-one.log 2>&1 ||
    { apt-get update -q >>$LOG/apt-all-in-one.log 2>&1 && apt-get install "${apt_opts[@]}" $missing_pkgs >>$LOG/apt-all-in-one.log 2>&1; } ||
    { tail -20 $LOG/apt-all-in-one.log >&2; exit 1; }
fi

# `--nic none` needs compute API 2.37.  Zed's client (novaclient underneath, with
# its own check_api_version) sends what OS_COMPUTE_API_VERSION asks for, 2.1 by
# default; 2025.1's negotiates the microversion through openstacksdk and warns
# on every command when that variable names one ("compute version 2.37 is not
# in supported versions: 2, 2.1").
COMPUTE_API="# (no OS_COMPUTE_API_VERSION: this client negotiates the microversion)"
if python3 -c 'import sys, openstackclient.compute.client as c; sys.exit(not hasattr(c, "check_api_version"))' 2>/dev/null; then
  COMPUTE_API="export OS_COMPUTE_API_VERSION=2.37"
fi
OPENRC=$ETC/admin-openrc
(umask 077 && cat > $OPENRC <<EOF
export OS_AUTH_URL=$KS/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$ADMIN_PASS
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
$COMPUTE_API
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:\$PATH
EOF
)

# ---------------------------------------------------------------- helpers
# the config writers and probes the test labs share (port_open, poll, put_conf,
# authtoken, ksa, dbc, uwsgi_ini, *_conf)
# shellcheck source=SCRIPTDIR/lib/openstack-conf.sh
. "$SRC/scripts/lib/openstack-conf.sh"
CONF_UMASK=027   # the configs hold passwords: root and the service's group only
# start NAME PORT USER CMD...: run CMD in the background as USER unless something answers on PORT
start() {
  local name=$1 port=$2 user=$3; shift 3
  if port_open "$port"; then say "$name: reusing what answers on 127.0.0.1:$port"; return 0; fi
  if [ "$user" = root ]; then setsid -f "$@" >>"$LOG/$name.out" 2>&1 </dev/null
  else setsid -f setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "$@" >>"$LOG/$name.out" 2>&1 </dev/null; fi
  say "started $name"
}
# start_daemon NAME USER CMD...: for services without a port (conductor, scheduler), tracked by PID file
start_daemon() {
  local name=$1 user=$2; shift 2
  if pgrep -f "^/usr/bin/python3 /usr/bin/$name " >/dev/null; then say "$name: already running"; return 0; fi
  setsid setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "$@" >>"$LOG/$name.out" 2>&1 </dev/null &
  echo $! > "$RUN/$name.pid"
  say "started $name"
}
wait_for() {   # wait_for DESC SECONDS CMD...
  poll "$2" "${@:3}" || { echo "all-in-one: timed out waiting for $1 (logs in $LOG)" >&2; return 1; }
}

# ---------------------------------------------------------------- mariadb, rabbitmq
put_conf /etc/mysql/mariadb.conf.d/99-nova-docker.cnf <<EOF
[mysqld]
bind-address = 127.0.0.1
max_connections = 1000
innodb_buffer_pool_size = 256M
EOF
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
start mariadb 3306 root /usr/sbin/mariadbd --user=mysql
wait_for mariadb 60 mysqladmin ping
for db in keystone glance placement nova_api nova nova_cell0; do
  u=${db%%_*}
  mysql -e "CREATE DATABASE IF NOT EXISTS $db;
    CREATE USER IF NOT EXISTS '$u'@'localhost' IDENTIFIED BY '$DB_PASS';
    CREATE USER IF NOT EXISTS '$u'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    ALTER USER '$u'@'localhost' IDENTIFIED BY '$DB_PASS'; ALTER USER '$u'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON $db.* TO '$u'@'localhost'; GRANT ALL ON $db.* TO '$u'@'127.0.0.1';"
done
RABBIT_PASS=$RABBIT_PASS bash "$SRC/scripts/rabbitmq-up.sh" >/dev/null
say "mariadb and rabbitmq ready"

# ---------------------------------------------------------------- keystone and its catalog
keystone_conf | put_conf /etc/keystone/keystone.conf
chgrp keystone /etc/keystone/keystone.conf
su -s /bin/sh keystone -c "keystone-manage db_sync"
mkdir -p /etc/keystone/fernet-keys /etc/keystone/credential-keys
chown keystone:keystone /etc/keystone/fernet-keys /etc/keystone/credential-keys
[ -e /etc/keystone/fernet-keys/0 ] || keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
[ -e /etc/keystone/credential-keys/0 ] || keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
su -s /bin/sh keystone -c "keystone-manage bootstrap --bootstrap-password '$ADMIN_PASS' \
  --bootstrap-admin-url $KS/v3 --bootstrap-internal-url $KS/v3 --bootstrap-public-url $KS/v3 \
  --bootstrap-region-id RegionOne" >>$LOG/keystone-bootstrap.log 2>&1
uwsgi_ini 5000 keystone /usr/bin/keystone-wsgi-public 2 >$ETC/keystone-uwsgi.ini
start keystone 5000 root uwsgi --ini $ETC/keystone-uwsgi.ini
wait_for keystone 60 curl -sf -m 3 $KS/v3
# one python process (openstacksdk) instead of dozens of CLI calls
keystone_catalog_py | ADMIN_PASS=$ADMIN_PASS SVC_PASS=$SVC_PASS python3 - $KS/v3 "glance nova placement" \
  "glance image http://127.0.0.1:9292" "placement placement http://127.0.0.1:8778" \
  "nova compute http://127.0.0.1:8774/v2.1" "neutron network http://127.0.0.1:9696"
say "keystone catalog ready"

# ---------------------------------------------------------------- glance, placement, nova
glance_api_conf 9292 | put_conf /etc/glance/glance-api.conf
chgrp glance /etc/glance/glance-api.conf
mkdir -p /var/lib/glance/images /var/lib/glance/lock && chown -R glance:glance /var/lib/glance
su -s /bin/sh glance -c "glance-manage db_sync" >>$LOG/glance-manage.out 2>&1

placement_conf | put_conf /etc/placement/placement.conf
chgrp placement /etc/placement/placement.conf
su -s /bin/sh placement -c "placement-manage db sync"
uwsgi_ini 8778 placement /usr/bin/placement-api 2 >$ETC/placement-uwsgi.ini

nova_conf "" | put_conf /etc/nova/nova.conf
chgrp nova /etc/nova/nova.conf
mkdir -p /var/lib/nova/tmp && chown -R nova:nova /var/lib/nova
su -s /bin/sh nova -c "nova-manage api_db sync"
su -s /bin/sh nova -c "nova-manage cell_v2 map_cell0" >/dev/null
# (captured first: `| grep -q` may close the pipe early and, with pipefail, fail the check)
cells=$(su -s /bin/sh nova -c "nova-manage cell_v2 list_cells")
case $cells in *" cell1 "*) ;; *) su -s /bin/sh nova -c "nova-manage cell_v2 create_cell --name=cell1" >/dev/null ;; esac
su -s /bin/sh nova -c "nova-manage db sync"
uwsgi_ini 8774 nova /usr/bin/nova-api-wsgi 2 >$ETC/nova-api-uwsgi.ini

start glance-api 9292 glance glance-api --config-file /etc/glance/glance-api.conf
start placement-api 8778 root uwsgi --ini $ETC/placement-uwsgi.ini
start nova-api 8774 root uwsgi --ini $ETC/nova-api-uwsgi.ini
start_daemon nova-conductor nova nova-conductor --config-file /etc/nova/nova.conf
start_daemon nova-scheduler nova nova-scheduler --config-file /etc/nova/nova.conf
registry_yml 5042 >$ETC/registry.yml
mkdir -p /var/lib/docker-registry && chown docker-registry: /var/lib/docker-registry
start docker-registry 5042 docker-registry docker-registry serve $ETC/registry.yml
# from the installed agent: `nobody` may not read this checkout (a home directory)
start neutron-stub 9696 nobody python3 "$AGENT_DIR/scripts/neutron-stub.py" --host 127.0.0.1 --port 9696
wait_for glance-api 60 curl -sf -m 3 http://127.0.0.1:9292/versions
wait_for placement-api 60 curl -s -o /dev/null -m 3 http://127.0.0.1:8778/
wait_for nova-api 90 curl -sf -m 3 http://127.0.0.1:8774/
wait_for docker-registry 30 curl -sf -m 3 http://127.0.0.1:5042/v2/
wait_for neutron-stub 30 curl -sf -m 3 http://127.0.0.1:9696/
ADMIN_PASS=$ADMIN_PASS python3 - <<'EOF'
import os
import openstack
c = openstack.connect(auth_url="http://127.0.0.1:5000/v3", username="admin", password=os.environ["ADMIN_PASS"],
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
for fid, name, ram, vcpus, disk in (("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 2048, 1, 20)):
    if not c.compute.find_flavor(name):
        c.compute.create_flavor(id=fid, name=name, ram=ram, vcpus=vcpus, disk=disk)
EOF
say "control plane ready"

# ---------------------------------------------------------------- dockerd and the agent
if ! docker version >/dev/null 2>&1; then
  setsid -f dockerd --host unix:///var/run/docker.sock >>$LOG/dockerd.log 2>&1 </dev/null
  wait_for dockerd 30 docker version
fi
if [ ! -s $AGENT_CONF ] || grep -q '^# nova-docker all-in-one' $AGENT_CONF || cmp -s $AGENT_CONF "$SRC/etc/nova-docker.conf.sample"; then
  put_conf $AGENT_CONF <<EOF
# nova-docker all-in-one: written by scripts/all-in-one.sh (rewritten on re-runs while this line is here)
[DEFAULT]
host = $AGENT_HOST
transport_url = $TRANSPORT
my_ip = 127.0.0.1
$(ksa placement placement)
[glance]
api_servers = http://127.0.0.1:9292
$(ksa service_user nova)
[docker]
registry_url = 127.0.0.1:5042
EOF
  chgrp nova $AGENT_CONF 2>/dev/null || true
else
  say "keeping the operator's $AGENT_CONF"
fi
# the operator install: the nova user in group docker, the service (systemd unit, or a
# background process with a PID file) started with nova.conf + nova-docker.conf; a running agent is restarted
# so it reads what was just written
bash "$SRC/install.sh" --restart
# the scheduler only picks the host once it is mapped to the cell
for _ in $(seq 60); do
  su -s /bin/sh nova -c "nova-manage cell_v2 discover_hosts --by-service" >/dev/null 2>&1
  mysql -N nova_api -e "select count(*) from host_mappings where host='$AGENT_HOST'" | grep -qx 1 && break
  sleep 1
done
mysql -N nova_api -e "select count(*) from host_mappings where host='$AGENT_HOST'" | grep -qx 1 ||
  { echo "all-in-one: compute host $AGENT_HOST never registered; see $(agent_logs)" >&2; exit 1; }
say "compute host $AGENT_HOST mapped"

# ---------------------------------------------------------------- a busybox image (no image hub needed)
# shellcheck source=/dev/null
. $OPENRC
ids=$(openstack image list --name busybox -f value -c ID)
if [ -z "$ids" ]; then
  if ! docker image inspect nova-docker/busybox:latest >/dev/null 2>&1; then
    dir=$(mktemp -d)
    mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
    cp /bin/busybox "$dir/bin/busybox"
    for a in sh sleep echo cat ls ps env hostname; do ln -s busybox "$dir/bin/$a"; done
    echo "root:x:0:0:root:/:/bin/sh" > "$dir/etc/passwd"
    tar -C "$dir" -cf - . | docker import -c 'CMD ["/bin/sleep","31536000"]' - nova-docker/busybox:latest >/dev/null
    rm -rf "$dir"
  fi
  tar=$(mktemp --suffix=.tar)
  docker save -o "$tar" nova-docker/busybox:latest
  ids=$(openstack image create --container-format docker --disk-format raw --public --file "$tar" -f value -c id busybox)
  rm -f "$tar"
  say "uploaded the busybox image to Glance"
fi
# a name shared by several images is ambiguous to the CLI: then name ours by id
IMAGE=busybox
[ "$(echo "$ids" | wc -l)" = 1 ] || IMAGE=$(echo "$ids" | head -n 1)
say "done in $(($(date +%s) - T0)) s"
echo
echo "Try it:"
echo "  source $OPENRC"
echo "  openstack server create --image $IMAGE --flavor m1.tiny --nic none --wait test"
