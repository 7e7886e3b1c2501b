#!/bin/bash
# Run one libFuzzer target for FUZZ_SECONDS (default 30) from a copy of its
# seed corpus; any crash, leak or sanitizer report fails the test.
set -euo pipefail
exe=$1 seeds=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$seeds"/. "$work"/
cd "$work"
rc=0
# libFuzzer's own failure status is 77, which meson reads as "skipped":
# make every failure 1.
"$exe" -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
	-max_len=65536 -error_exitcode=1 -timeout_exitcode=1 "$work" \
	>"$work.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
	tail -n 80 "$work.log"
	for f in crash-* leak-* timeout-* oom-*; do
		[ -f "$f" ] && { echo "input $f:"; od -A d -t x1 "$f" | head -20; }
	done
else
	tail -n 3 "$work.log"
fi
rm -f "$work.log"
exit "$rc"
