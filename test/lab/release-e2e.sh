#!/bin/bash
# The smoke of every release lab besides Zed's (which the whole suite runs
# against): each lab brought up (built on first use, then reused from
# /var/cache/nova-docker-lab), then the release, boot and actions e2e files
# against it, and the networked e2e's cases 1, 4 and 5 (two servers on a
# network of the lab's own Neutron talk; delete leaves nothing; nova boot
# with no --nic), about 2 minutes per release; a lab this script started is
# stopped again, so that one control plane at a time shares the machine with
# the Zed lab.
# The last step of `npm test`; `npm run test:releases` runs it alone.
# NOVA_DOCKER_RELEASES="2026.1" limits it; extra arguments are more mocha files;
# NOVA_DOCKER_RELEASE_NET=all runs the whole network.test there, =0 none of it.
#
# release-e2e.sh --prefetch (the first step of `npm test`) only starts building
# the labs' root filesystems in the background, at the lowest CPU and I/O
# priority, and returns: on a fresh machine that is about 15 minutes of
# downloads and unpacking that then overlap the Zed suite instead of following
# it.  The run proper waits for that build to end before it brings a lab up.
# Log: /var/cache/nova-docker-lab/prefetch.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
PREFETCH_LOCK=/var/cache/nova-docker-lab/.prefetch.lock
if [ "${1:-}" = --prefetch ]; then
  mkdir -p "${PREFETCH_LOCK%/*}"
  # held by the background build for as long as it runs (fd 8 is inherited by it alone)
  exec 8>"$PREFETCH_LOCK"
  flock -n 8 || exit 0 # one already running
  (
    for rel in ${NOVA_DOCKER_RELEASES:-2025.1 2026.1}; do
      echo "== $(date -u +%T) release-lab.sh build $rel"
      nice -n 19 ionice -c 2 -n 7 bash test/lab/release-lab.sh build "$rel" 8>&- ||
        echo "build $rel failed: the run proper builds it again and stops on the error"
    done
    echo "== $(date -u +%T) done"
  ) </dev/null >"${PREFETCH_LOCK%/*}/prefetch.log" 2>&1 &
  exit 0
fi
# a prefetch still building: wait for it (it holds the lock until it ends)
if [ -e "$PREFETCH_LOCK" ]; then
  t=$SECONDS
  flock "$PREFETCH_LOCK" true
  [ $((SECONDS - t)) -lt 2 ] || echo "== waited $((SECONDS - t)) s for the labs' background build"
fi
files=(dist/test/e2e/release.test.js dist/test/e2e/boot.test.js dist/test/e2e/actions.test.js "$@")
lab=(bash test/lab/release-lab.sh)
net=(dist/test/e2e/network.test.js)
case ${NOVA_DOCKER_RELEASE_NET:-subset} in
  subset) net+=(--grep ' (1|4|5)\. ') ;;
  all) ;;
  0) net=() ;;
  *) echo "NOVA_DOCKER_RELEASE_NET=$NOVA_DOCKER_RELEASE_NET: expected subset, all or 0" >&2; exit 2 ;;
esac
for rel in ${NOVA_DOCKER_RELEASES:-2025.1 2026.1}; do
  was_up=0
  "${lab[@]}" status "$rel" 2>/dev/null | grep -q '^nova-api .*running' && was_up=1
  log=$(mktemp)
  if ! "${lab[@]}" up "$rel" >"$log" 2>&1; then tail -40 "$log" >&2; exit 1; fi
  grep -E 'READY|debootstrap done|packages installed' "$log" || true
  rm -f "$log"
  echo "== e2e against the Nova $rel lab"
  rc=0
  NOVA_DOCKER_LAB=$rel npx mocha "${files[@]}" || rc=$?
  if [ ${#net[@]} -gt 0 ]; then
    echo "== networked e2e against the Nova $rel lab (its own Neutron)"
    t=$SECONDS
    NOVA_DOCKER_LAB=$rel npx mocha "${net[@]}" || rc=$?
    echo "== networked e2e ($rel): $((SECONDS - t)) s"
  fi
  [ $was_up = 1 ] || "${lab[@]}" down "$rel" >/dev/null
  [ $rc = 0 ] || exit $rc
done
