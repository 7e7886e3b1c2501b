#!/bin/bash
# Fault: the upstream stopped, then back (issue 10, item 5). nsd, the only
# authoritative server of the mini-internet, is stopped (its address stays:
# queries to it are refused) and started again. Meanwhile:
# - a name not in the cache is SERVFAIL with an Extended DNS Error, within
#   the daemon's 10 s query timeout (never a hang), and admits nothing;
# - a name still in the cache is answered from it (interface.md: "This
#   holds for answers from the cache too"), for another VM too, and every
#   address of such an answer is in that VM's set for at least the TTL it
#   hands out + grace before the answer arrives;
# - names outside the policy are still REFUSED at once;
# - every element admitted before stays, its timeout not shortened, and a
#   TCP connection opened before goes on.
# Once nsd is back, every name resolves and admits again within a bounded
# wait (60 s; the time each took is printed), and until then each answer
# is SERVFAIL with an EDE: a failure libunbound remembers for 5 s after it
# gave up on a name included (it came back as an "answered" SERVFAIL
# without an EDE before the fix in server.c).
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm dev 2
dw_config <<'C'
ttl:
  min: 30
  max: 600
  grace: 5
C
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - name: mail.good.example
    ports: [tcp/993]
  - name: "*.other.example"
    ports: [tcp/443]
P
tb_policy dev <<'P'
addresses: [10.137.2.10]
interface: vif2.0
allow:
  - name: www.good.example
    ports: [tcp/443]
P
tb_daemon_start
GRACE=5

now_s() { date +%s; }
# ask VM NAME [dig options]: one query, waiting up to 12 s (the daemon's
# own timeout is 10 s). Sets A_STATUS (or "timeout"), A_MS (wall time),
# A_EDE (dig's EDE line, or empty), A_TTL (the first A record's TTL).
ask() {
	local vm=$1 t0 out
	shift
	t0=$(date +%s%N)
	out=$(nsx "$vm" dig +time=12 +tries=1 @10.139.1.1 "$@" 2>&1) || true
	A_MS=$((($(date +%s%N) - t0) / 1000000))
	A_STATUS=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
	[ -n "$A_STATUS" ] || A_STATUS=timeout
	A_EDE=$(grep -m1 '; EDE:' <<<"$out" || true)
	A_TTL=$(awk '/^;; ANSWER SECTION/ { f = 1; next }
		f && $4 == "A" { print $2; exit }' <<<"$out")
}
# expiry_at VM ADDR PORT: the element's expiry as a wall-clock second
# (-1: absent).
expiry_at() {
	local e
	e=$(dw_expires "$1" "$2" tcp "$3")
	if [ "$e" -lt 0 ]; then echo -1; else echo $(($(now_s) + e)); fi
}
# kept VM ADDR PORT AT: the element is there, expiring no earlier than AT
# (a second of slack: nft rounds the time left down).
kept() {
	local at
	at=$(expiry_at "$1" "$2" "$3")
	[ "$at" -ge $(($4 - 1)) ] && return 0
	echo "# $2 . tcp . $3: expires at $at, was $4"
	return 1
}
# cached_admitted VM NAME ADDR: NOERROR, and ADDR is in VM's set (tcp/443)
# for at least the TTL handed out + grace.
cached_admitted() {
	local e ns
	eval "ns=\$VM_$1"
	ask "$ns" "$2"
	e=$(dw_expires "$1" "$3" tcp 443)
	echo "# $2 for $1: $A_STATUS in $A_MS ms, TTL ${A_TTL:-none}, element $e s"
	[ "$A_STATUS" = NOERROR ] && [ -n "$A_TTL" ] &&
		[ "$e" -ge $((A_TTL + GRACE)) ]
}

# asker NAME SECS: in the background, from work, ask for NAME until it is
# NOERROR or SECS have passed, one line per answer: "SECONDS STATUS EDES
# QUERY-MS" (STATUS "timeout" when dig got nothing in 12 s).
asker() {
	tb_bg "$TB_DIR/ask-$1.log" "$VM_work" bash -c '
		t0=$(date +%s)
		while [ $(($(date +%s) - t0)) -lt "$2" ]; do
			out=$(dig +time=12 +tries=1 @10.139.1.1 "$1" 2>&1)
			st=$(sed -n "s/.*status: \([A-Z]*\),.*/\1/p" <<<"$out")
			ms=$(sed -n "s/.*Query time: \([0-9]*\) msec.*/\1/p" <<<"$out")
			echo "$(($(date +%s) - t0)) ${st:-timeout} $(grep -c "; EDE:" <<<"$out") ${ms:--1}"
			[ "$st" = NOERROR ] && exit 0
			sleep 0.5
		done
		exit 1' _ "$1" "$2"
	ASKER_PID=$TB_LAST
}
# asked NAME: wait (bounded) for NAME's asker.
asked() {
	for _ in $(seq 900); do kill -0 "${asker_pid[$1]}" 2>/dev/null || break; sleep 0.1; done
	wait "${asker_pid[$1]}" 2>/dev/null || true
}
declare -A asker_pid

# --- before: admitted elements, a connection, a short-lived cache entry
ok "work resolves www.good.example" dns_is "$VM_work" NOERROR www.good.example
ok "... mail.good.example" dns_is "$VM_work" NOERROR mail.good.example
ok "... short.good.example (TTL 5)" dns_is "$VM_work" NOERROR short.good.example
short_at=$(now_s)
www_at=$(expiry_at work 192.0.2.10 443)
mail_at=$(expiry_at work 192.0.2.11 993)
shortel_at=$(expiry_at work 192.0.2.12 443)
ok "their elements are in work's set" \
	test "$www_at" -gt 0 -a "$mail_at" -gt 0 -a "$shortel_at" -gt 0
# A connection across the whole fault: a round trip every 300 ms for 60 s.
tb_bg "$TB_DIR/talk.log" "$VM_work" "$PROBE" talk 192.0.2.11 993 200 300
talk_pid=$TB_LAST

# --- the fault
ok "nsd stopped" mi_stop
refused_at_up() { ! nsx "$UP" dig +time=1 +tries=1 @"$MI_NS" www.good.example >/dev/null 2>&1; }
ok "... the upstream no longer answers" refused_at_up
ok "a name still in the cache is answered, its element long enough" \
	cached_admitted work www.good.example 192.0.2.10
ok "... for another VM too (now in dev's set)" \
	cached_admitted dev www.good.example 192.0.2.10
ok "... and dev reaches it" reach_tcp "$VM_dev" 192.0.2.10 443
refused_at_once() {
	ask "$VM_work" www.example.org
	echo "# www.example.org: $A_STATUS in $A_MS ms, $A_EDE"
	[ "$A_STATUS" = REFUSED ] && [[ $A_EDE == *"15 (Blocked)"* ]]
}
ok "a name outside the policy: REFUSED (EDE 15), as before" refused_at_once

# Names the cache cannot answer, asked at once: short.good.example once
# its 5 s in the cache have run out.
while [ $(($(now_s) - short_at)) -le 6 ]; do sleep 0.5; done
slow=(n1.fresh.good.example www.other.example short.good.example)
for n in "${slow[@]}"; do
	asker "$n" 1
	asker_pid[$n]=$ASKER_PID
done
# one_servfail NAME: a single answer, SERVFAIL with an EDE, within the
# daemon's 10 s timeout (dig's Query time, 500 ms of slack).
one_servfail() {
	asked "$1"
	sed "s/^/# $1: /" "$TB_DIR/ask-$1.log"
	awk '{ n++; if ($2 == "SERVFAIL" && $3 == 1 && $4 >= 0 && $4 <= 10500) good++ }
		END { exit !(n == 1 && good == 1) }' "$TB_DIR/ask-$1.log"
}
ok "a name never asked: SERVFAIL with an EDE, within the timeout" \
	one_servfail n1.fresh.good.example
ok "a name of a zone never visited: SERVFAIL with an EDE" \
	one_servfail www.other.example
ok "a name whose cache entry ran out: SERVFAIL with an EDE" \
	one_servfail short.good.example
ok "... none of them admitted anything (n1.fresh)" \
	test "$(dw_expires work 192.0.2.101 tcp 443)" = -1
ok "... (www.other.example)" test "$(dw_expires work 192.0.2.20 tcp 443)" = -1
blocked "... n1.fresh.good.example's address is not reached" \
	reach_tcp "$VM_work" 192.0.2.101 443
ok "www.good.example's element kept, not shortened" kept work 192.0.2.10 443 "$www_at"
ok "mail.good.example's element kept, not shortened" kept work 192.0.2.11 993 "$mail_at"
ok "short.good.example's element kept, not shortened" kept work 192.0.2.12 443 "$shortel_at"
ok "... and still admits" reach_tcp "$VM_work" 192.0.2.12 443
servfails() {
	"$DNSFENCECTL" -s "$TB_DIR/control.sock" -j status |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["vms"]["work"]["servfail"])'
}
n=$(servfails)
ok "status counts work's SERVFAIL answers ($n)" test "$n" -ge 3
ok "the daemon is alive" kill -0 "$DAEMON_PID"

