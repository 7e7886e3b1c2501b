#!/bin/bash
# nftables: conntrack-purge: a reload that narrows a VM's policy ends that
# VM's connections the new policy no longer admits (a net rule removed, a
# name denied), and only those: its still-admitted connections, another
# VM's (even one whose element has expired meanwhile: an unchanged VM is
# not judged again), the changed VM's own connection to a name whose
# element expired before the change (the change did not take it away:
# conntrack kept it, not the policy), and with the key off every
# connection go on. A
# connection another table DNATed is judged by where it was sent. Each
# connection is a `probe talk` (a round trip every 300 ms); a cut one
# fails its next round trip (2 s), a kept one completes all of them.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm dev 2
config() { # config true|false
	dw_config <<C
ttl:
  min: 1
  grace: 1
nftables:
  conntrack-purge: $1
C
}
config true
work_policy() { # work_policy EXTRA-YAML: the rules below, then EXTRA
	{
		cat <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - net: 192.0.2.20/32
    ports: [tcp/443]
  - name: "*.good.example"
    ports: [tcp/443]
P
		cat
	} | tb_policy work
}
work_policy <<'P'
  - net: 192.0.2.20/32
    ports: [tcp/993]
P
tb_policy dev <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - net: 192.0.2.20/32
    ports: [tcp/993]
  - name: short.good.example
    ports: [tcp/443]
P
tb_daemon_start
ok "work resolves www and mail" dns_is "$VM_work" NOERROR www.good.example
ok "... mail" dns_is "$VM_work" NOERROR mail.good.example

ok "dev resolves short (TTL 5)" dns_is "$VM_dev" NOERROR short.good.example
ok "... and so does work" dns_is "$VM_work" NOERROR short.good.example

# talk NAME VM ADDR PORT: a background connection, 40 round trips.
declare -A talk_pid
talk() {
	tb_bg "$TB_DIR/talk-$1.log" "$2" "$PROBE" talk "$3" "$4" 40 300
	talk_pid[$1]=$TB_LAST
}
# talk_is NAME RC: did it end (bounded wait) with exit status RC? Not in
# a subshell: wait needs the shell that started it.
talk_is() {
	local pid=${talk_pid[$1]} rc=0
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	wait "$pid" || rc=$?
	sed "s/^/# talk $1: /" "$TB_DIR/talk-$1.log"
	[ "$rc" -eq "$2" ]
}
# Another table in the firewall DNATs 203.0.113.77:443 to 192.0.2.20:993
# (a user's rewrite): the forward chain judges where it goes.
nsx "$FW" nft -f - <<'N'
table ip userdnat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 203.0.113.77 tcp dport 443 dnat to 192.0.2.20:993
	}
}
N
talk net993 "$VM_work" 192.0.2.20 993
talk dnat993 "$VM_work" 203.0.113.77 443
talk net443 "$VM_work" 192.0.2.20 443
talk www "$VM_work" 192.0.2.10 443
talk mail "$VM_work" 192.0.2.11 443
talk dev993 "$VM_dev" 192.0.2.20 993
talk devshort "$VM_dev" 192.0.2.12 443
talk workshort "$VM_work" 192.0.2.12 443
for _ in $(seq 100); do
	[ "$(elem_expires dev_v4_ports "192.0.2.12 . tcp . 443")" = -1 ] &&
		[ "$(elem_expires work_v4_ports "192.0.2.12 . tcp . 443")" = -1 ] &&
		break
	sleep 0.1
done
ok "dev's element for short has expired" \
	test "$(elem_expires dev_v4_ports "192.0.2.12 . tcp . 443")" = -1
ok "... and work's" \
	test "$(elem_expires work_v4_ports "192.0.2.12 . tcp . 443")" = -1

# work loses tcp/993 and mail (a deny: its element is pruned).
work_policy <<'P'
deny:
  - name: mail.good.example
P
ok "the reload is in force" tb_reload
ok "the purge ended three of work's connections" \
	tb_wait_for "$TB_DIR/dnsfenced.log" "conntrack purge: ended 3 of [0-9]* connections" 5
ok "work's tcp/993 connection (its net rule removed) is cut" talk_is net993 1
ok "work's connection DNATed to 192.0.2.20 tcp/993 by another table is cut" talk_is dnat993 1
blocked "... and a new one is rejected" reach_tcp "$VM_work" 203.0.113.77 443
ok "work's connection to mail (now denied) is cut" talk_is mail 1
ok "work's tcp/443 connection (net rule kept) goes on" talk_is net443 0
ok "work's connection to www (still admitted) goes on" talk_is www 0
ok "dev's tcp/993 connection (dev unchanged) goes on" talk_is dev993 0
ok "dev's connection to short (its element expired, dev unchanged) goes on" talk_is devshort 0
ok "work's connection to short (its element expired before the change) goes on" talk_is workshort 0
blocked "a new tcp/993 connection from work is dropped" reach_tcp "$VM_work" 192.0.2.20 993

# With the key off, a narrowing leaves open connections alone.
talk off443 "$VM_work" 192.0.2.20 443
sleep 1
config false
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
ok "the reload (purge off) is in force" tb_reload
ok "with conntrack-purge off, work's tcp/443 connection goes on" talk_is off443 0
blocked "... while a new one is dropped" reach_tcp "$VM_work" 192.0.2.20 443
ok "only one purge was logged" test "$(grep -c "conntrack purge" "$TB_DIR/dnsfenced.log")" -eq 1

tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
tb_done
