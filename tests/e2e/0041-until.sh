#!/bin/bash
# until: an allow rule (name or net) ends at its wall-clock second without
# a reload: from then on its names are REFUSED, its net no longer passes,
# and the elements only it admitted leave the set within a second, in one
# transaction, while those another rule also admits stay. A reload that
# moves an until later keeps what the rule admitted.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config </dev/null
utc() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
# www.good.example and short2.good.example are both 192.0.2.10;
# mail.good.example is 192.0.2.11; 192.0.2.20 is reached by net only.
policy() { # policy UNTIL-OF-THE-TEMPORARY-RULES
	tb_policy work <<-P
	addresses: [10.137.1.10]
	interface: vif1.0
	allow:
	  - name: www.good.example
	    ports: [tcp/443]
	    until: $1
	  - name: mail.good.example
	    ports: [tcp/443]
	    until: "$1"
	  - net: 192.0.2.20/32
	    ports: [tcp/443]
	    until: $1
	  - name: short2.good.example
	    ports: [tcp/443]
	P
}
end=$(($(date +%s) + 9))
policy "$(utc "$end")"
tb_daemon_start

# --- before the instant
ok "www.good.example resolves" dns_is "$VM_work" NOERROR www.good.example
ok "mail.good.example resolves" dns_is "$VM_work" NOERROR mail.good.example
ok "short2.good.example resolves (192.0.2.10, without until)" \
	dns_is "$VM_work" NOERROR short2.good.example
ok "192.0.2.10 tcp/443 passes" reach_tcp "$VM_work" 192.0.2.10 443
ok "192.0.2.11 tcp/443 passes" reach_tcp "$VM_work" 192.0.2.11 443
ok "192.0.2.20 tcp/443 passes (net rule)" reach_tcp "$VM_work" 192.0.2.20 443
ok "... and all of it before the instant" test "$(date +%s)" -lt "$end"

# --- the instant: when does 192.0.2.11 leave the set?
has11() { [ "$(dw_expires work 192.0.2.11 tcp 443)" != -1 ]; }
ok "192.0.2.11 tcp/443 is in the set" has11
# A check takes tens of ms, and the kernel is read somewhere inside it:
# "gone" is timed at the end of the check that first saw it gone (the
# removal happened no later). Timed at its start, a removal right at the
# second looked early by the length of one check (it flaked so).
gone_at=
while :; do
	t=$(date +%s.%N)
	if ! has11; then
		gone_at=$(date +%s.%N)
		break
	fi
	awk -v t="$t" -v e="$end" 'BEGIN { exit !(t > e + 3) }' && break
	sleep 0.02
done
ok "192.0.2.11 left the set (at ${gone_at:-never}, until $end)" test -n "$gone_at"
ok "... not before its until" \
	awk -v t="${gone_at:-0}" -v e="$end" 'BEGIN { exit !(t >= e) }'
ok "... within a second of it" \
	awk -v t="${gone_at:-0}" -v e="$end" 'BEGIN { exit !(t <= e + 1) }'

# --- after
ok "mail.good.example is REFUSED (unlisted)" dns_is "$VM_work" REFUSED mail.good.example
ok "www.good.example is REFUSED" dns_is "$VM_work" REFUSED www.good.example
ok "short2.good.example still resolves" dns_is "$VM_work" NOERROR short2.good.example
ok "192.0.2.10 tcp/443 stays in the set (short2 admits it too)" \
	test "$(dw_expires work 192.0.2.10 tcp 443)" -gt 0
ok "... and passes" reach_tcp "$VM_work" 192.0.2.10 443
ok "192.0.2.11 tcp/443 is gone" test "$(dw_expires work 192.0.2.11 tcp 443)" = -1
blocked "... and blocked" reach_tcp "$VM_work" 192.0.2.11 443
blocked "the net rule's 192.0.2.20 tcp/443 no longer passes" \
	reach_tcp "$VM_work" 192.0.2.20 443
ok "the log names each ended rule" eval \
	'grep -q "vm work: allow mail.good.example (until $(utc "$end")) ended; 1 elements removed" "$TB_DIR/dnsfenced.log" &&
	 grep -q "vm work: allow 192.0.2.20/32 (until $(utc "$end")) ended" "$TB_DIR/dnsfenced.log"'
ok "no reload happened" eval '! grep -q "reloading" "$TB_DIR/dnsfenced.log"'

# --- a reload that moves an until later keeps what the rule admitted
end2=$(($(date +%s) + 4))
policy "$(utc "$end2")"
tb_reload
ok "mail.good.example resolves again (until $(utc "$end2"))" \
	dns_is "$VM_work" NOERROR mail.good.example
ok "... 192.0.2.11 is admitted" test "$(dw_expires work 192.0.2.11 tcp 443)" -gt 0
policy "$(utc $((end2 + 600)))"
tb_reload
ok "the reload extending it succeeds" test "$(date +%s)" -lt "$end2"
while [ "$(date +%s)" -le "$end2" ]; do sleep 0.2; done
sleep 0.5
ok "past the old until, 192.0.2.11 stays" \
	test "$(dw_expires work 192.0.2.11 tcp 443)" -gt 0
ok "... and passes" reach_tcp "$VM_work" 192.0.2.11 443
ok "... mail.good.example still resolves" dns_is "$VM_work" NOERROR mail.good.example
ok "... the reload did not log it ended" \
	eval '! grep -q "until $(utc "$end2")) ended" "$TB_DIR/dnsfenced.log"'

tb_done
