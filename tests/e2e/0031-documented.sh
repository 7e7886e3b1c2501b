#!/bin/bash
# What the documentation promises and no other test checks: EDE 18 for an
# unknown client; EDE 21 for ANY, AXFR (over TCP) and class CH; the
# `ct state invalid` drop; `log-drops` rules in front of every drop; a
# reload changing the table name is refused and the running table stays;
# SIGINT is a clean exit; the kernel refusing the table at start is exit 1
# with the reason.
. "$(dirname "$0")/../lib/testbed.sh"

tb_init
tb_vm work 1
tb_vm stranger 2
tb_host 192.0.2.10
tb_serve 192.0.2.10 443 9000

tb_config <<'C'
nftables:
  log-drops: 5
C
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - net: 192.0.2.10
    ports: [tcp/443]
P
tb_daemon_start

# A raw DNS query from a VM: rawq VM TCP(0|1) NAME QTYPE QCLASS prints
# "RCODE EDE" (EDE -1 when there is none).
rawq() {
	nsx "$1" python3 - "$2" "$3" "$4" "$5" <<'PY'
import socket, struct, sys
tcp, name, qtype, qclass = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
msg = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 1) + wire + struct.pack(">HH", qtype, qclass) + opt
if tcp:
    s = socket.create_connection(("10.139.1.1", 53), timeout=3)
    s.sendall(struct.pack(">H", len(msg)) + msg)
    buf = b""
    while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
        chunk = s.recv(65535)
        if not chunk: break
        buf += chunk
    r = buf[2:]
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(msg, ("10.139.1.1", 53)); r = s.recv(65535)
def skipname(p, o):
    while True:
        l = p[o]
        if l == 0: return o + 1
        if l & 0xc0 == 0xc0: return o + 2
        o += 1 + l
qd, an, ns, ar = struct.unpack(">HHHH", r[4:12])
o = 12
for _ in range(qd): o = skipname(r, o) + 4
ede = -1
for i in range(an + ns + ar):
    o = skipname(r, o)
    t, c, ttl, rdlen = struct.unpack(">HHIH", r[o:o + 10]); o += 10
    if t == 41:
        p = o
        while p < o + rdlen:
            code, olen = struct.unpack(">HH", r[p:p + 4])
            if code == 15: ede = struct.unpack(">H", r[p + 4:p + 6])[0]
            p += 4 + olen
    o += rdlen
print(r[3] & 15, ede)
PY
}
is() { local got; got=$(rawq "${@:2}" 2>&1); [ "$got" = "$1" ] && return 0; echo "got '$got', want '$1'"; return 1; }

# --- Extended DNS Errors (REFUSED = 5)
ok "an unknown client is REFUSED with EDE 18 (Prohibited)" is "5 18" "$VM_stranger" 0 www.example 1 1
ok "ANY: REFUSED with EDE 21 (Not Supported)" is "5 21" "$VM_work" 0 www.example 255 1
ok "AXFR over TCP: REFUSED with EDE 21" is "5 21" "$VM_work" 1 example 252 1
ok "IXFR over TCP: REFUSED with EDE 21" is "5 21" "$VM_work" 1 example 251 1
ok "class CH (version.bind): REFUSED with EDE 21" is "5 21" "$VM_work" 0 version.bind 16 3
ok "control: class IN, a name outside the policy: REFUSED, not EDE 21" is "5 15" "$VM_work" 0 www.example 1 1

