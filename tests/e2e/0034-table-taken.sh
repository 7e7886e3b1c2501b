#!/bin/bash
# Our table taken over (tests/mutation m36): another process deletes table
# inet dnsfence and creates its own, owned one (flags owner: only that
# process may change it) in one transaction. dnsfenced cannot reinstall
# its table: every answer must stay SERVFAIL, cached ones included, for as
# long as that lasts; once the other process lets go, the table comes back
# with its elements.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

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
tb_daemon_start
ok "www.good.example resolves" dns_is "$VM_work" NOERROR www.good.example
ok "... and is reached" reach_tcp "$VM_work" 192.0.2.10 443

# An nft session that holds the owned table for as long as fd 9 is open.
mkfifo "$TB_DIR/owner.fifo"
exec 9<>"$TB_DIR/owner.fifo"
# (not tb_bg: a background command's stdin must be named on the command
# itself, or it is /dev/null; and it must not hold the writing end)
ip netns exec "$FW" nft -i <"$TB_DIR/owner.fifo" >"$TB_DIR/owner.log" 2>&1 9>&- &
TB_PIDS+=("$!")
echo "delete table inet dnsfence; add table inet dnsfence { flags owner; }" >&9
owned() { nsx "$FW" nft list table inet dnsfence 2>/dev/null | grep owner >/dev/null; }
for _ in $(seq 50); do owned && break; sleep 0.1; done
ok "another process owns table inet dnsfence" owned
failed() { grep "reinstalling table inet dnsfence failed" "$TB_DIR/dnsfenced.log" >/dev/null; }
for _ in $(seq 50); do failed && break; sleep 0.1; done
ok "dnsfenced cannot reinstall it, and says so" failed
ok "a cached name is SERVFAIL while the table is not ours" \
	dns_is "$VM_work" SERVFAIL www.good.example
ok "... and so is a new one" dns_is "$VM_work" SERVFAIL mail.good.example

exec 9>&- # the session ends, and its owned table with it
back() { nsx "$FW" nft list table inet dnsfence 2>/dev/null | grep "chain forward" >/dev/null; }
for _ in $(seq 100); do back && break; sleep 0.1; done
ok "once the other process lets go, the table is back" back
for _ in $(seq 50); do dns_is "$VM_work" NOERROR www.good.example >/dev/null && break; sleep 0.1; done
ok "... answers flow again" dns_is "$VM_work" NOERROR www.good.example
ok "... and www.good.example's element is back with it" \
	test "$(dw_expires work 192.0.2.10 tcp 443)" -gt 0
ok "... and admits" reach_tcp "$VM_work" 192.0.2.10 443
blocked "... while a bare IP is blocked again" reach_tcp "$VM_work" 192.0.2.16 443

tb_done
