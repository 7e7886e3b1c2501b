#!/bin/bash
# One VM's kernel errors never fail another VM's answers. VM work's set is
# made to fail without touching dnsfenced's configuration: first by a
# reload that re-cuts its ports (tcp/443 becomes tcp/443-444) while
# elements for tcp/443 exist (the new range overlaps them), then by filling
# its kernel set with foreign elements. Both VMs ask at the same instant,
# round after round: personal's answers must always be NOERROR with their
# addresses in personal's set, whatever happens to work's.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm personal 2
dw_config <<'C'
ttl:
  min: 60
  max: 300
  grace: 5
limits:
  set-size: 64
C
work_policy() {
	tb_policy work <<-P
	addresses: [10.137.1.10]
	interface: vif1.0
	allow:
	  - name: "*.good.example"
	    ports: [$1]
	P
}
work_policy tcp/443
tb_policy personal <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start

# ask VM NAME OUT: one query, status and A records in OUT.
ask() { dig_vm "$1" +noall +comments +answer "$2" A >"$3" 2>&1 || true; }
status_in() { { grep -o "status: [A-Z]*" "$1" || true; } | awk '{print $2}'; }
addr_in() { awk '$4 == "A" {print $5; exit}' "$1"; }
in_set() { # in_set SET ADDR (not grep -q: with pipefail, nft dying of
	# SIGPIPE after an early match would read as "absent")
	nsx "$FW" nft list set inet dnsfence "$1" |
		grep -E "(^|[ {,])$2 \. tcp \. 443([ ,}]|$)" >/dev/null
}

# rounds DESC PERSONAL-NAMES -- WORK-NAMES: round i sends personal's i-th
# name and work's 2i-1-th and 2i-th names at the same instant.
rounds() {
	local desc=$1 pnames=() wnames=() i=0 bad=0 wfail=0 st a d f p1 p2
	shift
	while [ "$1" != -- ]; do pnames+=("$1"); shift; done
	shift
	wnames=("$@")
	d=$TB_DIR/rounds-$RANDOM
	mkdir -p "$d"
	for i in "${!pnames[@]}"; do
		# (dig's own +time bounds each; wait only for these three)
		ask "$VM_work" "${wnames[$((2 * i))]}" "$d/w$i.a" &
		p1=$!
		ask "$VM_personal" "${pnames[$i]}" "$d/p$i" &
		p2=$!
		ask "$VM_work" "${wnames[$((2 * i + 1))]}" "$d/w$i.b" &
		wait $p1 $p2 $! || true
		st=$(status_in "$d/p$i")
		a=$(addr_in "$d/p$i")
		if [ "$st" != NOERROR ] || [ -z "$a" ] || ! in_set personal_v4_ports "$a"; then
			bad=$((bad + 1))
			echo "#   round $i: personal ${pnames[$i]}: ${st:-no answer} ${a:-} $(grep -o 'EDE.*' "$d/p$i" | head -1)"
		fi
		for f in "$d/w$i.a" "$d/w$i.b"; do
			[ "$(status_in "$f")" = NOERROR ] || wfail=$((wfail + 1))
		done
	done
	WORK_FAILED=$wfail
	ok "$desc: personal's ${#pnames[@]} answers all NOERROR and admitted ($bad not; work: $wfail of ${#wnames[@]} failed)" \
		test "$bad" -eq 0
}

# --- the trigger: work's ports re-cut while tcp/443 elements exist.
for i in $(seq 51 70); do dig_vm "$VM_work" "n$i.fresh.good.example" >/dev/null; done
ok "work holds n51..n70 on tcp/443" in_set work_v4_ports 192.0.2.170
work_policy tcp/443-444
tb_reload
ok "the reload re-cutting work's ports succeeds" grep -q "reloaded" "$TB_DIR/dnsfenced.log"
p=() w=()
for i in $(seq 51 70); do p+=("n$i.fresh.good.example"); w+=("n$i.fresh.good.example" "n$i.fresh.good.example"); done
rounds "re-cut ports (tcp/443 -> tcp/443-444)" "${p[@]}" -- "${w[@]}"

# --- work's kernel set filled with foreign elements (the kernel set holds
# twice set-size): the kernel refuses work's next elements. Since the
# re-cut, work's tcp/443-444 is a range: its elements go to work_v4_ranges.
n=0
for i in $(seq 1 300); do
	nsx "$FW" nft add element inet dnsfence work_v4_ranges \
		"{ 198.51.100.$((i % 250 + 1)) . tcp . $((2000 + 2 * i))-$((2001 + 2 * i)) timeout 1h }" 2>/dev/null || break
	n=$((n + 1))
done
ok "work's kernel set is full after $n foreign elements" test "$n" -lt 300
# The foreign elements are a change of dnsfenced's table: it repairs it
# (keeping them) and answers everyone SERVFAIL meanwhile, as it must. The
# rounds are about work's kernel errors, so they start once the repair
# after the last change is done (slow under valgrind), bounded.
settled() {
	local d r
	d=$(grep -n "by someone else" "$TB_DIR/dnsfenced.log" | tail -n 1 | cut -d: -f1)
	r=$(grep -n "reinstalled table" "$TB_DIR/dnsfenced.log" | tail -n 1 | cut -d: -f1)
	[ "${r:-0}" -gt "${d:-0}" ]
}
for _ in $(seq 600); do settled && break; sleep 0.1; done
ok "... and dnsfenced has repaired its table since" settled
p=() w=()
for i in $(seq 71 90); do p+=("n$i.fresh.good.example"); done
for i in $(seq 1 40); do w+=("n$i.fresh.good.example"); done
rounds "work's set full" "${p[@]}" -- "${w[@]}"
ok "... (the trigger worked: work's fresh names failed: $WORK_FAILED of 40)" \
	test "$WORK_FAILED" -ge 30
ok "... and personal reaches what it resolved" reach_tcp "$VM_personal" 192.0.2.190 443
blocked "... work does not" reach_tcp "$VM_work" 192.0.2.101 443

tb_done
