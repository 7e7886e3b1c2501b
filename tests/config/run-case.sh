#!/bin/bash
# One configuration golden test: `dnsfenced -n -v` on CASE/dnsfence.yaml
# must print exactly CASE/expected (the case directory written as @DIR@),
# and exit with the status its first line gives ("exit: N").
# With --update, rewrite CASE/expected instead (then review the diff!).
# A case with an executable CASE/generate (files too big to keep in git) is
# copied to a temporary directory, and generate runs there first.
set -euo pipefail
: "${DNSFENCED:?}"
update=0
[ "${1:-}" = --update ] && { update=1; shift; }
src=$(cd "$1" && pwd)
dir=$src
out=$(mktemp)
tmp=
trap 'rm -f "$out"; [ -z "$tmp" ] || rm -rf "$tmp"' EXIT
if [ -x "$src/generate" ]; then
	tmp=$(mktemp -d)
	cp -a "$src/." "$tmp/"
	dir=$tmp
	(cd "$dir" && ./generate)
fi
rc=0
${DNSFENCE_WRAP:-} "$DNSFENCED" -n -v -c "$dir/dnsfence.yaml" >"$out.o" 2>"$out.e" || rc=$?
{ echo "exit: $rc"; cat "$out.o" "$out.e"; } | sed "s|$dir|@DIR@|g" >"$out"
rm -f "$out.o" "$out.e"
if [ "$update" -eq 1 ]; then
	cp "$out" "$src/expected"
	exit 0
fi
diff -u "$src/expected" "$out"
