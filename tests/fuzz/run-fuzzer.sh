#!/bin/bash
# Run one libFuzzer target for FUZZ_SECONDS (default 30) from a copy of its
# seed corpus; any crash, leak or sanitizer report fails the test.
set -euo pipefail
exe=$1 seeds=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$seeds"/. "$work"/
cd "$work"
"$exe" -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
	-max_len=65536 "$work" 2>&1 | tail -n 5
