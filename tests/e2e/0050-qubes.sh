#!/bin/bash
# dnsfenced in a Qubes-shaped firewall qube (tests/lib/qubesbed.sh): the
# gateway address appears after the start (freebind), AppVMs keep asking
# 10.139.1.1/2 and are answered by dnsfenced through the capture chain
# (Qubes' dnat-dns never sees them), a dsthost-like name rule admits that
# name and its ports, dns: deny is REFUSED, a fully denied VM is closed
# (rejected, not dropped). When dnsfenced stops or is killed, what
# dnsfence.service's ExecStopPost runs (contrib/qubes/qubes-setup stop)
# closes its table: nothing new passes (net rules, default: allow and
# name-admitted addresses alike), an established flow goes on, its sets
# keep their elements, DNS gets an error at once; the next start
# (ExecStartPre, dnsfenced) adopts those elements. Qubes' own tables are
# left exactly as they were, but for the tagged custom-input accept.
#
# The policies are written by hand, as dnsfence-qubes-sync would write
# them from QubesDB (QUBES_SYNC: the converter, once it is wired in).
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/qubesbed.sh"

: "${DNSFENCECTL:?DNSFENCECTL must name dnsfencectl}"
FAILSAFE="$(dirname "$0")/../../contrib/qubes/failsafe.nft"

# has_ede VM SERVER CODE NAME: the answer carries that EDE.
has_ede() {
	local out
	out=$(qb_dig "$1" "$2" "$4" 2>&1) || true
	[[ $out == *"EDE: $3"* ]]
}
# own_resolver VM: the VM asks the internet's server 192.0.2.53 itself.
own_resolver() {
	qb_dig "$1" 192.0.2.53 +time=1 +norecurse www.good.example >/dev/null 2>&1
}
not() { ! "$@"; }
ctl() { "$DNSFENCECTL" -s "$TB_DIR/control.sock" "$@"; }
refused_of() {
	ctl -j status | python3 -c 'import json, sys
print(json.load(sys.stdin)["vms"][sys.argv[1]]["refused"])' "$1"
}

# The forward chain as dnsfence-qubes' ExecStopPost leaves it, checked
# while dnsfenced is down: closed_checks WHAT.
closed_checks() {
	local rules
	rules=$(nsx "$FW" nft list chain inet dnsfence forward |
		sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/; s/^\t*//' |
		grep -vE '^(table |\}|chain forward |type filter |$)')
	ok "$1: forward has exactly the fail-safe's rules" test "$rules" = \
		"$(printf '%s\n' 'ct state established,related accept' \
		'iifgroup 2 counter reject with icmpx admin-prohibited comment "dnsfence fail-safe: dnsfenced is not running"')"
	local n0 start ms
	n0=$(qb_count inet dnsfence forward 'fail-safe')
	start=$(date +%s%N)
	blocked "$1: a default: allow VM opens no new flow" \
		reach_tcp "$VM_nodns" 192.0.2.11 443
	ms=$((($(date +%s%N) - start) / 1000000))
	# (Only the first: the kernel rate-limits ICMP errors to one host.)
	ok "$1: ... rejected, not dropped (${ms} ms)" test "$ms" -lt 500
	blocked "$1: nor does work's net rule (192.0.2.12 tcp/443)" \
		reach_tcp "$VM_work" 192.0.2.12 443
	blocked "$1: nor work's name-admitted 192.0.2.10 (its element is there)" \
		reach_tcp "$VM_work" 192.0.2.10 443
	ok "$1: ... counted by the fail-safe's rule" \
		test "$(qb_count inet dnsfence forward 'fail-safe')" -ge $((n0 + 3))
}

# The start's log says it adopted elements (the log's head when not).
adopted_log() {
	grep -qE "adopted [1-9][0-9]* elements from table inet dnsfence" \
		"$TB_DIR/dnsfenced.log" && return 0
	sed 's/^/# /' "$TB_DIR/dnsfenced.log" | head -n 5
	return 1
}

