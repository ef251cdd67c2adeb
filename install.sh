#!/bin/bash
# install.sh -- install nova-docker on a Debian 12 host.  Idempotent: a second
# run finds everything in place, changes nothing and reuses the running agent.
#   ./install.sh              operator install: Docker Engine (docker.io), node
#                             dependencies and build, the built agent into
#                             /usr/lib/nova-docker (below), the `nova` system user (in
#                             group docker), /etc/nova/nova-docker.conf from the
#                             sample (never overwritten), the service
#                             nova-docker-compute, started once /etc/nova/nova.conf
#                             is valid (systemd unit; without systemd a background
#                             process with /run/nova-docker/nova-docker-compute.pid)
#   ./install.sh --no-start   the same, but leave the agent as it is
#   ./install.sh --restart    the same, and restart a running agent (after an upgrade)
#   ./install.sh --stop       stop the agent
#   ./install.sh --test-deps  development and CI: node dependencies and build plus
#                             what the tests need (RabbitMQ on 127.0.0.1, Python's
#                             oslo.messaging, Docker Engine, shellcheck, the Neutron
#                             lab's packages: neutron, Open vSwitch); no user,
#                             config, service or agent: the tests start their own
#   ./install.sh --build      node dependencies and build only (in this checkout)
#   ./install.sh --install-agent  the agent --build built, into /usr/lib/nova-docker
#                             (below) and nothing else (the DevStack plugin, as root)
#   ./install.sh --install-node   the node the others would use (below; fetched
#                             when there is none new enough), its path printed last
#   ./install.sh --all-in-one node dependencies and build, then a single-node
#                             OpenStack control plane on this machine, the agent
#                             running against it and a busybox image in Glance
#                             (scripts/all-in-one.sh)
#   --dry-run                 with any of them: print what would change, change nothing
# The operator install and the all-in-one run the agent from a copy owned by root
# and readable by all, never from this checkout (which may sit in a private home
# directory): /usr/lib/nova-docker/releases/<version>-<hash> holds the built
# agent (dist/src, package.json, production node_modules, the sample config, the
# all-in-one's neutron stand-in), /usr/lib/nova-docker/current points at the one
# in use, switched in one rename when the build changed; the previous release
# stays (a running agent keeps its files) until the next one replaces it.
# Node: NOVA_DOCKER_NODE, else a node >= 20.12 on PATH (Debian 13's nodejs), else
# Node.js 22 from the npm registry (pinned version and sha512) into
# /usr/lib/nova-docker/node-<version>, reused by later runs (Debian 12's nodejs
# is 18).  Only Debian and npm packages are fetched.  Environment: DESTDIR
# (prefix of every file installed outside this directory), NOVA_DOCKER_PREFIX
# (/usr/lib/nova-docker), NOVA_DOCKER_NODE (node binary; its own npm is used),
# NOVA_DOCKER_USER (nova).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DESTDIR=${DESTDIR:-}
SERVICE=nova-docker-compute
AGENT_USER=${NOVA_DOCKER_USER:-nova}
NOVA_CONF=/etc/nova/nova.conf
AGENT_CONF=/etc/nova/nova-docker.conf
UNIT_FILE=/etc/systemd/system/$SERVICE.service
RUN_DIR=/run/nova-docker
LOG_DIR=/var/log/nova-docker
PID_FILE=$RUN_DIR/$SERVICE.pid
LOG_FILE=$LOG_DIR/$SERVICE.log
STATE_DIR=/var/lib/nova
PREFIX=${NOVA_DOCKER_PREFIX:-/usr/lib/nova-docker}
# the installed agent the service runs: a symlink to releases/<version>-<hash>
AGENT_DIR=$PREFIX/current
NODE_MIN=20.12
# A 1 MB young generation: bench/image-load measured a Glance image stream's
# peak RSS growth at 4-9 MB with it against 12-22 MB without, at the same speed.
NODE_FLAGS=(--max-semi-space-size=1)
# Two glibc malloc arenas instead of one per thread: bench/boot measured the
# agent's idle RSS after 10+10 boots at 61.5 MB with it against 66 MB without.
AGENT_ENV=(MALLOC_ARENA_MAX=2)
DRY_RUN=0

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