# --- back: every name resolves again within a bounded wait. libunbound
# goes on with the names it was resolving when nsd went away (about 30 s
# an attempt) and then remembers their failure for 5 s: until then they
# are SERVFAIL, each with an EDE.
ok "nsd started again" mi_start "$TB_DIR/mi"
for n in "${slow[@]}" n2.fresh.good.example; do
	asker "$n" 60
	asker_pid[$n]=$ASKER_PID
done
# recovered NAME: NOERROR within 60 s, and every answer before it
# SERVFAIL with an EDE.
recovered() {
	asked "$1"
	awk '$2 == "NOERROR" { ok = 1; t = $1; next }
		{ n++; if ($2 == "SERVFAIL" && $3 == 1) good++ }
		END { printf "# %s: NOERROR after %s s, %d SERVFAIL (%d with an EDE) before\n", name, ok ? t : "-", n, good
			exit !(ok && n == good) }' name="$1" "$TB_DIR/ask-$1.log" && return 0
	sed "s/^/# $1: /" "$TB_DIR/ask-$1.log"
	return 1
}
ok "n2.fresh.good.example (never asked) resolves" recovered n2.fresh.good.example
ok "n1.fresh.good.example (failed in the fault) resolves" recovered n1.fresh.good.example
ok "www.other.example (failed in the fault) resolves" recovered www.other.example
ok "short.good.example (failed in the fault) resolves" recovered short.good.example
ok "... n2.fresh.good.example admitted" reach_tcp "$VM_work" 192.0.2.102 443
ok "... n1.fresh.good.example admitted" reach_tcp "$VM_work" 192.0.2.101 443
ok "... www.other.example admitted" reach_tcp "$VM_work" 192.0.2.20 443
ok "www.good.example's element still not shortened" kept work 192.0.2.10 443 "$www_at"
ok "mail.good.example's element still not shortened" kept work 192.0.2.11 993 "$mail_at"
rc=0
for _ in $(seq 900); do kill -0 "$talk_pid" 2>/dev/null || break; sleep 0.1; done
wait "$talk_pid" || rc=$?
ok "the connection opened before the fault went on throughout" test "$rc" -eq 0
sed 's/^/# talk: /' "$TB_DIR/talk.log"

tb_done
