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
set -euo pipefail
cd "$(dirname "$0")/../.."
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
