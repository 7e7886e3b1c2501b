#!/bin/bash
# Every shipped configuration file must pass `dnsfenced -n`.
set -euo pipefail
: "${DNSFENCED:?}"
${DNSFENCE_WRAP:-} "$DNSFENCED" -n -c "$1/dnsfence.yaml"
n=$("$DNSFENCED" -n -v -c "$1/dnsfence.yaml" | grep -c '^    file: ')
want=$(ls "$1"/vms/*.yaml | wc -l)
[ "$n" -eq "$want" ] || { echo "only $n of $want policies loaded"; exit 1; }
echo "conf/: dnsfence.yaml and $n policies pass -n"
