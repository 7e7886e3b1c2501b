#!/bin/bash
# 1,000 VM policies (interface.md: "1,000 and more"): dnsfenced starts with
# them (999 VMs without namespaces, their vifX.0 absent, plus VM work), an
# answer admits for work, a reload with one of the 1,000 changed loses
# nothing: work's element stays and admits, every VM keeps its four sets.
# tests/bench/scale times the same thing at several sizes.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"
N=${SCALE_N:-1000} # SCALE_N: for trying the test itself at a smaller size
# Starting and reloading 1,000 policies takes longer under valgrind (CI
# sets TB_READY_WAIT=60); allow a little more than the default either way.
[ "${TB_READY_WAIT:-10}" -ge 30 ] || TB_READY_WAIT=30

dw_setup
tb_vm work 1
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
gen() { # gen I [EXTRA-RULE]
	local i=$1
	cat <<-P
	addresses: [10.138.$((i / 250)).$((i % 250 + 2)), "2001:db8:b:$(printf %x "$i")::10"]
	interface: vif$((i + 10)).0
	allow:
	  - name: "*.good.example"
	    ports: [tcp/443]
	  - name: mail.good.example
	    ports: [tcp/993, tcp/587]
	  - name: www.other.example
	  - net: 192.0.2.0/28
	    ports: [udp/123, tcp/8000-8080]
	  - name: ping.good.example
	    ports: [icmp, tcp/22]
	${2:-}
	P
}
for i in $(seq 1 $((N - 1))); do gen "$i" >"$TB_DIR/vms/vm$i.yaml"; done
t0=$(date +%s%N)
started=no
tb_daemon_start && started=yes
ok "dnsfenced starts with $N policies ($((($(date +%s%N) - t0) / 1000000)) ms)" \
	test "$started" = yes
if [ "$started" = no ]; then
	grep -iE "error|fail" "$TB_DIR/dnsfenced.log" | head -3 | sed 's/^/# /'
	DAEMON_PID=
	tb_done
	exit 1
fi
nsets() { nsx "$FW" nft list table inet dnsfence | grep -c '^[[:space:]]*set ' || true; }
ok "... $((4 * N)) sets ($(nsets))" test "$(nsets)" -eq $((4 * N))

ok "work resolves www.good.example" dns_is "$VM_work" NOERROR www.good.example
ok "... and reaches it" reach_tcp "$VM_work" 192.0.2.10 443
e1=$(dw_expires work 192.0.2.10 tcp 443)

# One policy of the N changes; the reload is bounded like the start.
gen $((N / 2)) '  - name: "*.changed.example"' >"$TB_DIR/vms/vm$((N / 2)).yaml"
reload_long() {
	local n i
	n=$(grep -cE "reloaded|reload failed" "$TB_DIR/dnsfenced.log" || true)
	kill -HUP "$DAEMON_PID"
	for i in $(seq $((TB_READY_WAIT * 10))); do
		[ "$(grep -cE "reloaded|reload failed" "$TB_DIR/dnsfenced.log" || true)" -gt "$n" ] &&
			return 0
		sleep 0.1
	done
	return 1
}
t0=$(date +%s%N)
ok "a reload with one policy changed answers" reload_long
ms=$((($(date +%s%N) - t0) / 1000000))
ok "... and succeeds ($ms ms)" eval '! grep -q "reload failed" "$TB_DIR/dnsfenced.log"'
ok "... still $((4 * N)) sets ($(nsets))" test "$(nsets)" -eq $((4 * N))
e2=$(dw_expires work 192.0.2.10 tcp 443)
ok "work's element stays ($e1 s, then $e2 s)" test "$e2" -gt 0 -a "$e2" -le "$e1"
ok "... and admits" reach_tcp "$VM_work" 192.0.2.10 443
blocked "a bare IP stays blocked" reach_tcp "$VM_work" 192.0.2.16 443
ok "work still resolves" dns_is "$VM_work" NOERROR mail.good.example

tb_done
