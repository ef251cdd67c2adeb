#!/bin/bash
# npm run test:releases: the smoke of every release lab besides Zed's (which
# the whole suite runs against): each lab brought up (built on first use, then
# reused), then the release, boot and actions e2e files against it.
# NOVA_DOCKER_RELEASES="2026.1" limits it; extra arguments are more mocha files.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=(dist/test/e2e/release.test.js dist/test/e2e/boot.test.js dist/test/e2e/actions.test.js "$@")
for rel in ${NOVA_DOCKER_RELEASES:-2025.1 2026.1}; do
  bash test/lab/release-lab.sh up "$rel"
  echo "== e2e against the Nova $rel lab"
  NOVA_DOCKER_LAB=$rel npx mocha "${files[@]}"
done
