#!/bin/bash
# Anti-spoofing whatever the order of the policy files (tests/mutation
# m17, m63, m64): on an interface a VM claims, only its addresses are
# anyone's. mike (interface vif3.0) sends with the addresses of a VM
# before and after it in file order, with an interface (alpha, zulu) and
# without (bravo, yankee), and of lima, which shares kilo's vif6.0: v4 and
# v6, towards addresses each of them may reach. Nothing may arrive, and
# mike's spoofed-source counter counts it all; the same with `from-group`.
# kilo sends as lima (same interface: it passes) and as bravo (counted for
# the interface). DNS queries spoofed the same way are REFUSED (the answer
# goes to the address's owner) and admit nothing.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

: "${DNSFENCECTL:?DNSFENCECTL must name dnsfencectl}"

dw_setup
tb_vm alpha 1
tb_vm bravo 2
tb_vm mike 3
tb_vm yankee 4
tb_vm zulu 5
tb_vm kilo 6
VM_lima=$VM_kilo
nsx "$VM_kilo" ip addr add 10.137.6.11/32 dev eth0
nsx "$VM_kilo" ip addr add 2001:db8:a:6::11/128 dev eth0 nodad

V4=192.0.2.20
V6=2001:db8:5::15
policy() { # policy VM V4 V6 [INTERFACE]
	tb_policy "$1" <<-P
	addresses: [$2, "$3"]
	${4:+interface: $4}
	allow:
	  - net: $V4
	    ports: [tcp/443]
	  - net: $V6
	    ports: [tcp/443]
	  - name: "*.good.example"
	    ports: [tcp/443]
	P
}
addr4() { case $1 in lima) echo 10.137.6.11 ;; *) echo "10.137.$2.10" ;; esac; }
addr6() { case $1 in lima) echo 2001:db8:a:6::11 ;; *) echo "2001:db8:a:$2::10" ;; esac; }
VMS="alpha:1:vif1.0 bravo:2: mike:3:vif3.0 yankee:4: zulu:5:vif5.0 kilo:6:vif6.0 lima:6:vif6.0"
dw_config </dev/null
for v in $VMS; do
	IFS=: read -r name n ifn <<<"$v"
	policy "$name" "$(addr4 "$name" "$n")" "$(addr6 "$name" "$n")" "$ifn"
done
tb_daemon_start
ctl() { "$DNSFENCECTL" -s "$TB_DIR/control.sock" "$@"; }

# Count, at the far end, the SYNs that arrive from each VM address.
{
	echo 'table inet seen {'
	echo ' chain in {'
	echo '  type filter hook input priority 0;'
	for v in $VMS; do
		IFS=: read -r name n _ <<<"$v"
		a=$(addr4 "$name" "$n")
		b=$(addr6 "$name" "$n")
		echo "  ip saddr $a tcp dport 443 tcp flags syn counter comment \"$a\""
		echo "  ip6 saddr $b tcp dport 443 tcp flags syn counter comment \"$b\""
	done
	echo ' }'
	echo '}'
} | nsx "$UP" nft -f -
syns() {
	nsx "$UP" nft -j list chain inet seen in | python3 -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    r = i.get("rule")
    if r and r.get("comment") == sys.argv[1]:
        print(next(e["counter"]["packets"] for e in r["expr"] if "counter" in e))
        sys.exit(0)
print(-1)' "$1"
}

# Every VM reaches both from its own addresses (lima from kilo's
# namespace, over the interface they share); the far end counts them.
from_own() { # from_own VM N FAMILY-ADDRESS DESTINATION
	local ns b a
	eval "ns=\$VM_$1"
	b=$(syns "$3")
	nsx "$ns" "$PROBE" tcp -s "$3" "$4" 443 1000 || return 1
	a=$(syns "$3")
	[ "$a" -gt "$b" ] || { echo "far end: $b -> $a SYNs from $3"; return 1; }
}
own_round() { # own_round LABEL
	for v in $VMS; do
		IFS=: read -r name n _ <<<"$v"
		ok "$1: $name reaches $V4 from its own address (and the far end counts it)" \
			from_own "$name" "$n" "$(addr4 "$name" "$n")" "$V4"
		ok "$1: $name reaches $V6 from its own address" \
			from_own "$name" "$n" "$(addr6 "$name" "$n")" "$V6"
	done
}

# mike borrows every other VM's addresses.
for v in $VMS; do
	IFS=: read -r name n _ <<<"$v"
	[ "$name" = mike ] && continue
	nsx "$VM_mike" ip addr add "$(addr4 "$name" "$n")/32" dev eth0
	nsx "$VM_mike" ip addr add "$(addr6 "$name" "$n")/128" dev eth0 nodad
done
nsx "$VM_kilo" ip addr add 10.137.2.10/32 dev eth0
nsx "$VM_kilo" ip addr add 2001:db8:a:2::10/128 dev eth0 nodad

