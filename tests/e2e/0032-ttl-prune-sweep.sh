#!/bin/bash
# What the mutation harness found no test for (tests/mutation m07, m22,
# m23, m24): the TTL a VM sees is capped by the smallest TTL on the CNAME
# chain, not by ttl.max; a reload that takes a port from a rule removes
# that port's element even when the port still exists in another rule; a
# restart adopts elements, so a reload right after it (no query between)
# still prunes what it no longer admits; and expired elements stop
# counting against set-size (and only they: the set is full again after
# one more).
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config <<'C'
ttl:
  min: 1
  max: 3600
  grace: 1
limits:
  set-size: 16
C
policy() { # policy PORTS-OF-*.good.example
	tb_policy work <<-P
	addresses: [10.137.1.10]
	interface: vif1.0
	allow:
	  - name: "*.good.example"
	    ports: [$1]
	  - name: "*.other.example"
	    ports: [tcp/8080]
	P
}
policy "tcp/443, tcp/8080"
tb_daemon_start

# --- m07: alias.good.example (CNAME, TTL 120) -> www.other.example (A, 600)
max_ttl() {
	dig_vm "$VM_work" +noall +answer alias.good.example A |
		awk '{ if ($2 > m) m = $2 } END { print m + 0 }'
}
t=$(max_ttl)
ok "the VM sees no TTL above the chain's smallest (120; saw $t)" \
	test "$t" -le 120 -a "$t" -gt 0
e=$(dw_expires work 192.0.2.20 tcp 8080)
ok "... and the element outlives it ($e s)" test "$e" -ge "$t"

# --- m22: tcp/8080 leaves *.good.example; *.other.example keeps the port
dig_vm "$VM_work" www.good.example >/dev/null
dig_vm "$VM_work" www.other.example >/dev/null
ok "www.good.example admitted on tcp/8080" reach_tcp "$VM_work" 192.0.2.10 8080
policy "tcp/443"
tb_reload
ok "the reload succeeds" grep -q "reloaded" "$TB_DIR/dnsfenced.log"
blocked "www.good.example's tcp/8080 element is removed" \
	reach_tcp "$VM_work" 192.0.2.10 8080
ok "... its tcp/443 stays" reach_tcp "$VM_work" 192.0.2.10 443
ok "... and www.other.example keeps tcp/8080" reach_tcp "$VM_work" 192.0.2.20 8080

# --- m23: restart, then at once a reload that removes *.other.example
tb_daemon_stop TERM
tb_daemon_start
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_reload
blocked "after a restart, a reload still prunes what it no longer admits" \
	reach_tcp "$VM_work" 192.0.2.20 8080
ok "... and keeps what it does" reach_tcp "$VM_work" 192.0.2.10 443

# --- m24: set-size 16: fill the ports set, one element short-lived
# (short.good.example has TTL 5; ttl.min is 1), let it expire, then a
# new name must be admitted.
tb_daemon_stop TERM
nsx "$FW" nft flush set inet dnsfence work_v4_ports
tb_daemon_start
dig_vm "$VM_work" www.good.example >/dev/null
dig_vm "$VM_work" mail.good.example >/dev/null
dig_vm "$VM_work" short.good.example >/dev/null
for i in $(seq 1 13); do dig_vm "$VM_work" "n$i.fresh.good.example" >/dev/null; done
ok "the set is full: a 17th name is refused" \
	dns_is "$VM_work" SERVFAIL n14.fresh.good.example
# short.good.example (5 s + 1 s) expires; the sweep (every 10 s) forgets it.
sleep 17
ok "once an element has expired, a new name is admitted again" \
	dns_is "$VM_work" NOERROR n14.fresh.good.example
ok "... and reachable" reach_tcp "$VM_work" 192.0.2.114 443
# The sweep freed exactly what expired: full again, with the EDE saying
# which limit, and nothing that had not expired lost.
full_ede() { [[ $(dig_vm "$VM_work" n15.fresh.good.example) == *"status: SERVFAIL"*"(limits: set-size 16)"* ]]; }
ok "... and the set is full again: the next name SERVFAIL, EDE naming set-size" full_ede
kept16() {
	local a
	for a in 192.0.2.10 192.0.2.11 $(seq -f '192.0.2.%g' 101 114); do
		[ "$(dw_expires work "$a" tcp 443)" -gt 0 ] || { echo "# lost: $a"; return 1; }
	done
}
ok "... the 16 live elements all still there" kept16

tb_done
