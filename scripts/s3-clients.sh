#!/usr/bin/env bash
# Tests osprey's S3 API with the real clients users have: the AWS CLI,
# rclone, s3cmd and boto3, against a 3-node cluster with requests spread
# over the nodes (a write through one node is read through another). As
# root it installs missing clients from Debian; a client that is missing
# and cannot be installed is reported as skipped, and the script fails only
# on a client that ran and got a wrong answer.
#
#   scripts/s3-clients.sh            # prints a conformance table at the end
#
# Environment: KEEP=1 keeps the data dirs and logs; OSPREY_S3_TABLE=FILE
# also writes the table to FILE.
set -euo pipefail
__dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "${__dir}/lib.sh"
__root="$(cd "${__dir}/.." && pwd)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/osprey-s3.XXXXXX")"
pids=()
log() { echo "s3-clients.sh: $*" >&2; }

cleanup() {
	local status=$? pid
	for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
	if [[ "${KEEP:-}" == "1" || ${status} -ne 0 ]]; then
		log "kept ${tmp} (node logs: ${tmp}/n*/node.log)"
	else
		rm -rf "${tmp}"
	fi
	exit "${status}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- clients ---
want_pkgs=()
command -v aws >/dev/null || want_pkgs+=(awscli)
command -v rclone >/dev/null || want_pkgs+=(rclone)
command -v s3cmd >/dev/null || want_pkgs+=(s3cmd)
python3 -c 'import boto3' 2>/dev/null || want_pkgs+=(python3-boto3)
if ((${#want_pkgs[@]})); then
	if [[ "$(id -u)" == "0" ]]; then
		log "installing ${want_pkgs[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want_pkgs[@]}" >/dev/null 2>&1 ||
			{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want_pkgs[@]}" >/dev/null; } ||
			log "warning: could not install ${want_pkgs[*]}; those clients are skipped"
	else
		log "warning: ${want_pkgs[*]} missing and not root; those clients are skipped"
	fi
fi

# --- a 3-node cluster with the S3 API on every node ---
start_node() {
	local id="$1" http="$2" raft="$3" s3="$4"
	shift 4
	mkdir -p "${tmp}/${id}"
	"${bin}" server --node-id "${id}" --data-dir "${tmp}/${id}/data" \
		--http-addr "127.0.0.1:${http}" --raft-addr "127.0.0.1:${raft}" --s3api-addr "127.0.0.1:${s3}" \
		--join-token-file "${tmp}/join-token" --log-level warn "$@" >"${tmp}/${id}/node.log" 2>&1 &
	pids+=("$!")
}

cd "${__root}"
bin="${tmp}/osprey"
log "building osprey"
CGO_ENABLED=0 go build -trimpath -o "${bin}" ./cmd/osprey
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${tmp}/join-token"
export OSPREY_S3API_ACCESS_KEY="osprey-test-access"
export OSPREY_S3API_SECRET_KEY="osprey-test-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
declare -a H S
for i in 1 2 3; do
	H[i]="$(free_port)"
	S[i]="$(free_port)"
	R="$(free_port)"
	if ((i == 1)); then
		start_node n1 "${H[1]}" "${R}" "${S[1]}" --bootstrap
		wait_ready "http://127.0.0.1:${H[1]}"
	else
		start_node "n${i}" "${H[i]}" "${R}" "${S[i]}" --join "127.0.0.1:${H[1]}"
	fi
done
wait_ready "http://127.0.0.1:${H[2]}"
wait_ready "http://127.0.0.1:${H[3]}"
E1="http://127.0.0.1:${S[1]}" E2="http://127.0.0.1:${S[2]}" E3="http://127.0.0.1:${S[3]}"
log "cluster up: S3 API at ${E1} ${E2} ${E3}"

# --- test data ---
mkdir -p "${tmp}/data/tree/sub"
head -c 4096 /dev/urandom >"${tmp}/data/small.bin"
head -c $((40 * 1024 * 1024 + 12345)) /dev/urandom >"${tmp}/data/large.bin" # multipart for every client
for i in 1 2 3 4 5; do head -c $((i * 1000)) /dev/urandom >"${tmp}/data/tree/f${i}.txt"; done
head -c 777 /dev/urandom >"${tmp}/data/tree/sub/deep.bin"
md5() { md5sum "$1" | cut -d' ' -f1; }

# results: "client|operation|ok" lines
results="${tmp}/results"
: >"${results}"
failed=0
check() { # check CLIENT OPERATION COMMAND...
	local client="$1" op="$2"
	shift 2
	if "$@" >"${tmp}/last.out" 2>&1; then
		echo "${client}|${op}|pass" >>"${results}"
	else
		echo "${client}|${op}|FAIL" >>"${results}"
		log "FAIL ${client}: ${op}"
		sed 's/^/    /' "${tmp}/last.out" | tail -20 >&2
		failed=1
	fi
}
# lists COMMAND... | grep PATTERN without a pipe: under pipefail, grep -q
# exiting at its first match makes a client that flushes line by line
# (s3cmd) fail with EPIPE on its next line, a false FAIL seen in CI.
lists() { # lists PATTERN COMMAND...
	local pattern="$1" out
	shift
	out="$("$@")" || return 1
	grep -q -- "${pattern}" <<<"${out}" || { printf '%s\n' "${out}"; echo "no line matches ${pattern}"; return 1; }
}
same() { [[ "$(md5 "$1")" == "$(md5 "$2")" ]] || { echo "md5 differs: $1 $2"; return 1; }; }

# A CA bundle variable in the environment makes rclone's S3 client refuse
# its own transport; these endpoints are plain HTTP anyway.
unset AWS_CA_BUNDLE

# --- AWS CLI ---
if command -v aws >/dev/null; then
	export AWS_ACCESS_KEY_ID="${OSPREY_S3API_ACCESS_KEY}" AWS_SECRET_ACCESS_KEY="${OSPREY_S3API_SECRET_KEY}" AWS_DEFAULT_REGION=us-east-1
	export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="${tmp}/aws-config"
	# signature_version s3v4: the AWS CLI presigns with SigV2 unless told.
	printf '[default]\ns3 =\n    multipart_threshold = 8MB\n    multipart_chunksize = 8MB\n    signature_version = s3v4\n' >"${AWS_CONFIG_FILE}"
	aws1() { aws --endpoint-url "${E1}" "$@"; }
	aws2() { aws --endpoint-url "${E2}" "$@"; }
	aws3() { aws --endpoint-url "${E3}" "$@"; }
	aws_ls_buckets() { lists aws-bucket aws2 s3 ls; }
	aws_get_small() { aws3 s3 cp s3://aws-bucket/dir/small.bin "${tmp}/aws-small" && same "${tmp}/data/small.bin" "${tmp}/aws-small"; }
	aws_get_large() { aws2 s3 cp s3://aws-bucket/large.bin "${tmp}/aws-large" && same "${tmp}/data/large.bin" "${tmp}/aws-large"; }
	aws_etag() { aws3 s3api head-object --bucket aws-bucket --key large.bin --query ETag --output text | grep -Eq '^"?[0-9a-f]{32}-6"?$'; }
	aws_range() {
		aws3 s3api get-object --bucket aws-bucket --key large.bin --range bytes=1000-1999 "${tmp}/aws-range" >/dev/null &&
			cmp <(tail -c +1001 "${tmp}/data/large.bin" | head -c 1000) "${tmp}/aws-range"
	}
	aws_ls_prefix() { local out; out="$(aws1 s3 ls s3://aws-bucket/)" && grep -q 'PRE dir/' <<<"${out}" && grep -q large.bin <<<"${out}"; }
	aws_sync() { aws1 s3 sync "${tmp}/data/tree" s3://aws-bucket/tree && aws3 s3 sync s3://aws-bucket/tree "${tmp}/aws-tree" && diff -r "${tmp}/data/tree" "${tmp}/aws-tree"; }
	aws_presign() {
		local url
		url="$(aws2 s3 presign s3://aws-bucket/dir/small.bin --expires-in 300)" &&
			curl -fsS -o "${tmp}/aws-presigned" "${url}" && same "${tmp}/data/small.bin" "${tmp}/aws-presigned"
	}
	aws_presign_v2() {
		# The AWS CLI's default presign (no signature_version set) is SigV2.
		local url
		printf '[default]\n' >"${tmp}/aws-config-v2"
		url="$(AWS_CONFIG_FILE="${tmp}/aws-config-v2" aws --endpoint-url "${E3}" s3 presign s3://aws-bucket/dir/small.bin --expires-in 300)" &&
			[[ "${url}" == *AWSAccessKeyId=* ]] && curl -fsS -o "${tmp}/aws-presigned-v2" "${url}" && same "${tmp}/data/small.bin" "${tmp}/aws-presigned-v2"
	}
	aws_presign_tampered() {
		local url code
		url="$(aws2 s3 presign s3://aws-bucket/dir/small.bin --expires-in 300)"
		code="$(curl -s -o /dev/null -w '%{http_code}' "${url/small.bin/other.bin}")"
		[[ "${code}" == 403 ]] || { echo "tampered presigned URL answered ${code}"; return 1; }
	}
	aws_copy() { aws1 s3 cp s3://aws-bucket/dir/small.bin s3://aws-bucket/copy.bin && aws2 s3 cp s3://aws-bucket/copy.bin "${tmp}/aws-copy" && same "${tmp}/data/small.bin" "${tmp}/aws-copy"; }
	aws_rm() { aws1 s3 rm s3://aws-bucket/copy.bin && ! aws3 s3api head-object --bucket aws-bucket --key copy.bin 2>/dev/null; }
	aws_rb_nonempty() { ! aws1 s3 rb s3://aws-bucket; }
	aws_rm_all() { aws2 s3 rm --recursive s3://aws-bucket >/dev/null && aws2 s3 rb s3://aws-bucket; }
	aws_wrong_secret() { local out; out="$(AWS_SECRET_ACCESS_KEY=wrong-secret aws --endpoint-url "${E1}" s3 ls 2>&1)" || true; grep -q SignatureDoesNotMatch <<<"${out}"; }
	aws_unknown_key() { local out; out="$(AWS_ACCESS_KEY_ID=nobody aws --endpoint-url "${E1}" s3 ls 2>&1)" || true; grep -q InvalidAccessKeyId <<<"${out}"; }
	check aws "mb (CreateBucket)" aws1 s3 mb s3://aws-bucket
	check aws "ls (ListBuckets)" aws_ls_buckets
	check aws "cp small (PutObject)" aws2 s3 cp "${tmp}/data/small.bin" s3://aws-bucket/dir/small.bin
	check aws "cp 40 MiB (multipart upload)" aws1 s3 cp "${tmp}/data/large.bin" s3://aws-bucket/large.bin
	check aws "cp back small via another node (GetObject)" aws_get_small
	check aws "cp back 40 MiB via another node" aws_get_large
	check aws "multipart ETag md5-of-md5s-N (HeadObject)" aws_etag
	check aws "s3api get-object --range" aws_range
	check aws "ls prefix/delimiter (ListObjectsV2)" aws_ls_prefix
	check aws "sync up and down" aws_sync
	check aws "presign + curl" aws_presign
	check aws "presign (SigV2, the CLI default) + curl" aws_presign_v2
	check aws "tampered presigned URL: 403" aws_presign_tampered
	check aws "cp s3 to s3 (CopyObject)" aws_copy
	check aws "rm (DeleteObject)" aws_rm
	check aws "rb of a non-empty bucket refused" aws_rb_nonempty
	check aws "rm --recursive, rb (DeleteObjects, DeleteBucket)" aws_rm_all
	check aws "wrong secret: SignatureDoesNotMatch" aws_wrong_secret
	check aws "unknown key: InvalidAccessKeyId" aws_unknown_key
else
	echo "aws|all|skipped (not installed)" >>"${results}"
fi

# --- rclone ---
if command -v rclone >/dev/null; then
	export RCLONE_CONFIG="${tmp}/rclone.conf"
	for i in 1 2 3; do
		v="E${i}"
		printf '[osp%d]\ntype = s3\nprovider = Other\naccess_key_id = %s\nsecret_access_key = %s\nendpoint = %s\nregion = us-east-1\nforce_path_style = true\n\n' \
			"${i}" "${OSPREY_S3API_ACCESS_KEY}" "${OSPREY_S3API_SECRET_KEY}" "${!v}" >>"${RCLONE_CONFIG}"
	done
	rclone_lsf() { lists 'tree/sub/deep.bin' rclone lsf -R osp1:rclone-bucket/data; }
	rclone_back() { rclone copy osp3:rclone-bucket/data/large.bin "${tmp}/rclone-back" && same "${tmp}/data/large.bin" "${tmp}/rclone-back/large.bin"; }
	check rclone "mkdir" rclone mkdir osp1:rclone-bucket
	check rclone "copy a tree and 40 MiB" rclone copy "${tmp}/data" osp2:rclone-bucket/data
	check rclone "check via another node" rclone check "${tmp}/data" osp3:rclone-bucket/data
	check rclone "lsf -R" rclone_lsf
	check rclone "copy back + compare" rclone_back
	check rclone "purge" rclone purge osp2:rclone-bucket
else
	echo "rclone|all|skipped (not installed)" >>"${results}"
fi

# --- s3cmd ---
if command -v s3cmd >/dev/null; then
	s3c() { # s3c PORT args...
		local port="$1"
		shift
		s3cmd --access_key="${OSPREY_S3API_ACCESS_KEY}" --secret_key="${OSPREY_S3API_SECRET_KEY}" \
			--host="127.0.0.1:${port}" --host-bucket="127.0.0.1:${port}" --no-ssl --region=us-east-1 \
			--multipart-chunk-size-mb=8 -c /dev/null "$@"
	}
	s3cmd_ls() { lists large.bin s3c "${S[1]}" ls s3://s3cmd-bucket; }
	s3cmd_get() { s3c "${S[1]}" get --force s3://s3cmd-bucket/large.bin "${tmp}/s3cmd-large" && same "${tmp}/data/large.bin" "${tmp}/s3cmd-large"; }
	s3cmd_del() { s3c "${S[2]}" del s3://s3cmd-bucket/small.bin s3://s3cmd-bucket/large.bin && s3c "${S[3]}" rb s3://s3cmd-bucket; }
	check s3cmd "mb" s3c "${S[1]}" mb s3://s3cmd-bucket
	check s3cmd "put small" s3c "${S[2]}" put "${tmp}/data/small.bin" s3://s3cmd-bucket/small.bin
	check s3cmd "put 40 MiB (multipart)" s3c "${S[3]}" put "${tmp}/data/large.bin" s3://s3cmd-bucket/large.bin
	check s3cmd "ls" s3cmd_ls
	check s3cmd "get via another node" s3cmd_get
	check s3cmd "del, rb" s3cmd_del
else
	echo "s3cmd|all|skipped (not installed)" >>"${results}"
fi

# --- boto3 ---
if python3 -c 'import boto3' 2>/dev/null; then
	check boto3 "script (put/get/head/list/copy/multipart/delete)" python3 "${__dir}/s3-boto3.py" "${E1}" "${E2}" "${E3}" "${tmp}/data/large.bin"
else
	echo "boto3|all|skipped (not installed)" >>"${results}"
fi

# --- report ---
{
	echo "| client | operation | result |"
	echo "|---|---|---|"
	awk -F'|' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "${results}"
} >"${tmp}/table.md"
cat "${tmp}/table.md"
[[ -n "${OSPREY_S3_TABLE:-}" ]] && cp "${tmp}/table.md" "${OSPREY_S3_TABLE}"
if ((failed)); then
	log "some client operations failed"
	exit 1
fi
log "all client operations passed"
