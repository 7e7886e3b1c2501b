#!/bin/bash
# The answer cache in front of libunbound (doc/design.md): a question
# asked again is answered from it, with its TTLs counted down, and goes
# through the same policy, rebinding guard and admission as a fresh
# answer: each VM's own elements (armed to outlive the TTL it is handed:
# invariant 2), its own ports and its own guard; a name outside a VM's
# policy is refused before the cache is looked at; bogus answers are
# never kept (SERVFAIL every time, with or without CD); an answer whose
# TTL ran out is asked again; a reload starts an empty cache.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm red 2
tb_vm strict 3
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - name: "*.bogus.example"
  - name: "*.insecure.example"
P
tb_policy red <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: www.good.example
    ports: [tcp/22]
  - name: rebind.good.example
    ports: [tcp/443]
    allow-private: true
P
tb_policy strict <<'P'
addresses: [10.137.3.10]
interface: vif3.0
allow:
  - name: "*.insecure.example"
    require-dnssec: true
P
tb_daemon_start

SOCK=$TB_DIR/control.sock
cache() {
	"$DNSFENCECTL" -s "$SOCK" -j status | python3 -c '
import json, sys
c = json.load(sys.stdin)["answer_cache"]
print(c["hits"], c["entries"])'
}
ttl_of() { awk '$4 == "A" { print $2; exit }' "$1"; }
status_of() { { grep -o "status: [A-Z]*" "$1" || true; } | awk '{print $2}'; }
ask() { # ask VM NAME FILE [dig options]
	local vm=$1 name=$2 f=$3
	shift 3
	dig_vm "$vm" "$name" A +noall +answer +comments "$@" >"$f" 2>&1 || true
}

read -r h0 _ <<<"$(cache)"
ask "$VM_work" www.good.example "$TB_DIR/a1"
t1=$(ttl_of "$TB_DIR/a1")
read -r h1 e1 <<<"$(cache)"
ok "a first answer is kept (hits $h0 -> $h1, $e1 kept)" \
	test "$h1" = "$h0" -a "$e1" -ge 1
sleep 2.2
ask "$VM_work" www.good.example "$TB_DIR/a2"
t2=$(ttl_of "$TB_DIR/a2")
read -r h2 _ <<<"$(cache)"
ok "asked again: from the cache (hits $h1 -> $h2)" test "$h2" -gt "$h1"
ok "... its TTL counted down ($t1 -> $t2 after 2.2 s)" \
	test -n "$t2" -a "$t2" -le $((t1 - 2)) -a "$t2" -ge $((t1 - 3))
exp=$(dw_expires work 192.0.2.10 tcp 443)
ok "... the element outlives the TTL handed out ($exp s > $t2 s)" \
	test "$exp" -gt "$t2"
ok "... and admits" reach_tcp "$VM_work" 192.0.2.10 443

# The same cached answer for another VM: its own set, its own ports.
ask "$VM_red" www.good.example "$TB_DIR/r1"
read -r h3 _ <<<"$(cache)"
ok "red's answer comes from the cache too (hits $h2 -> $h3)" test "$h3" -gt "$h2"
ok "... and admits red on its port (tcp/22)" reach_tcp "$VM_red" 192.0.2.10 22
blocked "... not on work's (tcp/443)" reach_tcp "$VM_red" 192.0.2.10 443
ok "... while work's element stays work's alone" \
	test "$(elem_expires red_v4_ports "192.0.2.10 . tcp . 443")" = -1
# A name outside red's policy: refused, cached answer or not.
ask "$VM_red" mail.good.example "$TB_DIR/r2"
ask "$VM_work" mail.good.example "$TB_DIR/w2"
ask "$VM_red" mail.good.example "$TB_DIR/r3"
ok "a name outside red's policy is refused, though cached for work" \
	test "$(status_of "$TB_DIR/r3")" = REFUSED -a "$(status_of "$TB_DIR/w2")" = NOERROR
blocked "... and admits nothing for red" reach_tcp "$VM_red" 192.0.2.11 443

# The rebinding guard on a cached answer: work (no allow-private) never
# gets the private and reserved addresses; red (allow-private) gets the
# private ones, on its rule's port.
ask "$VM_red" rebind.good.example "$TB_DIR/b1"
ask "$VM_work" rebind.good.example "$TB_DIR/b2"
read -r h4 _ <<<"$(cache)"
ok "rebind.good.example for work came from the cache (hits $h3 -> $h4)" \
	test "$h4" -gt "$h3"
ok "... without its private address for work" \
	sh -c "! grep -q 192.168.1.1 '$TB_DIR/b2'"
ok "... with it for red (allow-private)" grep -q 192.168.1.1 "$TB_DIR/b1"
ok "... loopback for neither" sh -c "! grep -q 127.0.0.1 '$TB_DIR/b1' '$TB_DIR/b2'"

# Bogus: never kept, SERVFAIL every time, whatever CD says.
read -r hb _ <<<"$(cache)"
for i in 1 2 3; do ask "$VM_work" www.bogus.example "$TB_DIR/x$i" +cd; done
read -r hb2 _ <<<"$(cache)"
ok "a bogus answer: SERVFAIL three times, with CD" \
	test "$(status_of "$TB_DIR/x1")$(status_of "$TB_DIR/x2")$(status_of "$TB_DIR/x3")" = SERVFAILSERVFAILSERVFAIL
ok "... never from the cache (hits $hb -> $hb2)" test "$hb2" = "$hb"
blocked "... and nothing admitted" reach_tcp "$VM_work" 192.0.2.31 443

# Insecure is kept as insecure: a require-dnssec VM gets SERVFAIL from
# the cached answer that another VM may use.
ask "$VM_work" www.insecure.example "$TB_DIR/i1"
ask "$VM_strict" www.insecure.example "$TB_DIR/i2"
ok "an insecure answer cached for work is SERVFAIL for a require-dnssec VM" \
	test "$(status_of "$TB_DIR/i1")" = NOERROR -a "$(status_of "$TB_DIR/i2")" = SERVFAIL

# A TTL of 5 s runs out: asked again (libunbound too, 6.5 s on: it may
# still hand out its own copy at 0 s left for a second), not served at 0.
ask "$VM_work" short.good.example "$TB_DIR/s1"
sleep 6.5
read -r hs _ <<<"$(cache)"
ask "$VM_work" short.good.example "$TB_DIR/s2"
read -r hs2 _ <<<"$(cache)"
ok "a 5 s answer is asked again after 6.5 s (hits $hs -> $hs2)" test "$hs2" = "$hs"
ok "... with a TTL above 0 ($(ttl_of "$TB_DIR/s2"))" test "$(ttl_of "$TB_DIR/s2")" -gt 0

# A reload starts a new libunbound context, and an empty cache with it:
# the trust anchor or the upstreams may have changed.
read -r _ ek <<<"$(cache)"
tb_reload
read -r hr ek2 <<<"$(cache)"
ok "a reload empties the cache ($ek -> $ek2 kept)" test "$ek" -gt 0 -a "$ek2" = 0
ask "$VM_work" www.good.example "$TB_DIR/a3"
read -r hr2 ek3 <<<"$(cache)"
ok "... the next answer comes from libunbound (hits $hr -> $hr2) and is kept" \
	test "$hr2" = "$hr" -a "$ek3" = 1 -a "$(status_of "$TB_DIR/a3")" = NOERROR

tb_done
