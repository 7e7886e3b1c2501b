#!/bin/bash
# Timing invariants: an address is in the VM's set before the answer leaves
# (a connect issued the instant the answer arrives never races); answers
# from the cache re-arm elements; expiry is extended, never shortened; an
# element that runs out blocks new connections while an established one
# lives on.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config <<'C'
ttl:
  min: 10
  max: 3600
  grace: 2
C
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start
if [ "${DNSFENCE_FORCE_DELADD:-}" = 1 ]; then
	ok "the delete + add path is in use (DNSFENCE_FORCE_DELADD=1)" \
		grep -q "delete + add (forced)" "$TB_DIR/dnsfenced.log"
fi

# --- add before answer: 100 fresh names, 100 fresh addresses, each
# connected to with no delay at all after its answer (one SYN, 900 ms).
names=()
for i in $(seq 1 100); do names+=("n$i.fresh.good.example"); done
ok "100 connects issued the instant each answer arrived all succeed" \
	nsx "$VM_work" "$PROBE" race 10.139.1.1 443 "${names[@]}"
n=$(nsx "$FW" nft list set inet dnsfence work_v4_ports | grep -o "192\.0\.2\.[0-9]* \. tcp \. 443" | wc -l)
ok "... and all 100 elements are in the set ($n)" test "$n" -ge 100

# --- cache hits re-arm. short.good.example has TTL 5: its element lives
# min + grace = 12 s. Four seconds on, the answer comes from the cache
# with TTL ~1, and must push the element out to 12 s from then.
dig_vm "$VM_work" short.good.example >/dev/null
e1=$(dw_expires work 192.0.2.12 tcp 443)
sleep 4
dig_vm "$VM_work" short.good.example >/dev/null
e2=$(dw_expires work 192.0.2.12 tcp 443)
ok "a cache hit re-arms the element ($e1 s, then 4 s later $e2 s)" \
	test "$e2" -gt 10

# --- never shortened: www (TTL 300) and short2 (TTL 5) are one address.
dig_vm "$VM_work" www.good.example >/dev/null
e1=$(dw_expires work 192.0.2.10 tcp 443)
dig_vm "$VM_work" short2.good.example >/dev/null
e2=$(dw_expires work 192.0.2.10 tcp 443)
ok "an answer with a shorter TTL never shortens an element ($e1 s -> $e2 s)" \
	test "$e2" -gt 290

# --- answers from the cache whose elements already live long enough cost
# no netlink round trip: the element was armed a second longer than the
# answer needs, so each hit (its TTL counted down in whole seconds) finds
# it long enough. Counted by the daemon, read through dnsfencectl.
admission() { # admission KEY: from dnsfencectl status -j
	"$DNSFENCECTL" -s "$TB_DIR/control.sock" -j status |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["admission"][sys.argv[1]])' "$1"
}
dig_vm "$VM_work" mail.good.example >/dev/null
noop0=$(admission noop)
batches0=$(admission batches)
for _ in $(seq 1 10); do dig_vm "$VM_work" mail.good.example >/dev/null; sleep 0.23; done
noop1=$(admission noop)
batches1=$(admission batches)
ok "10 cache hits over 2.3 s needed no batch ($((noop1 - noop0)) needing no change, $((batches1 - batches0)) batches)" \
	test $((noop1 - noop0)) -eq 10 -a $((batches1 - batches0)) -eq 0

# --- expiry: a new connection fails, an established one goes on.
# Stop asking for short.good.example and let its element run out, with a
# connection opened while it was alive.
dig_vm "$VM_work" short.good.example >/dev/null
ok "short.good.example is reachable while its element lives" \
	reach_tcp "$VM_work" 192.0.2.12 443
tb_bg "$TB_DIR/talk.log" "$VM_work" "$PROBE" talk 192.0.2.12 443 16 1000
talk_pid=$TB_LAST
for _ in $(seq 200); do
	[ "$(dw_expires work 192.0.2.12 tcp 443)" = -1 ] && break
	sleep 0.1
done
ok "the element has expired" test "$(dw_expires work 192.0.2.12 tcp 443)" = -1
blocked "a new connection is now dropped" reach_tcp "$VM_work" 192.0.2.12 443
rc=0
for _ in $(seq 300); do kill -0 "$talk_pid" 2>/dev/null || break; sleep 0.1; done
wait "$talk_pid" || rc=$?
ok "the connection established before expiry kept working throughout" \
	test "$rc" -eq 0
ok "asking again opens it again" dns_is "$VM_work" NOERROR short.good.example
ok "... at once" reach_tcp "$VM_work" 192.0.2.12 443

tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
tb_done
