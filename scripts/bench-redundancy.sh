#!/usr/bin/env bash
# Compares staging redundancy policies on a local three-node cluster:
# replicas:2 versus ec:2+1 (or the policies given as arguments). For each,
# it starts a fresh cluster (scripts/cluster.sh), runs `osprey bench`, then
# reports the staged bytes on all nodes per user byte stored.
#
#   scripts/bench-redundancy.sh [policy...]        e.g. replicas:2 ec:2+1
#   OSPREY_BENCH_SIZE=512MiB (large file size)
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${__dir}/.." && pwd)"
size="${OSPREY_BENCH_SIZE:-512MiB}"
policies=("$@")
((${#policies[@]})) || policies=(replicas:2 ec:2+1)
work="$(mktemp -d "${TMPDIR:-/tmp}/osprey-redundancy.XXXXXX")"
export OSPREY_CLUSTER_DIR="${work}/cluster" BASE_PORT="${BASE_PORT:-9400}"
trap '"${__dir}/cluster.sh" clean >/dev/null 2>&1 || true; rm -rf "${work}"' EXIT
bin="${OSPREY_CLUSTER_DIR}/osprey"
addrs="http://127.0.0.1:$((BASE_PORT + 10)),http://127.0.0.1:$((BASE_PORT + 20)),http://127.0.0.1:$((BASE_PORT + 30))"

staged() { # sum of osprey_chunkstore_bytes over the nodes
  local total=0 v
  for i in 1 2 3; do
    v="$(curl -fsS "http://127.0.0.1:$((BASE_PORT + 10 * i))/metrics" | awk '/^osprey_chunkstore_bytes /{printf "%d", $2}')"
    total=$((total + v))
  done
  echo "${total}"
}

for p in "${policies[@]}"; do
  echo "== ${p}"
  # Keep staged copies (no gc during the run) and no scrubbing, so the
  # staged bytes reflect the policy alone.
  OSPREY_CLUSTER_FLAGS="--redundancy ${p} --gc-grace 1h --scrub-rate 0" "${__dir}/cluster.sh" up >/dev/null
  "${bin}" bench --addr "${addrs}" --dir "${work}/scratch" --size "${size}" --quiet | tee "${work}/${p}.md"
  user="$("${bin}" ls --all --json --addr "${addrs%%,*}" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["items"] if isinstance(d,dict) else d; print(sum(int(x["size"]) for x in d))')"
  st="$(staged)"
  python3 -c "print('staged bytes per user byte (${p}): %.3f  (%d staged / %d stored)' % (${st}/${user}, ${st}, ${user}))"
  "${__dir}/cluster.sh" clean >/dev/null
done