# After a start over a closed table: restarted_checks WHAT EXPIRES-BEFORE.
restarted_checks() {
	local exp
	ok "after $1: dnsfenced adopted the elements (log)" adopted_log
	exp=$(elem_expires qubes-10-137-0-12_v4_ports "192.0.2.10 . tcp . 443")
	ok "after $1: 192.0.2.10 kept its timeout (${exp} s left, ${2} s before): adopted, not admitted again" \
		test "$exp" -gt 0 -a "$exp" -le "$2"
	ok "after $1: the name-admitted address passes without a new query" \
		reach_tcp "$VM_work" 192.0.2.10 443
	ok "after $1: ... no query was asked since the start" \
		not grep -q "www.good.example" <(ctl log)
	ok "after $1: ... the daemon knows its name" \
		grep -q "www.good.example" <(ctl list qubes-10-137-0-12)
	ok "after $1: work's net rule passes again" reach_tcp "$VM_work" 192.0.2.12 443
	ok "after $1: the default: allow VM passes again" \
		reach_tcp "$VM_nodns" 192.0.2.11 443
	blocked "after $1: an address no answer gave does not" \
		reach_tcp "$VM_work" 192.0.2.11 443
	ok "after $1: nothing left of the fail-safe" \
		test "$(nsx "$FW" nft list table inet dnsfence | grep -c fail-safe)" -eq 0
	ok "after $1: DNS answered again" \
		qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example
}

# table inet dnsfence without its forward chain, counters and expiry
# times: what a stop must leave as it was.
table_but_forward() {
	qb_table inet dnsfence | sed -E 's/ expires [0-9dhms]+//g' |
		awk '/^\tchain forward \{/ { skip = 1 } !skip { print }
			skip && /^\t\}/ { skip = 0 }'
}

# One chain of a listed table: qb_table ... | qb_chain NAME
qb_chain() {
	awk -v c="$1" '$1 == "chain" && $2 == c { on = 1 } on { print }
		on && /^\t\}/ { on = 0 }'
}

qb_init
# A rule of the user's own in custom-input (as from
# /rw/config/qubes-firewall-user-script): the stop must leave it.
nsx "$FW" nft add rule ip qubes custom-input ip daddr "$QB_GW" tcp dport 22 \
	counter accept comment '"user-ssh"'

# dsthost=www.good.example proto=tcp dstports=443-443, specialtarget=dns,
# then drop: a name rule with its port, DNS allowed, default deny.
tb_policy qubes-10-137-0-12 <<'P'
addresses: [10.137.0.12]
default: deny
allow:
  - name: www.good.example
    ports: [tcp/443]
  - net: 192.0.2.12/32
    ports: [tcp/443]
P
# A bare accept without specialtarget=dns: everything but DNS.
tb_policy qubes-10-137-0-13 <<'P'
addresses: [10.137.0.13]
default: allow
dns: deny
P
# An inexpressible rule set, failed closed by the converter.
tb_policy qubes-10-137-0-14 <<'P'
addresses: [10.137.0.14]
default: deny
dns: deny
P

# ---- the units at boot. No table yet: qubes-setup stop (ExecStopPost,
# had dnsfence-failsafe not run) loads failsafe.nft; then the fail-safe
# unit's own load changes nothing; ExecStartPre adds the DNS accept.
ok "no table: qubes-setup stop loads failsafe.nft" qb_setup stop
ok "... its forward chain is the fail-safe's" grep -q \
	'iifgroup 2 counter packets 0 bytes 0 reject with icmpx admin-prohibited comment "dnsfence fail-safe: dnsfenced is not running"' \
	<(nsx "$FW" nft list chain inet dnsfence forward)
ok "... it said so" grep -q "no table inet dnsfence: loaded" "$TB_DIR/qubes-setup.log"
blocked "dnsfence-failsafe at boot: the table is there, nothing loaded" \
	nsx "$FW" nft -f "$FAILSAFE" 2>/dev/null
ok "qubes-setup start (ExecStartPre) adds the tagged accept" qb_setup start
ok "... one, after the user's rule" test "$(qb_table ip qubes | qb_chain custom-input |
	grep -oE 'comment "[a-z-]+"' | tr '\n' ' ')" = 'comment "user-ssh" comment "dnsfence" '

