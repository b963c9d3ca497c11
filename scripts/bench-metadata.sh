#!/usr/bin/env bash
# Metadata-scale benchmark: starts one node, loads link-only records and
# real 4 KiB uploads into it (osprey bench-metadata), and reports peak RSS,
# the small-upload rate before vs after the load, p99 upload latency while a
# Raft snapshot of the loaded state is taken vs steady, snapshot size and
# duration, and restart-to-ready time, as a Markdown table.
#
#   scripts/bench-metadata.sh                     # 1,000,000 links + 150,000 uploads
#   LINKS=100000 UPLOADS=20000 scripts/bench-metadata.sh
#
# Environment: LINKS, UPLOADS, SAMPLE (uploads timed before/after),
# OSPREY_BENCH_DIR (where the data dir goes, default ${TMPDIR:-/tmp}),
# KEEP=1 keeps the data dir and log.
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
__root="$(cd "${__dir}/.." && pwd)"

links="${LINKS:-1000000}"
uploads="${UPLOADS:-150000}"
sample="${SAMPLE:-3000}"
base="${OSPREY_BENCH_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "${base}"
tmp="$(mktemp -d "${base}/osprey-bench-meta.XXXXXX")"
pid=""

log() { echo "bench-metadata.sh: $*" >&2; }

stop_node() {
	[[ -z "${pid}" ]] && return
	kill -TERM "${pid}" 2>/dev/null || true
	local deadline=$((SECONDS + 60))
	while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.1
	done
	kill -KILL "${pid}" 2>/dev/null || true
	wait "${pid}" 2>/dev/null || true
	pid=""
}

cleanup() {
	local status=$?
	stop_node
	if [[ "${KEEP:-}" == "1" || ${status} -ne 0 ]]; then
		log "kept ${tmp} (log: ${tmp}/node.log)"
	else
		rm -rf "${tmp}"
	fi
	exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh" # free_port (this script defines its own wait_ready below)

cd "${__root}"
make -s build
bin="${__root}/bin/osprey"
http="127.0.0.1:$(free_port)"
raft="127.0.0.1:$(free_port)"

start_node() {
	"${bin}" server --data-dir "${tmp}/data" --http-addr "${http}" --raft-addr "${raft}" --node-id m1 \
		--gc-grace 1s >>"${tmp}/node.log" 2>&1 &
	pid=$!
}

# wait_ready prints the seconds it took /readyz to answer 200.
wait_ready() {
	local t0 deadline
	t0=$(date +%s.%N)
	deadline=$((SECONDS + 300))
	until curl -fsS -o /dev/null "http://${http}/readyz" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "node not ready after 300 s"
			exit 1
		fi
		kill -0 "${pid}" 2>/dev/null || { log "node exited; see ${tmp}/node.log"; exit 1; }
		sleep 0.05
	done
	python3 -c "print(round($(date +%s.%N) - ${t0}, 2))"
}

start_node
wait_ready >/dev/null
log "loading ${links} link-only records and ${uploads} 4 KiB uploads (sample ${sample})"
"${bin}" bench-metadata --addr "http://${http}" --links "${links}" --uploads "${uploads}" --sample "${sample}" >"${tmp}/result.json"
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/${pid}/status")
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/${pid}/status")
anon_kib=$(awk '/RssAnon/ {print $2}' "/proc/${pid}/status")
file_kib=$(awk '/RssFile/ {print $2}' "/proc/${pid}/status")
meta_bytes=$(du -sb "${tmp}/data/meta" | cut -f1)
stop_node
start_node
restart_s=$(wait_ready)
stop_node

j() { python3 -c "import json,sys; print(json.load(open('${tmp}/result.json'))['$1'])"; }
fmt() { python3 -c "print(f'{float(\"$1\"):,.${2:-0}f}')"; }
files=$(j files)
before=$(j small_uploads_per_s_before)
after=$(j small_uploads_per_s_after)
p99s=$(j p99_upload_ms_steady)
p99d=$(j p99_upload_ms_during_snapshot)
cat <<TABLE

| metadata scale ($(fmt "${files}") files: ${links} link-only + ${uploads} stored 4 KiB, one node) | value | target |
|---|---:|---|
| peak RSS (VmHWM) during load and snapshot | $((peak_kib / 1024)) MiB | < 300 MiB |
| RSS after load: anonymous / file-backed | $((rss_kib / 1024)) MiB: $((anon_kib / 1024)) / $((file_kib / 1024)) MiB | |
| 4 KiB uploads/s before load, c=16 | $(fmt "${before}") | |
| 4 KiB uploads/s after load, c=16 | $(fmt "${after}") (ratio $(fmt "$(python3 -c "print(${after} / ${before})")" 2)) | ≥ 0.8× before |
| p99 upload latency, steady | $(fmt "${p99s}" 1) ms | |
| p99 upload latency during a snapshot | $(fmt "${p99d}" 1) ms (ratio $(fmt "$(python3 -c "print(${p99d} / ${p99s})")" 2)) | ≤ 2× steady |
| snapshot size / duration | $(fmt "$(j snapshot_bytes)") bytes ($(fmt "$(j snapshot_bytes_per_file)" 1) bytes/file) / $(fmt "$(j snapshot_ms)") ms | ≤ 300 bytes/file |
| metadata store on disk | $((meta_bytes / 1024 / 1024)) MiB | |
| load rate: links/s, uploads/s | $(fmt "$(j links_per_s)"), $(fmt "$(j load_uploads_per_s)") | |
| restart to /readyz | ${restart_s} s | ≤ 5 s |
TABLE
