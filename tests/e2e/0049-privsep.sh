#!/bin/bash
# Privilege separation (issue 10, doc/privsep.md). dnsfenced is two
# processes: the privileged parent (root, CAP_NET_ADMIN) and the engine
# (user dnsfence, no capabilities, no_new_privs, chrooted in an empty
# directory). Admission works across the split. A compromised engine,
# played by tests/tools/privforge writing forged frames into the engine's
# own channel, gets in only what the VM's policy could admit: a port no
# rule names, a timeout beyond the bound, another VM's address, a private
# one, an address range, a table are all refused and nothing of them
# reaches the kernel; a malformed frame ends the engine and the parent.
# Faults: SIGKILL of the engine mid-load, SIGKILL of the parent, the
# engine out of memory (prlimit --as): the other ends too, nothing
# already admitted is lost, nothing new is admitted, and a restart adopts
# every element.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"
: "${PRIVFORGE:?PRIVFORGE must name the privforge binary}"

dw_setup
tb_vm work 1
tb_vm other 2
dw_config <<'C'
ttl:
  max: 300
  grace: 10
C
# The net rule ended half an hour ago: no install may bring it back.
tb_policy work <<P
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - net: 192.0.2.20/32
    ports: [tcp/8443]
    until: $(date -u -d "@$(($(date +%s) - 1800))" +%Y-%m-%dT%H:%M:%SZ)
P
tb_policy other <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: www.other.example
    ports: [tcp/443]
P
tb_daemon_start
log=$TB_DIR/dnsfenced.log

engine_of() { ps -o pid= --ppid "$1" | tr -d ' ' | head -1; }
status_field() { awk -v f="$2:" '$1 == f { $1 = ""; print substr($0, 2) }' "/proc/$1/status"; }
# (fields separated by one space)
# Bit 12 of a capability mask: CAP_NET_ADMIN.
has_net_admin() { (((0x$1 >> 12) & 1)); }
# Every element of work's v4 ports set, one per line, sorted.
work_elems() {
	nsx "$FW" nft -j list set inet dnsfence work_v4_ports | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    s = item.get("set")
    for e in (s or {}).get("elem", []):
        el = e["elem"]["val"]["concat"] if isinstance(e, dict) and "elem" in e else e["concat"]
        print(" ".join(str(p["range"][0]) if isinstance(p, dict) else str(p) for p in el))' | sort
}
# ... those with more than 120 s left (a check that outlasts shorter ones).
work_lasting() {
	nsx "$FW" nft -j list set inet dnsfence work_v4_ports | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    s = item.get("set")
    for e in (s or {}).get("elem", []):
        if not isinstance(e, dict) or "elem" not in e or e["elem"].get("expires", 0) <= 120:
            continue
        el = e["elem"]["val"]["concat"]
        print(" ".join(str(p["range"][0]) if isinstance(p, dict) else str(p) for p in el))' | sort
}
in_work() { work_elems | grep -qx "$1 tcp 443"; }
wait_gone() {
	local i
	for i in $(seq 50); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}
# Wait for the daemon started by tb_daemon_start to end; its status in
# ST (99: still running). Not in $( ): wait needs this shell.
daemon_wait() {
	ST=0
	wait_gone "$DAEMON_PID" || { ST=99; return 0; }
	wait "$DAEMON_PID" 2>/dev/null || ST=$?
}

# ---- the two processes -----------------------------------------------------
ENG=$(engine_of "$DAEMON_PID")
ok "dnsfenced has an engine process" test -n "$ENG"
uid=$(id -u dnsfence)
gid=$(id -g dnsfence)
echo "# ps:"
ps -o pid,ppid,user,group,args -p "$DAEMON_PID,$ENG" | sed 's/^/#   /'
for p in "$DAEMON_PID" "$ENG"; do
	echo "# /proc/$p/status: Uid $(status_field "$p" Uid) Gid $(status_field "$p" Gid) CapEff $(status_field "$p" CapEff) CapPrm $(status_field "$p" CapPrm) CapBnd $(status_field "$p" CapBnd) NoNewPrivs $(status_field "$p" NoNewPrivs) root $(readlink "/proc/$p/root")"
done
ok "the parent runs as root" test "$(status_field "$DAEMON_PID" Uid)" = "0 0 0 0"
ok "... with CAP_NET_ADMIN" has_net_admin "$(status_field "$DAEMON_PID" CapEff)"
ok "the engine runs as dnsfence (real, effective, saved, fs uid)" \
	test "$(status_field "$ENG" Uid)" = "$uid $uid $uid $uid"
ok "... and its group, with no other group" \
	test "$(status_field "$ENG" Gid)" = "$gid $gid $gid $gid" -a \
	"$(status_field "$ENG" Groups)" = "$gid"
ok "... with no effective or permitted capability" \
	test "$(status_field "$ENG" CapEff)" = 0000000000000000 -a \
	"$(status_field "$ENG" CapPrm)" = 0000000000000000
ok "... without CAP_NET_ADMIN even in its bounding set" \
	bash -c "! (( (0x$(status_field "$ENG" CapBnd) >> 12) & 1 ))"
