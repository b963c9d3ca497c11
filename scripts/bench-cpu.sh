#!/usr/bin/env bash
# Measures what a stored 4 KiB file costs in CPU: starts a fresh 1-node (or
# 3-node) cluster, runs `osprey bench --only small` against it (c=1, then
# c=16, DURATION each, requests spread over every node), and prints the
# files/s next to each process's CPU time (utime+stime from /proc) and the
# servers' CPU per stored file, with the block device's flush requests per
# file when /proc/diskstats shows them. Throughput on a shared 2-core
# machine moves by ±10% from run to run; CPU per file moves far less, so
# it is the figure to compare builds by (alternate them: A B A B).
#
#   scripts/bench-cpu.sh [--nodes 1|3] [--bin PATH] [--duration 8s]
#
# --bin measures a prebuilt binary (default: build this tree). PROF=prefix
# also saves a 6 s CPU profile of every node taken during the c=16 phase
# (prefix.n1, ...; `go tool pprof BIN prefix.n1`).
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh"
__root="$(cd "${__dir}/.." && pwd)"

log() { echo "bench-cpu.sh: $*" >&2; }

nodes=1 bin="" duration=8s
while (($#)); do
	case "$1" in
	--nodes) nodes="$2"; shift 2 ;;
	--bin) bin="$2"; shift 2 ;;
	--duration) duration="$2"; shift 2 ;;
	*) log "unknown flag $1"; exit 2 ;;
	esac
done
[[ "${nodes}" == 1 || "${nodes}" == 3 ]] || { log "--nodes must be 1 or 3"; exit 2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/osprey-bench-cpu.XXXXXX")"
pids=()
cleanup() {
	local status=$? pid
	for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
	if ((status != 0)); then log "kept ${tmp}"; else rm -rf "${tmp}"; fi
	exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${bin}" ]]; then
	bin="${tmp}/osprey"
	(cd "${__root}" && CGO_ENABLED=0 go build -trimpath -o "${bin}" ./cmd/osprey)
fi
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${tmp}/join-token"
chmod 600 "${tmp}/join-token"

urls=()
start_node() { # ID [extra server flags...]
	local id="$1" http raft
	shift
	http="$(free_port)" raft="$(free_port)"
	"${bin}" server --node-id "${id}" --data-dir "${tmp}/${id}" \
		--http-addr "127.0.0.1:${http}" --raft-addr "127.0.0.1:${raft}" \
		--join-token-file "${tmp}/join-token" --log-level warn "$@" >"${tmp}/${id}.log" 2>&1 &
	pids+=("$!")
	urls+=("http://127.0.0.1:${http}")
}
start_node n1 --bootstrap
wait_ready "${urls[0]}"
if ((nodes == 3)); then
	start_node n2 --join "${urls[0]#http://}"
	start_node n3 --join "${urls[0]#http://}"
	wait_ready "${urls[1]}"
	wait_ready "${urls[2]}"
	deadline=$((SECONDS + 60))
	until (($("${bin}" cluster nodes --json --addr "${urls[0]}" 2>/dev/null | grep -c '"reachable": true' || true) >= 3)); do
		((SECONDS < deadline)) || { log "members not reachable after 60s"; exit 1; }
		sleep 0.2
	done
fi

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks
flushes() { awk '$3 == "'"${disk}"'" && NF >= 20 {print $19}' /proc/diskstats; }
disk="$(lsblk -no PKNAME "$(df --output=source "${tmp}" | tail -1)" 2>/dev/null | head -1 || true)"
[[ -n "${disk}" ]] || disk="$(basename "$(df --output=source "${tmp}" | tail -1)")"
[[ -n "$(flushes)" ]] || disk=""

declare -a before
for i in "${!pids[@]}"; do before[i]="$(cpu "${pids[i]}")"; done
f0="$([[ -n "${disk}" ]] && flushes || echo 0)"
addrs="$(IFS=,; echo "${urls[*]}")"
"${bin}" bench --addr "${addrs}" --only small --small-n 1000000 --duration "${duration}" --json --quiet \
	--dir "${tmp}/scratch" >"${tmp}/out.json" &
bpid=$!
profs=()
if [[ -n "${PROF:-}" ]]; then
	secs="${duration%s}"
	for i in "${!urls[@]}"; do
		(sleep "$((secs + 1))" && curl -fsS -o "${PROF}.n$((i + 1))" "${urls[i]}/debug/pprof/profile?seconds=6") &
		profs+=("$!")
	done
fi
bcpu=0
while kill -0 "${bpid}" 2>/dev/null; do
	bcpu="$(cpu "${bpid}" 2>/dev/null || echo "${bcpu}")"
	sleep 0.2
done
wait "${bpid}"
f1="$([[ -n "${disk}" ]] && flushes || echo 0)"
for p in "${profs[@]}"; do wait "${p}" || log "profile failed"; done

tck="$(getconf CLK_TCK)"
files="$(python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
n=0
for x in r["results"]:
    if x["name"].startswith("4 KiB upload"):
        print("%-34s %8.0f files/s  %s" % (x["name"], x["value"], x.get("note","")), file=sys.stderr)
        n+=int(x["note"].split("n=")[1].split(",")[0])
print(n)' "${tmp}/out.json")"
total=0
for i in "${!pids[@]}"; do
	used=$(($(cpu "${pids[i]}") - before[i]))
	total=$((total + used))
	echo "n$((i + 1)) CPU $(awk -v t="${used}" -v k="${tck}" 'BEGIN{printf "%.2f", t/k}') s"
done
echo "client CPU $(awk -v t="${bcpu}" -v k="${tck}" 'BEGIN{printf "%.2f", t/k}') s"
echo "files stored ${files}; server CPU per file $(awk -v t="${total}" -v k="${tck}" -v n="${files}" 'BEGIN{printf "%.0f", t/k/n*1e6}') µs (all nodes)"
if [[ -n "${disk}" ]]; then
	echo "flush requests on ${disk}: $((f1 - f0)) ($(awk -v f="$((f1 - f0))" -v n="${files}" 'BEGIN{printf "%.2f", f/n}') per file)"
fi
