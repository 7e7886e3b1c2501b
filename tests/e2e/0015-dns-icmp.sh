#!/bin/bash
# `icmp` in a name rule's ports: echo requests (ICMP and ICMPv6) to the
# addresses the name resolved to, and nothing else: not other ICMP types
# to them, not TCP whose source port happens to look like an admitted
# port, not echo requests to addresses resolved for other ports.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: www.good.example
    ports: [icmp, tcp/443]
  - name: mail.good.example
    ports: [tcp/993]
P
tb_daemon_start

dig_vm "$VM_work" www.good.example A >/dev/null
dig_vm "$VM_work" www.good.example AAAA >/dev/null
dig_vm "$VM_work" mail.good.example A >/dev/null
ok "ping to www.good.example (ICMP echo)" reach_ping "$VM_work" 192.0.2.10
ok "ping to www.good.example over IPv6 (ICMPv6 echo)" reach_ping "$VM_work" 2001:db8:5::10
ok "tcp/443 to it" reach_tcp "$VM_work" 192.0.2.10 443
blocked "tcp/22 to it" reach_tcp "$VM_work" 192.0.2.10 22
blocked "no ping to mail.good.example (resolved for tcp/993 only)" \
	reach_ping "$VM_work" 192.0.2.11
echo_shown() {
	nsx "$FW" nft list set inet dnsfence work_v4_ports |
		grep "192.0.2.10 . icmp . 2048" >/dev/null
}
ok "the echo element is in work_v4_ports as icmp . 2048" echo_shown

# TCP from source port 443 to port 22: the echo rule reads the first two
# bytes of the transport header, which for TCP are the source port.
sport_443() {
	nsx "$VM_work" python3 - <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.137.1.10", 443))
s.settimeout(1)
try:
    s.connect(("192.0.2.10", 22))
except OSError:
    sys.exit(1)
sys.exit(0)
PY
}
blocked "tcp from source port 443 to port 22" sport_443

# An ICMP timestamp request (type 13) to the address echo is open for: it
# must meet the drop rule.
before=$(counter_of vm_work "work: not admitted")
nsx "$VM_work" python3 - <<'PY'
import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
m = struct.pack("!BBHHH", 13, 0, 0, 1, 1) + b"\0" * 12
m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for _ in range(3):
    s.sendto(m, ("192.0.2.10", 0))
PY
sleep 0.2
after=$(counter_of vm_work "work: not admitted")
ok "ICMP timestamp requests to it are dropped ($before -> $after)" \
	test "$after" -ge $((before + 3))


# An ICMP message that is not an echo request, whose checksum field (the
# bytes at a port's offset) reads 0x0800, as "icmp . 2048" would: the
# ports rule must not look at ICMP at all (its `meta l4proto != icmp`).
before=$(counter_of vm_work "work: not admitted")
nsx "$VM_work" python3 - <<'PY'
import socket, struct
def fold(s):
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s
# Timestamp request (type 13): header with checksum 0x0800, id, seq, and
# three timestamps; the last 16 bits are chosen so that the checksum over
# the whole message is valid with 0x0800 in its field.
body = struct.pack("!BBHHHII", 13, 0, 0x0800, 1, 1, 0, 0) + b"\0\0"
s = fold(sum(struct.unpack("!%dH" % (len(body) // 2), body)))
fill = (0xffff - s) & 0xffff
m = body + struct.pack("!H", fill)
assert fold(sum(struct.unpack("!%dH" % (len(m) // 2), m))) == 0xffff
sk = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for _ in range(3):
    sk.sendto(m, ("192.0.2.10", 0))
PY
sleep 0.2
after=$(counter_of vm_work "work: not admitted")
ok "ICMP timestamp requests with checksum 0x0800 are dropped ($before -> $after)" \
	test "$after" -ge $((before + 3))

tb_done
