#!/usr/bin/env bash
# Helpers the cluster scripts share (bench.sh, bench-s3.sh, s3-clients.sh).
# Source it; it defines functions only. The caller defines log().

# free_port prints a TCP port nothing listens on and that this shell has
# not handed out yet.
__osprey_taken=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		[[ "${__osprey_taken}" == *" ${p} "* ]] && continue
		if [[ -z "$(ss -Htln "sport = :${p}" 2>/dev/null)" ]]; then
			__osprey_taken+="${p} "
			echo "${p}"
			return
		fi
	done
}

# wait_http URL [SECONDS] polls URL until it answers 2xx, or fails after
# SECONDS (default 60).
wait_http() {
	local url="$1" deadline=$((SECONDS + ${2:-60}))
	until curl -fsS -o /dev/null "${url}" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "${url} not up after ${2:-60}s"
			return 1
		fi
		sleep 0.2
	done
}

# wait_ready BASE_URL waits until BASE_URL/readyz answers 200.
wait_ready() { wait_http "$1/readyz"; }
