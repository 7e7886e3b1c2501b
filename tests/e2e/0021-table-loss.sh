#!/bin/bash
# The table lost behind the daemon's back (interface.md, "Sharing the
# host"): after `nft flush ruleset`, `nft delete table inet dnsfence`, a
# deleted set and a flushed base chain, dnsfenced notices at once,
# reinstalls its table within a second with the elements it had admitted
# still live, and logs it; meanwhile every DNS answer it releases is either
# SERVFAIL or carries only addresses already in the set (checked the moment
# each answer arrives, by tests/tools/dnscheck.py); a bare IP stays blocked.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"
DNSCHECK=$(cd "$(dirname "$0")/../tools" && pwd)/dnscheck.py

dw_setup
tb_vm work 1
dw_config <<'C'
ttl:
  min: 60
  max: 300
  grace: 5
C
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start

ok "www.good.example resolves" dns_is "$VM_work" NOERROR www.good.example
ok "... and is reached on tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
blocked "a bare IP is blocked" reach_tcp "$VM_work" 192.0.2.16 443

now_ms() { echo $(($(date +%s%N) / 1000000)); }
expires() { dw_expires work "$@" 2>/dev/null || echo -1; }
# Our table whole again: the chains with their rules, the set with the
# element admitted before the loss.
restored() {
	nsx "$FW" nft list chain inet dnsfence forward 2>/dev/null |
		grep "goto vm_work" >/dev/null &&
	nsx "$FW" nft list chain inet dnsfence vm_work 2>/dev/null |
		grep "@work_v4_ports" >/dev/null &&
	[ "$(expires 192.0.2.10 tcp 443)" -gt 0 ]
}
names=(www.good.example)
for i in $(seq 1 100); do names+=("n$i.fresh.good.example"); done

k=0
loss_case() { # loss_case DESC NFT-ARGS...
	local desc=$1 n0 t0 ms=-1 qpid rc=0 e
	shift
	k=$((k + 1))
	# Each case starts from a whole table: if the previous one was never
	# reinstalled, a reload rebuilds it (and the element is re-admitted).
	if ! restored; then
		echo "# (rebuilding the table by a reload before: $desc)"
		tb_reload || true
		dig_vm "$VM_work" www.good.example >/dev/null || true
		restored || echo "# (the table is still not whole)"
	fi
	n0=$(grep -ci "reinstall" "$TB_DIR/dnsfenced.log" || true)
	if ! nsx "$FW" nft "$@"; then
		TB_FAIL=$((TB_FAIL + 1))
		echo "not ok - $desc: the test's own nft command failed"
		return 0
	fi
	t0=$(now_ms)
	# Ask from the VM for 2.5 s, right from the loss on.
	tb_bg "$TB_DIR/check$k.log" "$VM_work" python3 "$DNSCHECK" --fw "$FW" \
		--set work_v4_ports --seconds 2.5 --timeout 1000 --quiet "${names[@]}"
	qpid=$TB_LAST
	while [ $(($(now_ms) - t0)) -lt 3000 ]; do
		if restored; then
			ms=$(($(now_ms) - t0))
			break
		fi
		sleep 0.05
	done
	ok "$desc: our table is back within 1 s (measured: ${ms} ms; -1: not in 3 s)" \
		test "$ms" -ge 0 -a "$ms" -le 1000
	for _ in $(seq 60); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
	wait "$qpid" || rc=$?
	ok "$desc: every answer was SERVFAIL or had its address in the set ($(tail -n1 "$TB_DIR/check$k.log"))" \
		test "$rc" -eq 0
	grep "NOT-IN-SET" "$TB_DIR/check$k.log" | head -3 | sed 's/^/#   /' || true
	e=$(expires 192.0.2.10 tcp 443)
	ok "$desc: the element admitted before is live again ($e s left)" test "$e" -gt 0
	ok "$desc: the connection to it passes" reach_tcp "$VM_work" 192.0.2.10 443
	blocked "$desc: a bare IP is still blocked" reach_tcp "$VM_work" 192.0.2.16 443
	ok "$desc: an allowed name still resolves" dns_is "$VM_work" NOERROR mail.good.example
	ok "$desc: the daemon logged that it reinstalled its table" \
		test "$(grep -ci "reinstall" "$TB_DIR/dnsfenced.log" || true)" -gt "$n0"
}

loss_case "nft flush ruleset" flush ruleset
loss_case "nft delete table inet dnsfence" delete table inet dnsfence
# A set cannot be deleted while rules use it: empty the VM chain first.
loss_case "nft delete set inet dnsfence work_v4_ports" \
	'flush chain inet dnsfence vm_work; delete set inet dnsfence work_v4_ports'
loss_case "nft flush chain inet dnsfence forward" flush chain inet dnsfence forward

# The loss read before the answer, in the order that matters: the daemon
# is stopped, a query for an element it holds (a cache hit, nothing to
# send) is queued, then the table is deleted, then the daemon goes on. The
# query's socket is ready before the notification's, so only the read that
# admission does first can notice.
for i in 1 2 3; do
	restored || { tb_reload || true; dig_vm "$VM_work" www.good.example >/dev/null || true; }
	# Both processes of dnsfenced (doc/privsep.md).
	pids=("$DAEMON_PID" $(ps -o pid= --ppid "$DAEMON_PID"))
	kill -STOP "${pids[@]}"
	tb_bg "$TB_DIR/stopped$i.log" "$VM_work" dig +time=3 +tries=1 @10.139.1.1 www.good.example A
	qpid=$TB_LAST
	sleep 0.3
	nsx "$FW" nft delete table inet dnsfence
	kill -CONT "${pids[@]}"
	wait "$qpid" || true
	ok "loss not yet read, round $i: the queued answer is SERVFAIL ($(grep -o 'status: [A-Z]*' "$TB_DIR/stopped$i.log"))" \
		grep "status: SERVFAIL" "$TB_DIR/stopped$i.log" >/dev/null
	for _ in $(seq 30); do restored && break; sleep 0.1; done
	ok "loss not yet read, round $i: the table is back" restored
done

tb_done