# run CMD...: run a command that changes the system, or show it under --dry-run.
run() {
  if [ "$DRY_RUN" = 1 ]; then echo "would run: $*"; else "$@"; fi
}

# sd_booted(3): systemd is PID 1 exactly when this directory exists.
systemd_running() { [ -d /run/systemd/system ]; }

apt_install() {   # apt_install PKG...: install the missing ones (refresh lists once on failure)
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$DRY_RUN" = 1 ]; then echo "would install packages: ${missing[*]}"; return 0; fi
  # Without systemd (containers, CI) package scripts must not try to start
  # services; with systemd, docker.io should start as packaged.
  systemd_running || [ -e /usr/sbin/policy-rc.d ] ||
    { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  say "installing ${missing[*]}"
  apt-get install -y -q "${missing[@]}" >/tmp/nova-docker-apt.log 2>&1 ||
    { apt-get update -q >>/tmp/nova-docker-apt.log 2>&1 && apt-get install -y -q "${missing[@]}" >>/tmp/nova-docker-apt.log 2>&1; } ||
    { tail -20 /tmp/nova-docker-apt.log >&2; exit 1; }
}

# ---------------------------------------------------------------- node + build

# The Node.js install.sh fetches when the host has no node >= NODE_MIN (Debian 12's
# nodejs is 18.x): the official Linux build as the npm registry publishes it
# (node-linux-<arch>, which holds bin/node only) and the npm that goes with it,
# each pinned by version and by the registry's dist.integrity, so a tarball that
# changed is refused.  22 is the Node.js LTS line with security support until
# April 2027 (20 ended in April 2026).  Unpacked into PREFIX/node-<version>,
# root's and readable by all: the agent's user runs it, re-runs reuse it.
NODE_VERSION=22.23.5
NODE_INTEGRITY_x64=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
NODE_INTEGRITY_arm64=sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==
NPM_VERSION=10.9.9
NPM_INTEGRITY=sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg==
NPM_REGISTRY=https://registry.npmjs.org

# The node in use: install_node sets NOVA_DOCKER_NODE to the one it picked.
node_bin() { echo "${NOVA_DOCKER_NODE:-$(command -v node || true)}"; }
node_version() { "$1" -p 'process.versions.node' 2>/dev/null; }
node_suitable() {   # node_suitable NODE: it runs and is >= NODE_MIN
  local version
  version=$(node_version "$1") && printf '%s\n%s\n' "$NODE_MIN" "$version" | sort -C -V
}
fetched_node_home() { echo "$DESTDIR$PREFIX/node-$NODE_VERSION"; }

# The npm that comes with NODE (a Node.js build's bin/npm, or the npm-cli.js
# under its lib/node_modules), run by that node: sets NPM, fails when there is none.
node_npm() {
  local node=$1 dir cli real
  for dir in "$(dirname "$node")" "$(dirname "$(readlink -f "$node")")"; do
    for cli in "$dir/npm" "$dir/../lib/node_modules/npm/bin/npm-cli.js"; do
      [ -e "$cli" ] || continue
      real=$(readlink -f "$cli")
      case $real in
        *.js) NPM=("$node" "$real"); return 0 ;;
        *) if [ -x "$real" ]; then NPM=("$real"); return 0; fi ;;
      esac
    done
  done
  return 1
}

