#!/bin/bash
# Anti-spoofing whatever the order of the VMs' rules (tests/mutation m17):
# a VM's address is that VM only on its own interface. zulu's rules come
# after alpha's in the forward chain; zulu sends with alpha's address,
# towards an address alpha may reach: nothing may get through, and zulu's
# spoofed-source counter counts it.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm alpha 1
tb_vm zulu 2
dw_config </dev/null
for v in alpha:1 zulu:2; do
	tb_policy "${v%%:*}" <<-P
	addresses: [10.137.${v##*:}.10]
	interface: vif${v##*:}.0
	allow:
	  - name: "*.good.example"
	    ports: [tcp/443]
	P
done
tb_daemon_start
ok "alpha resolves www.good.example" dns_is "$VM_alpha" NOERROR www.good.example
ok "... and reaches it" reach_tcp "$VM_alpha" 192.0.2.10 443

# Count, at the far end, SYNs that arrive from alpha's address.
nsx "$UP" nft add table inet seen
nsx "$UP" nft add chain inet seen in '{ type filter hook input priority 0; }'
nsx "$UP" nft add rule inet seen in ip saddr 10.137.1.10 tcp dport 443 \
	tcp flags syn counter comment '"from alpha"'
syns() {
	nsx "$UP" nft -j list chain inet seen in | python3 -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    r = i.get("rule")
    if r:
        for e in r["expr"]:
            if "counter" in e: print(e["counter"]["packets"])'
}
before=$(syns)
spoofed_before=$(counter_of forward "zulu: spoofed source")
nsx "$VM_zulu" ip addr add 10.137.1.10/32 dev eth0
nsx "$VM_zulu" python3 - <<'PY' || true
import socket
for _ in range(3):
    s = socket.socket()
    s.bind(("10.137.1.10", 0))
    s.settimeout(0.5)
    try:
        s.connect(("192.0.2.10", 443))
    except OSError:
        pass
    s.close()
PY
after=$(syns)
spoofed_after=$(counter_of forward "zulu: spoofed source")
ok "zulu's packets with alpha's address never reach the internet ($before -> $after)" \
	test "$after" -eq "$before"
ok "... they are counted as spoofed ($spoofed_before -> $spoofed_after)" \
	test "$spoofed_after" -gt "$spoofed_before"

tb_done
