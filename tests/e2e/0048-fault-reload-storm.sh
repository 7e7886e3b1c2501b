#!/bin/bash
# Fault: a reload storm (issue 10, item 5). 100 reload requests, SIGHUP and
# `dnsfencectl reload` mixed, each flipping the policies between two
# versions (a name rule and a port in and out for work, a name rule for
# dev, a third VM added and removed), while work and dev each ask a loop of
# digs. conntrack-purge is on.
# - Every query is answered: names allowed throughout NOERROR, names never
#   allowed REFUSED, toggled names either; SERVFAIL and timeouts (dig waits
#   12 s) are counted and must not exceed STORM_MAX_FAILED (0). The
#   latencies are printed (never asserted).
# - Every reload succeeds; the last one's configuration is in force
#   (status, the table, why).
# - Nothing outside the final policy is in any kernel set, and every
#   element of a name allowed throughout is still there (those admitted
#   before the storm with their timeouts not shortened, and every one an
#   answer during the storm admitted).
# - Connections opened before the storm to names allowed throughout go on.
# CI runs it in the valgrind pass too, which covers leaks of 100 reloads.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

STORM_MAX_FAILED=${STORM_MAX_FAILED:-0}
RELOADS=100

dw_setup
tb_vm work 1
tb_vm dev 2
dw_config <<'C'
ttl:
  min: 60
  max: 3600
  grace: 5
nftables:
  conntrack-purge: true
C
# version a|b: write the policies of that version, each file replaced at
# once (a reload never reads half a file).
version() {
	local v=$1 f
	{
		cat <<-'P'
		addresses: [10.137.1.10]
		interface: vif1.0
		allow:
		  - name: mail.good.example
		    ports: [tcp/993]
		P
		if [ "$v" = a ]; then
			printf '  - name: "*.good.example"\n    ports: [tcp/443]\n'
			printf '  - name: www.other.example\n    ports: [tcp/443]\n'
		else
			printf '  - name: "*.good.example"\n    ports: [tcp/443, tcp/8080]\n'
		fi
	} >"$TB_DIR/work.new"
	{
		cat <<-'P'
		addresses: [10.137.2.10]
		interface: vif2.0
		allow:
		  - name: www.good.example
		    ports: [tcp/443]
		P
		if [ "$v" = a ]; then
			printf '  - name: "*.other.example"\n    ports: [tcp/443]\n'
		fi
	} >"$TB_DIR/dev.new"
	mv "$TB_DIR/work.new" "$TB_DIR/vms/work.yaml"
	mv "$TB_DIR/dev.new" "$TB_DIR/vms/dev.yaml"
	if [ "$v" = a ]; then
		printf 'addresses: [10.137.3.10]\nallow:\n  - name: "*.good.example"\n' \
			>"$TB_DIR/guest.new"
		mv "$TB_DIR/guest.new" "$TB_DIR/vms/guest.yaml"
	else
		rm -f "$TB_DIR/vms/guest.yaml"
	fi
}
version a
tb_daemon_start
ctl() { "$DNSFENCECTL" -s "$TB_DIR/control.sock" "$@"; }
now_s() { date +%s; }
# expiry_at VM ADDR PORT: the element's expiry as a wall-clock second (-1:
# absent).
expiry_at() {
	local e
	e=$(dw_expires "$1" "$2" tcp "$3")
	if [ "$e" -lt 0 ]; then echo -1; else echo $(($(now_s) + e)); fi
}

# --- before: elements of names allowed in both versions, connections
ok "work resolves www.good.example" dns_is "$VM_work" NOERROR www.good.example
ok "work resolves mail.good.example" dns_is "$VM_work" NOERROR mail.good.example
ok "dev resolves www.good.example" dns_is "$VM_dev" NOERROR www.good.example
ok "work resolves www.other.example (version a)" dns_is "$VM_work" NOERROR www.other.example
declare -A before
for k in "work 192.0.2.10 443" "work 192.0.2.11 993" "dev 192.0.2.10 443"; do
	# shellcheck disable=SC2086 # VM ADDR PORT
	before[$k]=$(expiry_at $k)
