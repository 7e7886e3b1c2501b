#!/bin/bash
# The DNS rebinding guard (interface.md, "DNS rebinding"): an answer for a
# name never admits, and the VM never sees, reserved addresses (loopback,
# this network, v4-mapped...), nor private ones unless the matching rule
# says allow-private (and then only with that rule's ports), nor ever the
# address of a VM or a listen address, under "*", allow-private, default:
# allow and mode: learn alike. A/AAAA records and HTTPS hints are
# stripped; the rest is served (an answer with nothing left: NOERROR,
# no address) with EDE 15 saying so and no AD. The decision log, the
# counters, `why`, and a reload that takes allow-private away.
#
# rebind.good.example (tests/lib/minternet.sh): A 192.0.2.17 127.0.0.1
# 10.137.1.10 (VM work) 10.139.1.1 (listen) 192.168.1.1 169.254.1.1
# 10.99.0.1; AAAA 2001:db8:5::17 ::1 fe80::1 ::ffff:192.0.2.17; HTTPS
# alpn=h2 ipv4hint=192.0.2.18,127.0.0.2,10.99.0.2
# ipv6hint=fe80::2,2001:db8:5::18. loopback.good.example: A 127.0.0.1.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"
: "${DNSFENCECTL:?DNSFENCECTL must name the dnsfencectl binary}"

dw_setup
for h in 192.0.2.17 192.0.2.18 10.99.0.1 10.99.0.2; do tb_host "$h"; done
tb_vm work 1
tb_vm corp 2
tb_vm any 3
tb_vm open 4
tb_vm learner 5
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
# Two rules match: ports add up for public addresses; private ones only
# with the ports of the rule that says allow-private.
tb_policy corp <<'P'
addresses: [10.137.2.10, "2001:db8:a:2::10"]
interface: vif2.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
    allow-private: true
  - name: "*"
    ports: [tcp/22]
P
tb_policy any <<'P'
addresses: [10.137.3.10]
interface: vif3.0
allow:
  - name: "*"
    ports: [tcp/443]
    allow-private: true
P
tb_policy open <<'P'
addresses: [10.137.4.10]
interface: vif4.0
default: allow
P
tb_policy learner <<'P'
addresses: [10.137.5.10]
interface: vif5.0
mode: learn
P
# Something to reach at work's own address: a connection that fails then
# fails at the firewall, not for want of a server.
tb_bg "$TB_DIR/serve-work.log" "$VM_work" "$PROBE" serve 10.137.1.10 443
tb_wait_for "$TB_DIR/serve-work.log" listening 5
tb_daemon_start
SOCK=$TB_DIR/control.sock
ctl() { "$DNSFENCECTL" -s "$SOCK" "$@"; }

# Every address in the VM's four sets, sorted.
set_addrs() {
	local s
	for s in v4 v6 v4_ports v6_ports; do
		nsx "$FW" nft -j list set inet dnsfence "$1_$s"
	done | python3 -c '
import json, sys
out = set()
for line in sys.stdin:
    for item in json.loads(line)["nftables"]:
        for e in (item.get("set") or {}).get("elem", []):
            el = e.get("elem", e) if isinstance(e, dict) else e
            val = el.get("val") if isinstance(el, dict) else el
            if isinstance(val, dict) and "concat" in val:
                val = val["concat"][0]
            out.add(str(val))
print(" ".join(sorted(out)))'
}
# The addresses of the answer (A, AAAA), sorted, on one line.
answer() { dw_addrs "$@" | tr '\n' ' ' | sed 's/ $//'; }
# The HTTPS record as the VM gets it.
https_of() { dig_vm "$1" +short rebind.good.example HTTPS; }
has() { [[ " $1 " == *" $2 "* ]]; }
lacks() { [[ " $1 " != *" $2 "* ]]; }
GUARDED="127.0.0.1 10.137.1.10 10.139.1.1 ::1 ::ffff:192.0.2.17"
PRIVATE="192.168.1.1 169.254.1.1 10.99.0.1 fe80::1"

# --- work: no allow-private
a=$(answer "$VM_work" rebind.good.example A)
ok "work: the A answer is the public address only ($a)" test "$a" = "192.0.2.17"
a=$(answer "$VM_work" rebind.good.example AAAA)
ok "work: the AAAA answer is the public address only ($a)" test "$a" = "2001:db8:5::17"
h=$(https_of "$VM_work")
ok "work: HTTPS keeps alpn and the public hints only ($h)" \
	test "$h" = '1 . alpn="h2" ipv4hint=192.0.2.18 ipv6hint=2001:db8:5::18'
