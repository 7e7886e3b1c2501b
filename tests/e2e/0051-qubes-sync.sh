#!/bin/bash
# dnsfence-qubes-sync driving dnsfenced in a Qubes-shaped firewall qube
# (tests/lib/qubesbed.sh), fed by a stand-in for QubesDB (a JSON file with
# QubesDB's keys and values, behind the sync's one adapter): the policies
# come from qvm-firewall-style rules only. A dsthost rule admits exactly
# that name and its ports; a VM without specialtarget=dns is REFUSED; a VM
# whose rules cannot be expressed is closed; a rule change takes effect
# within a second; a VM that leaves /connected-ips is retired; an extra
# file is in force within a second of a SIGHUP (systemctl reload), and
# noticed without one; stopping the sync leaves nothing behind. The qube
# runs in takeover mode (qubes-firewall off, the default of doc/qubes.md):
# dnsfence alone enforces the dsthost rules, and a narrowing ends the open
# connections it no longer allows (the conntrack purge).
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/qubesbed.sh"

: "${DNSFENCECTL:?DNSFENCECTL must name dnsfencectl}"
SYNC=$(cd "$(dirname "$0")/../../contrib/qubes" && pwd)/dnsfence-qubes-sync
QDB=$TB_DIR/qubesdb.json

# qdb PYTHON-DICT-EXPR: write the stand-in atomically, as QubesDB changes
# are seen whole (the sync re-reads on a new inode).
qdb() {
	python3 -c 'import json, sys
d = eval(sys.argv[1])
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump(d, f)' "$1" "$QDB"
	mv "$QDB.tmp" "$QDB"
}
has_ede() {
	local out
	out=$(qb_dig "$1" "$2" "$4" 2>&1) || true
	[[ $out == *"EDE: $3"* ]]
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

QB_MODE=takeover
qb_init
ok "takeover: no ip qubes-firewall table" eval '! nsx "$FW" nft list table ip qubes-firewall >/dev/null 2>&1'
qb_custom_input
qb_config <<'C'
freebind: true
capture:
  from-group: 2
  to: [10.139.1.1, 10.139.1.2]
nftables:
  priority: 1
  from-group: 2
  reject: true
  conntrack-purge: true
C

# work: dsthost www.good.example on tcp/443, DNS allowed, then the policy's
# drop. nodns: the same name, no specialtarget=dns. closed: a port drop
# before an accept, which dnsfence cannot express.
RULES_WORK="{
 '/qubes-firewall/10.137.0.12': '',
 '/qubes-firewall/10.137.0.12/policy': 'drop',
 '/qubes-firewall/10.137.0.12/0000': 'action=accept dsthost=www.good.example proto=tcp dstports=443-443',
 '/qubes-firewall/10.137.0.12/0001': 'action=accept specialtarget=dns',
 '/qubes-firewall/10.137.0.13': '',
 '/qubes-firewall/10.137.0.13/policy': 'drop',
 '/qubes-firewall/10.137.0.13/0000': 'action=accept dsthost=www.good.example proto=tcp dstports=443-443',
 '/qubes-firewall/10.137.0.14': '',
 '/qubes-firewall/10.137.0.14/policy': 'drop',
 '/qubes-firewall/10.137.0.14/0000': 'action=drop proto=tcp dstports=22-22',
 '/qubes-firewall/10.137.0.14/0001': 'action=accept',
 '/qubes-netvm-gateway': '$QB_GW',
 '/qubes-netvm-primary-dns': '10.139.1.1',
 '/qubes-netvm-secondary-dns': '10.139.1.2',
}"
qdb "dict($RULES_WORK, **{'/connected-ips': '10.137.0.12 10.137.0.13 10.137.0.14'})"

sync() {
	"$SYNC" --qubesdb-json "$QDB" --out "$TB_DIR/vms" \
		--config "$TB_DIR/dnsfence.yaml" --extra-dir "$TB_DIR/extra" \
		--dnsfenced "$DNSFENCED" --dnsfencectl "$DNSFENCECTL" "$@"
}
# As dnsfence.service's start: one pass before the daemon (no reload).
ok "dnsfence-qubes-sync --once writes a policy per connected VM" \
	sync --once --no-reload
