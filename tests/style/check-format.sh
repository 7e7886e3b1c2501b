#!/bin/bash
# The C sources agree with .clang-format: print what clang-format would
# change, fail if anything. Format a file with `clang-format -i FILE`.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=$(git ls-files 'src/*.[ch]' 'tests/*.[ch]' 2>/dev/null ||
	ls src/*.[ch] tests/*/*.[ch])
bad=0
for f in $files; do
	if ! clang-format "$f" | diff -u "$f" - >/dev/null; then
		echo "not formatted: $f"
		clang-format "$f" | diff -u "$f" - | head -20 || true
		bad=1
	fi
done
exit $bad
