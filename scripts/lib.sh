#!/usr/bin/env bash
# Helpers the cluster scripts share (bench.sh, bench-s3.sh, s3-clients.sh).
# Source it; it defines functions only. The caller defines log().

# free_port prints a TCP port no socket uses and that this shell has not
# handed out yet, below the kernel's ephemeral range: a port picked inside
# it can be taken by an outgoing connection's local end before the server
# binds it ("address already in use"; it broke about one cluster start in
# five on a busy machine).
__osprey_taken=" "
__osprey_eph_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
	local p lo=10000 hi=$((__osprey_eph_lo - 1))
	((hi > lo + 1000)) || { lo=20000; hi=60000; }
	while :; do
		p=$((lo + RANDOM % (hi - lo)))
		[[ "${__osprey_taken}" == *" ${p} "* ]] && continue
		if [[ -z "$(ss -Htan "sport = :${p}" 2>/dev/null)" ]]; then
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