done
ok "their elements are in the sets (${before[*]})" \
	test "${before[work 192.0.2.10 443]}" -gt 0 -a \
	"${before[work 192.0.2.11 993]}" -gt 0 -a "${before[dev 192.0.2.10 443]}" -gt 0
# Connections across the storm, a round trip every 300 ms, until the
# storm is over (at most 5 minutes).
tb_bg "$TB_DIR/talk-work.log" "$VM_work" "$PROBE" talk 192.0.2.11 993 1000 300
talk_work=$TB_LAST
tb_bg "$TB_DIR/talk-dev.log" "$VM_dev" "$PROBE" talk 192.0.2.10 443 1000 300
talk_dev=$TB_LAST

# --- the queries: a loop of digs in each VM until $TB_DIR/stop exists
# (at most 10 minutes). One line a query: "NAME STATUS MS" (STATUS
# "timeout": no answer in 12 s).
# "n%": n1..n100.fresh.good.example in turn; "w%": a new name under
# *.wild.good.example each time (never in the cache: each one is resolved
# while the reloads go on).
digloop() { # digloop VMNS NAME...
	local ns=$1
	shift
	tb_bg "$TB_DIR/q-$ns.log" "$ns" bash -c '
		stop=$1
		shift
		end=$(($(date +%s) + 600))
		i=0
		while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
			for n in "$@"; do
				i=$((i + 1))
				case $n in
				n%) n=n$((i % 100 + 1)).fresh.good.example ;;
				w%) n=w$i.$$.wild.good.example ;;
				esac
				out=$(dig +time=12 +tries=1 @10.139.1.1 "$n" 2>&1)
				st=$(sed -n "s/.*status: \([A-Z]*\),.*/\1/p" <<<"$out")
				ms=$(sed -n "s/.*Query time: \([0-9]*\) msec.*/\1/p" <<<"$out")
				echo "$n ${st:-timeout} ${ms:-12000}"
			done
		done' _ "$TB_DIR/stop" "$@"
	LOOP_PID=$TB_LAST
}
digloop "$VM_work" www.good.example mail.good.example www.other.example 'n%' \
	'w%' www.insecure.example
loop_work=$LOOP_PID
digloop "$VM_dev" www.good.example www.other.example mail.good.example
loop_dev=$LOOP_PID
sleep 1

# --- the storm, in rounds of four requests, each with the other version
# of the files: a SIGHUP, another 0 to 150 ms later (two signals close
# together may be one), then at once two `dnsfencectl reload`s together
# (each returns once in force; the second arrives while the first is on
# its way, and the files are read again after it), then a pause of 0 to
# 400 ms. The last version is b.
ver=a
flip() {
	if [ "$ver" = a ]; then ver=b; else ver=a; fi
	version "$ver"
}
t0=$(date +%s%N)
ctl_failed=0 nctl=0 nhup=0
while [ $((nhup + nctl)) -lt "$RELOADS" ]; do
	flip
	kill -HUP "$DAEMON_PID"
	sleep "$(printf '0.%02d' $((RANDOM % 4 * 5)))"
	flip
	kill -HUP "$DAEMON_PID"
	nhup=$((nhup + 2))
	# The last round ends with version b.
	if [ $((nhup + nctl + 2)) -ge "$RELOADS" ]; then version b; else flip; fi
	timeout 30 "$DNSFENCECTL" -s "$TB_DIR/control.sock" reload >/dev/null &
	ctl1=$!
	timeout 30 "$DNSFENCECTL" -s "$TB_DIR/control.sock" reload \
		>/dev/null || ctl_failed=$((ctl_failed + 1))
	wait "$ctl1" || ctl_failed=$((ctl_failed + 1))
	nctl=$((nctl + 2))
	# A reload that never returned: the storm is over (bounded).
	[ "$ctl_failed" -eq 0 ] || break
	# Queries alone for 0 to 400 ms.
	sleep "0.$((RANDOM % 5))"
