#!/bin/bash
# A reload revokes: (a) an answer still in flight when a reload removes the
# rule that allowed its name admits nothing, and the VM gets SERVFAIL or
# REFUSED, not the answer (the upstream, tests/tools/slowdns.py, answers
# 3 s late); (b) an element reached through 20 names (more than any
# per-element name list) is removed when the rule that allowed them goes,
# and stays while another rule still allows one of them.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
mi_serve_slow "$TB_DIR/mi" 3
tb_vm work 1
dw_config <<'C'
ttl:
  min: 60
  max: 300
  grace: 5
C
policy() { # policy EXTRA-RULES...: *.good.example on tcp/993 plus these
	{
		printf 'addresses: [10.137.1.10, "2001:db8:a:1::10"]\n'
		printf 'interface: vif1.0\nallow:\n'
		printf '  - name: "*.good.example"\n    ports: [tcp/993]\n'
		local r
		for r in "$@"; do
			printf '  - name: "%s"\n    ports: [tcp/443]\n' "$r"
		done
	} | tb_policy work
}
policy "*.slow.example" "*.many.good.example"
tb_daemon_start

# Is ADDR in any of work's four sets?
in_any_set() {
	local s
	for s in work_v4 work_v4_ports work_v6 work_v6_ports; do
		nsx "$FW" nft -j list set inet dnsfence "$s" | grep "\"$1\"" >/dev/null && {
			echo "# $1 is in $s"
			return 0
		}
	done
	return 1
}
status_of() { { grep -o "status: [A-Z]*" "$1" || true; } | awk '{print $2}'; }

# --- (a) an answer in flight across a reload that removes its rule.
# Warm up: the resolver learns the slow server (a TXT query: the wildcard
# has only an A record, so nothing is admitted).
dig_vm "$VM_work" +time=12 warm.slow.example TXT >/dev/null || true
ok "the warm-up admitted nothing" eval '! in_any_set 192.0.2.60'
tb_bg "$TB_DIR/late.log" "$VM_work" dig +time=8 +tries=1 @10.139.1.1 late.slow.example A
late_pid=$TB_LAST
sleep 0.5
policy "*.many.good.example"
tb_reload
ok "the reload succeeds" grep -q "reloaded" "$TB_DIR/dnsfenced.log"
ok "... while the query was still in flight (the slow server had not answered)" \
	eval '! grep -q "answer udp late.slow.example" "$TB_DIR/mi/slowdns.log"'
for _ in $(seq 100); do kill -0 "$late_pid" 2>/dev/null || break; sleep 0.1; done
wait "$late_pid" || true
ok "the upstream answered late.slow.example after the reload" \
	grep -q "answer udp late.slow.example" "$TB_DIR/mi/slowdns.log"
st=$(status_of "$TB_DIR/late.log")
ok "the VM got SERVFAIL or REFUSED, not the answer (got: ${st:-nothing})" \
	eval '[ "$st" = SERVFAIL ] || [ "$st" = REFUSED ]'
ok "192.0.2.60 is in none of work's four sets" eval '! in_any_set 192.0.2.60'
blocked "late.slow.example's address is not reachable" reach_tcp "$VM_work" 192.0.2.60 443
ok "a new query for it is REFUSED" dns_is "$VM_work" REFUSED late2.slow.example

# --- (b) one element, twenty names.
resolve_many() {
	local i
	for i in $(seq 1 20); do
		dig_vm "$VM_work" "m$i.many.good.example" >/dev/null || return 1
	done
}
ok "m1..m20.many.good.example resolve (all 192.0.2.50)" resolve_many
ok "... the element is there" test "$(dw_expires work 192.0.2.50 tcp 443)" -gt 0
ok "... and admits" reach_tcp "$VM_work" 192.0.2.50 443
policy
tb_reload
e=$(dw_expires work 192.0.2.50 tcp 443)
ok "a reload without *.many.good.example removes the element ($e)" test "$e" = -1
blocked "... and the connection is blocked" reach_tcp "$VM_work" 192.0.2.50 443
ok "... while tcp/993, which *.good.example still gives those names, stays" \
	test "$(dw_expires work 192.0.2.50 tcp 993)" -gt 0

# Another rule still allows the address: the element stays.
policy "*.many.good.example" "m1.many.good.example"
tb_reload
ok "with *.many and m1.many: the 20 names resolve again" resolve_many
policy "*.many.good.example"
tb_reload
e=$(dw_expires work 192.0.2.50 tcp 443)
ok "removing only m1.many's rule keeps the element (*.many allows all 20: $e s)" \
	test "$e" -gt 0
ok "... and it admits" reach_tcp "$VM_work" 192.0.2.50 443
policy "*.many.good.example" "m17.many.good.example"
tb_reload
ok "with *.many and m17.many: resolved again" resolve_many
policy "m17.many.good.example"
tb_reload
e=$(dw_expires work 192.0.2.50 tcp 443)
ok "removing *.many but keeping m17.many keeps the element (m17 still allows it: $e s)" \
	test "$e" -gt 0
ok "... and it admits" reach_tcp "$VM_work" 192.0.2.50 443
policy
tb_reload
e=$(dw_expires work 192.0.2.50 tcp 443)
ok "removing m17.many too removes it ($e)" test "$e" = -1
blocked "... and blocks" reach_tcp "$VM_work" 192.0.2.50 443

tb_done
