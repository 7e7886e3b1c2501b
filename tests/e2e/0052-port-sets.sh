#!/bin/bash
# Single ports and port ranges in sets of their own: an address admitted
# for tcp/443 goes into the VM's hash set <vm>_v4_ports, one admitted for
# tcp/8000-8090 into <vm>_v4_ranges (an interval set, which only a VM
# whose rules have a range gets: each commit into one copies the whole
# set). Traffic passes on exactly the ports of the name that led to each
# address. A reload that turns the last range into single ports moves the
# elements into the hash, with the time they had left, and removes the
# ranges set; and a table written before single ports had a set of their
# own (the ports set an interval set holding both) is taken over at start
# with nothing admitted lost.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm red 2
dw_config </dev/null
work_policy() {
	tb_policy work <<-P
	addresses: [10.137.1.10]
	interface: vif1.0
	allow:
	  - name: www.good.example
	    ports: [tcp/443]
	  - name: mail.good.example
	    ports: [$1]
	P
}
work_policy "tcp/8000-8090, tcp/22"
tb_policy red <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: www.good.example
    ports: [tcp/443]
P
tb_daemon_start

set_flags() {
	nsx "$FW" nft -j list set inet dnsfence "$1" | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    if "set" in item:
        print(",".join(sorted(item["set"].get("flags", []))))'
}
no_set() { ! nsx "$FW" nft list set inet dnsfence "$1" >/dev/null 2>&1; }
has_elem() { [ "$(elem_expires "$1" "$2")" != -1 ]; }

ok "work_v4_ports is a hash (flags timeout, no interval)" \
	test "$(set_flags work_v4_ports)" = timeout
ok "work_v4_ranges is an interval set" \
	test "$(set_flags work_v4_ranges)" = interval,timeout
ok "red, with no range in its rules, has no ranges set" no_set red_v4_ranges

dig_vm "$VM_work" www.good.example A >/dev/null
dig_vm "$VM_work" mail.good.example A >/dev/null
dig_vm "$VM_red" www.good.example A >/dev/null
ok "tcp/443 to www.good.example: in work_v4_ports" \
	has_elem work_v4_ports "192.0.2.10 . tcp . 443"
ok "tcp/8000-8090 to mail.good.example: in work_v4_ranges" \
	has_elem work_v4_ranges "192.0.2.11 . tcp . 8000-8090"
ok "tcp/22 to mail.good.example: in work_v4_ports" \
	has_elem work_v4_ports "192.0.2.11 . tcp . 22"
ok "work reaches www.good.example on tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
ok "work reaches mail.good.example on tcp/8080 (the range)" \
	reach_tcp "$VM_work" 192.0.2.11 8080
ok "work reaches mail.good.example on tcp/22" reach_tcp "$VM_work" 192.0.2.11 22
blocked "not mail.good.example on tcp/443" reach_tcp "$VM_work" 192.0.2.11 443
blocked "not www.good.example on tcp/8080" reach_tcp "$VM_work" 192.0.2.10 8080
blocked "not www.good.example on tcp/22" reach_tcp "$VM_work" 192.0.2.10 22
ok "red reaches www.good.example on tcp/443" reach_tcp "$VM_red" 192.0.2.10 443
blocked "red: not mail.good.example on tcp/8080 (work's answer)" \
	reach_tcp "$VM_red" 192.0.2.11 8080
ok "dnsfencectl why: work may reach mail.good.example on tcp/8080" \
	"$DNSFENCECTL" -s "$TB_DIR/control.sock" why work 192.0.2.11 tcp/8080

# The last range becomes single ports: tcp/8080 moves into the hash with
# the time it had left, without a new answer; the ranges set goes.
before=$(elem_expires work_v4_ranges "192.0.2.11 . tcp . 8000-8090")
work_policy "tcp/8080, tcp/22"
tb_reload
after=$(elem_expires work_v4_ports "192.0.2.11 . tcp . 8080")
ok "reload: tcp/8080 moved into work_v4_ports ($before s -> $after s left)" \
	test "$after" -gt 0 -a "$after" -le "$before" -a "$after" -ge $((before - 5))
ok "reload: work_v4_ranges is gone" no_set work_v4_ranges
ok "reload: tcp/22 stays" has_elem work_v4_ports "192.0.2.11 . tcp . 22"
ok "work still reaches mail.good.example on tcp/8080" \
	reach_tcp "$VM_work" 192.0.2.11 8080
ok "the reload is logged as such" grep -q "reloaded" "$TB_DIR/dnsfenced.log"

# A range again: the set comes back, the new range admitted by the next
# answer.
work_policy "tcp/8000-8090"
tb_reload
ok "reload: work_v4_ranges is back" test "$(set_flags work_v4_ranges)" = interval,timeout
dig_vm "$VM_work" mail.good.example A >/dev/null
ok "the range admitted into it again" \
	has_elem work_v4_ranges "192.0.2.11 . tcp . 8000-8090"

# A table as an older dnsfenced left it: one interval set per family for
# every port, single or range. The new daemon takes it over: single ports
# into the hash, ranges into the ranges set, each with the time it had
# left; a range of a VM without range rules goes.
tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
nsx "$FW" nft delete table inet dnsfence
nsx "$FW" nft -f - <<'NFT'
table inet dnsfence {
	set work_v4_ports {
		type ipv4_addr . inet_proto . inet_service
		size 131072
		flags interval,timeout
		elements = { 192.0.2.10 . tcp . 443 timeout 300s comment "www.good.example",
			     192.0.2.11 . tcp . 8000-8090 timeout 300s comment "mail.good.example" }
	}
	set red_v4_ports {
		type ipv4_addr . inet_proto . inet_service
		size 131072
		flags interval,timeout
		elements = { 192.0.2.10 . tcp . 443 timeout 300s comment "www.good.example",
			     192.0.2.12 . tcp . 8000-8090 timeout 300s comment "www.good.example" }
	}
}
NFT
work_policy "tcp/8000-8090"
tb_daemon_start
ok "started on an older table" grep -q "ready" "$TB_DIR/dnsfenced.log"
ok "older table: work_v4_ports became a hash" test "$(set_flags work_v4_ports)" = timeout
exp=$(elem_expires work_v4_ports "192.0.2.10 . tcp . 443")
ok "older table: tcp/443 kept in the hash ($exp s left)" \
	test "$exp" -gt 250 -a "$exp" -le 300
exp=$(elem_expires work_v4_ranges "192.0.2.11 . tcp . 8000-8090")
ok "older table: the range moved into work_v4_ranges ($exp s left)" \
	test "$exp" -gt 250 -a "$exp" -le 300
ok "older table: red's tcp/443 kept" has_elem red_v4_ports "192.0.2.10 . tcp . 443"
ok "older table: red's range is gone (no rule of red has one)" \
	no_set red_v4_ranges
ok "work reaches www.good.example on tcp/443 with no new answer" \
	reach_tcp "$VM_work" 192.0.2.10 443
ok "work reaches mail.good.example on tcp/8080 with no new answer" \
	reach_tcp "$VM_work" 192.0.2.11 8080
blocked "red does not reach 192.0.2.12 on tcp/8080" \
	reach_tcp "$VM_red" 192.0.2.12 8080
ok "dnsfencectl list shows the range" \
	grep -q "8000-8090" <("$DNSFENCECTL" -s "$TB_DIR/control.sock" list work)

tb_done