# ---- freebind: 10.137.0.6 is nowhere yet (the uplink and the vifs come later)
qb_config <<'C'
capture:
  from-group: 2
  to: [10.139.1.1, 10.139.1.2]
nftables:
  priority: 1
  from-group: 2
  reject: true
C
TB_READY_WAIT=5 tb_daemon_start 2>/dev/null || true
ok "without freebind, a listen address that is not local fails the start" \
	test "$(kill -0 "$DAEMON_PID" 2>/dev/null && echo up || echo gone)" = gone
wait "$DAEMON_PID" 2>/dev/null || DAEMON_STATUS=$?
ok "... with exit status 1" test "${DAEMON_STATUS:-0}" -eq 1
ok "... and says why, and what to set" grep -q \
	"cannot listen on $QB_GW port 53: not a local address (set freebind: true" \
	"$TB_DIR/dnsfenced.log"
DAEMON_PID=
ok "ExecStopPost after the failed start: qubes-setup stop" qb_setup stop
ok "... forward holds the fail-safe's rules" grep -q "fail-safe" \
	<(nsx "$FW" nft list chain inet dnsfence forward)
ok "... the accept is gone" \
	not grep -q 'comment "dnsfence"' <(nsx "$FW" nft list chain ip qubes custom-input)
ok "ExecStartPre again" qb_setup start

sed -i "1a freebind: true" "$TB_DIR/dnsfence.yaml"
ok "with freebind: true, dnsfenced starts before its address exists" \
	tb_daemon_start
qb_uplink
qb_vm work 10.137.0.12 1
qb_vm nodns 10.137.0.13 2
qb_vm closed 10.137.0.14 3
# Qubes' tables as the VMs' connection left them (set elements included).
before_qubes=$(qb_table ip qubes)
before_qfw=$(qb_table ip qubes-firewall)
ok "... and answers once the address is there" \
	qb_dns_is "$VM_work" "$QB_GW" NOERROR www.good.example

# ---- the ruleset's shape
rs=$(nsx "$FW" nft list table inet dnsfence)
ok "forward hooks at priority 1 (after qubes-firewall's 0)" \
	grep -q "type filter hook forward priority filter + 1; policy drop;" <<<"$rs"
ok "capture is a nat chain at dstnat - 10" \
	grep -q "type nat hook prerouting priority dstnat - 10; policy accept;" <<<"$rs"
ok "only iifgroup 2 is judged" grep -q 'iifgroup != 2 accept' <<<"$rs"

# ---- DNS to the virtual addresses is answered by dnsfenced
ok "work asks 10.139.1.1: answered" \
	qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example
ok "... over TCP too" qb_dns_is "$VM_work" 10.139.1.1 NOERROR +tcp www.good.example
ok "work asks 10.139.1.2: answered" \
	qb_dns_is "$VM_work" 10.139.1.2 NOERROR www.good.example
ok "... by dnsfenced: a name outside the policy is REFUSED, EDE 15" \
	has_ede "$VM_work" 10.139.1.1 15 mail.good.example
ok "the capture counters moved" \
	test "$(qb_count inet dnsfence capture 'capture DNS to 10.139.1.')" -ge 4
ok "ip qubes dnat-dns counted nothing" \
	test "$(qb_count ip qubes dnat-dns 'dnat to')" -eq 0

# ---- a dsthost-like rule admits exactly that name and its ports
ok "work reaches www.good.example on tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
blocked "... not on tcp/22" reach_tcp "$VM_work" 192.0.2.10 22
blocked "... nor an address no answer gave" reach_tcp "$VM_work" 192.0.2.11 443
start=$(date +%s%N)
reach_tcp "$VM_work" 192.0.2.11 443 || true
ms=$((($(date +%s%N) - start) / 1000000))
ok "... rejected, not dropped (answered in ${ms} ms)" test "$ms" -lt 500
ok "... and counted" test "$(counter_of vm_qubes-10-137-0-12 'qubes-10-137-0-12: not admitted')" -ge 3
ok "a resolver of its own choosing (192.0.2.53) is not captured, and not admitted" \
	not own_resolver "$VM_work"

