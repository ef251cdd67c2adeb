#!/bin/bash
# agent-service.sh start|stop|status -- nova-docker-compute on a machine
# without systemd: one background process, a PID file and a log file.
# (With systemd, install.sh installs nova-docker-compute.service instead.)
#   NOVA_DOCKER_CONFIG_FILES  config files, later wins
#                             (default: /etc/nova/nova.conf /etc/nova/nova-docker.conf, those that exist)
#   NOVA_DOCKER_USER          user to run as (default: nova when it exists, else root)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
RUN=/run/nova-docker LOGDIR=/var/log/nova-docker
PIDFILE=$RUN/nova-docker-compute.pid LOGFILE=$LOGDIR/nova-docker-compute.log
mkdir -p $RUN $LOGDIR

running() { [ -s $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }

start() {
  if running; then echo "nova-docker-compute already running (pid $(cat $PIDFILE))"; return 0; fi
  local args=() f user
  for f in ${NOVA_DOCKER_CONFIG_FILES:-/etc/nova/nova.conf /etc/nova/nova-docker.conf}; do
    [ -e "$f" ] && args+=(--config-file "$f")
  done
  user=${NOVA_DOCKER_USER:-$(id -u nova >/dev/null 2>&1 && echo nova || echo root)}
  touch $LOGFILE
  [ "$user" = root ] || chown "$user" $LOGFILE
  # a smaller young generation keeps the idle agent's RSS down at no measurable cost
  local cmd=("$(command -v node)" --max-semi-space-size=1 "$SRC/dist/src/cli.js" compute "${args[@]}")
  if [ "$user" = root ]; then
    setsid bash -c 'echo $$ > "$0"; exec "$@"' $PIDFILE "${cmd[@]}" >>$LOGFILE 2>&1 </dev/null &
  else
    setsid bash -c 'echo $$ > "$0"; exec setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups "${@:2}"' \
      $PIDFILE "$user" "${cmd[@]}" >>$LOGFILE 2>&1 </dev/null &
  fi
  local from
  from=$(wc -c < $LOGFILE)
  for _ in $(seq 120); do
    if tail -c +"$((from + 1))" $LOGFILE | grep -q 'RPC server consuming'; then
      echo "nova-docker-compute started (pid $(cat $PIDFILE), log $LOGFILE)"; return 0
    fi
    [ -s $PIDFILE ] && ! kill -0 "$(cat $PIDFILE)" 2>/dev/null && break
    sleep 0.5
  done
  echo "nova-docker-compute did not start; the end of $LOGFILE:" >&2
  tail -n 20 $LOGFILE >&2
  return 1
}

stop() {
  running || { echo "nova-docker-compute is not running"; rm -f $PIDFILE; return 0; }
  local pid
  pid=$(cat $PIDFILE)
  kill -TERM "$pid"
  # the agent drains in-flight work within its own bound, then exits
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || { rm -f $PIDFILE; echo "nova-docker-compute stopped"; return 0; }; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f $PIDFILE
  echo "nova-docker-compute killed after 60 s" >&2
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) if running; then echo "running (pid $(cat $PIDFILE))"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
