#!/bin/bash
# The signed mini-internet the resolver tests stand on: built from scratch
# with its own keys and trust anchor, served by nsd, and checked with an
# independent validator (BIND's delv): each zone is as secure, bogus or
# insecure as the tests will assume.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/minternet.sh"

tb_init
ok "the zone tree is built and signed" mi_build "$TB_DIR/mi"
ok "nsd serves it" mi_serve "$TB_DIR/mi"
awk '{ printf "trust-anchors { \"%s\" static-key %s %s %s \"%s\"; };\n",
	$1, $4, $5, $6, $7 }' "$TB_DIR/mi/root.key" >"$TB_DIR/ta.conf"

delv_says() { # NAME TYPE PATTERN
	local out
	out=$(nsx "$FW" delv -a "$TB_DIR/ta.conf" @"$MI_NS" +root=. "$1" "$2" 2>&1)
	[[ $out == *"$3"* ]] || { echo "$out" | head -5; return 1; }
}
ok "www.good.example validates" \
	delv_says www.good.example A "; fully validated"
ok "a CNAME across zones validates" \
	delv_says alias.good.example A "; fully validated"
ok "the HTTPS record validates" \
	delv_says svc.good.example HTTPS "; fully validated"
ok "a missing name is a validated NXDOMAIN" \
	delv_says nope.good.example A "; negative response, fully validated"
ok "www.bogus.example is bogus" \
	delv_says www.bogus.example A "no valid signature found"
ok "www.insecure.example is provably insecure" \
	delv_says www.insecure.example A "; unsigned answer"
tb_done
