#!/bin/bash
# fresh-machine.sh -- the README's first commands on a freshly made Debian
# machine, timed: a root filesystem from `debootstrap --variant=minbase`, this
# repository cloned into its /root as a user would, then, inside it and exactly
# as the README writes them, `./install.sh --all-in-one`, `source ...admin-openrc`,
# `openstack server create ... --wait test`, then `docker ps`, `openstack server
# list`, a second `./install.sh --all-in-one` (idempotent re-run) and a last
# `openstack server list`; then `openstack server delete --wait test`.  Prints
# each step's wall time and exit status, keeps the whole output, tears down.
#
#   DEBIAN_SUITE=bookworm|trixie bash test/fresh/fresh-machine.sh     (as root)
#
# The fresh machine shares this machine's kernel but nothing else it could
# collide with: its own network namespace (its own loopback, so the all-in-one's
# MariaDB, RabbitMQ, Keystone, nova-api, ... take the standard ports without
# touching the services this machine runs on them), its own PID namespace (its
# pgrep sees its own daemons only; when it ends, every process it started ends),
# its own mount namespace (/proc, /sys, /dev, a private /run: gone with it) and
# its own host name (nova-fresh-SUITE).  dockerd inside is the one the all-in-one
# starts, with the rootfs's /var/lib/docker and /run/docker.sock; an
# /etc/docker/daemon.json (no bridge, no iptables: instances run with
# NetworkMode none) keeps it off the network, and its containers' cgroups sit
# under /nova-fresh-SUITE.  Outbound, the namespace reaches only what the
# install fetches: a veth pair with NAT to this machine's uplink, forwarding
# DNS to the host's resolver and TCP 80/443 to the addresses deb.debian.org and
# registry.npmjs.org resolve to (FRESH_EGRESS overrides the list); nothing
# else is forwarded and nothing on this machine is reachable from it.
# This machine's site CAs (/usr/local/share/ca-certificates, e.g. a TLS
# proxy's) go into the rootfs as site CAs, as an administrator would add them.
#
# Layout: /var/cache/nova-docker-fresh/
#   SUITE-minbase.tar.gz (+ .recipe)  debootstrap's result, reused while the recipe is the same
#   work/SUITE/rootfs                  the machine while it runs (removed after; FRESH_KEEP=1 keeps it)
#   logs/SUITE-<date>/                 steps.log (everything printed), summary.txt, the rootfs's logs
# Environment: DEBIAN_SUITE (bookworm), FRESH_REF (what to clone: HEAD of this
# checkout; only committed work is tested), FRESH_KEEP=1, FRESH_TIMEOUT (s, 5400),
# FRESH_EGRESS (addresses the namespace may reach on 80/443).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8
SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
SUITE=${DEBIAN_SUITE:-bookworm}
case $SUITE in
  bookworm) SUBNET=10.199.12 ;;
  trixie) SUBNET=10.199.13 ;;
  *) echo "fresh-machine: DEBIAN_SUITE is bookworm or trixie" >&2; exit 2 ;;
esac
MIRROR=http://deb.debian.org/debian
CACHE=/var/cache/nova-docker-fresh
TARBALL=$CACHE/$SUITE-minbase.tar.gz
# ca-certificates: update-ca-certificates adds the site CA (a Debian install
# from the installer has it; minbase does not)
RECIPE="debootstrap --variant=minbase --include=ca-certificates $SUITE $MIRROR"
WORK=$CACHE/work/$SUITE
ROOTFS=$WORK/rootfs
HOSTNAME_IN=nova-fresh-$SUITE
NS=nova-fresh-$SUITE
VETH=nfr-${SUITE:0:4}   # the host's end (an interface name: 15 characters at most); the namespace's end is eth0 there
CHAIN=NOVA-FRESH-${SUITE^^}
CGROUP_PARENT=/nova-fresh-$SUITE
STEPS=/tmp/fresh-machine      # inside the rootfs: the steps script, the times