ok "... named after the address" \
	test -f "$TB_DIR/vms/qubes-10-137-0-12.yaml" -a \
	-f "$TB_DIR/vms/qubes-10-137-0-13.yaml" -a \
	-f "$TB_DIR/vms/qubes-10-137-0-14.yaml"
ok "... the closed one says why" grep -q "FAIL CLOSED" "$TB_DIR/vms/qubes-10-137-0-14.yaml"
tb_daemon_start
qb_uplink
qb_vm work 10.137.0.12 1
qb_vm nodns 10.137.0.13 2
qb_vm closed 10.137.0.14 3
# Then the sync watches the stand-in, as dnsfence-qubes-sync.service.
tb_bg "$TB_DIR/sync.log" "$FW" "$SYNC" --qubesdb-json "$QDB" \
	--out "$TB_DIR/vms" --config "$TB_DIR/dnsfence.yaml" \
	--extra-dir "$TB_DIR/extra" --dnsfenced "$DNSFENCED" \
	--dnsfencectl "$DNSFENCECTL" </dev/null
SYNC_PID=$TB_LAST

# ---- a dsthost rule: exactly that name, exactly its ports
ok "work: www.good.example through 10.139.1.1" \
	qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example
ok "... reached on tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
blocked "... not on tcp/22" reach_tcp "$VM_work" 192.0.2.10 22
ok "... another name is REFUSED (EDE 15)" has_ede "$VM_work" 10.139.1.1 15 mail.good.example
blocked "... and a bare IP is not reached" reach_tcp "$VM_work" 192.0.2.11 443
ok "nodns (no specialtarget=dns): REFUSED" \
	qb_dns_is "$VM_nodns" 10.139.1.1 REFUSED www.good.example
ok "... with EDE 18" has_ede "$VM_nodns" 10.139.1.1 18 www.good.example
ok "closed (inexpressible rules): REFUSED" \
	qb_dns_is "$VM_closed" 10.139.1.1 REFUSED www.good.example
blocked "... and nothing passes, not even what Qubes would allow" \
	reach_tcp "$VM_closed" 192.0.2.10 443

# ---- a rule change in QubesDB takes effect within a second, and ends
# the open connections it no longer allows (the conntrack purge, as
# qubes-firewall purges; this one masqueraded on its way out)
tb_bg "$TB_DIR/talk.log" "$VM_work" "$PROBE" talk 192.0.2.10 443 30 200
talk_pid=$TB_LAST
sleep 0.5
qdb "dict($RULES_WORK, **{'/connected-ips': '10.137.0.12 10.137.0.13 10.137.0.14',
 '/qubes-firewall/10.137.0.12/0000': 'action=accept dsthost=mail.good.example proto=tcp dstports=443-443'})"
t0=$(now_ms)
ms=-1
while [ $(($(now_ms) - t0)) -lt 5000 ]; do
	if qb_dns_is "$VM_work" 10.139.1.1 NOERROR mail.good.example >/dev/null 2>&1; then
		ms=$(($(now_ms) - t0))
		break
	fi
	sleep 0.05
done
ok "a dsthost change is in force within a second (${ms} ms)" \
	test "$ms" -ge 0 -a "$ms" -le 1000
ok "... the new name on its port" reach_tcp "$VM_work" 192.0.2.11 443
ok "... the old name is REFUSED now" \
	qb_dns_is "$VM_work" 10.139.1.1 REFUSED www.good.example
blocked "... and what only it admitted is gone" reach_tcp "$VM_work" 192.0.2.10 443
rc=0
for _ in $(seq 100); do kill -0 "$talk_pid" 2>/dev/null || break; sleep 0.1; done
wait "$talk_pid" || rc=$?
ok "... the connection to it open before the change is cut (status $rc: $(cat "$TB_DIR/talk.log"))" \
	test "$rc" -eq 1
ok "... by the purge" grep -qE "conntrack purge: ended [1-9][0-9]* of" "$TB_DIR/dnsfenced.log"