# registry_tarball NAME VERSION INTEGRITY FILE: the package's tarball from the
# npm registry into FILE, refused unless its sha512 is the pinned integrity.
# curl verifies TLS against the system's CAs (a site CA included).
registry_tarball() {
  local url=$NPM_REGISTRY/$1/-/$1-$2.tgz want got
  curl -fsSL --retry 3 -o "$4" "$url" || { echo "install.sh: could not fetch $url" >&2; return 1; }
  want=$(printf '%s' "${3#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  got=$(sha512sum "$4" | cut -d' ' -f1)
  if [ -z "$want" ] || [ "$got" != "$want" ]; then
    echo "install.sh: $url is not the pinned $1 $2 (its sha512 is not $3): refused" >&2
    return 1
  fi
}

# Node.js NODE_VERSION and npm NPM_VERSION from the npm registry into
# fetched_node_home: bin/node, bin/npm, lib/node_modules/npm.  Staged next to
# it and renamed into place once the node runs, so a half fetch is never used.
fetch_node() {
  local home arch integrity stage
  home=$(fetched_node_home)
  case $(uname -m) in
    x86_64) arch=x64 integrity=$NODE_INTEGRITY_x64 ;;
    aarch64) arch=arm64 integrity=$NODE_INTEGRITY_arm64 ;;
    *) die "no Node.js build is pinned for $(uname -m): install node >= $NODE_MIN and set NOVA_DOCKER_NODE" ;;
  esac
  if [ "$DRY_RUN" = 1 ]; then
    echo "would fetch Node.js $NODE_VERSION (node-linux-$arch) and npm $NPM_VERSION from $NPM_REGISTRY into $home"
    return 0
  fi
  [ "$(id -u)" = 0 ] || [ -n "$DESTDIR" ] ||
    die "no node >= $NODE_MIN here: run as root to install Node.js $NODE_VERSION into $PREFIX, or set NOVA_DOCKER_NODE"
  apt_install curl ca-certificates
  install -d -m 0755 "$(dirname "$home")"
  stage=$(mktemp -d "$(dirname "$home")/.node-staging.XXXXXX")
  say "fetching Node.js $NODE_VERSION (node-linux-$arch) and npm $NPM_VERSION from $NPM_REGISTRY"
  if ! registry_tarball "node-linux-$arch" "$NODE_VERSION" "$integrity" "$stage/node.tgz" ||
     ! registry_tarball npm "$NPM_VERSION" "$NPM_INTEGRITY" "$stage/npm.tgz"; then
    rm -rf "$stage"; exit 1
  fi
  mkdir -p "$stage/home/lib/node_modules/npm"
  tar -xzf "$stage/node.tgz" -C "$stage/home" --strip-components=1 --no-same-owner
  tar -xzf "$stage/npm.tgz" -C "$stage/home/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/home/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/home/bin/npx"
  # root's, readable by all (the agent's user runs it; a umask of 077 must not leak in)
  chmod -R u+rwX,go+rX,go-w "$stage/home"
  if [ "$(node_version "$stage/home/bin/node")" != "$NODE_VERSION" ]; then
    rm -rf "$stage"; die "the fetched node-linux-$arch $NODE_VERSION does not run on this machine"
  fi
  rm -rf "$home"
  mv -T "$stage/home" "$home"
  rm -rf "$stage"
  say "installed Node.js $NODE_VERSION: $home/bin/node"
}

# Picks the node and the npm to go with it (NOVA_DOCKER_NODE, NPM):
# NOVA_DOCKER_NODE when set (refused when older than NODE_MIN), else a node on
# PATH that is new enough, else Node.js NODE_VERSION from the npm registry
# (fetched once, reused after).  npm: the node's own, else one on PATH, and
# only then Debian's npm package (hundreds of packages).
install_node() {
  local node=${NOVA_DOCKER_NODE:-} version
  NPM=(npm)
  if [ -n "$node" ]; then
    [ -x "$node" ] || die "NOVA_DOCKER_NODE=$node: no such node binary"
    version=$(node_version "$node") || die "NOVA_DOCKER_NODE=$node does not run"
    node_suitable "$node" ||
      die "node $version found at $node; nova-docker needs node >= $NODE_MIN (unset NOVA_DOCKER_NODE and install.sh installs Node.js $NODE_VERSION)"
  elif node=$(command -v node) && node_suitable "$node"; then
    :
  else
    [ -z "$node" ] || say "node $(node_version "$node") at $node is older than $NODE_MIN: using Node.js $NODE_VERSION"
    node=$(fetched_node_home)/bin/node
    if [ "$(node_version "$node")" != "$NODE_VERSION" ]; then
      fetch_node
      if [ "$DRY_RUN" = 1 ]; then
        export NOVA_DOCKER_NODE=$node
        NPM=("$node" "$(fetched_node_home)/lib/node_modules/npm/bin/npm-cli.js")
        return 0
      fi
    fi
  fi
  # every later step (the unit, the background start, all-in-one.sh) runs this one
  export NOVA_DOCKER_NODE=$node
  # npm runs package scripts (tsc) with `#!/usr/bin/env node`: this node, not another on PATH
  PATH=$(dirname "$node"):$PATH
  node_npm "$node" || command -v npm >/dev/null || apt_install npm
  # A Node.js build trusts the CAs compiled into it, Debian's nodejs the
  # system's (/etc/ssl/certs, a site's own CA or TLS proxy included): the
  # fetched node is told to trust the system's too, in npm and in the agent.
  if [ "$node" = "$(fetched_node_home)/bin/node" ]; then
    NODE_FLAGS+=(--use-system-ca)
    if [ "${NPM[0]}" = "$node" ]; then NPM=("$node" --use-system-ca "${NPM[@]:1}"); fi
  fi
}

