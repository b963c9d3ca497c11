#!/usr/bin/env bash
# Builds osprey-minio:latest, the MinIO image compose.yaml uses, FROM scratch
# (deploy/compose/minio.Dockerfile) from the minio binary scripts/minio.sh
# installs. A FROM-scratch image needs a statically linked binary: when that
# one was built with cgo, a static copy is built once into
# ${OSPREY_BIN_DIR:-~/.cache/osprey-bin}/static (go install, CGO_ENABLED=0,
# the same pinned version; takes a few minutes the first time).
#
#   deploy/compose/minio-image.sh     # or: make minio-image
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
__root="$(cd "${__dir}/../.." && pwd)"
cd "${__root}"

log() { echo "minio-image: $*" >&2; }

CONTAINER="${CONTAINER:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}"
bin="$(scripts/minio.sh)"
static() { go version -m "$1" 2>/dev/null | grep -q 'CGO_ENABLED=0'; }
if ! static "${bin}"; then
	version="$(go version -m "${bin}" | awk '$1 == "mod" && $2 == "github.com/minio/minio" {print $3}')"
	[[ -n "${version}" ]] || { log "cannot read the minio version of ${bin}"; exit 1; }
	sdir="$(dirname "${bin}")/static"
	if [[ ! -x "${sdir}/minio" ]] || ! static "${sdir}/minio" ||
		! go version -m "${sdir}/minio" | grep -q "${version}"; then
		log "building a static minio ${version} into ${sdir} (takes a few minutes)"
		mkdir -p "${sdir}"
		# Outside the module, so osprey's go.mod does not constrain MinIO's.
		(cd "${sdir}" && CGO_ENABLED=0 GOFLAGS= GOBIN="${sdir}" go install "github.com/minio/minio@${version}")
	fi
	bin="${sdir}/minio"
fi

ctx="${__root}/build/minio"
mkdir -p "${ctx}"
cp -f "${bin}" "${ctx}/minio"
fmt=()
[[ "${CONTAINER}" == *podman* ]] && fmt=(--format docker)
"${CONTAINER}" build "${fmt[@]}" -f deploy/compose/minio.Dockerfile -t osprey-minio:latest "${ctx}"
