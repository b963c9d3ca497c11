#!/usr/bin/env bash
# Measures repair after losing a member for good: builds the binary, starts
# four nodes on loopback (free ports, temp dirs), uploads many small files
# (default 4,000 × 4 KiB at the default replicas:2, so each member holds
# about 2,000 copies), waits until tiering and gc settled, then kills one
# member, wipes its data dir and removes it (`osprey cluster remove`), and
# times how long until `osprey cluster status` reports full protection with
# no repair task left. It prints the copies the member held, the seconds to
# full protection, the Raft entries the repair cost (commit index on a
# survivor) and the load average.
#
#   scripts/repair-bench.sh
#
# Environment:
#   FILES=N            files uploaded (default 4000)
#   SIZE=BYTES         size of each file (default 4096)
#   DEADLINE=SECONDS   give up waiting for full protection (default 300)
#   OSPREY_BENCH_DIR   directory for the data dirs (default ${TMPDIR:-/tmp})
#   OSPREY_SERVER_FLAGS extra flags for every node (e.g. "--redundancy ec:2+1")
#   PROFILE=DIR        save 5 s CPU profiles of the survivors taken while
#                      they repair (go tool pprof DIR/nX.pprof)
#   KEEP=1             keep the data directories and logs
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh"
__root="$(cd "${__dir}/.." && pwd)"

files="${FILES:-4000}"
size="${SIZE:-4096}"
deadline_s="${DEADLINE:-300}"
base="${OSPREY_BENCH_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "${base}"
tmp="$(mktemp -d "${base}/osprey-repair-bench.XXXXXX")"
declare -A pid_of=()
extra=(${OSPREY_SERVER_FLAGS:-})

log() { echo "repair-bench.sh: $*" >&2; }

stop_node() {
	local id="$1" pid="${pid_of[$1]:-}" sig="${2:-TERM}"
	[[ -n "${pid}" ]] || return 0
	kill "-${sig}" "${pid}" 2>/dev/null || true
	local deadline=$((SECONDS + 20))
	while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.1
	done
	if kill -0 "${pid}" 2>/dev/null; then
		log "${id} (pid ${pid}) did not stop; killing it"
		kill -KILL "${pid}" 2>/dev/null || true
	fi
	wait "${pid}" 2>/dev/null || true
	unset "pid_of[$id]"
}

cleanup() {
	local status=$? id
	for id in "${!pid_of[@]}"; do
		stop_node "${id}"
	done
	if [[ "${KEEP:-}" == "1" || ${status} -ne 0 ]]; then
		log "kept ${tmp} (logs: ${tmp}/*/node.log)"
	else
		rm -rf "${tmp}"
	fi
	exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A http_of=()
# start_node ID [extra server flags...]
start_node() {
	local id="$1" http raft
	shift
	http="$(free_port)"
	raft="$(free_port)"
	http_of[$id]="http://127.0.0.1:${http}"
	mkdir -p "${tmp}/${id}"
	"${bin}" server --node-id "${id}" --data-dir "${tmp}/${id}/data" \
		--http-addr "127.0.0.1:${http}" --raft-addr "127.0.0.1:${raft}" \
		--join-token-file "${tmp}/join-token" --log-level warn "${extra[@]}" "$@" \
		>"${tmp}/${id}/node.log" 2>&1 &
	pid_of[$id]=$!
}

# metric URL NAME prints the value of an unlabelled metric.
metric() {
	curl -fsS "$1/metrics" | awk -v n="$2" '$1 == n { v = $2 } END { printf "%d\n", v }'
}

# status URL prints `cluster status --json`.
status() { "${bin}" cluster status --json --addr "$1" 2>/dev/null; }

# jfield JSON EXPR evaluates a python expression over the parsed JSON `s`.
jfield() { python3 -c "import json,sys; s=json.load(sys.stdin); print($2)" <<<"$1"; }

cd "${__root}"
log "building osprey"
bin="${tmp}/osprey"
CGO_ENABLED=0 go build -trimpath -o "${bin}" ./cmd/osprey
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${tmp}/join-token"
chmod 600 "${tmp}/join-token"

start_node n1 --bootstrap
wait_ready "${http_of[n1]}"
for id in n2 n3 n4; do
	start_node "${id}" --join "${http_of[n1]#http://}"
done
for id in n2 n3 n4; do
	wait_ready "${http_of[$id]}"
done
deadline=$((SECONDS + 60))
until [[ "$("${bin}" cluster nodes --json --addr "${http_of[n1]}" 2>/dev/null | grep -c '"reachable": true' || true)" -ge 4 ]]; do
	((SECONDS < deadline)) || { log "4 members not reachable after 60s"; exit 1; }
	sleep 0.2
done
addrs="${http_of[n1]},${http_of[n2]},${http_of[n3]},${http_of[n4]}"

log "writing ${files} files of ${size} bytes"
mkdir -p "${tmp}/files"
python3 - "${tmp}/files" "${files}" "${size}" <<'EOF'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, "f%06d.bin" % i), "wb") as f:
        f.write(os.urandom(size))