s=$(set_addrs work)
ok "work: its sets hold the public addresses ($s)" \
	test "$s" = "192.0.2.17 192.0.2.18 2001:db8:5::17 2001:db8:5::18"
ok "work: 192.0.2.17 reachable on tcp/443" reach_tcp "$VM_work" 192.0.2.17 443
ok "work: the hint 192.0.2.18 too" reach_tcp "$VM_work" 192.0.2.18 443
blocked "work: 10.99.0.1 (private, stripped)" reach_tcp "$VM_work" 10.99.0.1 443
ede_of() { dig_vm "$@" | grep -o 'EDE: 15 (Blocked): .*' || true; }
e=$(ede_of "$VM_work" rebind.good.example A)
ok "work: EDE 15 says what was removed ($e)" \
	test "$e" = "EDE: 15 (Blocked): (dnsfence removed 6 addresses (DNS rebinding guard): 3 private (no allow-private), 1 reserved, 2 of a VM or of dnsfence)"
no_ad() { [[ $(dig_vm "$VM_work" +dnssec rebind.good.example A) != *" ad;"* ]]; }
ok "work: no AD on the changed answer of a signed zone (DO set)" no_ad
ad_set() { [[ $(dig_vm "$VM_work" +dnssec www.good.example A) == *" ad;"* ]]; }
ok "... while an unchanged one keeps it" ad_set
sigs() { dig_vm "$VM_work" +dnssec +noall +answer rebind.good.example A | grep -c RRSIG || true; }
ok "work: no RRSIG over the A RRset it no longer matches" test "$(sigs)" -eq 0
nodata() {
	local out
	out=$(dig_vm "$VM_work" loopback.good.example A)
	[[ $out == *"status: NOERROR,"* && $out == *"ANSWER: 0,"* &&
		$out == *"EDE: 15 (Blocked): (dnsfence removed 1 address (DNS rebinding guard): 1 reserved)"* ]]
}
ok "work: loopback.good.example (127.0.0.1 only): NOERROR, no address, EDE 15" nodata

# --- corp: allow-private on *.good.example (tcp/443); "*" adds tcp/22
a=$(answer "$VM_corp" rebind.good.example A)
ok "corp: private addresses kept, reserved and internal ones not ($a)" \
	test "$a" = "10.99.0.1 169.254.1.1 192.0.2.17 192.168.1.1"
a=$(answer "$VM_corp" rebind.good.example AAAA)
ok "corp: AAAA: fe80::1 kept, ::1 and v4-mapped not ($a)" \
	test "$a" = "2001:db8:5::17 fe80::1"
h=$(https_of "$VM_corp")
ok "corp: HTTPS keeps the private hints, not 127.0.0.2 ($h)" \
	test "$h" = '1 . alpn="h2" ipv4hint=192.0.2.18,10.99.0.2 ipv6hint=fe80::2,2001:db8:5::18'
s=$(set_addrs corp)
for x in $GUARDED 127.0.0.2; do
	ok "corp: $x is not in its sets" lacks "$s" "$x"
done
for x in $PRIVATE 10.99.0.2 fe80::2; do
	ok "corp: $x is" has "$s" "$x"
done
ok "corp: 10.99.0.1 reachable on tcp/443 (allow-private)" reach_tcp "$VM_corp" 10.99.0.1 443
ok "corp: the hint 10.99.0.2 too" reach_tcp "$VM_corp" 10.99.0.2 443
blocked "corp: 10.99.0.1 not on tcp/22 (the rule without allow-private)" \
	reach_tcp "$VM_corp" 10.99.0.1 22
ok "corp: 192.0.2.17 on tcp/22 (public: the ports add up)" reach_tcp "$VM_corp" 192.0.2.17 22
ok "corp: no such element as 10.99.0.1 . tcp . 22" \
	test "$(elem_expires corp_v4_ports "10.99.0.1 . tcp . 22")" = -1
e=$(ede_of "$VM_corp" rebind.good.example A)
ok "corp: EDE 15: 1 reserved, 2 internal ($e)" \
	test "$e" = "EDE: 15 (Blocked): (dnsfence removed 3 addresses (DNS rebinding guard): 1 reserved, 2 of a VM or of dnsfence)"

