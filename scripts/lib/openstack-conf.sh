# shellcheck shell=bash
# openstack-conf.sh -- what every control plane this repository builds writes
# and probes the same way: keystoneauth sections, database URLs, the uwsgi,
# keystone, glance, placement and nova configs, config files replaced with
# the packaged one kept, port and readiness polling.  Sourced (it defines
# functions and empties CONF_UMASK) by scripts/all-in-one.sh (Zed on this machine), and by the test
# labs: test/lab/neutron-lab.sh (+ neutron-common.sh) and test/lab/release-lab.sh
# (2025.1 / 2026.1 in a chroot; the functions run on the host and print, the
# caller writes into the root filesystem).
#
# The functions read, when called:
#   KS        Keystone, http://127.0.0.1:PORT (no /v3)
#   SVC_PASS  the service users' password
#   DB_PASS   the database users' password
#   DB_ADDR   MariaDB's address in the URLs: 127.0.0.1 or 127.0.0.1:PORT
#   LOG       the services' log directory (as they see it)
#   TRANSPORT the oslo.messaging transport URL (nova_conf)
#   CONF_UMASK the umask put_conf creates a new file with; empty (as sourcing
#             leaves it, whatever the environment says): the caller's
CONF_UMASK=

# ---------------------------------------------------------------- probes
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# poll SECONDS CMD...: run CMD (output discarded) every 0.5 s until it
# succeeds; fails after SECONDS.  The callers' wait_for say what they waited for.
poll() {
  local t=$1; shift
  for _ in $(seq $((t * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

# ---------------------------------------------------------------- files
# put_conf FILE: stdin replaces FILE; the packaged FILE is kept once as FILE.dist
put_conf() {
  if [ ! -e "$1.dist" ] && [ -e "$1" ]; then cp -a "$1" "$1.dist"; fi
  (umask "${CONF_UMASK:-$(umask)}" && cat >"$1")
}

# ---------------------------------------------------------------- sections and values
authtoken() {   # authtoken USER: [keystone_authtoken] of service user USER
  cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $SVC_PASS
service_token_roles_required = true
EOF
}
ksa() {         # ksa SECTION USER: keystoneauth password options for [SECTION] as USER
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
dbc() { echo "mysql+pymysql://$1:$DB_PASS@$DB_ADDR/$2?charset=utf8"; }   # dbc USER DB

# ---------------------------------------------------------------- whole files (printed)
# uwsgi_ini PORT USER APP PROCESSES [EXTRA]: a small uwsgi app server on the
# loopback for APP, a WSGI script path or a python module:callable (the
# packages moved from pbr's wsgi_scripts to modules over the releases); EXTRA:
# more ini lines
uwsgi_ini() {
  local app
  case $3 in /*) app="wsgi-file = $3" ;; *) app="module = $3" ;; esac
  cat <<EOF
[uwsgi]
plugins = python3
http-socket = 127.0.0.1:$1
$app
uid = $2
gid = $2
master = true
processes = $4
threads = 1
lazy-apps = true
die-on-term = true
no-orphans = true
enable-threads = true
buffer-size = 65535
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
wsgi-manage-chunked-input = true
add-header = Connection: close
chdir = /var/lib/$2${5:+
$5}
EOF
}
keystone_conf() {
  cat <<EOF
[DEFAULT]
log_dir = $LOG
[database]
connection = $(dbc keystone keystone)
[token]
provider = fernet
EOF
}
glance_api_conf() {   # glance_api_conf PORT: file store; container_formats include docker
  cat <<EOF
[DEFAULT]
log_dir = $LOG
bind_host = 127.0.0.1
bind_port = $1
workers = 1
enabled_backends = fs:file
[database]
connection = $(dbc glance glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
[image_format]
container_formats = ami,ari,aki,bare,ovf,ova,docker,compressed
disk_formats = ami,ari,aki,vhd,vhdx,vmdk,raw,qcow2,vdi,iso,ploop
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = /var/lib/glance/lock
$(authtoken glance)
EOF
}
placement_conf() {
  cat <<EOF
[DEFAULT]
log_dir = $LOG
[placement_database]
connection = $(dbc placement placement)
[api]
auth_strategy = keystone
$(authtoken placement)
EOF
}
# registry_yml PORT [LOG_LEVEL]: the docker registry (distribution) on the
# loopback, deletes allowed, its store under /var/lib/docker-registry
registry_yml() {
  cat <<EOF
version: 0.1${2:+
log:
  level: $2}
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$1
EOF
}
# nova_conf SECTIONS: nova-api's, nova-conductor's and nova-scheduler's
# nova.conf (one compute host); SECTIONS (lines, or "") go before the keystone ones
nova_conf() {
  cat <<EOF
[DEFAULT]
log_dir = $LOG
transport_url = $TRANSPORT
my_ip = 127.0.0.1
state_path = /var/lib/nova
enabled_apis = osapi_compute
# one compute host: resize lands on the same host
allow_resize_to_same_host = True
[api]
auth_strategy = keystone
[api_database]
connection = $(dbc nova nova_api)
[database]
connection = $(dbc nova nova)
[wsgi]
api_paste_config = /etc/nova/api-paste.ini
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = -1
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
[vnc]
enabled = false${1:+
$1}
$(authtoken nova)
$(ksa placement placement)
$(ksa service_user nova)
send_service_user_token = true
$(ksa neutron nova)
EOF
}

# ---------------------------------------------------------------- keystone's contents
# keystone_catalog_py: a Python program (openstacksdk) for the caller's python3,
# run as `python3 - AUTH_URL "USER..." "NAME TYPE URL"...` with ADMIN_PASS and
# SVC_PASS in its environment (not in argv, which `ps` shows): as admin, the
# service project, the roles, the service users USER... (admin and service in
# the project, password SVC_PASS) and each service's endpoints in RegionOne,
# all idempotent
keystone_catalog_py() {
  cat <<'EOF'
import os
import sys
import openstack
auth_url, users, catalog = sys.argv[1], sys.argv[2].split(), [e.split() for e in sys.argv[3:]]
c = openstack.connect(auth_url=auth_url, username="admin", password=os.environ["ADMIN_PASS"],
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
idn = c.identity
svc = idn.find_project("service") or idn.create_project(name="service", domain_id="default")
for role in ("service", "reader", "member"):
    idn.find_role(role) or idn.create_role(name=role)
for name in users:
    u = idn.find_user(name) or idn.create_user(name=name, password=os.environ["SVC_PASS"], domain_id="default")
    idn.update_user(u, password=os.environ["SVC_PASS"])
    for role in ("admin", "service"):   # 'service' for service tokens
        idn.assign_project_role_to_user(svc, u, idn.find_role(role))
for name, typ, url in catalog:
    s = next((x for x in idn.services() if x.type == typ), None) or idn.create_service(name=name, type=typ, is_enabled=True)
    have = {e.interface for e in idn.endpoints() if e.service_id == s.id}
    for itf in ("public", "internal", "admin"):
        if itf not in have:
            idn.create_endpoint(service_id=s.id, interface=itf, url=url, region_id="RegionOne")
EOF
}