ok "... with no_new_privs" test "$(status_field "$ENG" NoNewPrivs)" = 1
root=$(readlink "/proc/$ENG/root")
if grep -q "engine: not chrooted (a sanitizer build" "$log"; then
	# LeakSanitizer reads /proc at exit (src/privsep.c, CHROOTED).
	echo "# a sanitizer build: the engine is not chrooted"
	root=$(readlink "/proc/$ENG/cwd")
else
	ok "... chrooted in its own directory ($root)" \
		bash -c "[[ '$root' == /run/dnsfence/engine.* ]]"
fi
ok "... holding only the copies libunbound reads" \
	test "$(cd "$root" && find . | sort | tr '\n' ' ')" = ". ./g1 ./g1/root-hints ./g1/trust-anchor "

# ---- admission across the split ---------------------------------------------
ok "www.good.example resolves for work" \
	test "$(dw_addrs "$VM_work" www.good.example)" = 192.0.2.10
ok "... its element is in work's set" in_work 192.0.2.10
ok "... and work connects" reach_tcp "$VM_work" 192.0.2.10 443
ok "a reload goes through the parent (generation 2)" \
	bash -c "'$DNSFENCECTL' -s '$TB_DIR/control.sock' reload >/dev/null && test -d '$root/g2'"
ok "... and admission goes on" \
	test "$(dw_addrs "$VM_work" mail.good.example)" = 192.0.2.11

# ---- a compromised engine --------------------------------------------------
refusals() { grep -c "refused the engine's transaction" "$log" || true; }
forge() {
	local before
	before=$(refusals)
	"$PRIVFORGE" "$ENG" "$@" || return 2
	for _ in $(seq 30); do
		[ "$(refusals)" -gt "$before" ] && return 0
		sleep 0.1
	done
	return 1
}
# The forgery works: an element work's policy could admit goes in.
"$PRIVFORGE" "$ENG" add work v4_ports 192.0.2.77 tcp 443 60000
sleep 0.5
ok "a forged element the policy could admit goes in (the forgery works)" \
	in_work 192.0.2.77
ok "a port no rule of work names: refused" \
	forge add work v4_ports 192.0.2.78 tcp 22 60000
work_elems >"$TB_DIR/elems.txt"
ok "... not in the set" bash -c "! grep -q '^192.0.2.78 ' '$TB_DIR/elems.txt'"
ok "a timeout beyond ttl.max + grace + 1 s: refused" \
	forge add work v4_ports 192.0.2.79 tcp 443 311001
ok "another VM's address: refused" \
	forge add work v4_ports 10.137.2.10 tcp 443 60000
ok "a private address (no allow-private): refused" \
	forge add work v4_ports 10.99.0.5 tcp 443 60000
ok "loopback: refused" forge add work v4 127.0.0.1 - 0 60000
ok "a set without ports for a VM whose rules all name ports: refused" \
	forge add work v4 192.0.2.82 - 0 60000
ok "an address range (a key end with another address): refused" \
	forge range work v4_ports 192.0.2.81 192.0.2.200 tcp 443 60000
ok "a set of no VM: refused" forge add nobody v4_ports 192.0.2.83 tcp 443 60000
ok "a table: refused" forge table evil
installs() { grep -c "installed generation" "$log" || true; }
n=$(installs)
"$PRIVFORGE" "$ENG" install 2 $(($(date +%s) - 3600))
for _ in $(seq 30); do [ "$(installs)" -gt "$n" ] && break; sleep 0.1; done
ok "an install as in force an hour ago goes in as in force now" \
	test "$(installs)" -gt "$n"
ok "... so the rule that ended is not brought back" \
	bash -c "! ip netns exec '$FW' nft list table inet dnsfence | grep -q 8443"
ok "an install as in force in a year (rules ended early): refused" \
	forge install 2 $(($(date +%s) + 31536000))
ok "an install of a generation never loaded: refused" \
	forge install 9 "$(date +%s)"
ok "an install of the generation before the one installed (a rollback): refused" \
	forge install 1 "$(date +%s)"
work_elems >"$TB_DIR/elems.txt"
ok "none of them reached the kernel" \
	bash -c "! grep -qE '^(192\.0\.2\.(78|79|81|82|83|1[0-9][0-9])|10\.137\.2\.10|10\.99\.0\.5) ' '$TB_DIR/elems.txt'"
ok "... nor loopback into work's set without ports" \
	bash -c "! ip netns exec '$FW' nft list set inet dnsfence work_v4 | grep -q 127.0.0.1"
ok "... nor a table" bash -c "! ip netns exec '$FW' nft list tables | grep -q evil"
ok "the engine still serves after the refusals" \
	test "$(dw_addrs "$VM_work" deep.sub.good.example)" = 192.0.2.13
before=$(work_elems)
"$PRIVFORGE" "$ENG" garbage
daemon_wait
ok "a malformed frame ends the engine and the parent (status $ST)" test "$ST" = 1
ok "... the engine is gone" wait_gone "$ENG"
ok "... every element stays" test "$(work_elems)" = "$before"

