#!/bin/bash
# Reloads and restarts with a running resolver: a reload removes, in the
# same transaction, exactly the elements only removed rules admitted, and
# keeps the rest; a reload does not wait for (or break) queries in flight;
# a restart adopts the elements (and the names that admitted them); and the
# delete + add path for kernels without timeout update keeps the timing
# invariants.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config <<'C'
ttl:
  min: 10
  max: 3600
  grace: 2
C
policy() { # the *.good.example ports, then extra rules
	tb_policy work <<-P
	addresses: [10.137.1.10]
	interface: vif1.0
	allow:
	  - name: "*.good.example"
	    ports: [$1]
	  - name: mail.good.example
	    ports: [tcp/993]
	  - name: "*.dead.example"
	$2
	P
}
policy "tcp/443, tcp/8080" '  - name: "*.other.example"'
tb_daemon_start

dig_vm "$VM_work" www.good.example >/dev/null
dig_vm "$VM_work" mail.good.example >/dev/null
dig_vm "$VM_work" www.other.example >/dev/null
ok "www.good.example: tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
ok "www.good.example: tcp/8080" reach_tcp "$VM_work" 192.0.2.10 8080
ok "mail.good.example: tcp/993" reach_tcp "$VM_work" 192.0.2.11 993
ok "www.other.example: any port" reach_tcp "$VM_work" 192.0.2.20 22

# A query in flight across the reload (its upstream never answers).
tb_bg "$TB_DIR/inflight.log" "$VM_work" dig +time=15 +tries=1 @10.139.1.1 slow.dead.example
sleep 0.5

# Drop tcp/8080 from *.good.example and the *.other.example rule.
policy "tcp/443" ""
tb_reload
ok "the reload succeeds with a query in flight" grep -q "reloaded" "$TB_DIR/dnsfenced.log"
ok "kept: www.good.example tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
blocked "removed: www.good.example tcp/8080 (its rule lost that port)" \
	reach_tcp "$VM_work" 192.0.2.10 8080
ok "kept: mail.good.example tcp/993" reach_tcp "$VM_work" 192.0.2.11 993
blocked "removed: www.other.example (its rule is gone)" \
	reach_tcp "$VM_work" 192.0.2.20 22
gone() { [ "$(dw_expires work 192.0.2.10 tcp 8080)" = -1 ]; }
ok "... the element is gone from the set, not just unmatched" gone
for _ in $(seq 200); do
	grep -q "status" "$TB_DIR/inflight.log" 2>/dev/null && break
	sleep 0.1
done
ok "the query in flight was answered (SERVFAIL) on the old generation" \
	grep -q "status: SERVFAIL" "$TB_DIR/inflight.log"
ok "new queries use the new policy: www.other.example REFUSED" \
	dns_is "$VM_work" REFUSED www.other.example

# Restart: the elements stay, and so do the names that admitted them.
e1=$(dw_expires work 192.0.2.10 tcp 443)
tb_daemon_stop TERM
tb_daemon_start
e2=$(dw_expires work 192.0.2.10 tcp 443)
ok "a restart keeps www.good.example's element ($e1 s, then $e2 s)" \
	test "$e2" -gt 0 -a "$e2" -le "$e1"
dig_vm "$VM_work" www.good.example >/dev/null
e3=$(dw_expires work 192.0.2.10 tcp 443)
ok "the new daemon extends it, never shortens it ($e3 s)" test "$e3" -ge "$e2"
policy "tcp/993" ""
tb_reload
blocked "a reload after the restart still knows which name admitted what" \
	reach_tcp "$VM_work" 192.0.2.10 443
ok "... and keeps mail.good.example's tcp/993" reach_tcp "$VM_work" 192.0.2.11 993
policy "tcp/443" ""
tb_reload

# Kernels without element timeout update: delete + add in one batch.
# (When the whole test runs with DNSFENCE_FORCE_DELADD=1, as its -deladd
# variant does, every start above used this path already; keep it so.)
tb_daemon_stop TERM
deladd_before=${DNSFENCE_FORCE_DELADD-unset}
export DNSFENCE_FORCE_DELADD=1
tb_daemon_start
if [ "$deladd_before" = unset ]; then
	unset DNSFENCE_FORCE_DELADD
else
	DNSFENCE_FORCE_DELADD=$deladd_before
fi
ok "the delete + add path is in use" grep -q "delete + add (forced)" "$TB_DIR/dnsfenced.log"
dig_vm "$VM_work" short.good.example >/dev/null
sleep 4
dig_vm "$VM_work" short.good.example >/dev/null
e=$(dw_expires work 192.0.2.12 tcp 443)
ok "... a cache hit re-arms the element ($e s)" test "$e" -gt 10
dig_vm "$VM_work" www.good.example >/dev/null
e1=$(dw_expires work 192.0.2.10 tcp 443)
dig_vm "$VM_work" short2.good.example >/dev/null
e2=$(dw_expires work 192.0.2.10 tcp 443)
ok "... a shorter TTL never shortens ($e1 s -> $e2 s)" test "$e2" -ge $((e1 - 1))
names=()
for i in $(seq 1 30); do names+=("n$i.fresh.good.example"); done
ok "... and answers never race their elements" \
	nsx "$VM_work" "$PROBE" race 10.139.1.1 443 "${names[@]}"

tb_done