EOF
log "uploading (8 clients)"
t0=$SECONDS
(cd "${tmp}/files" && ls | xargs -n $(((files + 7) / 8)) -P 8 \
	"${bin}" put --quiet --state-dir - --no-dedup --addr "${addrs}" >"${tmp}/put.out")
log "uploaded in $((SECONDS - t0))s"

# Tiering and gc first: the copies the member holds are then settled.
log "waiting for background tasks to settle"
deadline=$((SECONDS + 300))
while :; do
	s="$(status "${http_of[n1]}")"
	busy="$(jfield "${s}" "sum(v for k, v in s['storage']['tasks'].items() if not k.endswith('_dead'))")"
	((busy == 0)) && break
	((SECONDS < deadline)) || { log "tasks not settled after 300s: ${s}"; exit 1; }
	sleep 1
done

# The victim: a member that is not the leader.
victim=""
for id in n4 n3 n2; do
	if [[ "$(metric "${http_of[$id]}" osprey_raft_leader)" == "0" ]]; then
		victim="${id}"
		break
	fi
done
survivor=n1
[[ "${victim}" != "n1" ]] || survivor=n2
# A local-backend object is a .bin file (and a sidecar); staged chunks
# live in the chunk store's database: its byte count is reported.
held_objects="$(find "${tmp}/${victim}/data/objects" -type f -name '*.bin' 2>/dev/null | wc -l)"
held_staged="$(metric "${http_of[$victim]}" osprey_chunkstore_bytes)"
log "${victim} holds ${held_objects} local objects and ${held_staged} staged bytes; killing it and wiping its data dir"
stop_node "${victim}" KILL
rm -rf "${tmp:?}/${victim}/data"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
c0="$(metric "${http_of[$survivor]}" osprey_raft_commit_index)"
start_ns="$(date +%s%N)"
"${bin}" cluster remove --addr "${http_of[$survivor]}" "${victim}" >/dev/null
log "removed ${victim}; waiting for full protection (deadline ${deadline_s}s)"
if [[ -n "${PROFILE:-}" ]]; then
	mkdir -p "${PROFILE}"
	for id in "${!pid_of[@]}"; do
		curl -fsS -o "${PROFILE}/${id}.pprof" "${http_of[$id]}/debug/pprof/profile?seconds=5" &
	done
fi
deadline=$((SECONDS + deadline_s))
while :; do
	s="$(status "${http_of[$survivor]}" || true)"
	if [[ -n "${s}" ]]; then
		done_="$(jfield "${s}" "int(s['storage']['protection'] == 'full' and s['storage']['under_protected'] == 0 and not any(k.startswith('repair_') and not k.endswith('_dead') and v for k, v in s['storage']['tasks'].items()))")"
		((done_ == 1)) && break
	fi
	if ((SECONDS >= deadline)); then
		log "protection not full after ${deadline_s}s: ${s}"
		exit 1
	fi
	sleep 0.1
done
end_ns="$(date +%s%N)"
c1="$(metric "${http_of[$survivor]}" osprey_raft_commit_index)"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
dead="$(jfield "${s}" "s['storage']['tasks'].get('repair_dead', 0)")"
secs="$(python3 -c "print(f'{(${end_ns} - ${start_ns}) / 1e9:.1f}')")"
echo
echo "| objects held by the removed member | its staged bytes | time to full protection | Raft entries | dead repairs | load avg before / after |"
echo "|---:|---:|---:|---:|---:|---|"
echo "| ${held_objects} | ${held_staged} | ${secs} s | $((c1 - c0)) | ${dead} | ${load_before} / ${load_after} |"