# ---- dns: deny
ok "dns: deny: REFUSED" qb_dns_is "$VM_nodns" 10.139.1.1 REFUSED www.good.example
ok "... with EDE 18 (Prohibited)" \
	has_ede "$VM_nodns" 10.139.1.1 18 www.good.example
ok "... and its net rules still apply (default allow)" \
	reach_tcp "$VM_nodns" 192.0.2.11 443
ok "... so it may ask a resolver of its own (capture: any is off)" \
	own_resolver "$VM_nodns"
ok "... counted as refused" test "$(refused_of qubes-10-137-0-13)" -ge 2
ok "... logged as such" grep -q "qubes-10-137-0-13.*dns: deny" <(ctl log)
ok "... nothing was admitted for it" \
	test "$(nsx "$FW" nft list set inet dnsfence qubes-10-137-0-13_v4 | grep -c 192.0.2)" -eq 0

# ---- a fully denied VM is closed
ok "closed: REFUSED" qb_dns_is "$VM_closed" 10.139.1.1 REFUSED www.good.example
blocked "closed: no connection" reach_tcp "$VM_closed" 192.0.2.10 443
ok "closed: no resolver of its own" \
	not own_resolver "$VM_closed"

# ---- reloads: capture removed and back, the priority moved, dns: deny
cp "$TB_DIR/dnsfence.yaml" "$TB_DIR/qubes.yaml"
awk '/^capture:/ { skip = 1; next } /^[^ ]/ { skip = 0 } !skip' \
	"$TB_DIR/qubes.yaml" | sed 's/^  priority: 1$/  priority: 2/' \
	>"$TB_DIR/dnsfence.yaml"
ok "reload without capture, forward at priority 2" ctl reload
rs=$(nsx "$FW" nft list table inet dnsfence)
ok "... the capture chain is gone" test "$(grep -c 'chain capture' <<<"$rs")" -eq 0
ok "... forward hooks at filter + 2" grep -q "hook forward priority filter + 2;" <<<"$rs"
qb_dig "$VM_work" 10.139.1.1 +time=1 www.good.example >/dev/null 2>&1 || true
ok "... so Qubes' dnat-dns takes DNS to 10.139.1.1 again" \
	test "$(qb_count ip qubes dnat-dns 'dnat to')" -ge 1
ok "... what work's names admitted stays admitted" reach_tcp "$VM_work" 192.0.2.10 443
cp "$TB_DIR/qubes.yaml" "$TB_DIR/dnsfence.yaml"
ok "reload with capture again" ctl reload
ok "... dnsfenced answers 10.139.1.1 again" \
	qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example
ok "... forward back at filter + 1" grep -q "hook forward priority filter + 1;" \
	<(nsx "$FW" nft list chain inet dnsfence forward)
echo "dns: deny" >>"$TB_DIR/vms/qubes-10-137-0-12.yaml"
ok "reload: work gets dns: deny" ctl reload
ok "... REFUSED" qb_dns_is "$VM_work" 10.139.1.1 REFUSED www.good.example
blocked "... and what its names admitted is revoked" reach_tcp "$VM_work" 192.0.2.10 443
sed -i '/^dns: deny/d' "$TB_DIR/vms/qubes-10-137-0-12.yaml"
ok "reload: work's DNS back" ctl reload
sed -i 's/^  to: \[10.139.1.1, 10.139.1.2\]$/&\n  any: true/' "$TB_DIR/dnsfence.yaml"
ok "reload: hard capture (any: true)" ctl reload
ok "... a resolver of the VM's own choosing is answered by dnsfenced (EDE 18)" \
	has_ede "$VM_nodns" 192.0.2.53 18 www.good.example
ok "... counted" test "$(qb_count inet dnsfence capture 'capture all DNS')" -ge 1
cp "$TB_DIR/qubes.yaml" "$TB_DIR/dnsfence.yaml"
ok "reload: capture as before" ctl reload
ok "... the VM's own resolver answers it again" own_resolver "$VM_nodns"

