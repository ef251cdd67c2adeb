#!/bin/bash
# The smoke of every release lab besides Zed's (which the whole suite runs
# against): each lab brought up (built on first use, then reused from
# /var/cache/nova-docker-lab), then the release, boot and actions e2e files
# against it; a lab this script started is stopped again, so that one
# control plane at a time shares the machine with the Zed lab.
# The last step of `npm test`; `npm run test:releases` runs it alone.
# NOVA_DOCKER_RELEASES="2026.1" limits it; extra arguments are more mocha files.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=(dist/test/e2e/release.test.js dist/test/e2e/boot.test.js dist/test/e2e/actions.test.js "$@")
lab=(bash test/lab/release-lab.sh)
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
  [ $was_up = 1 ] || "${lab[@]}" down "$rel" >/dev/null
  [ $rc = 0 ] || exit $rc
done
