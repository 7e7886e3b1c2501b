#!/bin/bash
# Limits and failures: TCP fallback after truncation; too many addresses in
# one answer; a full set; too many queries in flight; an upstream that never
# answers; the kernel refusing a batch (our table deleted behind our back);
# malformed queries. Each gives the VM a clear error, admits nothing new,
# loses nothing admitted, and the daemon goes on.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm small 2
dw_config <<'C'
limits:
  set-size: 64
  addresses-per-answer: 40
  queries-per-vm: 3
  tcp-clients: 4
  tcp-idle: 2
C
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - name: "*.dead.example"
P
tb_policy small <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start

# --- an answer too big for 512 bytes over UDP: TC, then TCP, admitted
tc_set() { [[ $(dig_vm "$VM_work" +noedns +ignore big.good.example) == *"flags: qr tc"* ]]; }
ok "without EDNS, a 40-address answer comes back truncated (TC)" tc_set
ok "dig falls back to TCP and gets the answer" \
	dns_is "$VM_work" NOERROR big.good.example A +noedns
n=$(dw_addrs "$VM_work" +noedns big.good.example | wc -l)
ok "... all 40 addresses ($n)" test "$n" -eq 40
ok "... every one of them admitted (first)" reach_tcp "$VM_work" 203.0.113.1 443
ok "... (last)" reach_tcp "$VM_work" 203.0.113.40 443

# --- too many addresses in one answer: 50 > addresses-per-answer 40
ok "an answer with 50 addresses: SERVFAIL" dns_is "$VM_work" SERVFAIL huge.good.example
limit_logged() { grep -q "VM work, huge.good.example: more than 40 addresses" "$TB_DIR/dnsfenced.log"; }
ok "... logged" limit_logged
blocked "... and nothing of it admitted" reach_tcp "$VM_work" 203.0.113.41 443

# --- a query over TCP
ok "a query over TCP is answered" dns_is "$VM_small" NOERROR www.good.example A +tcp
ok "... and admits" reach_tcp "$VM_small" 192.0.2.10 443

# --- a full set: small may hold 64 elements in a set (it has one: www)
for i in $(seq 1 63); do dig_vm "$VM_small" "n$i.fresh.good.example" >/dev/null; done
ok "64 elements fit" reach_tcp "$VM_small" 192.0.2.163 443
ok "the 65th does not: SERVFAIL" dns_is "$VM_small" SERVFAIL n64.fresh.good.example
full_logged() { grep -q "VM small, n64.fresh.good.example: answer withheld: a set of VM small is full" "$TB_DIR/dnsfenced.log"; }
ok "... logged with VM, name and reason" full_logged
blocked "... and its address not admitted" reach_tcp "$VM_small" 192.0.2.164 443
ok "what was admitted stays" reach_tcp "$VM_small" 192.0.2.101 443
ok "an address already in the set still answers" dns_is "$VM_small" NOERROR n5.fresh.good.example
ok "other VMs are not affected" dns_is "$VM_work" NOERROR n64.fresh.good.example
ok "... work reaches it" reach_tcp "$VM_work" 192.0.2.164 443

# --- an upstream that never answers; too many queries in flight
start=$(date +%s)
for i in 1 2 3; do
	tb_bg "$TB_DIR/dead$i.log" "$VM_work" dig +time=15 +tries=1 @10.139.1.1 "x$i.dead.example"
done
sleep 1
ok "a 4th query in flight for the same VM: SERVFAIL at once" \
	dns_is "$VM_work" SERVFAIL x4.dead.example
inflight_logged() { [[ $(dig_vm "$VM_work" x5.dead.example) == *"too many queries in flight"* ]]; }
ok "... saying why" inflight_logged
ok "another VM is not held back" dns_is "$VM_small" NOERROR www.good.example
for _ in $(seq 200); do
	grep -q "status" "$TB_DIR/dead3.log" 2>/dev/null && break
	sleep 0.1
done
took=$(( $(date +%s) - start ))
ok "the unanswered queries end in SERVFAIL ($took s)" grep -q "status: SERVFAIL" "$TB_DIR/dead3.log"
ok "... within the resolver timeout" test "$took" -le 14
ok "the VM can ask again afterwards" dns_is "$VM_work" NOERROR www.good.example

# --- netlink failure: an element the kernel refuses. Someone adds, by
# hand, a port range overlapping the element an answer needs: the kernel
# refuses ours (interval sets hold no overlaps).
reinstalled() { grep -c "reinstalled table" "$TB_DIR/dnsfenced.log" || true; }
n=$(reinstalled)
nsx "$FW" nft add element inet dnsfence work_v4_ports \
	'{ 192.0.2.180 . tcp . 400-500 timeout 1h }'