# ---- dnsfenced stopped, then what dnsfence.service's ExecStopPost does
# Every kind of admission first, so that each "blocked" below can fail.
ok "before the stop: work resolves www.good.example" \
	qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example
ok "before the stop: work's net rule passes (192.0.2.12 tcp/443)" \
	reach_tcp "$VM_work" 192.0.2.12 443
ok "... its name-admitted address too" reach_tcp "$VM_work" 192.0.2.10 443
ok "... and the default: allow VM" reach_tcp "$VM_nodns" 192.0.2.11 443
exp_before=$(elem_expires qubes-10-137-0-12_v4_ports "192.0.2.10 . tcp . 443")
ok "... www.good.example's 192.0.2.10 is in work's set (expires in ${exp_before} s)" \
	test "$exp_before" -gt 0
ci_before=$(qb_table ip qubes | qb_chain custom-input)
tb_bg "$TB_DIR/talk.log" "$VM_nodns" "$PROBE" talk 192.0.2.12 443 50 200
talk_pid=$TB_LAST
sleep 0.5
tb_daemon_stop TERM
ok "dnsfenced stops cleanly" test "$DAEMON_STATUS" -eq 0
ok "its table stays" test -n "$(nsx "$FW" nft list chain inet dnsfence forward)"
# The fail-safe never wipes a table that is there (a restart of its unit
# while dnsfenced runs must not lose what was admitted): create fails, and
# the file, one transaction, changes nothing.
before=$(table_but_forward; qb_table inet dnsfence | qb_chain forward)
blocked "the fail-safe does not load over dnsfenced's table" nsx "$FW" nft -f "$FAILSAFE"
ok "... which is left as it was" \
	test "$(table_but_forward; qb_table inet dnsfence | qb_chain forward)" = "$before"
kept_before=$(table_but_forward)

ok "qubes-setup stop (ExecStopPost) succeeds" qb_setup stop
ok "... forward closed where it was (filter + 1), policy accept" \
	grep -q "type filter hook forward priority filter + 1; policy accept;" \
	<(nsx "$FW" nft list chain inet dnsfence forward)
closed_checks "stop"
ok "... the per-VM chains, input and capture stay, the sets with their elements: all but forward as it was" \
	test "$(table_but_forward)" = "$kept_before"
ok "... work's set still holds 192.0.2.10" \
	grep -q "192.0.2.10 . tcp . 443" <(nsx "$FW" nft list set inet dnsfence qubes-10-137-0-12_v4_ports)
ci_after=$(qb_table ip qubes | qb_chain custom-input)
ok "... the tagged custom-input accept is gone" \
	test "$(grep -c 'comment "dnsfence"' <<<"$ci_after")" -eq 0
ok "... and only it: the user's rule stays" grep -q 'comment "user-ssh"' <<<"$ci_after"
ok "... custom-input is as before but for the accept" \
	test "$ci_after" = "$(grep -v 'comment "dnsfence"' <<<"$ci_before")"
ok "... ip qubes is otherwise untouched" \
	test "$(qb_table ip qubes)" = "$(grep -v 'comment "dnsfence"' <<<"$before_qubes")"
ok "... ip qubes-firewall is untouched" \
	test "$before_qfw" = "$(qb_table ip qubes-firewall)"
# The capture chain stays: DNS to 10.139.1.x is redirected to the
# gateway, where nobody listens and custom-input no longer accepts it, so
# ip qubes input rejects it (host-prohibited): an error at once. (Asked
# by the VM that had the fewest ICMP errors lately: the kernel rate-limits
# them per host, and a VM over that budget waits for its timeout.)
ok "the capture chain stays" nsx "$FW" nft list chain inet dnsfence capture
cap_before=$(qb_count inet dnsfence capture 'capture DNS to 10.139.1.1' || echo 0)
start=$(date +%s%N)
out=$(qb_dig "$VM_closed" 10.139.1.1 www.good.example 2>&1) || true
ms=$((($(date +%s%N) - start) / 1000000))
ok "DNS from a VM gets a quick error (${ms} ms; dig's timeout is 3 s)" \
	test "$ms" -lt 1500