# --test-deps: `npm test` is typed by hand, so the node install.sh fetched goes
# on PATH (links in /usr/local/bin, never over a node or npm already there).
link_node_on_path() {
  local node t
  node=$(node_bin)
  case $node in "$(fetched_node_home)"/*) ;; *) return 0 ;; esac
  for t in node npm npx; do
    if [ "$(readlink "/usr/local/bin/$t" 2>/dev/null)" = "$(dirname "$node")/$t" ]; then continue; fi
    if [ -e "/usr/local/bin/$t" ]; then say "/usr/local/bin/$t exists, left as it is"; continue; fi
    run ln -s "$(dirname "$node")/$t" "/usr/local/bin/$t"
  done
}

# Newer than the last build: sources, compiler settings or dependencies.
build_stale() {
  local stamp=$SRC_DIR/dist/.build-stamp
  [ -e "$stamp" ] || return 0
  [ -n "$(find "$SRC_DIR/src" "$SRC_DIR/test" "$SRC_DIR/bench" "$SRC_DIR/tsconfig.json" \
            "$SRC_DIR/package.json" "$SRC_DIR/package-lock.json" -newer "$stamp" -print -quit 2>/dev/null)" ]
}

# node_modules matches package-lock.json: checked once with `npm ls`, then
# remembered as the lockfile's hash (file times lie after a checkout).
deps_current() {
  local stamp=$SRC_DIR/dist/.deps-stamp hash
  hash=$(sha256sum < "$SRC_DIR/package-lock.json")
  [ -d "$SRC_DIR/node_modules" ] || return 1
  [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] && return 0
  (cd "$SRC_DIR" && "${NPM[@]}" ls --all >/dev/null 2>&1) || return 1
  [ "$DRY_RUN" = 1 ] || { mkdir -p "$SRC_DIR/dist" && echo "$hash" > "$stamp"; }
}

build() {
  cd "$SRC_DIR"
  if ! deps_current; then
    run "${NPM[@]}" ci --no-audit --no-fund --no-update-notifier
    [ "$DRY_RUN" = 1 ] || { mkdir -p dist && sha256sum < package-lock.json > dist/.deps-stamp; }
  fi
  if build_stale; then
    run "${NPM[@]}" run build --silent
    run touch dist/.build-stamp
    [ "$DRY_RUN" = 1 ] || say "built: node $SRC_DIR/dist/src/cli.js --help"
  else
    say "build is up to date"
  fi
}

# ---------------------------------------------------------------- the installed agent

# What a release holds, from this checkout (node_modules apart).
RELEASE_FILES=(dist/src package.json package-lock.json README.md etc/nova-docker.conf.sample scripts/neutron-stub.py)

# <version>-<hash of what goes in>: the same build gives the same release.  The
# production node_modules follow from package-lock.json, which is hashed.
release_id() {
  local version hash
  version=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$SRC_DIR/package.json")
  hash=$(cd "$SRC_DIR" && find "${RELEASE_FILES[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
           sha256sum | cut -c1-12)
  echo "${version:-0}-$hash"
}

# Copies the build and the production node_modules (as `npm ls --omit=dev`
# lists them: a package's own node_modules come with it) into a new release
# directory, checks the agent starts from there, then renames it into place.
stage_release() {   # stage_release RELEASES_DIR ID
  local dir=$1 id=$2 stage p rel parent=// files=("${RELEASE_FILES[@]}")
  stage=$(mktemp -d "$dir/.staging.XXXXXX")
  while IFS= read -r p; do
    case $p in */node_modules/*) rel=node_modules/${p#*/node_modules/} ;; *) continue ;; esac
    case $rel in "$parent"/*) continue ;; esac   # comes with its parent package
    files+=("$rel")
    parent=$rel
  done < <(cd "$SRC_DIR" && "${NPM[@]}" ls --omit=dev --all --parseable 2>/dev/null | LC_ALL=C sort)
  (cd "$SRC_DIR" && cp -R --parents "${files[@]}" "$stage/")
  # root's, readable by all (the agent's user reads it; a umask of 077 must not leak in)
  chmod -R u+rwX,go+rX,go-w "$stage"
  "$(node_bin)" "$stage/dist/src/cli.js" --version >/dev/null ||
    { rm -rf "$stage"; die "the agent copied to $stage does not start"; }
  rm -rf "${dir:?}/$id"
  mv -T "$stage" "$dir/$id"
}

# The built agent into PREFIX/releases/<id>, PREFIX/current switched to it in one
# rename (a service starting meanwhile sees the old or the new one, whole).  Keeps
# the release that was current (a running agent still uses its files), removes
# older ones.  AGENT_UPDATED=1 when current moved.
AGENT_UPDATED=0
install_agent() {
  local root=$DESTDIR$PREFIX id old d
  if [ ! -e "$SRC_DIR/dist/src/cli.js" ]; then
    [ "$DRY_RUN" = 1 ] || die "no build in $SRC_DIR/dist: run install.sh --build first"
    echo "would install the built agent into $PREFIX"
    return 0
  fi
  id=$(release_id)
  old=$(readlink "$root/current" 2>/dev/null || true)
  if [ "$old" = "releases/$id" ] && [ -d "$root/releases/$id" ]; then
    say "installed agent is up to date ($AGENT_DIR -> releases/$id)"
    return 0
  fi
  if [ "$DRY_RUN" = 1 ]; then echo "would install the agent into $PREFIX/releases/$id and point $AGENT_DIR at it"; return 0; fi
  install -d -m 0755 "$root" "$root/releases"
  [ -d "$root/releases/$id" ] || stage_release "$root/releases" "$id"
  ln -sfn "releases/$id" "$root/.current.new"
  mv -T "$root/.current.new" "$root/current"
  AGENT_UPDATED=1
  say "installed the agent: $AGENT_DIR -> releases/$id"
  for d in "$root"/releases/* "$root"/releases/.staging.*; do
    [ -e "$d" ] || continue
    case $d in "$root/releases/$id" | "$root/$old") continue ;; esac
    rm -rf "$d"
  done
}

# ---------------------------------------------------------------- test deps

install_test_deps() {
  # debootstrap: the release labs' root filesystems (npm test builds them in the background)
  apt_install rabbitmq-server python3-oslo.messaging docker.io shellcheck debootstrap
  install_neutron_lab_deps
  run bash "$SRC_DIR/scripts/rabbitmq-up.sh"
}

# The Neutron lab (test/lab/neutron-lab.sh) starts neutron-server and its OVS and
# DHCP agents itself, on 127.0.0.1 and with its own configs: the packaged services
# must neither ask for a database nor start (with systemd they are masked before
# the install, so that their postinst cannot start them either).
NEUTRON_LAB_PKGS=(neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent
                  openvswitch-switch ethtool busybox-static iproute2 util-linux)
NEUTRON_LAB_UNITS=(neutron-api neutron-rpc-server neutron-openvswitch-agent neutron-dhcp-agent)
install_neutron_lab_deps() {
  local u
  if [ "$DRY_RUN" != 1 ]; then
    printf 'neutron-common neutron/configure_db boolean false\nneutron-common neutron/configure_rabbit boolean false\nneutron-common neutron/configure_ksat boolean false\nneutron-api neutron/configure_api-endpoint boolean false\n' |
      debconf-set-selections
  fi
  if systemd_running; then
    for u in "${NEUTRON_LAB_UNITS[@]}"; do
      dpkg-query -W -f='${db:Status-Status}' "$u" 2>/dev/null | grep -q '^installed$' || run systemctl mask --quiet "$u.service"
    done
  fi
  apt_install "${NEUTRON_LAB_PKGS[@]}"
}

# ---------------------------------------------------------------- operator install

install_docker() {
  # busybox-static: the netns holder image; iproute2, ethtool, util-linux (nsenter): plugging Neutron ports
  apt_install docker.io busybox-static iproute2 ethtool util-linux
  if systemd_running; then
    systemctl is-active --quiet docker.service || run systemctl enable --now docker.service
  elif ! docker version >/dev/null 2>&1; then
    say "warning: dockerd is not answering on /var/run/docker.sock; start it before the agent needs it"
  fi
}

install_user() {
  if ! getent passwd "$AGENT_USER" >/dev/null; then
    run useradd --system --user-group --home-dir "$STATE_DIR" --create-home --shell /usr/sbin/nologin "$AGENT_USER"
  fi
  # the agent talks to /var/run/docker.sock, which is root:docker 0660
  if ! id -nG "$AGENT_USER" 2>/dev/null | tr ' ' '\n' | grep -qx docker; then
    run usermod -aG docker "$AGENT_USER"
  fi
}

install_dirs() {
  local d
  for d in "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"; do
    [ -d "$DESTDIR$d" ] || run install -d -m 0755 "$DESTDIR$d"
  done
  # nova's own packages create /var/lib/nova owned by nova; a fresh one is ours to set
  [ "$DRY_RUN" = 1 ] || [ -n "$DESTDIR" ] || [ "$(stat -c %U "$STATE_DIR")" = "$AGENT_USER" ] ||
    chown "$AGENT_USER:" "$STATE_DIR"
}

# The sample is all comments: the agent's options (and [docker]) go there, the
# shared ones stay in nova.conf.  An existing file is the operator's: never touched.
install_config() {
  local target=$DESTDIR$AGENT_CONF
  if [ -e "$target" ]; then
    say "$AGENT_CONF exists, left as it is"
    return 0
  fi
  run install -D -m 0640 "$SRC_DIR/etc/nova-docker.conf.sample" "$target"
  [ "$DRY_RUN" = 1 ] && return 0
  if getent group "$AGENT_USER" >/dev/null; then chgrp "$AGENT_USER" "$target"; fi
  say "installed $AGENT_CONF from etc/nova-docker.conf.sample"
}

# The agent's argv; the background mode also uses it to recognise its process.
agent_argv() {
  AGENT_ARGV=("$(node_bin)" "${NODE_FLAGS[@]}" "$AGENT_DIR/dist/src/cli.js" compute
              --config-file "$NOVA_CONF" --config-file "$AGENT_CONF")
}

unit_text() {
  agent_argv
  cat <<UNIT
[Unit]
Description=nova-docker compute agent: OpenStack Nova instances as Docker containers
Documentation=file://$AGENT_DIR/README.md
After=network-online.target docker.service rabbitmq-server.service
Wants=network-online.target docker.service

[Service]
Type=simple
User=$AGENT_USER
SupplementaryGroups=docker
# plugging Neutron ports: veths and addresses (NET_ADMIN), entering the
# instance's network namespace (SYS_ADMIN, SYS_PTRACE), the root-owned OVSDB
# socket and /proc/sys (DAC_OVERRIDE); passed on to ip, nsenter, ovs-vsctl
AmbientCapabilities=CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_OVERRIDE
WorkingDirectory=$STATE_DIR
Environment=${AGENT_ENV[*]}
ExecStart=${AGENT_ARGV[*]}
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT
}

# Writes the unit when its text changed; returns 0 when it did.
install_unit() {
  local target=$DESTDIR$UNIT_FILE text
  text=$(unit_text)
  if [ -e "$target" ] && [ "$(cat "$target")" = "$text" ]; then return 1; fi
  if [ "$DRY_RUN" = 1 ]; then echo "would write $UNIT_FILE"; return 0; fi
  mkdir -p "$(dirname "$target")"
  printf '%s\n' "$text" > "$target"
  say "wrote $UNIT_FILE"
}

# Starting needs a valid configuration; without nova.conf there is nothing to run yet.
config_ready() {
  if [ ! -e "$DESTDIR$NOVA_CONF" ]; then
    say "no $NOVA_CONF yet: write it (transport_url, [placement] credentials, see README), then run install.sh again"
    return 1
  fi
  [ "$DRY_RUN" = 1 ] && return 0
  local out
  # as the agent's user, from where the service runs it: it must read both
  if ! out=$(as_agent_user "$(node_bin)" "$DESTDIR$AGENT_DIR/dist/src/cli.js" check-config \
               --config-file "$DESTDIR$NOVA_CONF" --config-file "$DESTDIR$AGENT_CONF" 2>&1 >/dev/null); then
    printf '%s\n' "$out" >&2
    die "not starting $SERVICE: fix the configuration above, then run install.sh again"
  fi
}

# The agent's user, with its groups (docker) as they are now.
agent_user_prefix() {
  if [ "$(id -un)" = "$AGENT_USER" ]; then USER_PREFIX=(); else
    USER_PREFIX=(setpriv --reuid="$AGENT_USER" --regid="$(id -g "$AGENT_USER")" --init-groups)
  fi
}
as_agent_user() { agent_user_prefix; "${USER_PREFIX[@]}" "$@"; }

# ----- without systemd: one background process, found again through its PID file

# alive PID: the process exists and is not a zombie waiting for its reaper
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

agent_pid() {   # prints the PID of the running agent, fails when there is none
  local pid
  pid=$(cat "$DESTDIR$PID_FILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  # a reused PID belongs to some other program: compare the whole command line
  # (any nova-docker agent counts: another checkout or other node flags, same PID file)
  local cmdline
  cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline")
  agent_argv
  [ "$cmdline" = "${AGENT_ARGV[*]} " ] || [[ $cmdline == *"/dist/src/cli.js compute "* ]] || return 1
  echo "$pid"
}

start_background() {
  local pid
  if pid=$(agent_pid); then say "$SERVICE is running (pid $pid), reused"; return 0; fi
  agent_argv
  if [ "$DRY_RUN" = 1 ]; then echo "would start in the background: ${AGENT_ARGV[*]}"; return 0; fi
  mkdir -p "$DESTDIR$RUN_DIR" "$DESTDIR$LOG_DIR"
  # setsid -f: the agent leaves our session; it writes its own PID before exec,
  # so the file names the agent and not a short-lived parent
  agent_user_prefix
  # setsid -f: the agent leaves our session; the shell writes its own PID, then
  # execs (setpriv execs node), so the file names the agent itself
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  (cd "$STATE_DIR" 2>/dev/null || cd /
   setsid -f env "${AGENT_ENV[@]}" AGENT_PID_FILE="$DESTDIR$PID_FILE" bash -c 'echo $$ > "$AGENT_PID_FILE"; exec "$@"' \
     agent "${USER_PREFIX[@]}" "${AGENT_ARGV[@]}" >>"$DESTDIR$LOG_FILE" 2>&1 </dev/null)
  for _ in $(seq 50); do pid=$(agent_pid) && break; sleep 0.1; done
  [ -n "${pid:-}" ] || die "$SERVICE did not start; see $(agent_logs)"
  say "started $SERVICE (pid $pid, log $LOG_FILE)"
}

stop_background() {
  local pid
  if ! pid=$(agent_pid); then rm -f "$DESTDIR$PID_FILE"; say "$SERVICE is not running"; return 0; fi
  run kill -TERM "$pid"
  [ "$DRY_RUN" = 1 ] && return 0
  # the agent finishes in-flight RPCs and reports itself down before exiting
  for _ in $(seq 600); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid"; say "$SERVICE ignored SIGTERM for 60 s: killed"; fi
  rm -f "$DESTDIR$PID_FILE"
  say "stopped $SERVICE (pid $pid)"
}

# ----- start / stop, whichever way the host runs services

# A running agent is reused without a look at the configuration; starting (or
# restarting) needs a valid one, and is skipped while nova.conf is missing.
start_agent() {   # start_agent RESTART(0|1) UNIT_CHANGED(0|1)
  local restart=$1 unit_changed=$2 pid upgrade="--restart after an upgrade"
  [ "$AGENT_UPDATED" = 0 ] || upgrade="it runs the previous release until install.sh --restart"
  if systemd_running; then
    [ "$unit_changed" = 1 ] && run systemctl daemon-reload
    if [ "$restart" = 0 ] && [ "$unit_changed" = 0 ] && systemctl is-active --quiet "$SERVICE"; then
      say "$SERVICE is running, reused ($upgrade)"
      return 0
    fi
    config_ready || return 0
    systemctl is-enabled --quiet "$SERVICE" 2>/dev/null || run systemctl enable "$SERVICE"
    run systemctl restart "$SERVICE"
  else
    if [ "$restart" = 0 ] && pid=$(agent_pid); then
      say "$SERVICE is running (pid $pid), reused ($upgrade)"
      return 0
    fi
    config_ready || return 0
    if agent_pid >/dev/null; then stop_background; fi
    start_background
  fi
  [ "$DRY_RUN" = 1 ] || say "the agent logs to $(agent_logs)"
}

# The file the agent logs to, as the agent itself reads nova.conf's log_file and
# log_dir (check-config names it); nothing when it logs to stderr.
agent_log_file() {
  "$(node_bin)" "$DESTDIR$AGENT_DIR/dist/src/cli.js" check-config \
    --config-file "$DESTDIR$NOVA_CONF" --config-file "$DESTDIR$AGENT_CONF" 2>/dev/null |
    sed -n 's|^# the compute agent logs to \(/.*\)$|\1|p' || true
}

# Where to look when the agent misbehaves: its log file, and where its own
# output goes (errors before it reads its configuration).
agent_logs() {
  local file out
  file=$(agent_log_file)
  if systemd_running; then out="journalctl -u $SERVICE"; else out=$LOG_FILE; fi
  if [ -n "$file" ]; then echo "$file (its output: $out)"; else echo "$out"; fi
}

stop_agent() {
  if systemd_running; then run systemctl stop "$SERVICE"; else stop_background; fi
}

operator_install() {   # operator_install START(0|1) RESTART(0|1)
  local start=$1 restart=$2 unit_changed=0
  install_docker
  install_node
  build
  install_agent
  install_user
  install_dirs
  install_config
  # written without systemd too, so a later boot under systemd finds it
  if install_unit; then unit_changed=1; fi
  if [ "$start" = 1 ]; then start_agent "$restart" "$unit_changed"; fi
  say "done"
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

main() {
  local mode=operator start=1 restart=0 a
  for a in "$@"; do
    case $a in
      --test-deps) mode=test-deps ;;
      --build) mode=build ;;
      --install-agent) mode=install-agent ;;
      --install-node) mode=install-node ;;
      --all-in-one) mode=all-in-one ;;
      --stop) mode=stop ;;
      --no-start) start=0 ;;
      --restart) restart=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "install.sh: unknown option $a" >&2; usage >&2; exit 2 ;;
    esac
  done
  if [ "$mode" != operator ] && { [ "$start" = 0 ] || [ "$restart" = 1 ]; }; then
    echo "install.sh: --no-start and --restart go with the operator install only" >&2; exit 2
  fi
  case $mode in
    operator) operator_install "$start" "$restart" ;;
    test-deps) install_test_deps; install_node; link_node_on_path; build ;;
    build) install_node; build ;;
    install-agent) install_node; install_agent ;;
    install-node) install_node; node_bin ;;
    # all-in-one.sh runs with Debian's PATH: it (and the install.sh it calls) must use this node
    all-in-one) install_node; build; install_agent
                NOVA_DOCKER_NODE=$(node_bin) bash "$SRC_DIR/scripts/all-in-one.sh" ;;
    stop) stop_agent ;;
  esac
}

# Sourced (by the tests) it only defines the steps.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
