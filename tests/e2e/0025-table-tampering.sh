#!/bin/bash
# Found in review of the shared-host work (each case failed on abc1550):
# (1) a table made dormant behind the daemon's back was "reinstalled"
# still dormant, and a start over a dormant table left it dormant: nothing
# was filtered. (2) An element added without a timeout was invisible to
# dumps, so neither repair nor start-up removed it. (3) An element added by
# hand with a timeout is adopted (the shadow tells the truth about the
# kernel) but no name vouches for it: the next reload that changes the
# VM's rules removes it, and so does a restart. (4) A VM that gains an
# IPv6 address by a reload with the same rules kept its chain, which had
# no IPv6 rule: admitted IPv6 addresses were dropped.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

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

# (4) an IPv6 address added by a reload, rules unchanged
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_reload
ok "v6 added: AAAA resolves" dns_is "$VM_work" NOERROR www.good.example AAAA
ok "v6 added: the admitted IPv6 address is reached on tcp/443" \
	reach_tcp "$VM_work" 2001:db8:5::10 443

dormant() { nsx "$FW" nft list table inet dnsfence | grep "flags dormant" >/dev/null; }

# (1) dormant, while running
nsx "$FW" nft add table inet dnsfence '{ flags dormant; }'
sleep 1.5
not_dormant() { ! dormant; }
ok "dormant: the repaired table is not dormant" not_dormant
blocked "dormant: a bare IP is blocked after the repair" reach_tcp "$VM_work" 192.0.2.16 443
# ... and at start
tb_daemon_stop TERM
nsx "$FW" nft add table inet dnsfence '{ flags dormant; }'
tb_daemon_start
blocked "dormant: a bare IP is blocked after a start over a dormant table" \
	reach_tcp "$VM_work" 192.0.2.16 443
# Wake it by hand for the rest (flags 0 clears dormant).
nsx "$FW" nft add table inet dnsfence '{ flags 0; }' || true
sleep 1.5

# (2) an element without a timeout
nsx "$FW" nft add element inet dnsfence work_v4_ports '{ 192.0.2.16 . tcp . 443 }'
sleep 1.5
blocked "timeout-less element: removed by the repair" reach_tcp "$VM_work" 192.0.2.16 443
tb_daemon_stop TERM
tb_daemon_start
blocked "timeout-less element: removed at start-up" reach_tcp "$VM_work" 192.0.2.16 443
nsx "$FW" nft delete element inet dnsfence work_v4_ports '{ 192.0.2.16 . tcp . 443 }' 2>/dev/null || true
sleep 1.5

# (3) a foreign element with a timeout and no comment
nsx "$FW" nft add element inet dnsfence work_v4_ports '{ 192.0.2.20 . tcp . 443 timeout 1h }'
sleep 1.5
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443, tcp/8443]
P
tb_reload
blocked "foreign timed element: removed by a reload that changes the VM's rules" \
	reach_tcp "$VM_work" 192.0.2.20 443
ok "... while www.good.example's element stays" reach_tcp "$VM_work" 192.0.2.10 443
nsx "$FW" nft add element inet dnsfence work_v4_ports '{ 192.0.2.20 . tcp . 443 timeout 1h }'
sleep 1.5
tb_daemon_stop TERM
tb_daemon_start
blocked "foreign timed element: removed at start-up" reach_tcp "$VM_work" 192.0.2.20 443
ok "... while www.good.example's element stays" reach_tcp "$VM_work" 192.0.2.10 443

tb_done
