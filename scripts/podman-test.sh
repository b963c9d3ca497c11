#!/usr/bin/env bash
# Container tests with podman (or skipped, saying why): builds the image with
# `make image`, runs one container with a named volume (put/get, restart keeps
# the data, HEALTHCHECK passes), then a three-container cluster on a network of
# its own (formed with --bootstrap-expect, a file stored through one node and
# read through another, one container killed and the file still readable),
# and last compose.yaml under podman-compose (three nodes plus MinIO built by
# `make minio-image`: up, healthy, a file stored through node 1, read
# through node 3 and tiered to MinIO, node 2 stopped and the cluster still
# storing and serving, down -v). Everything it creates is named osprey-ptest-*
# and removed at exit.
#
#   scripts/podman-test.sh        # needs podman (apt-get install podman runc)
#                                 # and podman-compose for the compose step
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
__root="$(cd "${__dir}/.." && pwd)"
cd "${__root}"

log() { echo "podman-test: $*" >&2; }

if ! command -v podman >/dev/null; then
	log "skipped: podman is not installed (apt-get install podman runc)"
	exit 0
fi
if [[ -z "${CONTAINERS_CONF:-}" && -f "${__root}/../shared/podman/containers.conf" ]]; then
	export CONTAINERS_CONF="${__root}/../shared/podman/containers.conf"
fi

P=osprey-ptest
KEY=ptest-api-key-1
TOKEN=ptest-join-token
CP=osprey-ptest-compose # compose project
bin="${__root}/bin/osprey"
tmp="$(mktemp -d)"

cleanup() {
	local status=$?
	podman rm -f -t 0 ${P}-single ${P}-n1 ${P}-n2 ${P}-n3 >/dev/null 2>&1 || true
	podman volume rm -f ${P}-single ${P}-n1 ${P}-n2 ${P}-n3 >/dev/null 2>&1 || true
	podman network rm -f ${P}-net >/dev/null 2>&1 || true
	if [[ -f "${tmp}/osprey.env" ]] && command -v podman-compose >/dev/null; then
		compose down -v >/dev/null 2>&1 || true
		podman network rm -f ${CP}_default >/dev/null 2>&1 || true
	fi
	rm -rf "${tmp}"
	exit "${status}"
}
trap cleanup EXIT
cleanup_quiet() { podman rm -f -t 0 ${P}-single ${P}-n1 ${P}-n2 ${P}-n3 >/dev/null 2>&1 || true; }
cleanup_quiet

# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh" # free_port (this script defines its own wait_ready below)

wait_ready() { # URL
	local deadline=$((SECONDS + 90))
	until "${bin}" health --addr "$1" >/dev/null 2>&1; do
		((SECONDS < deadline)) || { log "not ready: $1"; return 1; }
		sleep 0.5
	done
}

log "building the image"
make -s image >/dev/null

log "single container with a named volume"
port=$(free_port)
run_single() {
	podman run -d --name ${P}-single -p 127.0.0.1:${port}:8080 -v ${P}-single:/data \
		-e OSPREY_API_KEYS=${KEY} osprey:latest >/dev/null
}
run_single
wait_ready "http://127.0.0.1:${port}"
head -c 3000000 /dev/urandom >"${tmp}/in.bin"
uid=$("${bin}" put --quiet --addr "http://127.0.0.1:${port}" --api-key ${KEY} --chunk-size 1MiB "${tmp}/in.bin" | cut -f1)
podman healthcheck run ${P}-single >/dev/null
podman rm -f -t 10 ${P}-single >/dev/null
run_single # same volume
wait_ready "http://127.0.0.1:${port}"
"${bin}" get --addr "http://127.0.0.1:${port}" --api-key ${KEY} "${uid}" -o "${tmp}/out.bin" >/dev/null
cmp "${tmp}/in.bin" "${tmp}/out.bin"
log "ok: put, restart on the same volume, get (${uid}), healthcheck"
podman rm -f -t 0 ${P}-single >/dev/null

log "three-container cluster on network ${P}-net"
subnet=""
for third in 213 214 215 216; do
	if ! ip -4 route | grep -q "10.${third}.37."; then subnet="10.${third}.37"; break; fi
done
[[ -n "${subnet}" ]] || { log "no free subnet"; exit 1; }
podman network create --subnet "${subnet}.0/24" ${P}-net >/dev/null
join="${subnet}.11:8080,${subnet}.12:8080,${subnet}.13:8080"
declare -A ports
for i in 1 2 3; do
	ports[$i]=$(free_port)
	podman run -d --name ${P}-n${i} --network ${P}-net --ip "${subnet}.1${i}" \
		-p 127.0.0.1:${ports[$i]}:8080 -v ${P}-n${i}:/data \
		-e OSPREY_NODE_ID=n${i} -e OSPREY_JOIN_TOKEN=${TOKEN} -e OSPREY_API_KEYS=${KEY} \
		-e OSPREY_BOOTSTRAP_EXPECT=3 -e OSPREY_JOIN="${join}" osprey:latest >/dev/null
