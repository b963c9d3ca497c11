#!/usr/bin/env bash
# Installs the pinned MinIO server used by the s3 backend's tests and
# benchmarks (backend/s3/s3test finds it there) and prints its path.
#
#   scripts/minio.sh            # install if missing, print the path
#   OSPREY_BIN_DIR=/opt/bin scripts/minio.sh
#
# The first install builds MinIO from source with `go install` and takes a
# few minutes; later runs return at once.
set -euo pipefail

__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly __dir

# Keep in sync with s3test.MinIOVersion (backend/s3/s3test/s3test.go).
readonly MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
readonly BIN_DIR="${OSPREY_BIN_DIR:-${HOME}/.cache/osprey-bin}"
readonly BIN="${BIN_DIR}/minio"

pinned="$(sed -n 's/^const MinIOVersion = "\(.*\)"$/\1/p' "${__dir}/../backend/s3/s3test/s3test.go" 2>/dev/null || true)"
if [[ -n "${pinned}" && "${pinned}" != "${MINIO_VERSION}" ]]; then
  echo "minio.sh: version ${MINIO_VERSION} differs from s3test.MinIOVersion ${pinned}" >&2
  exit 1
fi

if [[ ! -x "${BIN}" ]]; then
  command -v go >/dev/null || { echo "minio.sh: go is required to install minio" >&2; exit 1; }
  mkdir -p "${BIN_DIR}"
  echo "minio.sh: installing github.com/minio/minio@${MINIO_VERSION} into ${BIN_DIR} (takes a few minutes)" >&2
  # Run outside the module so osprey's go.mod does not constrain MinIO's.
  (cd "${BIN_DIR}" && GOFLAGS= GOBIN="${BIN_DIR}" go install "github.com/minio/minio@${MINIO_VERSION}")
fi

echo "${BIN}"
