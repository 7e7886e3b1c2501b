#!/bin/bash
# nftables: conntrack-purge at scale. A changed VM with 140,000 open
# connections (more than two rounds of the 65,536-entry cap) that the new
# policy no longer admits, next to 20,000 admitted elements of another VM:
# every one of them is ended (a VM cannot keep one by opening more than
# the cap of others), and quickly: each connection is judged against the
# VM's own elements at its address, not by a walk of every element of
# every VM (which took about 20 s here, the daemon answering nothing
# meanwhile). The unchanged VM's connection goes on. The entries are made
# over ctnetlink (tests/tools/ctnew.py) as if the flows had passed; eight
# of them are real connections (`probe talk`).
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"
CTNEW=$(cd "$(dirname "$0")/../tools" && pwd)/ctnew.py
N=140000
NELEM=20000

dw_setup
tb_vm work 1
tb_vm dev 2
dw_config <<C
nftables:
  conntrack-purge: true
C
work_policy() { # work_policy EXTRA-ALLOW-YAML
	{
		cat <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
		cat
	} | tb_policy work
}
work_policy <<'P'
  - net: 192.0.2.40/32
P
tb_policy dev <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start
ok "dev resolves www" dns_is "$VM_dev" NOERROR www.good.example

# dev's set gets NELEM more elements (as if it had resolved that many
# names), adopted at the next start. Public addresses (198.18.0.0/15):
# private ones would be pruned by the rebinding guard at that start.
tb_daemon_stop TERM
python3 - "$NELEM" >"$TB_DIR/elems.nft" <<'PY'
import sys
n = int(sys.argv[1])
for s in range(0, n, 2000):
    print("add element inet dnsfence dev_v4_ports { %s }" % ", ".join(
        '198.%d.%d.%d . tcp . 443 timeout 1h comment "www.good.example"'
        % (18 + i // 65536, i // 256 % 256, i % 256)
        for i in range(s, min(n, s + 2000))))
PY
ok "$NELEM elements added to dev's set" nsx "$FW" nft -f "$TB_DIR/elems.nft"
tb_daemon_start
ok "the start adopted them" \
	grep -qE "adopted $((NELEM + 1)) elements" "$TB_DIR/dnsfenced.log"

declare -a talks
for i in 1 2 3 4 5 6 7 8; do
	tb_bg "$TB_DIR/talk$i.log" "$VM_work" "$PROBE" talk 192.0.2.40 443 150 200
	talks+=("$TB_LAST")
done
tb_bg "$TB_DIR/talk-dev.log" "$VM_dev" "$PROBE" talk 192.0.2.10 443 60 200
devtalk=$TB_LAST
sleep 1
ok "$N more connections of work (ctnetlink)" \
	nsx "$FW" python3 "$CTNEW" 10.137.1.10 192.0.2.40 udp 9000 "$N"
ok "... in the table" test "$(nsx "$FW" python3 "$CTNEW" count)" -ge "$N"

# work loses 192.0.2.40.
work_policy </dev/null
t0=$(date +%s%N)
kill -HUP "$DAEMON_PID"
ok "the purge is logged" \
	tb_wait_for "$TB_DIR/dnsfenced.log" "conntrack purge: ended" 60
ms=$((($(date +%s%N) - t0) / 1000000))
# A bound against a pathological purge (a dump per deletion, a round trip
# per entry), not a speed claim: four times as long under a wrapper
# (valgrind: tests/run-all gives it --timeout-multiplier 4 too).
limit=8000
[ -n "${DNSFENCE_WRAP:-}" ] && limit=32000
ok "... within $((limit / 1000)) s of the reload (${ms} ms)" test "$ms" -le "$limit"
ended=$(sed -n 's/.*conntrack purge: ended \([0-9]*\) of \([0-9]*\) .*/\1 \2/p' \
	"$TB_DIR/dnsfenced.log")
read -r n_ended n_judged <<<"$ended"
ok "every connection of work no longer admitted is ended ($ended)" \
	test "${n_ended:-0}" -ge $((N + 8)) -a "${n_ended:-0}" -eq "${n_judged:-1}"
ok "none is left over" eval '! grep -q "could not be ended" "$TB_DIR/dnsfenced.log"'
for i in "${!talks[@]}"; do
	rc=0
	for _ in $(seq 100); do kill -0 "${talks[$i]}" 2>/dev/null || break; sleep 0.1; done
	wait "${talks[$i]}" || rc=$?
	ok "work's real connection $((i + 1)) is cut" test "$rc" -eq 1
done
rc=0
for _ in $(seq 200); do kill -0 "$devtalk" 2>/dev/null || break; sleep 0.1; done
wait "$devtalk" || rc=$?
ok "dev's connection (dev unchanged) went on" test "$rc" -eq 0

tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
tb_done
