#!/bin/bash
# One configuration golden test: `dnsfenced -n -v` on CASE/dnsfence.yaml
# must print exactly CASE/expected (the case directory written as @DIR@),
# and exit with the status its first line gives ("exit: N").
# With --update, rewrite CASE/expected instead (then review the diff!).
set -euo pipefail
: "${DNSFENCED:?}"
update=0
[ "${1:-}" = --update ] && { update=1; shift; }
dir=$(cd "$1" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
${DNSFENCE_WRAP:-} "$DNSFENCED" -n -v -c "$dir/dnsfence.yaml" >"$out.o" 2>"$out.e" || rc=$?
{ echo "exit: $rc"; cat "$out.o" "$out.e"; } | sed "s|$dir|@DIR@|g" >"$out"
rm -f "$out.o" "$out.e"
if [ "$update" -eq 1 ]; then
	cp "$out" "$dir/expected"
	exit 0
fi
diff -u "$dir/expected" "$out"
