#!/usr/bin/env bash
# Local three-node osprey cluster on loopback ports, for trying it out.
#
#   scripts/cluster.sh up       build, start n1..n3, wait until ready
#   scripts/cluster.sh status   show the cluster
#   scripts/cluster.sh down     stop all nodes (data is kept)
#   scripts/cluster.sh clean    stop and delete the data
#
# Settings (environment): OSPREY_CLUSTER_DIR (default ./.cluster), BASE_PORT
# (default 9100: node i listens on HTTP BASE_PORT+10*i, raft +1), and any
# extra server flags in OSPREY_CLUSTER_FLAGS (e.g. "--redundancy ec:2+1").
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${__dir}/.." && pwd)"
dir="${OSPREY_CLUSTER_DIR:-${root}/.cluster}"
base="${BASE_PORT:-9100}"
bin="${dir}/osprey"
token_file="${dir}/join-token"
extra=(${OSPREY_CLUSTER_FLAGS:-})

http_port() { echo $((base + 10 * $1)); }
raft_port() { echo $((base + 10 * $1 + 1)); }
peers() { local p=""; for i in 1 2 3; do p+="${p:+,}127.0.0.1:$(http_port "$i")"; done; echo "$p"; }

up() {
  mkdir -p "$dir"
  echo "building osprey..."
  (cd "$root" && CGO_ENABLED=0 go build -o "$bin" ./cmd/osprey)
  [[ -s "$token_file" ]] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file"
  for i in 1 2 3; do
    local pidf="${dir}/n${i}.pid"
    if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
      echo "n${i} already running (pid $(cat "$pidf"))"; continue
    fi
    # The same command line on every start: --bootstrap-expect forms the
    # cluster the first time, later starts simply resume.
    OSPREY_JOIN_TOKEN="$(cat "$token_file")" nohup "$bin" server \
      --node-id "n${i}" --data-dir "${dir}/n${i}" \
      --http-addr "127.0.0.1:$(http_port "$i")" --raft-addr "127.0.0.1:$(raft_port "$i")" \
      --bootstrap-expect 3 --join "$(peers)" "${extra[@]}" \
      >"${dir}/n${i}.out" 2>"${dir}/n${i}.log" &
    echo $! > "$pidf"
    echo "started n${i}: http 127.0.0.1:$(http_port "$i") (pid $!, log ${dir}/n${i}.log)"
  done
  for i in 1 2 3; do
    local deadline=$((SECONDS + 30))
    until curl -fsS "http://127.0.0.1:$(http_port "$i")/readyz" >/dev/null 2>&1; do
      if (( SECONDS > deadline )); then echo "n${i} not ready after 30s; see ${dir}/n${i}.log" >&2; exit 1; fi
      sleep 0.2
    done
  done
  echo "cluster ready. Try: OSPREY_ADDR=http://127.0.0.1:$(http_port 1) go run ./cmd/osprey cluster status"
}

down() {
  for i in 1 2 3; do
    local pidf="${dir}/n${i}.pid"
    [[ -f "$pidf" ]] || continue
    local pid; pid="$(cat "$pidf")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped n${i}"
    fi
    rm -f "$pidf"
  done
}

status() {
  for i in 1 2 3; do
    local pidf="${dir}/n${i}.pid" state="stopped"
    [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null && state="running (pid $(cat "$pidf"))"
    echo "n${i}: ${state}, http 127.0.0.1:$(http_port "$i")"
  done
  for i in 1 2 3; do
    if curl -fsS "http://127.0.0.1:$(http_port "$i")/livez" >/dev/null 2>&1; then
      "$bin" cluster status --addr "http://127.0.0.1:$(http_port "$i")"
      return
    fi
  done
  echo "no node answers"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  clean) down; rm -rf "$dir"; echo "removed ${dir}" ;;
  *) echo "usage: $0 up|down|status|clean" >&2; exit 2 ;;
esac
