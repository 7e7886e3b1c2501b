#!/bin/bash
# mode: learn. The VM is answered and admitted as with default: allow;
# its chain records each new connection (address, protocol, port; echo
# requests) in <vm>_v4_seen / <vm>_v6_seen from the packet path; the
# daemon reads them into its learn store, which survives a reload. Then
# `dnsfencectl suggest`: the suggestion
# passes -n, and loaded, it lets the VM do what it did while learning and
# nothing more.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
# UDP needs a server bound to the address (the one on [::] answers from
# the uplink's address).
tb_serve 192.0.2.10 5353
tb_vm work 1
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
mode: learn
P
tb_daemon_start -v

chain_has() {
	nsx "$FW" nft list chain inet dnsfence vm_work | grep -F "$1" >/dev/null
}
ok "the chain updates work_v4_seen" chain_has "update @work_v4_seen"
ok "the chain updates work_v6_seen" chain_has "update @work_v6_seen"

# What it does while learning: any name, any port, as default: allow.
ok "www.good.example resolves" dns_is "$VM_work" NOERROR www.good.example A
ok "www.good.example AAAA resolves" dns_is "$VM_work" NOERROR www.good.example AAAA
ok "mail.good.example resolves" dns_is "$VM_work" NOERROR mail.good.example A
ok "long.good.example resolves (never used)" dns_is "$VM_work" NOERROR long.good.example A
ok "tcp/443 to www.good.example" reach_tcp "$VM_work" 192.0.2.10 443
ok "udp/5353 to www.good.example" reach_udp "$VM_work" 192.0.2.10 5353
ok "ping to www.good.example" reach_ping "$VM_work" 192.0.2.10
ok "tcp/443 to www.good.example over IPv6" reach_tcp "$VM_work" 2001:db8:5::10 443
ok "tcp/993 to mail.good.example" reach_tcp "$VM_work" 192.0.2.11 993
ok "tcp/8080 to a bare address (default allow)" reach_tcp "$VM_work" 192.0.2.12 8080

seen_has() {
	nsx "$FW" nft list set inet dnsfence "$1" | grep -F "$2" >/dev/null
}
ok "seen: 192.0.2.10 . tcp . 443" seen_has work_v4_seen "192.0.2.10 . tcp . 443"
ok "seen: 192.0.2.10 . udp . 5353" seen_has work_v4_seen "192.0.2.10 . udp . 5353"
ok "seen: 192.0.2.10 . icmp . 2048 (echo)" seen_has work_v4_seen "192.0.2.10 . icmp . 2048"
ok "seen: 192.0.2.11 . tcp . 993" seen_has work_v4_seen "192.0.2.11 . tcp . 993"
ok "seen: 192.0.2.12 . tcp . 8080" seen_has work_v4_seen "192.0.2.12 . tcp . 8080"
ok "seen: 2001:db8:5::10 . tcp . 443" seen_has work_v6_seen "2001:db8:5::10 . tcp . 443"
seen_count() {
	nsx "$FW" nft -j list set inet dnsfence "$1" | python3 -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    if "set" in i: print(len(i["set"].get("elem", [])))'
}
ok "nothing else is in work_v4_seen" test "$(seen_count work_v4_seen)" -eq 5

# The daemon reads the seen sets every 5 s (-v logs the counts): 3 names,
# 6 usages.
counts='learn: VM work: 3 names, 6 usages'
ok "the store holds 3 names and 6 usages" tb_wait_for "$TB_DIR/dnsfenced.log" "$counts" 12

# A reload that changes the VM's rules (still learning) keeps both the
# store and the seen sets.
n=$(grep -c "$counts" "$TB_DIR/dnsfenced.log")
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
mode: learn
deny:
  - name: "*.doubleclick.example"
P
ok "reload" tb_reload
ok "seen sets survive the reload" seen_has work_v4_seen "192.0.2.11 . tcp . 993"
again() { [ "$(grep -c "$counts" "$TB_DIR/dnsfenced.log")" -gt "$n" ]; }
wait_again() {
	for _ in $(seq 80); do again && return 0; sleep 0.1; done
	return 1
}
ok "the store still holds 3 names and 6 usages after the reload" wait_again

# The suggestion.
sug=$TB_DIR/suggested
mkdir -p "$sug"
ok "dnsfencectl suggest work" sh -c \
	"'$DNSFENCECTL' -s '$TB_DIR/control.sock' suggest work >'$sug/work.yaml'"
sed 's|^policies: .*|policies: suggested|' "$TB_DIR/dnsfence.yaml" >"$TB_DIR/check.yaml"
ok "the suggestion passes -n" "$DNSFENCED" -n -c "$TB_DIR/check.yaml"
has() { grep -qF -- "$1" "$sug/work.yaml"; }
ok "it is default: deny" has "default: deny"
ok "it names www.good.example" has 'name: "www.good.example"'
ok "it lists long.good.example as never used" has "# resolved, never used: long.good.example"
ok "the bare address is a net rule" has 'net: "192.0.2.12/32"'
cp "$sug/work.yaml" "$TB_DIR/vms/work.yaml"
ok "reload with the suggestion" tb_reload
ok "the suggestion is in force" chain_has "work: not admitted"
ok "www.good.example still resolves" dns_is "$VM_work" NOERROR www.good.example A
ok "www.good.example AAAA still resolves" dns_is "$VM_work" NOERROR www.good.example AAAA
ok "mail.good.example still resolves" dns_is "$VM_work" NOERROR mail.good.example A
ok "tcp/443 to www.good.example" reach_tcp "$VM_work" 192.0.2.10 443
ok "udp/5353 to www.good.example" reach_udp "$VM_work" 192.0.2.10 5353
ok "ping to www.good.example" reach_ping "$VM_work" 192.0.2.10
ok "tcp/443 to www.good.example over IPv6" reach_tcp "$VM_work" 2001:db8:5::10 443
ok "tcp/993 to mail.good.example" reach_tcp "$VM_work" 192.0.2.11 993
ok "tcp/8080 to the bare address" reach_tcp "$VM_work" 192.0.2.12 8080
blocked "tcp/22 to www.good.example (never used)" reach_tcp "$VM_work" 192.0.2.10 22
blocked "tcp/993 to www.good.example (never used)" reach_tcp "$VM_work" 192.0.2.10 993
blocked "tcp/443 to the bare address (never used)" reach_tcp "$VM_work" 192.0.2.12 443
ok "long.good.example (resolved, never used) is refused" \
	dns_is "$VM_work" REFUSED long.good.example A
ok "www.other.example (never resolved) is refused" \
	dns_is "$VM_work" REFUSED www.other.example A

# Leaving mode: learn removes the seen sets with the learn rules.
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
default: allow
P
ok "reload to default: allow" tb_reload
gone() { ! nsx "$FW" nft list set inet dnsfence work_v4_seen >/dev/null 2>&1; }
ok "work_v4_seen is gone" gone
ok "no learn rule is left" sh -c "! nsx() { :; }; ! ip netns exec '$FW' nft list chain inet dnsfence vm_work | grep seen >/dev/null"
ok "no 'changed by someone else' in the log" sh -c "! grep -q 'by someone else' '$TB_DIR/dnsfenced.log'"

tb_done
