#!/bin/bash
# dnsfenced in a Qubes-shaped firewall qube (tests/lib/qubesbed.sh): the
# gateway address appears after the start (freebind), AppVMs keep asking
# 10.139.1.1/2 and are answered by dnsfenced through the capture chain
# (Qubes' dnat-dns never sees them), a dsthost-like name rule admits that
# name and its ports, dns: deny is REFUSED, a fully denied VM is closed
# (rejected, not dropped), and with dnsfenced stopped the fail-safe table
# blocks new flows while an established one goes on. Qubes' own tables are
# left exactly as they were.
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

qb_init
qb_custom_input

# dsthost=www.good.example proto=tcp dstports=443-443, specialtarget=dns,
# then drop: a name rule with its port, DNS allowed, default deny.
tb_policy qubes-10-137-0-12 <<'P'
addresses: [10.137.0.12]
default: deny
allow:
  - name: www.good.example
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

# ---- dnsfenced stopped, the fail-safe loaded
tb_bg "$TB_DIR/talk.log" "$VM_nodns" "$PROBE" talk 192.0.2.12 443 12 250
talk_pid=$TB_LAST
sleep 0.5
tb_daemon_stop TERM
ok "dnsfenced stops cleanly" test "$DAEMON_STATUS" -eq 0
ok "its table stays" test -n "$(nsx "$FW" nft list chain inet dnsfence forward)"
# The fail-safe never wipes a table that is there (a restart of its unit
# while dnsfenced runs must not lose what was admitted): create fails, and
# the file, one transaction, changes nothing.
before=$(nsx "$FW" nft list table inet dnsfence | grep -v counter)
blocked "the fail-safe does not load over dnsfenced's table" nsx "$FW" nft -f "$FAILSAFE"
ok "... which is left as it was" test "$(nsx "$FW" nft list table inet dnsfence | grep -v counter)" = "$before"
# At boot there is no table yet: the fail-safe is what holds.
nsx "$FW" nft delete table inet dnsfence
ok "the fail-safe loads where there is no table (boot)" nsx "$FW" nft -f "$FAILSAFE"
blocked "new flows are blocked (default allow VM)" reach_tcp "$VM_nodns" 192.0.2.11 443
blocked "... and the name-admitted one" reach_tcp "$VM_work" 192.0.2.10 443
ok "... counted by the fail-safe" \
	test "$(qb_count inet dnsfence forward 'fail-safe')" -ge 2
rc=0
for _ in $(seq 60); do kill -0 "$talk_pid" 2>/dev/null || break; sleep 0.1; done
wait "$talk_pid" || rc=$?
ok "an established flow survives" test "$rc" -eq 0

# ---- the next start replaces the fail-safe wholly
ok "dnsfenced starts over the fail-safe" tb_daemon_start
ok "... and answers" qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example
ok "... admits again" reach_tcp "$VM_work" 192.0.2.10 443
ok "... with nothing left of the fail-safe" \
	test "$(nsx "$FW" nft list table inet dnsfence | grep -c fail-safe)" -eq 0

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
