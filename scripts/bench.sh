#!/usr/bin/env bash
# Benchmarks osprey on this machine: builds the binary, starts a 1-node
# cluster and runs `osprey bench` against it, then does the same with a
# 3-node cluster (requests spread over all three nodes), and prints both
# Markdown tables (ready to paste into the README).
#
#   scripts/bench.sh [osprey bench flags...]     e.g. --size 256MiB --duration 3s
#
# Environment:
#   OSPREY_BENCH_DIR  directory on the disk to measure (default ${TMPDIR:-/tmp});
#                     data dirs and the bench scratch dir are created under it
#   OSPREY_BENCH_OUT  if set, the two tables are also written to this file
#   OSPREY_API_KEY    if set, the nodes require it (otherwise they run in
#                     protected mode, which serves loopback clients)
#   KEEP=1            keep the data directories and logs
#   OSPREY_BENCH_MINIO=off  skip the S3 comparison with MinIO (default: run it
#                     when MinIO is installed: OSPREY_MINIO_BIN, scripts/minio.sh's
#                     ~/.cache/osprey-bin/minio, or minio on PATH)
#   OSPREY_BENCH_ONE_NODE=1  skip the 3-node cluster
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh"
__root="$(cd "${__dir}/.." && pwd)"

base="${OSPREY_BENCH_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "${base}"
tmp="$(mktemp -d "${base}/osprey-bench.XXXXXX")"
pids=()

log() { echo "bench.sh: $*" >&2; }

stop_nodes() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "${pid}" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		# Poll with a deadline; a node that will not stop gets SIGKILL.
		local deadline=$((SECONDS + 20))
		while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if kill -0 "${pid}" 2>/dev/null; then
			log "node pid ${pid} did not stop; killing it"
			kill -KILL "${pid}" 2>/dev/null || true
		fi
		wait "${pid}" 2>/dev/null || true
	done
	pids=()
}

