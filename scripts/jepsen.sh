#!/usr/bin/env bash
# Runs the osprey chaos harness (jepsen/): builds osprey and the harness,
# then runs the harness as root so it can use network namespaces.
#
#   scripts/jepsen.sh [--nodes 3|5] [--time 2m] [--nemesis all|kill,pause,...]
#                     [--seed N] [--backend local|s3] [--out DIR] [--scenario NAME]
#   scripts/jepsen.sh --list          # named regression scenarios
#
# Exit status: 0 every invariant held, 1 an invariant broke, 2 harness error.
# Without root the harness runs the nodes on 127.0.0.1 and skips network faults.
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
__root="$(cd "${__dir}/.." && pwd)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/osprey-jepsen.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT

# Build from the repository without changing directory, so a relative
# --out stays relative to where the script was called from.
echo "jepsen.sh: building osprey and the harness" >&2
CGO_ENABLED=0 go build -C "${__root}" -trimpath -o "${tmp}/osprey" ./cmd/osprey
go build -C "${__root}" -o "${tmp}/jepsen" ./jepsen/cmd/jepsen

run=("${tmp}/jepsen" --binary "${tmp}/osprey" "$@")
if [[ "$(id -u)" != "0" ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	run=(sudo -n "${run[@]}")
fi
# Not exec: the trap must remove the temporary binaries afterwards.
set +e
"${run[@]}"
status=$?
set -e
exit "${status}"
