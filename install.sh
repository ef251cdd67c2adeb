#!/bin/bash
# install.sh -- set up nova-docker on a Debian 12 machine.  Idempotent.
#   ./install.sh              node dependencies + build (the agent itself)
#   ./install.sh --test-deps  also what the test suite needs: RabbitMQ on
#                             127.0.0.1, Python's oslo.messaging (interop
#                             peer) and Docker Engine
#   ./install.sh --all-in-one also a single-node OpenStack control plane on
#                             this machine, the agent running against it and
#                             a busybox image in Glance (scripts/all-in-one.sh)
# Only Debian and npm packages are fetched.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
TEST_DEPS=0 ALL_IN_ONE=0
for a in "$@"; do
  case $a in
    --test-deps) TEST_DEPS=1 ;;
    --all-in-one) ALL_IN_ONE=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

apt_install() {   # apt_install PKG...: install the missing ones (refresh lists once on failure)
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  echo "installing ${missing[*]}"
  apt-get install -y -q "${missing[@]}" >/tmp/nova-docker-apt.log 2>&1 ||
    { apt-get update -q >>/tmp/nova-docker-apt.log 2>&1 && apt-get install -y -q "${missing[@]}" >>/tmp/nova-docker-apt.log 2>&1; } ||
    { tail -20 /tmp/nova-docker-apt.log >&2; exit 1; }
}

if [ $TEST_DEPS = 1 ]; then
  apt_install rabbitmq-server python3-oslo.messaging docker.io
  bash scripts/rabbitmq-up.sh
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
echo "nova-docker built: node dist/src/cli.js --help"
if [ $ALL_IN_ONE = 1 ]; then
  bash scripts/all-in-one.sh
fi