# ---- a VM that leaves /connected-ips is retired
qdb "dict($RULES_WORK, **{'/connected-ips': '10.137.0.12 10.137.0.13',
 '/qubes-firewall/10.137.0.12/0000': 'action=accept dsthost=mail.good.example proto=tcp dstports=443-443'})"
for _ in $(seq 40); do
	[ -e "$TB_DIR/vms/qubes-10-137-0-14.yaml" ] || break
	sleep 0.05
done
ok "closed left /connected-ips: its policy is retired" \
	test ! -e "$TB_DIR/vms/qubes-10-137-0-14.yaml"
for _ in $(seq 40); do
	"$DNSFENCECTL" -s "$TB_DIR/control.sock" list qubes-10-137-0-14 >/dev/null 2>&1 || break
	sleep 0.05
done
ok "... and dnsfenced knows it no more" \
	test "$("$DNSFENCECTL" -s "$TB_DIR/control.sock" list qubes-10-137-0-14 >/dev/null 2>&1 || echo gone)" = gone
# ---- extra YAML: in force at once on SIGHUP (systemctl reload), and seen
# by the sync itself (it looks at the directory every 0.5 s) without one
# took_ms CMD...: milliseconds until CMD succeeds; -1 if not within 5 s.
took_ms() {
	local t0
	t0=$(now_ms)
	while [ $(($(now_ms) - t0)) -lt 5000 ]; do
		if "$@" >/dev/null 2>&1; then
			echo $(($(now_ms) - t0))
			return
		fi
		sleep 0.05
	done
	echo -1
}
# extra NAME: the extra file of 10.137.0.12 allows NAME on tcp/443
# (written atomically, as Salt's file.managed does).
extra() {
	mkdir -p "$TB_DIR/extra"
	echo "{\"allow\": [{\"name\": \"$1\", \"ports\": [\"tcp/443\"]}]}" \
		>"$TB_DIR/extra/.10.137.0.12.yaml"
	mv "$TB_DIR/extra/.10.137.0.12.yaml" "$TB_DIR/extra/10.137.0.12.yaml"
}
extra deep.sub.good.example
ms=$(took_ms qb_dns_is "$VM_work" 10.139.1.1 NOERROR deep.sub.good.example)
ok "an extra file, no SIGHUP: in force within 1.5 s (${ms} ms)" \
	test "$ms" -ge 0 -a "$ms" -le 1500
extra www.good.example
kill -HUP "$SYNC_PID"
ms=$(took_ms qb_dns_is "$VM_work" 10.139.1.1 NOERROR www.good.example)
ok "an extra file edited + SIGHUP: in force within a second (${ms} ms)" \
	test "$ms" -ge 0 -a "$ms" -le 1000
ok "... the sync is still running" kill -0 "$SYNC_PID"
ok "... the extra's name is reached on its port" reach_tcp "$VM_work" 192.0.2.10 443
ok "... next to the converted rule's" \
	qb_dns_is "$VM_work" 10.139.1.1 NOERROR mail.good.example
ok "... and the edited-out name is REFUSED" \
	qb_dns_is "$VM_work" 10.139.1.1 REFUSED deep.sub.good.example
rm "$TB_DIR/extra/10.137.0.12.yaml"
ms=$(took_ms qb_dns_is "$VM_work" 10.139.1.1 REFUSED www.good.example)
ok "the extra file removed: out of force within 1.5 s (${ms} ms)" \
	test "$ms" -ge 0 -a "$ms" -le 1500
blocked "... and what only it admitted is gone" reach_tcp "$VM_work" 192.0.2.10 443
ok "the sync never failed a check" test "$(grep -c 'refused\|failed' "$TB_DIR/sync.log" || true)" -eq 0

# ---- stopping: the sync goes, nothing is left behind
kill "$SYNC_PID"
rc=0
for _ in $(seq 50); do kill -0 "$SYNC_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SYNC_PID" 2>/dev/null || rc=$?
ok "the sync exits cleanly on SIGTERM (status $rc)" test "$rc" -eq 0
ok "... leaving no temporary or staging files" \
	test -z "$(find "$TB_DIR/vms" "$TB_DIR" -maxdepth 1 -name '.*' ! -name '.' ! -name '..' ! -name '*.lock' 2>/dev/null)"
tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
tb_done
