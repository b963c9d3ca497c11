#!/usr/bin/env bash
# Runs every fuzz target briefly (make test does, with the default time).
# Their seed corpora and any crashers found earlier (testdata/fuzz/) also
# run as plain tests in `go test ./...`.
#
#   scripts/fuzz.sh              # 10s per target
#   OSPREY_FUZZ_TIME=5m scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
time="${OSPREY_FUZZ_TIME:-10s}"
targets=(
	"./fsm FuzzCheckedCommandApplies"   # a command a leader accepts applies on every replica
	"./fsm FuzzSnapshotDecode"          # corrupt snapshots and backups are refused
	"./httpapi FuzzParseRange"          # Range headers
	"./httpapi FuzzVerifyLink"          # signed links
	"./s3api FuzzParseAuthHeader"       # SigV4 Authorization headers
	"./s3api FuzzChunkedReader"         # aws-chunked bodies
	"./s3api FuzzRequestBodies"         # S3 XML request bodies (complete multipart, delete objects, create bucket)
	"./erasure FuzzReaderRange"         # erasure-coded range reads
	"./httpapi FuzzScopedKey"           # scoped API key bearer tokens
	"./datapath FuzzDedupProve"         # proof-of-possession challenge ids and proofs
)
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
for t in "${targets[@]}"; do
	read -r pkg name _ <<<"${t}"
	echo "== fuzz ${pkg} ${name} (${time})"
	corpus="${pkg}/testdata/fuzz/${name}"
	before="$(ls "${corpus}" 2>/dev/null | sort || true)"
	rc=0
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "${time}" "${pkg}" 2>&1 | tee "${out}" || rc=$?
	if [[ ${rc} -ne 0 ]]; then
		after="$(ls "${corpus}" 2>/dev/null | sort || true)"
		# Go before 1.27 can end a duration-bounded run with a bare
		# "context deadline exceeded" when -fuzztime expires while a worker
		# is mid-call (golang/go#75804): no input failed and none is written.
		# Anything else, or any new failing input, fails the run.
		if [[ "${before}" == "${after}" ]] &&
			grep -A1 -- "--- FAIL: ${name} " "${out}" | grep -q '^    context deadline exceeded$' &&
			[[ "$(grep -c -- '--- FAIL' "${out}")" -eq 1 ]]; then
			echo "== fuzz ${name}: the Go fuzz coordinator's deadline race (golang/go#75804), no failing input; not a failure"
			continue
		fi
		echo "== fuzz ${name} FAILED (a new failing input, if any, is in ${corpus})" >&2
		exit "${rc}"
	fi
done
