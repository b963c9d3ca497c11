#!/usr/bin/env bash
# The one test entry point (`make test`, and what .ci/run calls). It installs
# what the tests need on a fresh machine, then runs them:
#   1. MinIO (pinned) for the S3 backend tests, via scripts/minio.sh
#   2. iproute2 + iptables when root, for the chaos harness's network faults
#   3. Chromium when root, for the web console's end-to-end tests
#   4. lint, go test -race ./..., the S3 clients (scripts/s3-clients.sh installs
#      awscli, rclone, s3cmd and python3-boto3 as root) and two short chaos runs
#      (plain, then 60 s with --tls)
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${__dir}/.."

echo "== go modules"
go mod download

echo "== MinIO for the S3 backend tests"
if minio_bin="$(scripts/minio.sh)"; then
  export OSPREY_MINIO="${minio_bin}"
  echo "minio: ${OSPREY_MINIO}"
else
  echo "warning: could not install MinIO; the S3 tests will skip and say so" >&2
fi

if [[ "$(id -u)" == "0" ]] && { ! command -v ip >/dev/null || ! command -v iptables >/dev/null; }; then
  echo "== installing iproute2 and iptables for network faults"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables >/dev/null
fi

# ---- web console e2e: headless Chromium ---------------------------------
# node/console_e2e_test.go drives the console at /ui/ in a real headless
# Chromium (via chromedp). Without a browser those tests skip and say so.
# Screenshots land in $OSPREY_CONSOLE_ARTIFACTS (default: a temp dir).
if ! command -v chromium >/dev/null && [[ -z "${OSPREY_CHROMIUM:-}" ]]; then
  if [[ "$(id -u)" == "0" ]]; then
    echo "== installing chromium for the console's end-to-end tests"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || echo "warning: could not install chromium; the console e2e tests will skip" >&2
  else
    echo "warning: chromium not installed and not root; the console e2e tests will skip" >&2
  fi
fi
export OSPREY_CONSOLE_ARTIFACTS="${OSPREY_CONSOLE_ARTIFACTS:-${TMPDIR:-/tmp}/osprey-console-screenshots}"
echo "console screenshots: ${OSPREY_CONSOLE_ARTIFACTS}"
# ---------------------------------------------------------------------------

echo "== lint"
make --no-print-directory lint

echo "== unit and in-process cluster tests (-race)"
go test -race -timeout 30m ./...

echo "== fuzzing (10s per target)"
scripts/fuzz.sh

echo "== S3 API with real clients (AWS CLI, rclone, s3cmd, boto3) on a 3-node cluster"
scripts/s3-clients.sh

if [[ "${OSPREY_SKIP_JEPSEN:-}" == "1" ]]; then
  echo "== chaos run skipped (OSPREY_SKIP_JEPSEN=1)"
else
  echo "== short chaos run (orphan collector at its shortest grace: it must never take a copy a record names)"
  scripts/jepsen.sh --time "${OSPREY_JEPSEN_TIME:-2m}" --nodes 3 --server-flags "--orphan-grace 1m --scrub-pause 10s"
  echo "== short chaos run with TLS (mutual TLS between nodes and on raft)"
  scripts/jepsen.sh --time "${OSPREY_JEPSEN_TLS_TIME:-60s}" --nodes 3 --tls
  echo "== short chaos run with bit rot in local object copies (reads must never return a rotted byte)"
  scripts/jepsen.sh --time "${OSPREY_JEPSEN_ROT_TIME:-60s}" --nodes 3 --nemesis rot
fi
echo "== containers"
if [[ "${OSPREY_PODMAN_TEST:-}" != "1" ]]; then
  echo "container tests skipped: run them with OSPREY_PODMAN_TEST=1 (needs podman and ../shared/podman/containers.conf)"
elif command -v podman >/dev/null; then
  scripts/podman-test.sh
else
  echo "container tests skipped: podman is not installed (apt-get install podman runc to run them)"
fi
echo "== all tests passed"
