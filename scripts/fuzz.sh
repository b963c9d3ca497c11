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
for t in "${targets[@]}"; do
	read -r pkg name _ <<<"${t}"
	echo "== fuzz ${pkg} ${name} (${time})"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "${time}" "${pkg}"
done
