#!/usr/bin/env bash
# Measures osprey's S3 API against a MinIO server on the same machine and
# disk, with the same client (minio-go) and workload, in one run: 4 KiB
# PUTs at c=16, a large multipart upload and its md5-verified download.
# One osprey node (local-disk backend) against one single-drive MinIO.
#
#   scripts/bench-s3.sh [osprey bench-s3 flags...]   e.g. --size 256MiB
#
# Environment: OSPREY_BENCH_DIR (disk to measure, default ${TMPDIR:-/tmp}),
# OSPREY_BENCH_OUT (also write the table there), KEEP=1 (keep data dirs).
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh"
__root="$(cd "${__dir}/.." && pwd)"
base="${OSPREY_BENCH_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "${base}"
tmp="$(mktemp -d "${base}/osprey-bench-s3.XXXXXX")"
pids=()
log() { echo "bench-s3.sh: $*" >&2; }
cleanup() {
	local status=$? pid
	for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
	if [[ "${KEEP:-}" == "1" || ${status} -ne 0 ]]; then log "kept ${tmp}"; else rm -rf "${tmp}"; fi
	exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


cd "${__root}"
log "building osprey"
bin="${tmp}/osprey"
CGO_ENABLED=0 go build -trimpath -o "${bin}" ./cmd/osprey
export OSPREY_S3API_ACCESS_KEY="bench-access" OSPREY_S3API_SECRET_KEY="bench-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
h="$(free_port)" r="$(free_port)" s="$(free_port)"
"${bin}" server --data-dir "${tmp}/osprey-data" --http-addr "127.0.0.1:${h}" --raft-addr "127.0.0.1:${r}" \
	--s3api-addr "127.0.0.1:${s}" --log-level warn >"${tmp}/osprey.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:${h}/readyz"

compare=()
if minio_bin="$(scripts/minio.sh)"; then
	m="$(free_port)" mc="$(free_port)"
	export MINIO_ROOT_USER="bench-minio" MINIO_ROOT_PASSWORD="bench-minio-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	MINIO_BROWSER=off "${minio_bin}" server --quiet --address "127.0.0.1:${m}" --console-address "127.0.0.1:${mc}" \
		"${tmp}/minio" >"${tmp}/minio.log" 2>&1 &
	pids+=("$!")
	wait_http "http://127.0.0.1:${m}/minio/health/ready"
	compare=(--compare "http://127.0.0.1:${m}")
else
	log "warning: MinIO unavailable; measuring osprey alone"
fi
"${bin}" bench-s3 --endpoint "http://127.0.0.1:${s}" --settle "http://127.0.0.1:${h}" "${compare[@]}" "$@" | tee "${tmp}/table.md"
if [[ -n "${OSPREY_BENCH_OUT:-}" ]]; then cp "${tmp}/table.md" "${OSPREY_BENCH_OUT}"; fi