# --- any: "*" with allow-private: never another VM, never the listen address
a=$(answer "$VM_any" rebind.good.example A)
ok "any: no VM's address, no listen address, no loopback ($a)" \
	test "$a" = "10.99.0.1 169.254.1.1 192.0.2.17 192.168.1.1"
s=$(set_addrs any)
for x in $GUARDED; do
	ok "any: $x is not in its sets" lacks "$s" "$x"
done
ok "the server at work's 10.137.1.10:443 answers (from the firewall)" \
	nsx "$FW" "$PROBE" tcp 10.137.1.10 443 1000
blocked "any cannot connect to work's 10.137.1.10:443" reach_tcp "$VM_any" 10.137.1.10 443

# --- default: allow and mode: learn: the same answers
for vm in open learner; do
	ns=VM_$vm
	a=$(answer "${!ns}" rebind.good.example A)
	ok "$vm: the A answer is the public address only ($a)" test "$a" = "192.0.2.17"
	h=$(https_of "${!ns}")
	ok "$vm: HTTPS: public hints only ($h)" \
		test "$h" = '1 . alpn="h2" ipv4hint=192.0.2.18 ipv6hint=2001:db8:5::18'
	s=$(set_addrs "$vm")
	ok "$vm: its sets hold the public addresses ($s)" \
		test "$s" = "192.0.2.17 192.0.2.18 2001:db8:5::18"
done

# --- what dnsfencectl says
logged() { ctl log | grep "VM work, rebind.good.example A: answered" | tail -1; }
l=$(logged)
ok "log: the answer's line says what was stripped ($l)" \
	grep -q "; admitted 192.0.2.17 for [0-9]* s; stripped 6 (3 private, 1 reserved, 2 internal)$" <<<"$l"
jlog() {
	ctl -j log | python3 -c '
import json, sys
for r in json.load(sys.stdin)["decisions"]:
    if r["vm"] == "work" and r["name"] == "loopback.good.example":
        print(r["stripped"]["reserved"], r["naddresses"]); break'
}
ok "log -j: stripped by class" test "$(jlog)" = "1 0"
m=$(ctl metrics)
ok "metrics: dnsfence_stripped_addresses_total by VM and class" \
	grep -q '^dnsfence_stripped_addresses_total{vm="work",class="internal"} [1-9]' <<<"$m"
ok "status: the guard's section" grep -q "^  corp .* 0 private, [1-9][0-9]* reserved, [1-9][0-9]* internal$" \
	<(ctl status)
st=$(ctl -j status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["vms"]["corp"]["stripped"]["private"])')
ok "status -j: per VM and class (corp, private: $st)" test "$st" = 0
why_out() { ctl why "$@" || true; }
w=$(why_out any 10.137.1.10 tcp/443)
ok "why: a VM's address ($w)" grep -q "is the address of VM work: no answer ever admits it" <<<"$w"
w=$(why_out work 10.99.0.1 tcp/443)
ok "why: a private address without allow-private ($w)" \
	grep -q "is a private address: answers keep it only for names whose allow rule says allow-private: true (no rule of this VM does)" <<<"$w"
w=$(why_out work 127.0.0.1)
ok "why: a reserved address ($w)" grep -q "127.0.0.1 is a reserved address" <<<"$w"
ok "why: exit 1 for them" test "$(ctl why work 10.99.0.1 tcp/443 >/dev/null 2>&1; echo $?)" = 1

# --- a reload that takes allow-private away removes the private elements
tb_policy corp <<'P'
addresses: [10.137.2.10, "2001:db8:a:2::10"]
interface: vif2.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - name: "*"
    ports: [tcp/22]
P
ok "reload" ctl reload
ok "corp: 10.99.0.1 . tcp . 443 is gone" \
	test "$(elem_expires corp_v4_ports "10.99.0.1 . tcp . 443")" = -1
ok "corp: fe80::1 is gone" lacks "$(set_addrs corp)" fe80::1
ok "corp: 192.0.2.17 . tcp . 443 stays" \
	test "$(elem_expires corp_v4_ports "192.0.2.17 . tcp . 443")" -gt 0
blocked "corp: 10.99.0.1 no longer reachable" reach_tcp "$VM_corp" 10.99.0.1 443
a=$(answer "$VM_corp" rebind.good.example A)
ok "corp: and no longer in its answers ($a)" test "$a" = "192.0.2.17"

tb_done
