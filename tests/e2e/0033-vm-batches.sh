#!/bin/bash
# One transaction per VM (tests/mutation m41): two VMs ask for the same
# uncached name at the same instant, so libunbound answers both in the
# same loop iteration; the kernel refuses work's element (a range added by
# hand overlaps it: work's tcp/443-444 is a range, in its interval set,
# where elements may not overlap; the daemon cannot foresee that).
# personal's answer must come through every time.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm personal 2
dw_config </dev/null
for v in work:1:tcp/443-444 personal:2:tcp/443; do
	IFS=: read -r vm i ports <<<"$v"
	tb_policy "$vm" <<-P
	addresses: [10.137.$i.10]
	interface: vif$i.0
	allow:
	  - name: "*.good.example"
	    ports: [$ports]
	P
done
tb_daemon_start

reinstalled() { grep -c "reinstalled table" "$TB_DIR/dnsfenced.log" || true; }
n=$(reinstalled)
for i in $(seq 81 95); do
	nsx "$FW" nft add element inet dnsfence work_v4_ranges \
		"{ 192.0.2.1$i . tcp . 400-500 timeout 1h }"
done
for _ in $(seq 100); do [ "$(reinstalled)" -gt "$n" ] && break; sleep 0.05; done
sleep 0.3

status_in() { { grep -o "status: [A-Z]*" "$1" || true; } | awk '{print $2}'; }
bad=0 wok=0
for i in $(seq 81 95); do
	dig_vm "$VM_work" "n$i.fresh.good.example" >"$TB_DIR/w$i" 2>&1 &
	w=$!
	dig_vm "$VM_personal" "n$i.fresh.good.example" >"$TB_DIR/p$i" 2>&1 &
	p=$!
	wait "$w" "$p" || true
	[ "$(status_in "$TB_DIR/w$i")" = NOERROR ] && wok=$((wok + 1))
	if [ "$(status_in "$TB_DIR/p$i")" != NOERROR ]; then
		bad=$((bad + 1))
		echo "# n$i: personal got $(status_in "$TB_DIR/p$i")"
	fi
done
ok "work's answers fail: the kernel refuses its elements ($wok of 15 NOERROR)" \
	test "$wok" -eq 0
ok "personal's 15 answers for the same names all come through ($bad failed)" \
	test "$bad" -eq 0
ok "... and are admitted" reach_tcp "$VM_personal" 192.0.2.195 443

tb_done