done
storm_ms=$((($(date +%s%N) - t0) / 1000000))
touch "$TB_DIR/stop"
for pid in "$loop_work" "$loop_dev"; do
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	wait "$pid" || true
done
echo "# $((nhup + nctl)) reload requests ($nhup SIGHUP, $nctl dnsfencectl) in $storm_ms ms"
ok "every dnsfencectl reload returned success within 30 s" test "$ctl_failed" -eq 0
ok "no reload failed (log)" test "$(grep -c "reload failed" "$TB_DIR/dnsfenced.log" || true)" -eq 0
reloads_ok() { ctl -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["reloads"]["ok"])'; }
n=$(reloads_ok)
# Requests that arrive during a reload share the one after it: at least
# one reload a round, at most one a request.
ok "the daemon did $n reloads for $RELOADS requests, all successful" \
	test "$n" -ge $((RELOADS / 4)) -a "$n" -le "$RELOADS"

# --- the answers
# verdicts VMNS ALWAYS TOGGLED NEVER: per name class, the answers seen;
# fails on a NOERROR for a name never allowed, a REFUSED for one always
# allowed, and (counted) SERVFAIL or timeouts.
verdicts() {
	python3 - "$@" <<-'PY'
	import sys
	log, always, toggled, never = sys.argv[1], *[set(a.split(",")) for a in sys.argv[2:5]]
	lines = [l.split() for l in open(log) if l.strip()]
	bad, failed, ms = [], [], []
	count = {}
	for name, st, t in lines:
	    cls = ("always" if name in always or name.endswith((".fresh.good.example",
	                                                        ".wild.good.example"))
	           else "toggled" if name in toggled else "never" if name in never else "?")
	    count[(cls, st)] = count.get((cls, st), 0) + 1
	    ms.append(int(t))
	    if st in ("SERVFAIL", "timeout"):
	        failed.append("%s %s %s" % (name, st, t))
	    elif (cls == "always" and st != "NOERROR") or (cls == "never" and st != "REFUSED") \
	            or (cls == "toggled" and st not in ("NOERROR", "REFUSED")) or cls == "?":
	        bad.append("%s %s (%s)" % (name, st, cls))
	ms.sort()
	pct = lambda p: ms[min(len(ms) - 1, int(len(ms) * p))] if ms else -1
	print("# %d queries: %s" % (len(lines), ", ".join("%s %s %d" % (c, s, n)
	      for (c, s), n in sorted(count.items()))))
	print("# latency ms: p50 %d, p99 %d, max %d" % (pct(0.5), pct(0.99), ms[-1] if ms else -1))
	for x in failed[:10]: print("#   failed: " + x)
	for x in bad[:10]: print("#   wrong: " + x)
	open(log + ".failed", "w").write("%d\n" % len(failed))
	sys.exit(1 if bad or not lines else 0)
	PY
}
ok "work's answers: the policy's, whichever version was in force" \
	verdicts "$TB_DIR/q-$VM_work.log" www.good.example,mail.good.example \
	www.other.example www.insecure.example
ok "dev's answers: the policy's, whichever version was in force" \
	verdicts "$TB_DIR/q-$VM_dev.log" www.good.example www.other.example \
	mail.good.example
nfail=$(($(cat "$TB_DIR/q-$VM_work.log.failed") + $(cat "$TB_DIR/q-$VM_dev.log.failed")))
ok "queries SERVFAIL or unanswered: $nfail (at most $STORM_MAX_FAILED)" \
	test "$nfail" -le "$STORM_MAX_FAILED"

# --- the final configuration is in force
vms() { ctl -j status | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["vms"])))'; }
ok "status: the VMs of the last version (dev work; saw: $(vms))" test "$(vms)" = "dev work"
no_guest() { ! nsx "$FW" nft list table inet dnsfence | grep -q guest; }
ok "the table: nothing of the removed VM guest" no_guest
ok "why: work is not admitted to www.other.example (its rule is gone)" \
	test "$(ctl why work 192.0.2.20 tcp/443 >/dev/null; echo $?)" -eq 1
