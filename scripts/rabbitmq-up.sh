#!/bin/bash
# rabbitmq-up.sh -- a RabbitMQ broker on 127.0.0.1:5672 with an `openstack`
# user, for nova-docker's tests and all-in-one installs.  Idempotent: reuses a
# broker that already answers on 5672 (whoever started it), else installs
# Debian's rabbitmq-server if needed and starts it bound to loopback only.
#   RABBIT_USER (openstack)  RABBIT_PASS (labrabbit)
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
RABBIT_USER=${RABBIT_USER:-openstack} RABBIT_PASS=${RABBIT_PASS:-labrabbit}
LOG=/var/log/nova-docker RUN=/run/nova-docker
mkdir -p $LOG $RUN

port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! command -v rabbitmq-server >/dev/null; then
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  echo "installing rabbitmq-server"
  apt-get install -y -q rabbitmq-server >$LOG/apt-rabbitmq.log 2>&1 ||
    { apt-get update -q >>$LOG/apt-rabbitmq.log 2>&1 && apt-get install -y -q rabbitmq-server >>$LOG/apt-rabbitmq.log 2>&1; } ||
    { tail -20 $LOG/apt-rabbitmq.log >&2; exit 1; }
fi

export ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODENAME=rabbit@localhost
# where to look when the broker does not come up: what we started logs here
why="see $LOG/rabbitmq.out and /var/log/rabbitmq/rabbit.log"
if port_open; then
  why="the broker on 127.0.0.1:5672 was not started here: rabbitmqctl cannot reach it as rabbit@localhost or rabbit@$(hostname -s)"
  # a running broker: find its node name so rabbitmqctl can reach it
  for n in rabbit@localhost "rabbit@$(hostname -s)"; do
    RABBITMQ_NODENAME=$n rabbitmqctl -q await_startup -t 5 >/dev/null 2>&1 && { export RABBITMQ_NODENAME=$n; break; }
  done
  echo "reusing the broker on 127.0.0.1:5672 (node $RABBITMQ_NODENAME)"
else
  # same node name and loopback listeners as the OpenStack lab, so either can start first
  # shellcheck disable=SC2015 # missing or different: (re)written either way
  [ -s /etc/rabbitmq/rabbitmq-env.conf ] && grep -q '^NODENAME=rabbit@localhost' /etc/rabbitmq/rabbitmq-env.conf || cat > /etc/rabbitmq/rabbitmq-env.conf <<CONF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=5672
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
  grep -qs 'listeners.tcp.default' /etc/rabbitmq/rabbitmq.conf || cat > /etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 127.0.0.1:5672
loopback_users = none
CONF
  echo "starting rabbitmq-server"
  # setsid -f: the broker leaves our session, so nothing waits on it or holds our output
  (cd /var/lib/rabbitmq && RABBITMQ_LOGS=/var/log/rabbitmq/rabbit.log setsid -f setpriv --reuid=rabbitmq \
     --regid="$(id -g rabbitmq)" --init-groups env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server \
     >>$LOG/rabbitmq.out 2>&1 </dev/null)
fi
for _ in $(seq 120); do
  rabbitmqctl -q await_startup -t 1 >/dev/null 2>&1 && break
  # our own broker died: no point waiting (its reason is in rabbitmq.out)
  pgrep -u rabbitmq -f 'beam.*rabbit' >/dev/null || { sleep 1; pgrep -u rabbitmq -f 'beam.*rabbit' >/dev/null; } || break
  sleep 0.5
done
rabbitmqctl -q await_startup -t 5 >/dev/null || { echo "rabbitmq did not start; $why" >&2; exit 1; }
rabbitmqctl -q list_users | grep -q "^$RABBIT_USER\b" || rabbitmqctl -q add_user "$RABBIT_USER" "$RABBIT_PASS" >/dev/null
rabbitmqctl -q change_password "$RABBIT_USER" "$RABBIT_PASS" >/dev/null
rabbitmqctl -q set_user_tags "$RABBIT_USER" administrator >/dev/null
rabbitmqctl -q set_permissions -p / "$RABBIT_USER" '.*' '.*' '.*' >/dev/null
echo "RABBITMQ READY"