# ---- SIGKILL of the engine, mid-load ----------------------------------------
tb_daemon_start
ok "a restart adopts every element" test "$(work_elems)" = "$before"
ENG=$(engine_of "$DAEMON_PID")
(for i in $(seq 400); do dig_vm "$VM_work" +short "n$i.wild.good.example" >/dev/null 2>&1 || true; done) </dev/null &
LOAD=$!
sleep 1
before=$(work_elems)
kill -9 "$ENG"
daemon_wait
ok "SIGKILL of the engine mid-load: the parent exits (status $ST)" test "$ST" = 1
after=$(work_elems)
ok "... nothing admitted before is lost" \
	bash -c "comm -23 <(echo '$before') <(echo '$after') | wc -l | grep -qx 0"
ok "... no answer reaches the VM" \
	bash -c "! ip netns exec '$VM_work' dig +time=1 +tries=1 @10.139.1.1 fresh1.wild.good.example | grep -q 'status: NOERROR'"
kill "$LOAD" 2>/dev/null || true
wait "$LOAD" 2>/dev/null || true
sleep 1
ok "... nothing new is admitted after it" test "$(work_elems)" = "$after"
tb_daemon_start
ok "... a restart adopts every element" \
	bash -c "comm -23 <(echo '$after') <(echo '$(work_elems)') | wc -l | grep -qx 0"
ok "... and admits again" test "$(dw_addrs "$VM_work" short.good.example)" = 192.0.2.12

# ---- SIGKILL of the parent ---------------------------------------------------
ENG=$(engine_of "$DAEMON_PID")
before=$(work_elems)
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
ok "SIGKILL of the parent: the engine exits" wait_gone "$ENG"
ok "... every element stays" test "$(work_elems)" = "$before"

# ---- an engine that ignores an until --------------------------------------
# other gets a rule that ends in 6 s; the engine is stopped (as one that
# ignores its timer would be): 10 s after the until the parent installs
# the configuration without it itself, and stops the engine.
tb_daemon_start
ENG=$(engine_of "$DAEMON_PID")
end=$(($(date +%s) + 6))
tb_policy other <<P
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: www.other.example
    ports: [tcp/443]
  - net: 192.0.2.30/32
    ports: [tcp/443]
    until: $(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)
P
tb_reload
ok "a rule with an until is in force" reach_tcp "$VM_other" 192.0.2.30 443
kill -STOP "$ENG"
for _ in $(seq 300); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
daemon_wait
ok "an engine that ignores an until: the parent ends it (status $ST, $(( $(date +%s) - end )) s after the until)" \
	test "$ST" = 1
ok "... having installed the configuration without the rule itself" \
	grep -q "installing generation .* as in force now" "$log"
blocked "... which no longer admits" reach_tcp "$VM_other" 192.0.2.30 443
kill -CONT "$ENG" 2>/dev/null || true
ok "... the engine is gone" wait_gone "$ENG"

# ---- the engine out of memory ----------------------------------------------
tb_daemon_start
ENG=$(engine_of "$DAEMON_PID")
before=$(work_lasting)
vsz=$(awk '/^VmSize:/ { print $2 }' "/proc/$ENG/status")
# Address space for a few more megabytes, no more. Set as the engine's own
# user: root here may lack CAP_SYS_RESOURCE, which prlimit on another
# user's process needs.
setpriv --reuid="$uid" --regid="$gid" --clear-groups \
	prlimit --pid "$ENG" --as=$(((vsz + 6144) * 1024))
answered=0
for i in $(seq 600); do
	out=$(dig_vm "$VM_work" "m$i.wild.good.example" 2>&1 || true)
	[[ $out == *"status: NOERROR"* ]] && answered=$((answered + 1))
	kill -0 "$ENG" 2>/dev/null || break
done
if kill -0 "$ENG" 2>/dev/null; then
	echo "# the engine lived through its limit ($answered answered)"
	ok "... every NOERROR answer's address is in the set (add before answer)" \
		bash -c "[ $answered -eq 0 ] || ip netns exec '$FW' nft list set inet dnsfence work_v4_ports | grep -q '192.0.2.62 . tcp . 443'"
	tb_daemon_stop TERM || true
else
	daemon_wait
	echo "# the engine died of its limit after $i queries ($answered answered):"
	grep -vE "answered|servfail|refused" "$log" | tail -n 4 | sed 's/^/#   /'
	ok "out of memory: the engine's death ends the parent (status $ST)" test "$ST" = 1
	# libunbound frees our event base when it cannot set up its worker
	# on it: the engine must end at once, not return to the freed loop.
	ok "... an exit of its own, not a crash" \
		bash -c "grep -q 'the engine exited with status 1' '$log' && ! grep -q 'killed by signal' '$log'"
fi
after=$(work_elems)
ok "out of memory: nothing admitted before is lost" \
	bash -c "comm -23 <(echo '$before') <(echo '$after') | wc -l | grep -qx 0"
ok "... nothing outside the policy was admitted" \
	bash -c "echo '$after' | awk '\$2 != \"tcp\" || \$3 != 443' | wc -l | grep -qx 0"
DAEMON_PID=
tb_done