ok "... an error, not an answer: $(grep -m1 -oE 'communications error.*|timed out' <<<"$out" || echo '?')" \
	not grep -q "status:" <<<"$out"
ok "... after the capture (its counter moved)" \
	test "$(qb_count inet dnsfence capture 'capture DNS to 10.139.1.1' || echo 0)" -gt "$cap_before"
# The flow's round trips wait 2 s for an answer: closed for longer than
# that, so that a fail-safe without its ct rule would end it.
sleep 2.5
ok "the established flow is still talking" kill -0 "$talk_pid"

# ---- dnsfence.service again: ExecStartPre (qubes-setup start), dnsfenced
ok "qubes-setup start (ExecStartPre) puts the accept back" qb_setup start
ok "... custom-input is as before the stop" \
	test "$(qb_table ip qubes | qb_chain custom-input)" = "$ci_before"
ok "dnsfenced starts over its closed table" tb_daemon_start
restarted_checks "the restart" "$exp_before"
rc=0
for _ in $(seq 150); do kill -0 "$talk_pid" 2>/dev/null || break; sleep 0.1; done
wait "$talk_pid" || rc=$?
ok "the established flow survived the stop, the closed table and the restart" \
	test "$rc" -eq 0

# ---- a crash at another priority: SIGKILL, then ExecStopPost
sed 's/^  priority: 1$/  priority: 2/' "$TB_DIR/qubes.yaml" >"$TB_DIR/dnsfence.yaml"
ok "reload: forward at priority 2" ctl reload
exp_before=$(elem_expires qubes-10-137-0-12_v4_ports "192.0.2.10 . tcp . 443")
tb_bg "$TB_DIR/talk2.log" "$VM_nodns" "$PROBE" talk 192.0.2.12 443 50 200
talk_pid=$TB_LAST
sleep 0.5
tb_daemon_stop KILL
ok "dnsfenced is killed (SIGKILL)" test "$DAEMON_STATUS" -eq 137
ok "until ExecStopPost runs, its last table still admits new flows" \
	reach_tcp "$VM_nodns" 192.0.2.11 443
kept_before=$(table_but_forward)
ok "qubes-setup stop after the crash succeeds" qb_setup stop
ok "... forward closed where it was (filter + 2), policy accept" \
	grep -q "type filter hook forward priority filter + 2; policy accept;" \
	<(nsx "$FW" nft list chain inet dnsfence forward)
closed_checks "crash"
ok "... all but forward as it was" test "$(table_but_forward)" = "$kept_before"
ok "... the tagged accept is gone, the user's rule stays" \
	test "$(qb_table ip qubes | qb_chain custom-input)" = \
	"$(grep -v 'comment "dnsfence"' <<<"$ci_before")"
sleep 2.5
ok "the established flow is still talking" kill -0 "$talk_pid"
ok "Restart=on-failure: qubes-setup start" qb_setup start
cp "$TB_DIR/qubes.yaml" "$TB_DIR/dnsfence.yaml"
ok "... dnsfenced starts (priority 1 again)" tb_daemon_start
ok "... forward moved back to filter + 1, policy drop" \
	grep -q "hook forward priority filter + 1; policy drop;" \
	<(nsx "$FW" nft list chain inet dnsfence forward)
restarted_checks "the crash" "$exp_before"
rc=0
for _ in $(seq 150); do kill -0 "$talk_pid" 2>/dev/null || break; sleep 0.1; done
wait "$talk_pid" || rc=$?
ok "the established flow survived the crash, the closed table and the restart" \
	test "$rc" -eq 0

# ---- Qubes' own tables are as they were
ok "ip qubes is untouched (but for counters)" \
	test "$before_qubes" = "$(qb_table ip qubes)"
ok "ip qubes-firewall is untouched (but for counters)" \
	test "$before_qfw" = "$(qb_table ip qubes-firewall)"
if [ "$QB_ACCEL" = 1 ]; then
	ok "inet qubes-nat-accel is still there" \
		nsx "$FW" nft list flowtable inet qubes-nat-accel qubes-accel
fi
tb_done