done
for i in 1 2 3; do wait_ready "http://127.0.0.1:${ports[$i]}"; done
members=$("${bin}" cluster status --json --addr "http://127.0.0.1:${ports[1]}" --api-key ${KEY} | grep -c '"suffrage"')
[[ "${members}" == "3" ]] || { log "cluster has ${members} members"; exit 1; }
uid=$("${bin}" put --quiet --addr "http://127.0.0.1:${ports[1]}" --api-key ${KEY} --chunk-size 1MiB "${tmp}/in.bin" | cut -f1)
podman kill ${P}-n2 >/dev/null
"${bin}" get --addr "http://127.0.0.1:${ports[3]}" --api-key ${KEY} "${uid}" -o "${tmp}/out3.bin" >/dev/null
cmp "${tmp}/in.bin" "${tmp}/out3.bin"
log "ok: 3 members formed, stored through n1, read through n3 with n2 killed"
podman rm -f -t 0 ${P}-n1 ${P}-n2 ${P}-n3 >/dev/null

if ! command -v podman-compose >/dev/null; then
	log "compose step skipped: podman-compose is not installed (apt-get install podman-compose)"
	echo "podman-test: all container checks passed (compose step skipped)"
	exit 0
fi
log "compose.yaml: three nodes and MinIO (project ${CP})"
compose() {
	OSPREY_ENV_FILE="${tmp}/osprey.env" MINIO_ENV_FILE="${tmp}/minio.env" \
		OSPREY_HTTP_PORT_1=${ports[1]} OSPREY_HTTP_PORT_2=${ports[2]} OSPREY_HTTP_PORT_3=${ports[3]} \
		podman-compose -p ${CP} -f "${__root}/compose.yaml" "$@"
}
make -s minio-image >/dev/null
sed -e "s/^OSPREY_JOIN_TOKEN=.*/OSPREY_JOIN_TOKEN=${TOKEN}/" -e "s/^OSPREY_API_KEYS=.*/OSPREY_API_KEYS=${KEY}/" \
	-e "s/^OSPREY_S3_SECRET_KEY=.*/OSPREY_S3_SECRET_KEY=ptest-minio-secret/" \
	deploy/compose/osprey.env.example >"${tmp}/osprey.env"
sed -e "s/^MINIO_ROOT_PASSWORD=.*/MINIO_ROOT_PASSWORD=ptest-minio-secret/" \
	deploy/compose/minio.env.example >"${tmp}/minio.env"
for i in 1 2 3; do ports[$i]=$(free_port); done
compose up -d >"${tmp}/compose-up.log" 2>&1 || { cat "${tmp}/compose-up.log" >&2; exit 1; }
for i in 1 2 3; do wait_ready "http://127.0.0.1:${ports[$i]}"; done
for i in 1 2 3; do podman healthcheck run ${CP}_osprey${i}_1 >/dev/null; done
members=$("${bin}" cluster status --json --addr "http://127.0.0.1:${ports[1]}" --api-key ${KEY} | grep -c '"suffrage"')
[[ "${members}" == "3" ]] || { log "compose cluster has ${members} members"; exit 1; }
status=$("${bin}" cluster status --json --addr "http://127.0.0.1:${ports[1]}" --api-key ${KEY})
grep -q '"backend": *"s3' <<<"${status}" ||
	{ log "compose cluster does not use the s3 backend"; exit 1; }
uid=$("${bin}" put --quiet --addr "http://127.0.0.1:${ports[1]}" --api-key ${KEY} --chunk-size 1MiB "${tmp}/in.bin" | cut -f1)
"${bin}" get --addr "http://127.0.0.1:${ports[3]}" --api-key ${KEY} "${uid}" -o "${tmp}/c3.bin" >/dev/null
cmp "${tmp}/in.bin" "${tmp}/c3.bin"
log "ok: compose up, 3 healthy members on s3 (MinIO), stored through node 1 (${uid}), read through node 3"
deadline=$((SECONDS + 90))
until "${bin}" stat --addr "http://127.0.0.1:${ports[3]}" --api-key ${KEY} "${uid}" | grep -Eq '^state:[[:space:]]+tiered'; do
	((SECONDS < deadline)) || { log "${uid} was not tiered to MinIO within 90 s"; exit 1; }
	sleep 1
done
log "ok: ${uid} tiered to MinIO"
compose stop osprey2 >/dev/null 2>&1
head -c 2000000 /dev/urandom >"${tmp}/in2.bin"
uid2=$("${bin}" put --quiet --addr "http://127.0.0.1:${ports[1]}" --api-key ${KEY} --chunk-size 1MiB "${tmp}/in2.bin" | cut -f1)
"${bin}" get --addr "http://127.0.0.1:${ports[3]}" --api-key ${KEY} "${uid2}" -o "${tmp}/c3b.bin" >/dev/null
"${bin}" get --addr "http://127.0.0.1:${ports[3]}" --api-key ${KEY} "${uid}" -o "${tmp}/c3c.bin" >/dev/null
cmp "${tmp}/in2.bin" "${tmp}/c3b.bin"
cmp "${tmp}/in.bin" "${tmp}/c3c.bin"
log "ok: osprey2 stopped, stored ${uid2} through node 1 and read both files through node 3"
compose down -v >/dev/null 2>&1
podman network rm -f ${CP}_default >/dev/null 2>&1 || true
if podman volume ls --format '{{.Name}}' | grep -q "^${CP}_"; then
	log "compose down -v left volumes behind"; exit 1
fi
log "ok: compose down -v removed the containers and volumes"
echo "podman-test: all container checks passed"