for _ in $(seq 50); do [ "$(reinstalled)" -gt "$n" ] && break; sleep 0.1; done
ok "an answer whose elements the kernel refuses: SERVFAIL" \
	dns_is "$VM_work" SERVFAIL n80.fresh.good.example
nl_logged() { grep -q "VM work, n80.fresh.good.example: answer withheld: .*File exists" "$TB_DIR/dnsfenced.log"; }
ok "... logged with VM, name and the kernel's error" nl_logged
ok "... and the VM's other elements still admit" \
	reach_tcp "$VM_work" 192.0.2.10 443
sed -i 's/tcp\/443]/tcp\/443, tcp\/8443]/' "$TB_DIR/vms/work.yaml"
tb_reload
hand_gone() { [ "$(dw_expires work 192.0.2.180 tcp 400-500)" = -1 ]; }
ok "a reload that changes work's rules removes the element no name admitted" hand_gone
ok "... and answers admit again" dns_is "$VM_work" NOERROR n80.fresh.good.example
ok "... reachable" reach_tcp "$VM_work" 192.0.2.180 443

# --- DNS over TCP: several queries on one connection, a connection cap,
# an idle timeout
tcp_checks() {
	nsx "$VM_work" python3 - <<'PY'
import socket, struct, sys, time
def q(i, name=b"\x03www\x04good\x07example\x00"):
    m = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    return struct.pack(">H", len(m)) + m
def answers(s, n):
    got, buf = [], b""
    s.settimeout(3)
    while len(got) < n:
        d = s.recv(4096)
        if not d: break
        buf += d
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            l = struct.unpack(">H", buf[:2])[0]
            got.append(struct.unpack(">H", buf[2:4])[0]); buf = buf[2 + l:]
    return sorted(got)
# two queries in one write, on one connection
s = socket.create_connection(("10.139.1.1", 53), timeout=3)
s.sendall(q(1) + q(2))
if answers(s, 2) != [1, 2]: sys.exit("two queries on one connection: no two answers")
# the cap: 4 connections (this one included), the 5th is closed at once
conns = [s] + [socket.create_connection(("10.139.1.1", 53), timeout=3) for _ in range(3)]
time.sleep(0.3)
x = socket.create_connection(("10.139.1.1", 53), timeout=3)
x.settimeout(2)
if x.recv(10) != b"": sys.exit("a 5th connection was not closed")
# the idle timeout: an idle connection is closed after ~2 s
s.settimeout(5)
t = time.time()
if s.recv(10) != b"" or time.time() - t > 4.5: sys.exit("idle connection not closed")
# a client that sends and never reads: the daemon stops reading it and
# closes it when its writes stall; it stays responsive meanwhile
f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
f.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
f.connect(("10.139.1.1", 53))
f.setblocking(False)
flood = q(7, b"\x03www\x05other\x07example\x00") * 20000
sent = 0
t = time.time()
while sent < len(flood) and time.time() - t < 3:
    try:
        sent += f.send(flood[sent:sent + 65536])
    except BlockingIOError:
        time.sleep(0.05)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.sendto(q(9)[2:], ("10.139.1.1", 53))
if struct.unpack(">H", u.recv(512)[:2])[0] != 9: sys.exit("not responsive during a flood")
print("tcp ok, %d of %d flood bytes taken" % (sent, len(flood)))
PY
}
ok "TCP: two queries on one connection, the connection cap, the idle timeout" tcp_checks

# --- malformed queries: no crash, next query answered
garbage() {
	nsx "$VM_work" python3 - <<'PY'
import os, random, socket
random.seed(7)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def q(name=b"\x03www\x04good\x07example\x00"):
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"
pkts = [b"", b"\x00", q()[:13], q()[:-1],
        q(b"\xc0\x0c"),                      # pointer to itself
        q(b"\x03www\xc0\x0c"),               # pointer loop
        q(b"\x40" + b"a" * 64 + b"\x00"),    # extended label type
        q() + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x05\x00\x0a",  # bad OPT
        b"\x12\x34\x81\x80" + q()[4:],       # a response
        b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00"]
pkts += [os.urandom(random.randint(1, 600)) for _ in range(300)]
for p in pkts:
    s.sendto(p, ("10.139.1.1", 53))
# and over TCP: a length that lies, then a close
t = socket.create_connection(("10.139.1.1", 53), timeout=2)
t.sendall(b"\xff\xff" + os.urandom(100))
t.close()
PY
}
ok "malformed and random packets are sent" garbage
ok "the daemon is alive" kill -0 "$DAEMON_PID"
ok "... and answers the next query" dns_is "$VM_work" NOERROR www.good.example
formerr() { [[ $(nsx "$VM_work" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x00\x00\x01\x00\x01\x00", ("10.139.1.1", 53))
r = s.recv(512); print(r[3] & 15)') == 1 ]]; }
ok "a query with trailing bytes gets FORMERR" formerr

tb_done
