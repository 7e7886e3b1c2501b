#!/bin/bash
# Static `net:` rules admit exactly what they say; default deny drops (and
# counts) the rest; `default: allow` VMs reach everything; VMs do not share
# rules; spoofed and unknown sources are dropped; nothing new reaches a VM
# from outside; from a VM, the DNS address answers on port 53 only.
. "$(dirname "$0")/../lib/testbed.sh"

tb_init
tb_vm work 1
tb_vm red 2
tb_vm banking 3
for h in 192.0.2.10 192.0.2.20 203.0.113.5 2001:db8:5::10; do tb_host "$h"; done
tb_serve 192.0.2.10 443 123 8080 8081 9000
tb_serve 192.0.2.20 443
tb_serve 203.0.113.5 443
tb_serve 2001:db8:5::10 443 8443

tb_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - net: 192.0.2.10
    ports: [tcp/443, udp/123, icmp, tcp/8080-8081]
  - net: 2001:db8:5::/64
    ports: [tcp/8443]
P
tb_policy red <<'P'
addresses: [10.137.2.10, "2001:db8:a:2::10"]
interface: vif2.0
default: allow
P
tb_policy banking <<'P'
addresses: [10.137.3.10]
allow:
  - net: 203.0.113.0/24
P
tb_daemon_start

# work: exactly its net rule
ok "work reaches 192.0.2.10 tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
ok "work reaches 192.0.2.10 udp/123" reach_udp "$VM_work" 192.0.2.10 123
ok "work pings 192.0.2.10" reach_ping "$VM_work" 192.0.2.10
ok "work reaches the range tcp/8080-8081 (8081)" reach_tcp "$VM_work" 192.0.2.10 8081
blocked "work: tcp/9000 on the same address is dropped" reach_tcp "$VM_work" 192.0.2.10 9000
blocked "work: udp/443 is not tcp/443" reach_udp "$VM_work" 192.0.2.10 443
blocked "work: 192.0.2.20 is outside the /32" reach_tcp "$VM_work" 192.0.2.20 443
blocked "work: 203.0.113.5 is banking's, not work's" reach_tcp "$VM_work" 203.0.113.5 443
ok "work reaches 2001:db8:5::10 tcp/8443" reach_tcp "$VM_work" 2001:db8:5::10 8443
blocked "work: v6 tcp/443 not listed" reach_tcp "$VM_work" 2001:db8:5::10 443
blocked "work: no ping to v6 without icmp" reach_ping "$VM_work" 2001:db8:5::10
drops=$(counter_of vm_work "work: not admitted")
ok "work's drops are counted ($drops)" test "$drops" -ge 5

# banking: any port to its /24, nothing else
ok "banking reaches 203.0.113.5 tcp/443 (no ports = any)" reach_tcp "$VM_banking" 203.0.113.5 443
ok "banking pings 203.0.113.5" reach_ping "$VM_banking" 203.0.113.5
blocked "banking: 192.0.2.10 is work's, not banking's" reach_tcp "$VM_banking" 192.0.2.10 443
blocked "banking has no IPv6 address in its policy" reach_tcp "$VM_banking" 2001:db8:5::10 443

# red: default allow
ok "red (default allow) reaches 192.0.2.20" reach_tcp "$VM_red" 192.0.2.20 443
ok "red reaches v6" reach_tcp "$VM_red" 2001:db8:5::10 443

# spoofing: work sends with red's address, over work's interface
nsx "$VM_work" ip addr add 10.137.2.10/32 dev eth0
nsx "$VM_work" ip addr add 10.137.1.99/32 dev eth0
before=$(counter_of forward "work: spoofed source")
blocked "work spoofing red's address is dropped" \
	nsx "$VM_work" "$PROBE" tcp -s 10.137.2.10 192.0.2.20 443 1000
blocked "work spoofing an unlisted address is dropped" \
	nsx "$VM_work" "$PROBE" tcp -s 10.137.1.99 192.0.2.10 443 1000
after=$(counter_of forward "work: spoofed source")
ok "spoofed packets are counted ($before -> $after)" test "$after" -gt "$before"

# an address no policy names (banking has no interface: only its address
# identifies it, so a stranger on its link is an unknown source)
nsx "$VM_banking" ip addr add 10.137.3.99/32 dev eth0
blocked "an unknown source is dropped" \
	nsx "$VM_banking" "$PROBE" tcp -s 10.137.3.99 203.0.113.5 443 1000

# nothing new towards the VMs
tb_bg "$TB_DIR/vmserve.log" "$VM_red" "$PROBE" serve 10.137.2.10 2222
tb_wait_for "$TB_DIR/vmserve.log" listening 5
blocked "a new connection from outside to a VM is dropped" \
	nsx "$UP" "$PROBE" tcp 10.137.2.10 2222 1000
blocked "a new connection from one VM to another is dropped (not admitted)" \
	reach_tcp "$VM_work" 10.137.2.10 2222