# --- log-drops: a limit+log rule right in front of each drop, same comment
log_before_drops() {
	nsx "$FW" nft -j list table inet dnsfence | python3 -c '
import json, sys
rules = [i["rule"] for i in json.load(sys.stdin)["nftables"] if "rule" in i]
want = {("vm_work", "work: not admitted"),
        ("forward", "unknown source, or a new connection towards a VM")}
seen = set()
for a, b in zip(rules, rules[1:]):
    kinds = lambda r: [next(iter(e)) for e in r["expr"]]
    if "drop" in kinds(b) and "counter" in kinds(b) and \
       a["chain"] == b["chain"] and a.get("comment") == b.get("comment") and \
       "limit" in kinds(a) and "log" in kinds(a):
        lim = next(e["limit"] for e in a["expr"] if "limit" in e)
        log = next(e["log"] for e in a["expr"] if "log" in e)
        if lim.get("rate") == 5 and lim.get("per") == "second" and \
           log.get("prefix", "").startswith("dnsfence "):
            seen.add((b["chain"], b.get("comment")))
missing = want - seen
if missing: sys.exit("no limit 5/second + log rule before %s" % sorted(missing))'
}
ok "log-drops: 5 puts limit 5/second + log rules before the drops" log_before_drops
before=$(counter_of vm_work "work: not admitted")
blocked "work: tcp/9000 is dropped" reach_tcp "$VM_work" 192.0.2.10 9000
after=$(counter_of vm_work "work: not admitted")
ok "... and counted with log-drops on ($before -> $after)" test "$after" -gt "$before"

# --- ct state invalid: a TCP ACK that belongs to no connection (conntrack
# not liberal, no pickup of mid-stream connections)
nsx "$FW" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
nsx "$FW" sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=0
bare_ack() {
	nsx "$VM_work" python3 - <<'PY'
import socket, struct
src, dst = "10.137.1.10", "192.0.2.10"
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
tcp = struct.pack("!HHIIBBHHH", 40000, 443, 12345, 67890, 5 << 4, 0x10, 1024, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for _ in range(3):
    s.sendto(tcp, (dst, 0))
PY
}
before=$(counter_of forward invalid)
bare_ack
sleep 0.3
after=$(counter_of forward invalid)
ok "a TCP ACK without a connection hits the ct state invalid drop ($before -> $after)" \
	test "$after" -ge $((before + 3))

# --- the table name cannot change at reload
sed -i 's/log-drops: 5/log-drops: 5\n  table: other/' "$TB_DIR/dnsfence.yaml"
ok "a reload that renames the table answers" tb_reload
ok "... is refused, saying why" grep -q "reload failed, the running configuration stays: nftables table cannot change" "$TB_DIR/dnsfenced.log"
blocked "... no table inet other" nsx "$FW" sh -c 'nft list table inet other >/dev/null 2>&1 || exit 1'
ok "... the running table stays and admits" reach_tcp "$VM_work" 192.0.2.10 443
ok "... the daemon still answers" is "5 18" "$VM_stranger" 0 www.example 1 1
sed -i '/table: other/d' "$TB_DIR/dnsfence.yaml"

# --- SIGINT is a clean exit, like SIGTERM
tb_daemon_stop INT
ok "SIGINT: dnsfenced exits 0" test "$DAEMON_STATUS" -eq 0
ok "... and leaves the table" eval 'nsx "$FW" nft list chain inet dnsfence vm_work >/dev/null'
DAEMON_PID=

# --- the kernel refusing the table at start: table inet dnsfence owned by
# another process (flags owner, held by an nft that stays open): every
# change to it is refused (EPERM). dnsfenced must say so and exit 1.
nsx "$FW" nft delete table inet dnsfence
# (an nft session holding it while fd 9 is open; its stdin named on the
# command itself: a background command's default stdin is /dev/null)
mkfifo "$TB_DIR/owner.fifo"
exec 9<>"$TB_DIR/owner.fifo"
ip netns exec "$FW" nft -i <"$TB_DIR/owner.fifo" >"$TB_DIR/owner.log" 2>&1 9>&- &
OWNER_PID=$!
TB_PIDS+=("$OWNER_PID")
echo "add table inet dnsfence { flags owner; }" >&9
owned() { nsx "$FW" nft list table inet dnsfence 2>/dev/null | grep owner >/dev/null; }
for _ in $(seq 100); do owned && break; sleep 0.1; done
ok "another process owns table inet dnsfence" owned
rc=0
tb_daemon_start || rc=$?
status=0
wait "$DAEMON_PID" 2>/dev/null || status=$?
DAEMON_PID=
ok "a table the kernel refuses: dnsfenced does not become ready" test "$rc" -ne 0
ok "... exits 1 ($status)" test "$status" -eq 1
ok "... and says why" grep -q "installing the nftables table failed.*table inet dnsfence" "$TB_DIR/dnsfenced.log"
kill "$OWNER_PID" 2>/dev/null || true

tb_done