die() { echo "fresh-machine: $*" >&2; exit 1; }
T0=$(date +%s)
say() { echo "[fresh-machine +$(($(date +%s) - T0))s] $*"; }

# ================================================================ inside the namespaces
# (the script runs itself here as PID 1 of the fresh machine's PID namespace)
if [ "${1:-}" = __inside ]; then
  hostname "$HOSTNAME_IN"
  mount --make-rprivate /
  # / of a machine is a mount point (docker's tar extraction remounts it private)
  mount --bind "$ROOTFS" "$ROOTFS"
  mount -t proc -o nosuid,nodev,noexec proc "$ROOTFS/proc"
  # sysfs of this network namespace; the cgroup hierarchies writable for dockerd
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOTFS/sys"
  mount --rbind /sys/fs/cgroup "$ROOTFS/sys/fs/cgroup"
  mount --rbind /dev "$ROOTFS/dev"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOTFS/dev/shm"
  # a booted machine's /run: empty, private
  mount -t tmpfs -o mode=755,nosuid,nodev run "$ROOTFS/run"
  mkdir -p "$ROOTFS/run/lock" && chmod 1777 "$ROOTFS/run/lock"
  # root's login environment, nothing of this machine's
  set +e
  chroot "$ROOTFS" env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash "$STEPS/steps.sh"
  rc=$?
  set -e
  # stop every process the machine started: SIGTERM (the agent reports itself
  # down, MariaDB flushes), up to 60 s, then SIGKILL; we are PID 1 here
  # every other live process of the namespace (zombies are gone already, bar the reaping)
  others() {
    local p st
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [ "$p" = 1 ] || [ "$p" = "$BASHPID" ] && continue
      st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) || continue
      [ -n "$st" ] && [ "$st" != Z ] && echo "$p"
    done
    return 0
  }
  pids=$(others)
  if [ -n "$pids" ]; then
    echo "fresh-machine: stopping $(echo "$pids" | wc -w) processes"
    # shellcheck disable=SC2086 # a list of PIDs
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 120); do
      [ -n "$(others)" ] || break
      sleep 0.5
    done
    left=$(others)
    if [ -n "$left" ]; then
      what=$(for p in $left; do tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-60; echo; done | sed '/^$/d' | sort | uniq -c | tr -s ' \n' ' ')
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      echo "fresh-machine: SIGKILL for what ignored SIGTERM for 60 s:$what"
    fi
  fi
  exit "$rc"
fi

# ================================================================ on this machine
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, namespaces, chroot)"
for t in debootstrap git ip iptables nsenter unshare flock; do command -v $t >/dev/null || die "needs $t"; done
mkdir -p "$CACHE/work" "$CACHE/logs"
exec 9>"$CACHE/$SUITE.lock"
flock -n 9 || die "another fresh-machine run for $SUITE holds $CACHE/$SUITE.lock"
LOGS=$CACHE/logs/$SUITE-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOGS"

# ---------------------------------------------------------------- the root filesystem
# processes whose root directory is the rootfs (none once a run has ended)
rootfs_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOTFS" ] && echo "${p#/proc/}"
  done
  return 0
}

debootstrap_tarball() {
  if [ -s "$TARBALL" ] && [ "$(cat "$TARBALL.recipe" 2>/dev/null)" = "$RECIPE" ]; then
    say "debootstrap: cached $TARBALL"
    return 0
  fi
  local part=$CACHE/$SUITE.partial t=$SECONDS
  rm -rf --one-file-system "$part"
  say "$RECIPE (log: $CACHE/$SUITE-debootstrap.log)"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$part" "$MIRROR" >"$CACHE/$SUITE-debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/$SUITE-debootstrap.log" >&2; die "debootstrap failed"; }
  tar --numeric-owner -C "$part" -czf "$TARBALL.new" .
  mv "$TARBALL.new" "$TARBALL"
  echo "$RECIPE" >"$TARBALL.recipe"
  rm -rf --one-file-system "$part"
  say "debootstrap done in $((SECONDS - t)) s, cached as $TARBALL"
}