cleanup() {
	local status=$?
	stop_nodes
	if [[ "${KEEP:-}" == "1" || ${status} -ne 0 ]]; then
		log "kept ${tmp} (logs: ${tmp}/*/node.log)"
	else
		rm -rf "${tmp}"
	fi
	exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_node ID HTTP_PORT RAFT_PORT [extra server flags...]
start_node() {
	local id="$1" http="$2" raft="$3"
	shift 3
	local dir="${tmp}/${id}"
	mkdir -p "${dir}"
	"${bin}" server --node-id "${id}" --data-dir "${dir}/data" \
		--http-addr "127.0.0.1:${http}" --raft-addr "127.0.0.1:${raft}" \
		--join-token-file "${tmp}/join-token" --log-level warn "$@" \
		>"${dir}/node.log" 2>&1 &
	pids+=("$!")
}

# wait_members URL N waits until the node at URL reports N reachable members.
wait_members() {
	local url="$1" want="$2" deadline=$((SECONDS + 60)) got
	while :; do
		got="$("${bin}" cluster nodes --json --addr "${url}" 2>/dev/null | grep -c '"reachable": true' || true)"
		((got >= want)) && return 0
		if ((SECONDS >= deadline)); then
			log "${url}: ${got} of ${want} members reachable after 60s"
			return 1
		fi
		sleep 0.2
	done
}

run_bench() {
	local name="$1" addrs="$2"
	shift 2
	log "running bench against ${name} (${addrs})"
	"${bin}" bench --json --addr "${addrs}" --dir "${tmp}/scratch-${name}" "$@" >"${tmp}/${name}.json"
	"${bin}" bench-compare "${tmp}/${name}.json" | tee "${tmp}/${name}.md"
}

cd "${__root}"
log "building osprey"
bin="${tmp}/osprey"
CGO_ENABLED=0 go build -trimpath -o "${bin}" ./cmd/osprey

head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${tmp}/join-token"
chmod 600 "${tmp}/join-token"
if [[ -n "${OSPREY_API_KEY:-}" ]]; then
	export OSPREY_API_KEYS="${OSPREY_API_KEY}"
fi

# --- one node ---
h1="$(free_port)"
r1="$(free_port)"
s1="$(free_port)"
export OSPREY_S3API_ACCESS_KEY="bench-access" OSPREY_S3API_SECRET_KEY="bench-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_node n1 "${h1}" "${r1}" --bootstrap --s3api-addr "127.0.0.1:${s1}"
wait_ready "http://127.0.0.1:${h1}"
run_bench one-node "http://127.0.0.1:${h1}" "$@"

# The same node against MinIO on the same disk, same client (minio-go),
# same run: bench-s3 prints each figure as a ratio of MinIO's. Skipped
# (with a note) when MinIO is not installed; scripts/minio.sh installs it.
minio_bin=""
if [[ "${OSPREY_BENCH_MINIO:-auto}" != "off" ]]; then
	minio_bin="${OSPREY_MINIO_BIN:-${HOME}/.cache/osprey-bin/minio}"
	[[ -x "${minio_bin}" ]] || minio_bin="$(command -v minio || true)"
fi
if [[ -n "${minio_bin}" && -x "${minio_bin}" ]]; then
	m="$(free_port)"
	mc="$(free_port)"
	export MINIO_ROOT_USER="bench-minio" MINIO_ROOT_PASSWORD="bench-minio-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	MINIO_BROWSER=off "${minio_bin}" server --quiet --address "127.0.0.1:${m}" --console-address "127.0.0.1:${mc}" \
		"${tmp}/minio" >"${tmp}/minio.log" 2>&1 &
	pids+=("$!")
	wait_http "http://127.0.0.1:${m}/minio/health/ready"
	log "running bench-s3: osprey vs MinIO"
	"${bin}" bench-s3 --endpoint "http://127.0.0.1:${s1}" --settle "http://127.0.0.1:${h1}" \
		--compare "http://127.0.0.1:${m}" | tee "${tmp}/s3.md"
else
	echo "MinIO not installed (scripts/minio.sh installs it): no MinIO comparison in this run." | tee "${tmp}/s3.md"
fi
stop_nodes
rm -rf "${tmp}/n1"

# --- three nodes ---
if [[ "${OSPREY_BENCH_ONE_NODE:-}" == "1" ]]; then
	echo "(3-node run skipped: OSPREY_BENCH_ONE_NODE=1)" >"${tmp}/three-nodes.md"
else
	h1="$(free_port)"
	r1="$(free_port)"
	h2="$(free_port)"
	r2="$(free_port)"
	h3="$(free_port)"
	r3="$(free_port)"
	start_node n1 "${h1}" "${r1}" --bootstrap
	wait_ready "http://127.0.0.1:${h1}"
	start_node n2 "${h2}" "${r2}" --join "127.0.0.1:${h1}"
	start_node n3 "${h3}" "${r3}" --join "127.0.0.1:${h1}"
	wait_ready "http://127.0.0.1:${h2}"
	wait_ready "http://127.0.0.1:${h3}"
	wait_members "http://127.0.0.1:${h1}" 3
	run_bench three-nodes "http://127.0.0.1:${h1},http://127.0.0.1:${h2},http://127.0.0.1:${h3}" "$@"
	stop_nodes
fi

{
	echo "## 1 node"
	echo
	cat "${tmp}/one-node.md"
	echo
	echo "### 1 node vs MinIO, S3 API, same client (minio-go)"
	echo
	cat "${tmp}/s3.md"
	echo
	echo "## 3 nodes"
	echo
	cat "${tmp}/three-nodes.md"
	if [[ -s "${tmp}/three-nodes.json" ]]; then
		echo
		echo "### 3 nodes vs 1 node, same run"
		echo
		"${bin}" bench-compare --base-name "1 node" --other-name "3 nodes" "${tmp}/one-node.json" "${tmp}/three-nodes.json"
	fi
} >"${tmp}/report.md"
echo
cat "${tmp}/report.md"
if [[ -n "${OSPREY_BENCH_OUT:-}" ]]; then
	cp "${tmp}/report.md" "${OSPREY_BENCH_OUT}"
	log "wrote ${OSPREY_BENCH_OUT}"
fi