ok "dig: work's www.other.example is REFUSED" dns_is "$VM_work" REFUSED www.other.example
ok "dig: dev's www.other.example is REFUSED" dns_is "$VM_dev" REFUSED www.other.example
ok "dig: work's *.good.example has tcp/8080 (version b)" dns_is "$VM_work" NOERROR www.good.example
ok "... reached" reach_tcp "$VM_work" 192.0.2.10 8080

# --- the kernel sets: nothing outside the final policy; nothing of a name
# allowed throughout lost
sets() {
	nsx "$FW" nft -j list table inet dnsfence | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    s = item.get("set")
    if not s: continue
    for e in s.get("elem", []):
        el = e.get("elem", e) if isinstance(e, dict) else e
        val = el.get("val") if isinstance(el, dict) else el
        parts = []
        for p in (val["concat"] if isinstance(val, dict) and "concat" in val else [val]):
            if isinstance(p, dict) and "range" in p:
                parts.append("%s-%s" % tuple(p["range"]))
            else:
                parts.append(str(p))
        print(s["name"], " . ".join(parts))'
}
sets >"$TB_DIR/elements"
# The final policy, by address: work: *.good.example on tcp/443 and 8080
# (192.0.2.10-16, the fresh names' 192.0.2.101-200, the wildcard's
# 192.0.2.62), mail.good.example
# (192.0.2.11) on tcp/993; dev: www.good.example (192.0.2.10) on tcp/443.
outside() {
	awk '
	function good(a,  o) { split(a, o, "."); return a ~ /^192\.0\.2\./ &&
		((o[4] >= 10 && o[4] <= 16) || (o[4] >= 101 && o[4] <= 200) ||
		o[4] == 62) }
	$1 == "work_v4_ports" && $4 == "tcp" && ($6 == 443 || $6 == 8080) && good($2) { next }
	$1 == "work_v4_ports" && $2 == "192.0.2.11" && $4 == "tcp" && $6 == 993 { next }
	$1 == "dev_v4_ports" && $2 == "192.0.2.10" && $4 == "tcp" && $6 == 443 { next }
	{ print "# outside the final policy: " $0; n++ }
	END { exit n > 0 }' "$TB_DIR/elements"
}
ok "no element outside the final policy ($(wc -l <"$TB_DIR/elements") elements)" outside
for k in "work 192.0.2.10 443" "work 192.0.2.11 993" "dev 192.0.2.10 443"; do
	# shellcheck disable=SC2086 # VM ADDR PORT
	at=$(expiry_at $k)
	ok "kept from before the storm: $k (expires at $at, was ${before[$k]})" \
		test "$at" -ge $((before[$k] - 1))
done
# Every fresh name work was answered during the storm: its tcp/443
# element is there (TTL 300: none has expired); the wildcard's too.
lost() {
	local n a missing=0
	if grep -q "wild.good.example NOERROR" "$TB_DIR/q-$VM_work.log" &&
		! grep -Fqx "work_v4_ports 192.0.2.62 . tcp . 443" "$TB_DIR/elements"; then
		echo "# lost: *.wild.good.example (192.0.2.62 . tcp . 443)"
		missing=1
	fi
	for n in $(awk '$2 == "NOERROR" && $1 ~ /fresh/ { print $1 }' \
		"$TB_DIR/q-$VM_work.log" | sort -u); do
		a=${n%%.*}
		a=192.0.2.$((${a#n} + 100))
		grep -Fqx "work_v4_ports $a . tcp . 443" "$TB_DIR/elements" && continue
		echo "# lost: $n ($a . tcp . 443)"
		missing=$((missing + 1))
	done
	[ "$missing" -eq 0 ]
}
ok "every element an answer admitted during the storm for a name allowed throughout is still there" lost

# --- connections
for c in "work $talk_work" "dev $talk_dev"; do
	read -r vm pid <<<"$c"
	ok "$vm's connection opened before the storm is still going" kill -0 "$pid"
	ok "... and has not failed a round trip" \
		test "$(grep -c failed "$TB_DIR/talk-$vm.log" || true)" -eq 0
done
purged=$(grep -c "conntrack purge: ended" "$TB_DIR/dnsfenced.log" || true)
echo "# conntrack purge log lines: $purged"

tb_done