make_rootfs() {
  if [ -e "$WORK" ]; then
    [ -z "$(rootfs_pids)" ] || die "processes still run in $ROOTFS from an earlier run: $(rootfs_pids | tr '\n' ' ')"
    ! grep -q " $WORK/" /proc/mounts || die "something is mounted under $WORK"
    rm -rf --one-file-system "$WORK"
  fi
  mkdir -p "$ROOTFS"
  tar --numeric-owner -C "$ROOTFS" -xzpf "$TARBALL"
  # what the installer and the site's administrator give a new machine:
  # its name, the archive with updates and security, the resolver, the site CA
  echo "$HOSTNAME_IN" >"$ROOTFS/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$HOSTNAME_IN" >"$ROOTFS/etc/hosts"
  cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  grep '^nameserver' /etc/resolv.conf >"$ROOTFS/etc/resolv.conf"
  mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin update-ca-certificates >/dev/null
  # dockerd of the fresh machine: no bridge, no iptables, its own cgroup parent
  mkdir -p "$ROOTFS/etc/docker"
  cat >"$ROOTFS/etc/docker/daemon.json" <<EOF
{ "bridge": "none", "iptables": false, "ip6tables": false, "cgroup-parent": "$CGROUP_PARENT" }
EOF
  # the repository, as a user clones it into root's home (mode 0700)
  local ref=${FRESH_REF:-HEAD}
  [ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] ||
    say "note: $REPO has uncommitted changes; the clone has $ref only"
  git clone -q --no-local "$REPO" "$ROOTFS/root/nova-docker"
  git -C "$ROOTFS/root/nova-docker" reset -q --hard "$(git -C "$REPO" rev-parse "$ref")"
  chown -R 0:0 "$ROOTFS/root/nova-docker"
  chmod 0700 "$ROOTFS/root"
  COMMIT=$(git -C "$ROOTFS/root/nova-docker" log -1 --format='%h %s' | cut -c1-72)
}

# ---------------------------------------------------------------- what runs inside
# The commands of the README's "The two commands" section, as written there
# (comments dropped), then the checks and the re-run.
readme_commands() {
  awk '/^## The two commands/{s=1} s && /^```sh/{b=1; next} b && /^```/{exit} b' "$ROOTFS/root/nova-docker/README.md" |
    sed 's/[[:space:]]\+#.*$//; /^[[:space:]]*$/d'
}

write_steps() {
  local cmds
  mapfile -t cmds < <(readme_commands)
  if [ ${#cmds[@]} -lt 3 ] || [[ ${cmds[0]} != "./install.sh --all-in-one" ]] || [[ ${cmds[*]} != *"openstack server create"* ]]; then
    die "the README's first block is not install, source, server create: ${cmds[*]}"
  fi
  mkdir -p "$ROOTFS$STEPS"
  {
    cat <<'EOF'
# generated by test/fresh/fresh-machine.sh: runs inside the fresh machine as root
cd /root/nova-docker
FAILED=0
: >/tmp/fresh-machine/times
sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release >/tmp/fresh-machine/os
# step CMD: one command as the user types it (in this shell: `source` holds), timed
step() {
  echo; echo "##### \$ $1"
  local t0=$EPOCHREALTIME rc=0
  eval "$1" || rc=$?
  local ms=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
  printf '%s\t%d.%d\t%s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100)) "$rc" >>/tmp/fresh-machine/times
  echo "##### exit $rc after $((ms / 1000)).$((ms % 1000 / 100)) s"
  [ "$rc" = 0 ] || FAILED=1
  return "$rc"
}
# check DESC CMD...: a test of what the steps left (not timed)
check() {
  local desc=$1; shift
  if "$@"; then echo "##### ok: $desc"; else echo "##### FAILED: $desc"; FAILED=1; fi
}
server_status() { [ "$(openstack server show test -f value -c status 2>/dev/null)" = "$1" ]; }
container_up() { docker ps --filter name=nova- --format '{{.Names}} {{.Status}}' | grep -q ' Up '; }
no_container() { [ -z "$(docker ps -a -q --filter name=nova-)" ]; }
EOF
    echo "step $(printf '%q' "${cmds[0]}") || exit 1"
    local c
    for c in "${cmds[@]:1}"; do
      case $c in
        "openstack server create"*) echo "step $(printf '%q' "$c")" ;;
        *) echo "step $(printf '%q' "$c") || exit 1" ;;
      esac
    done
    cat <<'EOF'
check "the server is ACTIVE" server_status ACTIVE
echo "the agent: $(tr '\0' ' ' </proc/"$(cat /run/nova-docker/nova-docker-compute.pid)"/cmdline)" >>/tmp/fresh-machine/os
step "docker ps"
check "docker ps shows the instance's container up" container_up
step "openstack server list"
step "./install.sh --all-in-one"
step "openstack server list"
check "the server is still ACTIVE after the re-run" server_status ACTIVE
check "its container is still up" container_up
step "openstack server delete --wait test"
check "its container is gone" no_container
exit $FAILED
EOF
  } >"$ROOTFS$STEPS/steps.sh"
}

