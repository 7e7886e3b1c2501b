#!/bin/bash
# `resolver: forward`: queries go to an upstream server, validation stays
# local (a forged answer from the forwarder path is still refused), and DNS
# reaches dnsfenced over IPv6 as well.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
{
	echo 'listen: [10.139.1.1, "2001:db8:53::1"]'
	echo 'policies: vms'
	echo 'control: control.sock'
	echo 'resolver:'
	echo '  trust-anchor-file: mi/root.key'
	echo "  forward: [$MI_NS]"
} >"$TB_DIR/dnsfence.yaml"
mkdir -p "$TB_DIR/vms"
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - name: "*.bogus.example"
P
# A VM whose name is allowed on 101 separate ports: every element lands.
tb_vm ports 2
{
	echo 'addresses: [10.137.2.10]'
	echo 'allow:'
	echo '  - name: www.good.example'
	printf '    ports: [tcp/443'
	for p in $(seq 1000 2 1198); do printf ', tcp/%s' "$p"; done
	echo ']'
} >"$TB_DIR/vms/ports.yaml"
tb_daemon_start

ok "through the forwarder: www.good.example" dns_is "$VM_work" NOERROR www.good.example
ad() { [[ $(dig_vm "$VM_work" +dnssec www.good.example) == *" ad;"* ]]; }
ok "... validated here (AD)" ad
ok "... admitted" reach_tcp "$VM_work" 192.0.2.10 443
ede_bogus() {
	local out
	out=$(dig_vm "$VM_work" www.bogus.example)
	[[ $out == *"status: SERVFAIL,"* && $out == *"EDE: 6 (DNSSEC Bogus)"* ]] && return 0
	echo "$out" | grep -E "status|EDE" | head -3
	return 1
}
ok "a bogus answer through the forwarder: SERVFAIL with EDE 6 (DNSSEC Bogus)" ede_bogus
blocked "... nothing admitted" reach_tcp "$VM_work" 192.0.2.31 443
v6_dns() {
	local out
	out=$(nsx "$VM_work" dig +time=3 +tries=1 @2001:db8:53::1 deep.sub.good.example AAAA)
	[[ $out == *"status: NOERROR"* ]]
}
ok "DNS over IPv6 to dnsfenced" v6_dns
v6_tcp() {
	local out
	out=$(nsx "$VM_work" dig +tcp +time=3 +tries=1 @2001:db8:53::1 www.good.example AAAA)
	[[ $out == *"2001:db8:5::10"* ]]
}
ok "DNS over IPv6 and TCP" v6_tcp
ok "... admitted for IPv6" reach_tcp "$VM_work" 2001:db8:5::10 443

ok "a name allowed on 101 ports" dns_is "$VM_ports" NOERROR www.good.example
n=$(nsx "$FW" nft list set inet dnsfence ports_v4_ports | grep -o "192\.0\.2\.10 \. tcp \. [0-9]*" | wc -l)
ok "... admits all 101 elements ($n)" test "$n" -eq 101
ok "... reachable on tcp/443" reach_tcp "$VM_ports" 192.0.2.10 443
blocked "... not on tcp/8080 (not listed)" reach_tcp "$VM_ports" 192.0.2.10 8080

# Reload to root hints and a stub zone for good.example, served at an
# address nothing in the tree names (192.0.2.54, translated to nsd in
# "up" and counted there): only the stub zone can send queries to it.
STUB=192.0.2.54
nsx "$UP" nft -f - <<N
table ip stub {
	chain pre {
		type nat hook prerouting priority dstnat;
		ip daddr $STUB counter dnat to $MI_NS
	}
}
N
stub_count() {
	nsx "$UP" nft -j list chain ip stub pre | python3 -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    for e in i.get("rule", {}).get("expr", []):
        if "counter" in e: print(e["counter"]["packets"])'
}
stub0=$(stub_count)
sed -i "/forward:/d" "$TB_DIR/dnsfence.yaml"
cat >>"$TB_DIR/dnsfence.yaml" <<C
  root-hints: mi/root.hints
  stub-zones:
    good.example: [$STUB]
C
tb_reload
ok "reloaded to a stub zone" grep -q "reloaded" "$TB_DIR/dnsfenced.log"
ok "the stub zone resolves (fresh cache)" dns_is "$VM_work" NOERROR mail.good.example
stub1=$(stub_count)
ok "... through the stub server, reachable at no address of the tree ($stub0 -> $stub1 connections)" \
	test "$stub1" -gt "$stub0"
ok "... and validated (AD)" eval '[[ $(dig_vm "$VM_work" +dnssec mail.good.example) == *" ad;"* ]]'
ok "... and the rest through the root" ede_bogus

tb_done