# red is default allow: it may open a connection to banking, through the
# firewall (banking's address, on another link), and banking may not
# answer with a new one of its own.
tb_bg "$TB_DIR/bankserve.log" "$VM_banking" "$PROBE" serve 10.137.3.10 2222
tb_wait_for "$TB_DIR/bankserve.log" listening 5
before=$(counter_of vm_red "red: default allow")
ok "a default-allow VM may open connections to another VM" \
	reach_tcp "$VM_red" 10.137.3.10 2222
after=$(counter_of vm_red "red: default allow")
ok "... through the firewall: red's allow rule counted it ($before -> $after)" \
	test "$after" -gt "$before"
blocked "banking (not admitted) cannot open one to red" \
	reach_tcp "$VM_banking" 10.137.2.10 2222

# the DNS address: port 53 only, from the VMs (dnsfenced answers there;
# a name outside the policy gets REFUSED, which proves the path)
tb_bg "$TB_DIR/ssh.log" "$FW" "$PROBE" serve 10.139.1.1 22
tb_wait_for "$TB_DIR/ssh.log" listening 5
ok "work reaches the DNS address on udp/53" dns_is "$VM_work" REFUSED x.example
ok "work reaches the DNS address on tcp/53" dns_is "$VM_work" REFUSED x.example A +tcp
blocked "work cannot reach anything else on the DNS address" \
	reach_tcp "$VM_work" 10.139.1.1 22
# The table, whole: every chain (hook, priority, policy), every set (type,
# flags, size: twice set-size) and every rule (chain, comment, verdict) in
# order, and nothing else.
table_shape() {
	nsx "$FW" nft -j list table inet dnsfence | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    kind, v = next(iter(item.items()))
    if kind == "chain":
        print("chain", v["name"], v.get("hook", "-"), v.get("prio", "-"),
              v.get("policy", "-"))
    elif kind == "set":
        t = v["type"]
        print("set", v["name"], ".".join(t) if isinstance(t, list) else t,
              ",".join(v.get("flags", [])), v.get("size"))
    elif kind == "rule":
        verdict = "-"
        for e in v["expr"]:
            for k in ("accept", "drop"):
                if k in e:
                    verdict = k
            if "goto" in e:
                verdict = "goto " + e["goto"]["target"]
        print("rule", v["chain"], "|", v.get("comment", ""), "|", verdict)
'
}
table_is() {
	local want
	want=$(sed 's/^\t//' <<'T'
	set banking_v4 ipv4_addr timeout 131072
	set banking_v6 ipv6_addr timeout 131072
	set banking_v4_ports ipv4_addr.inet_proto.inet_service timeout 131072
	set banking_v6_ports ipv6_addr.inet_proto.inet_service timeout 131072
	set red_v4 ipv4_addr timeout 131072
	set red_v6 ipv6_addr timeout 131072
	set red_v4_ports ipv4_addr.inet_proto.inet_service timeout 131072
	set red_v6_ports ipv6_addr.inet_proto.inet_service timeout 131072
	set work_v4 ipv4_addr timeout 131072
	set work_v6 ipv6_addr timeout 131072
	set work_v4_ports ipv4_addr.inet_proto.inet_service timeout 131072
	set work_v6_ports ipv6_addr.inet_proto.inet_service timeout 131072
	chain forward forward -10 drop
	chain input input -10 accept
	chain vms_to_listen - - -
	chain vm_banking - - -
	chain vm_red - - -
	chain vm_work - - -
	rule forward | replies and related traffic | accept
	rule forward | invalid | drop
	rule forward | work | goto vm_work
	rule forward | work | goto vm_work
	rule forward | work: spoofed source | drop
	rule forward | red | goto vm_red
	rule forward | red | goto vm_red
	rule forward | red: spoofed source | drop
	rule forward | banking | goto vm_banking
	rule forward | unknown source, or a new connection towards a VM | drop
	rule input | DNS at 10.139.1.1 | accept
	rule input | DNS at 10.139.1.1 | accept
	rule input | DNS at 2001:db8:53::1 | accept
	rule input | DNS at 2001:db8:53::1 | accept
	rule input | banking | goto vms_to_listen
	rule input | red | goto vms_to_listen
	rule input | red | goto vms_to_listen
	rule input | work | goto vms_to_listen
	rule input | work | goto vms_to_listen
	rule vms_to_listen | only DNS at 10.139.1.1 | drop
	rule vms_to_listen | only DNS at 2001:db8:53::1 | drop
	rule vm_banking | banking: net 203.0.113.0/24 | accept
	rule vm_banking | banking: not admitted | drop
	rule vm_red | red: default allow | accept
	rule vm_work | work: net 192.0.2.10/32 | accept
	rule vm_work | work: net 192.0.2.10/32 | accept
	rule vm_work | work: net 192.0.2.10/32 | accept
	rule vm_work | work: net 192.0.2.10/32 | accept
	rule vm_work | work: net 2001:db8:5::/64 | accept
	rule vm_work | work: not admitted | drop
T
	)
	diff -u <(echo "$want") <(table_shape)
}
ok "the table is whole after all this (chains, sets, rules)" table_is

tb_done