# ---------------------------------------------------------------- the network namespace
EGRESS_ADDRS="" UPLINK="" DNS="" FORWARD_WAS=""
net_up() {
  DNS=$(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)
  [ -n "$DNS" ] || die "no nameserver in /etc/resolv.conf"
  UPLINK=$(ip -o route get "$DNS" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  EGRESS_ADDRS=${FRESH_EGRESS:-$(getent ahostsv4 deb.debian.org registry.npmjs.org | awk '{print $1}' | sort -u | tr '\n' ' ')}
  [ -n "$EGRESS_ADDRS" ] || die "deb.debian.org and registry.npmjs.org do not resolve here"
  ip netns add "$NS"
  ip link add "$VETH" type veth peer name "$VETH-in"
  ip link set "$VETH-in" netns "$NS"
  ip addr add "$SUBNET.1/30" dev "$VETH"
  ip link set "$VETH" up
  ip -n "$NS" link set lo up
  ip -n "$NS" link set "$VETH-in" name eth0
  ip -n "$NS" addr add "$SUBNET.2/30" dev eth0
  ip -n "$NS" link set eth0 up
  ip -n "$NS" route add default via "$SUBNET.1"
  FORWARD_WAS=$(sysctl -n net.ipv4.ip_forward)
  [ "$FORWARD_WAS" = 1 ] || sysctl -qw net.ipv4.ip_forward=1
  iptables -N "$CHAIN"
  iptables -A "$CHAIN" -d "$DNS" -p udp --dport 53 -j ACCEPT
  iptables -A "$CHAIN" -d "$DNS" -p tcp --dport 53 -j ACCEPT
  local a
  for a in $EGRESS_ADDRS; do
    iptables -A "$CHAIN" -o "$UPLINK" -d "$a" -p tcp -m multiport --dports 80,443 -j ACCEPT
  done
  iptables -A "$CHAIN" -j REJECT
  iptables -I FORWARD 1 -i "$VETH" -j "$CHAIN"
  iptables -I FORWARD 1 -o "$VETH" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  iptables -I INPUT 1 -i "$VETH" -j DROP
  iptables -t nat -A POSTROUTING -s "$SUBNET.2/32" -o "$UPLINK" -j MASQUERADE
  say "network namespace $NS: loopback + eth0 $SUBNET.2, out through $UPLINK to DNS $DNS and $EGRESS_ADDRS(80, 443) only"
}

# shellcheck disable=SC2317 # called by teardown, the EXIT trap
net_down() {
  iptables -t nat -D POSTROUTING -s "$SUBNET.2/32" -o "$UPLINK" -j MASQUERADE 2>/dev/null || true
  iptables -D INPUT -i "$VETH" -j DROP 2>/dev/null || true
  iptables -D FORWARD -o "$VETH" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null || true
  iptables -D FORWARD -i "$VETH" -j "$CHAIN" 2>/dev/null || true
  iptables -F "$CHAIN" 2>/dev/null || true
  iptables -X "$CHAIN" 2>/dev/null || true
  [ -z "$FORWARD_WAS" ] || [ "$FORWARD_WAS" = 1 ] || sysctl -qw net.ipv4.ip_forward="$FORWARD_WAS"
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$VETH" 2>/dev/null || true
}

# ---------------------------------------------------------------- teardown
# shellcheck disable=SC2317 # the EXIT trap
teardown() {
  local rc=$? p
  set +e
  # the PID namespace ended with its PID 1; anything left with this root is a bug
  p=$(rootfs_pids)
  if [ -n "$p" ]; then
    echo "fresh-machine: processes left in $ROOTFS, killed: $(echo "$p" | tr '\n' ' ')" >&2
    # shellcheck disable=SC2086
    kill -KILL $p
    rc=1
  fi
  net_down
  # the containers' cgroups, empty now
  find /sys/fs/cgroup/*"$CGROUP_PARENT" -depth -type d -exec rmdir {} \; 2>/dev/null
  if [ -d "$ROOTFS" ]; then
    cp -a "$ROOTFS/var/log/nova-docker" "$LOGS/" 2>/dev/null
    cp -a "$ROOTFS/tmp/nova-docker-apt.log" "$LOGS/" 2>/dev/null
    cp -a "$ROOTFS/root/.npm/_logs" "$LOGS/npm-logs" 2>/dev/null
    cp -a "$ROOTFS$STEPS/times" "$LOGS/" 2>/dev/null
    if [ "${FRESH_KEEP:-0}" = 1 ]; then
      say "kept $ROOTFS"
    else
      rm -rf --one-file-system "$WORK"
    fi
  fi
  say "logs in $LOGS"
  exit "$rc"
}

# ---------------------------------------------------------------- main
debootstrap_tarball
trap teardown EXIT
trap 'exit 130' INT TERM
t=$SECONDS
make_rootfs
write_steps
say "rootfs ready in $((SECONDS - t)) s: $(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' "$ROOTFS/etc/os-release"), clone of $COMMIT"
net_up
set +e
# nsenter, not `ip netns exec`: that one mounts a new /sys without the cgroup
# hierarchies dockerd needs.  --kill-child: if this script dies, the machine's
# PID 1 and so all of it dies too.
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
timeout --kill-after=30 "${FRESH_TIMEOUT:-5400}" \
  nsenter --net="/run/netns/$NS" unshare --mount --uts --pid --fork --kill-child --mount-proc \
  env ROOTFS="$ROOTFS" DEBIAN_SUITE="$SUITE" bash "$SELF" __inside 2>&1 | tee "$LOGS/steps.log"
rc=${PIPESTATUS[0]}
set -e
{
  set +e
  echo
  echo "fresh-machine $SUITE: $(head -1 "$ROOTFS$STEPS/os" 2>/dev/null), clone of $COMMIT"
  sed -n '2,$p' "$ROOTFS$STEPS/os" 2>/dev/null | cut -c1-160
  printf '  %-84s %7s  %s\n' step wall exit
  while IFS=$'\t' read -r cmd wall code; do printf '  %-84s %6ss  %s\n' "$cmd" "$wall" "$code"; done <"$ROOTFS$STEPS/times"
  echo "  load average (1, 5, 15 min) at the start: $LOAD0, at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
  echo "  last openstack server list:"
  awk '/^##### \$ openstack server list/{buf=""; on=1; next} on && /^#####/{on=0; last=buf} on{buf=buf $0 "\n"} END{printf "%s", last}' "$LOGS/steps.log" | sed 's/^/    /'
  grep '^##### FAILED' "$LOGS/steps.log" | sed 's/^##### /  /'
  echo "  result: $([ "$rc" = 0 ] && echo PASSED || echo "FAILED (exit $rc)")"
} | tee "$LOGS/summary.txt"
exit "$rc"