# Three SYNs (one a connect) from SRC in NS, none may arrive.
spoof() { # spoof NS SRC DESTINATION
	local b a
	b=$(syns "$2")
	for _ in 1 2 3; do
		nsx "$1" "$PROBE" tcp -s "$2" "$3" 443 300 || true
	done
	a=$(syns "$2")
	[ "$a" -eq "$b" ] || { echo "far end: $b -> $a SYNs from $2"; return 1; }
}
spoof_round() { # spoof_round LABEL
	local before after where
	before=$(counter_of forward "mike: spoofed source")
	for v in $VMS; do
		IFS=: read -r name n _ <<<"$v"
		[ "$name" = mike ] && continue
		case $name in alpha | bravo | kilo | lima) where=before ;; *) where=after ;; esac
		ok "$1: mike with $name's v4 address ($name sorts $where mike) reaches nothing" \
			spoof "$VM_mike" "$(addr4 "$name" "$n")" "$V4"
		ok "$1: mike with $name's v6 address reaches nothing" \
			spoof "$VM_mike" "$(addr6 "$name" "$n")" "$V6"
	done
	after=$(counter_of forward "mike: spoofed source")
	ok "$1: ... every one counted as mike's spoofed source ($before -> $after)" \
		test "$after" -ge $((before + 36))
	before=$(counter_of forward "interface vif6.0: spoofed source")
	ok "$1: kilo with bravo's v4 address reaches nothing" \
		spoof "$VM_kilo" 10.137.2.10 "$V4"
	ok "$1: kilo with bravo's v6 address reaches nothing" \
		spoof "$VM_kilo" 2001:db8:a:2::10 "$V6"
	after=$(counter_of forward "interface vif6.0: spoofed source")
	ok "$1: ... counted for the interface kilo and lima share ($before -> $after)" \
		test "$after" -ge $((before + 6))
}

own_round "files in any order"
spoof_round "files in any order"

# --- DNS: a query with another VM's address, on mike's interface.
# The answer goes to the address's owner: catch it there.
cat >"$TB_DIR/catch.py" <<'PY'
import socket, struct, sys
a, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((a, port))
s.settimeout(wait)
print("listening", flush=True)
try:
    r = s.recv(65535)
    print("rcode %d answers %d" % (r[3] & 15, struct.unpack(">H", r[6:8])[0]))
except socket.timeout:
    print("nothing")
PY
cat >"$TB_DIR/ask.py" <<'PY'
import socket, struct, sys
src, port, dns, qtype = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
q = struct.pack(">HHHHHH", 0x3535, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in "www.good.example".split("."))
q += b"\0" + struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, port))
s.sendto(q, (dns, 53))
PY
query() { # query VICTIM-NS SRC DNS QTYPE: what reached the victim
	local log=$TB_DIR/catch-$2.log pid
	tb_bg "$log" "$1" python3 "$TB_DIR/catch.py" "$2" 45353 3
	pid=$TB_LAST
	tb_wait_for "$log" listening 5 || return 1
	nsx "$VM_mike" python3 "$TB_DIR/ask.py" "$2" 45353 "$3" "$4"
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -v listening "$log"
}
refused_or_nothing() { # refused_or_nothing VICTIM-NS SRC DNS QTYPE
	local got
	got=$(query "$@")
	case $got in "rcode 5 answers 0" | nothing) return 0 ;; esac
	echo "the victim got: $got"
	return 1
}
unknown() {
	ctl metrics | sed -n 's/^dnsfence_unknown_client_queries_total //p'
}
u0=$(unknown)
nq=0
for v in alpha:1 bravo:2 yankee:4 zulu:5; do
	IFS=: read -r name n <<<"$v"
	eval "ns=\$VM_$name"
	ok "DNS: mike asking as $name (v4) is refused" \
		refused_or_nothing "$ns" "10.137.$n.10" 10.139.1.1 1
	ok "DNS: mike asking as $name (v6) is refused" \
		refused_or_nothing "$ns" "2001:db8:a:$n::10" 2001:db8:53::1 28
	ok "... $name's sets admitted nothing" test \
		"$(elem_expires "${name}_v4_ports" "192.0.2.10 . tcp . 443")$(elem_expires "${name}_v6_ports" "2001:db8:5::10 . tcp . 443")" = -1-1
	nq=$((nq + 2))
done
u1=$(unknown)
ok "... each counted as a query from an unknown client ($u0 -> $u1)" \
	test "$u1" -eq $((u0 + nq))
ok "bravo's own query is answered" dns_is "$VM_bravo" NOERROR www.good.example
ok "... and admits (the check above can see it)" \
	test "$(elem_expires bravo_v4_ports "192.0.2.10 . tcp . 443")" -gt 0
ok "yankee's own AAAA query is answered" dns_is "$VM_yankee" NOERROR www.good.example AAAA
ok "... and admits" \
	test "$(elem_expires yankee_v6_ports "2001:db8:5::10 . tcp . 443")" -gt 0

# --- the same with from-group: only the vifs' group is judged
for n in 1 2 3 4 5 6; do nsx "$FW" ip link set "vif$n.0" group 2; done
dw_config <<'C'
nftables:
  from-group: 2
C
tb_reload
ok "from-group: 2 is in force" grep -q "not from group 2" \
	<(nsx "$FW" nft list chain inet dnsfence forward)
own_round "from-group"
spoof_round "from-group"

tb_done
