#!/bin/bash
# dnsfencectl against the real daemon (interface.md, "dnsfencectl"): every
# command and its exit statuses, `why` for each kind of cause checked
# against real connections, `reload` in force when it returns (and a broken
# one changing nothing), `flush`, `log` and `log -f`, the journal's rate
# limit, and metrics that parse as OpenMetrics. -j output is parsed and
# checked field by field.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"
: "${DNSFENCECTL:?DNSFENCECTL must name the dnsfencectl binary}"

dw_setup
tb_vm work 1
tb_vm red 2
tb_vm quiet 3
dw_config <<'C'
ttl:
  min: 60
  max: 300
  grace: 5
C
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
  - name: mail.good.example
    ports: [tcp/993]
  - net: 198.51.100.0/24
    ports: [icmp]
P
tb_policy red <<'P'
addresses: [10.137.2.10]
default: allow
P
tb_policy quiet <<'P'
addresses: [10.137.3.10]
allow:
  - name: www.good.example
P
# UDP needs a server bound to the address (the one on [::] answers from
# the uplink's address).
tb_serve 192.0.2.10 5353
tb_daemon_start
SOCK=$TB_DIR/control.sock
tb_host 198.51.100.7

ctl() { "$DNSFENCECTL" -s "$SOCK" "$@"; }
# jq-less JSON checks: jget FILE PYTHON-EXPR (d is the document)
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
status_of() { # status_of CMD...: the exit status, output in $TB_DIR/out, $TB_DIR/err
	local rc=0
	"$@" >"$TB_DIR/out" 2>"$TB_DIR/err" || rc=$?
	echo "$rc"
}

ok "www.good.example resolves for work" dns_is "$VM_work" NOERROR www.good.example
ok "... and its AAAA" dns_is "$VM_work" NOERROR www.good.example AAAA
ok "mail.good.example resolves for work" dns_is "$VM_work" NOERROR mail.good.example
ok "www.other.example is refused for work" dns_is "$VM_work" REFUSED www.other.example

# --- status
ok "status: exit 0" test "$(status_of ctl status)" -eq 0
ok "status: names the version and the VMs" \
	grep -E "^dnsfenced [0-9.]+, up" "$TB_DIR/out"
ok "status: a row per VM" grep -E "^work +deny +4 +3 +1 +0 +4 +0$" "$TB_DIR/out"
ok "status -j: exit 0" test "$(status_of ctl -j status)" -eq 0
cp "$TB_DIR/out" "$TB_DIR/status.json"
ok "status -j: version" test "$(jget "$TB_DIR/status.json" 'd["version"]')" = \
	"$("$DNSFENCED" -h 2>&1 >/dev/null | head -0; ctl status | head -1 | cut -d' ' -f2 | tr -d ,)"
ok "status -j: uptime is a whole number of seconds" \
	test "$(jget "$TB_DIR/status.json" 'type(d["uptime"]).__name__')" = int
ok "status -j: work's counters (4 queries, 3 answered, 1 refused, 0 servfail)" \
	test "$(jget "$TB_DIR/status.json" '[d["vms"]["work"][k] for k in ("queries","answered","refused","servfail")]')" = "[4, 3, 1, 0]"
n=$(jget "$TB_DIR/status.json" 'd["vms"]["work"]["elements"]')
ok "status -j: work's elements are the sets' (4: www v4 and v6, mail on tcp/443 and tcp/993: $n)" \
	test "$n" = 4
ok "status -j: every VM is listed, asked or not" \
	test "$(jget "$TB_DIR/status.json" 'sorted(d["vms"])')" = "['quiet', 'red', 'work']"

# --- list
ok "list: exit 0" test "$(status_of ctl -j list)" -eq 0
cp "$TB_DIR/out" "$TB_DIR/list.json"
ok "list -j: the element of www.good.example, field by field" \
	test "$(jget "$TB_DIR/list.json" '[(e["vm"],e["address"],e["proto"],e["ports"],e["name"]) for e in d["elements"] if e["address"]=="192.0.2.10"]')" = \
	"[('work', '192.0.2.10', 'tcp', '443', 'www.good.example')]"
exp=$(jget "$TB_DIR/list.json" '[e["expires"] for e in d["elements"] if e["address"]=="192.0.2.10"][0]')
ok "list -j: expires is what the set says (ttl 300 + grace 5: ${exp} s)" \
	test "$exp" -gt 295 -a "$exp" -le 305
ok "list -j: the v6 element too" \
	test "$(jget "$TB_DIR/list.json" '[e["proto"] for e in d["elements"] if e["address"]=="2001:db8:5::10"]')" = "['tcp']"
ok "list work: the human table has the four" test "$(ctl list work | grep -c good.example)" -eq 4
ok "list red: empty, exit 0" test "$(status_of ctl list red)" -eq 0
ok "list nosuch: exit 1" test "$(status_of ctl list nosuch)" -eq 1

# --- why, each cause, checked against the real connection
why_is() { # why_is WANT-STATUS WANT-BY ARGS...: exit status and "by"
	local want=$1 by=$2 rc
	shift 2
	rc=$(status_of ctl -j why "$@")
	cp "$TB_DIR/out" "$TB_DIR/why.json"
	[ "$rc" -eq "$want" ] || { echo "# exit $rc, not $want: $(cat "$TB_DIR/out" "$TB_DIR/err")"; return 1; }
	[ "$(jget "$TB_DIR/why.json" 'd["by"]')" = "$by" ] ||
		{ echo "# by: $(cat "$TB_DIR/out")"; return 1; }
}
ok "why work 192.0.2.10 tcp/443: accept, by name" why_is 0 name work 192.0.2.10 tcp/443
ok "... naming www.good.example and the rule" \
	test "$(jget "$TB_DIR/why.json" '(d["name"], d["rule"], d["verdict"])')" = \
	"('www.good.example', '*.good.example tcp/443', 'accept')"
ok "... and the connection passes" reach_tcp "$VM_work" 192.0.2.10 443
ok "why work 192.0.2.10 udp/5353: drop (resolved for tcp/443 only)" why_is 1 None work 192.0.2.10 udp/5353
ok "... says so" grep -q "for tcp/443 only" "$TB_DIR/why.json"
blocked "... and the datagram is dropped" reach_udp "$VM_work" 192.0.2.10 5353
ok "... which red, default allow, gets through (the probe can pass)" reach_udp "$VM_red" 192.0.2.10 5353
ok "why work 192.0.2.16 tcp/443: drop (never resolved)" why_is 1 None work 192.0.2.16 tcp/443
ok "... says so" grep -q "was never resolved by work" "$TB_DIR/why.json"
blocked "... and the connection is dropped" reach_tcp "$VM_work" 192.0.2.16 443
ok "why work 198.51.100.7 icmp: accept, by the net rule" why_is 0 net work 198.51.100.7 icmp
ok "... naming it" test "$(jget "$TB_DIR/why.json" 'd["rule"]')" = "198.51.100.0/24 icmp"
ok "... and the ping passes" reach_ping "$VM_work" 198.51.100.7
ok "why work 198.51.100.7 tcp/443: drop (the net rule is for icmp only)" why_is 1 None work 198.51.100.7 tcp/443
blocked "... and the connection is dropped" reach_tcp "$VM_work" 198.51.100.7 443
ok "why red 192.0.2.16 tcp/443: accept, default: allow" why_is 0 default red 192.0.2.16 tcp/443
ok "... and the connection passes" reach_tcp "$VM_red" 192.0.2.16 443
ok "why red 10.139.1.1 udp/53: accept, DNS at the listen address" why_is 0 dns red 10.139.1.1 udp/53
ok "why red 10.139.1.1 tcp/443: drop, only DNS at the listen address (even for default allow)" why_is 1 None red 10.139.1.1 tcp/443
ok "... says so" grep -q "only DNS" "$TB_DIR/why.json"
ok "why nosuch 192.0.2.10: drop, no policy" why_is 1 None nosuch 192.0.2.10
ok "... says so" grep -q "has no policy" "$TB_DIR/why.json"
# JSON text is UTF-8: a byte that is not (here in the VM argument, echoed
# back) comes out as U+FFFD, never raw. A raw request: dnsfencectl would
# send the same bytes.
ok "why -j with bytes that are not UTF-8: still valid JSON" python3 - "$SOCK" <<'PY'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
args = b'w\xff\xc3(\x01"\\\xe2\x82\xac\x00192.0.2.10\x00'
s.sendall(struct.pack("!BBHI", 1, 3, len(args), 1) + args)
out = b""
while True:
    h = s.recv(8, socket.MSG_WAITALL)
    if len(h) < 8:
        break
    _, kind, status, _, n = struct.unpack("!BBBBI", h)
    body = s.recv(n, socket.MSG_WAITALL) if n else b""
    if kind == 1:
        out += body
    if kind == 3:
        break
d = json.loads(out.decode("utf-8"))  # strict: raises on bytes that are not UTF-8
assert d["vm"] == 'w\ufffd\ufffd(\x01"\\\u20ac', repr(d["vm"])
PY
ok "a request with a byte after it: refused as a bad request (status 2)" python3 - "$SOCK" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(struct.pack("!BBHI", 1, 1, 0, 0) + b"x")  # status, then 'x'
err, status = b"", None
while True:
    h = s.recv(8, socket.MSG_WAITALL)
    if len(h) < 8:
        break
    _, kind, st, _, n = struct.unpack("!BBBBI", h)
    body = s.recv(n, socket.MSG_WAITALL) if n else b""
    if kind == 2:
        err += body
    if kind == 3:
        status = st
        break
assert status == 2 and b"bad request" in err, (status, err)
PY
ok "why (human): one line" test "$(ctl why work 192.0.2.10 tcp/443 | wc -l)" -eq 1
ok "why work not-an-address: usage, exit 2" test "$(status_of ctl why work 192.0.2.300)" -eq 2
ok "why work 192.0.2.10 tcp/99999: usage, exit 2" test "$(status_of ctl why work 192.0.2.10 tcp/99999)" -eq 2
ok "why with one argument: usage, exit 2" test "$(status_of ctl why work)" -eq 2

# --- reload: in force when it returns; a broken one changes nothing
cat >>"$TB_DIR/vms/work.yaml" <<'P'
  - name: www.other.example
    ports: [tcp/443]
P
ok "reload: exit 0" test "$(status_of ctl -j reload)" -eq 0
ok "... -j: reloaded, no problems" test "$(jget "$TB_DIR/out" '(d["reloaded"], d["problems"])')" = "(True, [])"
ok "... and the new rule is in force as it returns" dns_is "$VM_work" NOERROR www.other.example
ok "... its address admitted" reach_tcp "$VM_work" 192.0.2.20 443
cp "$TB_DIR/vms/work.yaml" "$TB_DIR/work.good"
printf 'addresses: [10.137.1.10]\nallow:\n  - name: "bad*name"\n' >"$TB_DIR/vms/work.yaml"
ok "a broken reload: exit 1" test "$(status_of ctl -j reload)" -eq 1
ok "... -j: not reloaded, the problem as FILE:LINE:COL" \
	test "$(jget "$TB_DIR/out" '(d["reloaded"], [p.split(":")[1:3] for p in d["problems"] if "vms/work.yaml" in p][0])')" = "(False, ['3', '11'])"
ok "a broken reload: exit 1 (human)" test "$(status_of ctl reload)" -eq 1
ok "... with the problem as FILE:LINE:COL on stderr" \
	grep -E "vms/work.yaml:3:[0-9]+: " "$TB_DIR/err"
ok "... the old rules still in force (www.other.example resolves)" dns_is "$VM_work" NOERROR www.other.example
ok "... and what they admitted stays" reach_tcp "$VM_work" 192.0.2.20 443
cp "$TB_DIR/work.good" "$TB_DIR/vms/work.yaml"
# A good reload while the table is being repaired: it waits for the
# repair, then is in force (not "failed" with the old rules staying).
# Both processes of dnsfenced are stopped (doc/privsep.md).
# (and one that removes www.other.example: its element goes in the same
# transaction)
{ head -n -2 "$TB_DIR/work.good"; printf '  - name: deep.sub.good.example\n    ports: [tcp/22]\n'; } >"$TB_DIR/vms/work.yaml"
pids=("$DAEMON_PID" $(ps -o pid= --ppid "$DAEMON_PID"))
kill -STOP "${pids[@]}"
nsx "$FW" nft delete table inet dnsfence
{ rc=0; timeout 10 "$DNSFENCECTL" -s "$SOCK" reload >"$TB_DIR/rl.out" 2>&1 </dev/null || rc=$?; echo "$rc" >"$TB_DIR/rl.rc"; } &
rlpid=$!
sleep 0.3
kill -CONT "${pids[@]}"
wait "$rlpid" || true
ok "reload during a table repair: exit 0 ($(cat "$TB_DIR/rl.rc") $(cat "$TB_DIR/rl.out"))" \
	test "$(cat "$TB_DIR/rl.rc")" -eq 0
ok "... the new rule is in force" dns_is "$VM_work" NOERROR deep.sub.good.example
ok "... its port admitted" reach_tcp "$VM_work" 192.0.2.13 22
blocked "... www.other.example's address no longer" reach_tcp "$VM_work" 192.0.2.20 443
cp "$TB_DIR/work.good" "$TB_DIR/vms/work.yaml"

# --- flush
n=$(ctl -j list work | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["elements"]))')
ok "flush work: exit 0" test "$(status_of ctl flush work)" -eq 0
ok "... says how many went ($n)" grep -q "^$n elements" "$TB_DIR/out"
ok "... the sets of work are empty" test "$(ctl -j list work | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["elements"]))')" -eq 0
ok "... in the kernel too" test "$(nsx "$FW" nft -j list set inet dnsfence work_v4_ports | python3 -c 'import json,sys; print(len([x for x in json.load(sys.stdin)["nftables"] if "set" in x][0]["set"].get("elem",[])))')" -eq 0
blocked "... a new connection is dropped" reach_tcp "$VM_work" 192.0.2.10 443
ok "... until the name is asked again" dns_is "$VM_work" NOERROR www.good.example
ok "... which admits it again" reach_tcp "$VM_work" 192.0.2.10 443
ok "flush -j: one document" test "$(status_of ctl -j flush work)" -eq 0
ok "... naming the VM and how many went (1: www's v4 element)" \
	test "$(jget "$TB_DIR/out" '(d["vm"], d["removed"])')" = "('work', 1)"
ok "... and asking again admits it again" dns_is "$VM_work" NOERROR www.good.example
ok "flush nosuch: exit 1" test "$(status_of ctl flush nosuch)" -eq 1
# A flush that arrives while the table is broken waits for the repair,
# then runs (the daemon is stopped so that the damage is seen first).
pids=("$DAEMON_PID" $(ps -o pid= --ppid "$DAEMON_PID"))
kill -STOP "${pids[@]}"
nsx "$FW" nft delete table inet dnsfence
{ rc=0; timeout 10 "$DNSFENCECTL" -s "$SOCK" flush work >"$TB_DIR/fl.out" 2>&1 </dev/null || rc=$?; echo "$rc" >"$TB_DIR/fl.rc"; } &
flpid=$!
sleep 0.3
kill -CONT "${pids[@]}"
wait "$flpid" || true
ok "flush during a table repair: answered, exit 0 ($(cat "$TB_DIR/fl.rc"))" \
	test "$(cat "$TB_DIR/fl.rc")" -eq 0
ok "... the table is back" nsx "$FW" nft list table inet dnsfence >/dev/null
ok "... and work resolves again" dns_is "$VM_work" NOERROR www.good.example

# --- suggest: only for what was learned
ok "suggest red (never in mode: learn): exit 1, no empty policy" test "$(status_of ctl suggest red)" -eq 1
ok "... saying why, nothing on stdout" test ! -s "$TB_DIR/out" -a -n "$(grep 'not in mode: learn' "$TB_DIR/err")"
ok "suggest nosuch: exit 1" test "$(status_of ctl suggest nosuch)" -eq 1

# --- log
ok "log: exit 0" test "$(status_of ctl log)" -eq 0
ok "log: the refused name, with VM, type and verdict" \
	grep -E "Z VM work, www.other.example A: refused" "$TB_DIR/out"
ok "log: the admitted address and for how long" \
	grep -E "VM work, www.good.example A: answered \(allow \*\.good\.example\); admitted 192.0.2.10 for 305 s" "$TB_DIR/out"
ok "log -j: one document" test "$(status_of ctl -j log)" -eq 0
# (From the cache, the TTL has counted down: the timeout is ttl + grace.)
ok "log -j: a decision field by field" \
	test "$(jget "$TB_DIR/out" '[(e["vm"],e["type"],e["verdict"],e["addresses"],295 < e["timeout"] <= 305) for e in d["decisions"] if e["name"]=="www.good.example"][-1]')" = \
	"('work', 'A', 'answered', ['192.0.2.10'], True)"
tb_bg "$TB_DIR/follow.log" "$FW" "$DNSFENCECTL" -s "$SOCK" log -f
fpid=$TB_LAST
sleep 0.5
dig_vm "$VM_quiet" www.good.example >/dev/null
for _ in $(seq 30); do grep -q "VM quiet, www.good.example" "$TB_DIR/follow.log" && break; sleep 0.1; done
ok "log -f: a new decision arrives while following" grep -q "VM quiet, www.good.example A: answered" "$TB_DIR/follow.log"
kill "$fpid"
wait "$fpid" 2>/dev/null || true
ok "... and the daemon goes on once the follower is gone" dns_is "$VM_quiet" NOERROR www.good.example

# --- the journal's rate limit: a flood of 200 names from one VM
before=$(grep -c "VM red," "$TB_DIR/dnsfenced.log" || true)
for i in $(seq 1 200); do echo "n$((i % 100 + 1)).fresh.good.example A"; done >"$TB_DIR/flood"
nsx "$VM_red" dig +time=3 +tries=1 @10.139.1.1 -f "$TB_DIR/flood" >/dev/null
after=$(grep -c "VM red," "$TB_DIR/dnsfenced.log" || true)
ok "rate limit: 200 decisions of red, at most burst + a few lines logged ($((after - before)))" \
	test $((after - before)) -le 40
ok "... the ring has them all" test "$(ctl log | grep -c 'VM red, n[0-9]*.fresh.good.example')" -ge 200
sleep 1.2
dig_vm "$VM_red" www.good.example >/dev/null
ok "... and the held-back lines are counted in the journal" \
	grep -E "VM red: [0-9]+ decision lines not logged" "$TB_DIR/dnsfenced.log"
ok "... other VMs still log" dig_vm "$VM_quiet" mail.good.example
ok "... (quiet's line is there)" grep -q "VM quiet, mail.good.example" "$TB_DIR/dnsfenced.log"

# --- metrics
blocked "a dropped connection (counted)" reach_tcp "$VM_work" 192.0.2.16 443
ok "status -j: work's dropped packets, from the ruleset's counter" \
	test "$(ctl -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["vms"]["work"]["dropped"])')" -gt 0
ok "status -j: red is default allow, quiet enforces" \
	test "$(jget "$TB_DIR/status.json" '(d["vms"]["red"]["default"], d["vms"]["quiet"]["default"], d["vms"]["quiet"]["mode"])')" = "('allow', 'deny', 'enforce')"
ok "metrics: exit 0" test "$(status_of ctl metrics)" -eq 0
cp "$TB_DIR/out" "$TB_DIR/metrics"
ok "metrics: every line is OpenMetrics, ending with # EOF" python3 - "$TB_DIR/metrics" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "" and lines[-2] == "# EOF", "no final # EOF"
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(rf"^({name})(\{{{label}(,{label})*\}})? (-?[0-9]+(\.[0-9]+)?)$")
meta = re.compile(rf"^# (TYPE {name} (counter|gauge|info)|HELP {name} .*)$")
types = {}
for l in lines[:-2]:
    m = meta.match(l)
    if m:
        if l.startswith("# TYPE"):
            _, _, n, t = l.split(" ")
            assert n not in types, "family twice: " + n
            types[n] = t
        continue
    m = sample.match(l)
    assert m, "bad line: " + repr(l)
    n = m.group(1)
    fam = next((f for f in types if n in (f, f + "_total", f + "_info")), None)
    assert fam, "sample without a family: " + n
    if types[fam] == "counter":
        assert n == fam + "_total", "counter sample must end in _total: " + n
PY
# The reference parsers (python3-prometheus-client; Debian's own python,
# whatever python3 is first on PATH): OpenMetrics, strictly, and the
# Prometheus text format node_exporter's textfile collector reads.
ok "metrics: the OpenMetrics reference parser reads it all" /usr/bin/python3 - "$TB_DIR/metrics" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))
names = {s.name for f in fams for s in f.samples}
assert "dnsfence_queries_total" in names and "dnsfence_elements" in names, names
assert {f.name: f.type for f in fams}["dnsfence_queries"] == "counter"
PY
ok "metrics --prometheus: exit 0" test "$(status_of ctl metrics --prometheus)" -eq 0
cp "$TB_DIR/out" "$TB_DIR/metrics.prom"
ok "metrics --prometheus: the text-format parser reads it, counters typed" /usr/bin/python3 - "$TB_DIR/metrics.prom" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
# node_exporter's parser knows only these types, and names a counter's
# TYPE line by its sample (…_total).
for l in text.splitlines():
    m = re.match(r"# TYPE (\S+) (\S+)$", l)
    if m:
        assert m.group(2) in ("counter", "gauge", "untyped", "summary", "histogram"), l
        assert m.group(2) != "counter" or m.group(1).endswith("_total"), l
assert "# EOF" not in text
from prometheus_client.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(text))
types = {f.name: f.type for f in fams}
assert types["dnsfence_queries"] == "counter", types
assert any(s.name == "dnsfence_queries_total" and s.labels == {"vm": "work", "result": "answered"}
           for f in fams for s in f.samples)
PY
ok "metrics -j: one document, samples with labels" \
	test "$(ctl -j metrics | python3 -c 'import json,sys; d=json.load(sys.stdin); print([s["value"] > 0 for s in d["metrics"] if s["name"]=="dnsfence_queries_total" and s["labels"]=={"vm":"work","result":"answered"}])')" = "[True]"
ok "metrics -j --prometheus: usage, exit 2" test "$(status_of ctl -j metrics --prometheus)" -eq 2
ok "metrics: work's answered queries" grep -E '^dnsfence_queries_total\{vm="work",result="answered"\} [0-9]+$' "$TB_DIR/metrics"
ok "metrics: work's elements" grep -E '^dnsfence_elements\{vm="work"\} [1-9][0-9]*$' "$TB_DIR/metrics"
ok "metrics: SERVFAIL by cause" grep -E '^dnsfence_servfail_total\{vm="work",cause="bogus"\} 0$' "$TB_DIR/metrics"
ok "metrics: work's dropped packets, read from the ruleset's counter" \
	grep -E '^dnsfence_dropped_packets_total\{vm="work",reason="not admitted"\} [1-9][0-9]*$' "$TB_DIR/metrics"
ok "metrics: admission batches" grep -E '^dnsfence_admission_batches_total [1-9][0-9]*$' "$TB_DIR/metrics"
ok "metrics: reloads by outcome (2 ok, 2 failed)" \
	test "$(grep -E '^dnsfence_reloads_total' "$TB_DIR/metrics" | tr '\n' ' ')" = \
	'dnsfence_reloads_total{result="ok"} 2 dnsfence_reloads_total{result="failed"} 2 '
ok "metrics: the kernel feature" grep -E '^dnsfence_kernel_timeout_update [01]$' "$TB_DIR/metrics"

# --- usage and a daemon that is not there
ok "no command: usage, exit 2" test "$(status_of ctl)" -eq 2
ok "an unknown command: usage, exit 2" test "$(status_of ctl frobnicate)" -eq 2
ok "flush with no VM: usage, exit 2" test "$(status_of ctl flush)" -eq 2
# Only the peer-credential check may refuse nobody: the socket and the way
# to it are opened to all.
chmod 0666 "$SOCK"
chmod o+x "$TB_DIR"
ok "user nobody is refused (socket mode 0666): exit 1" \
	test "$(status_of setpriv --reuid=nobody --regid=nogroup --clear-groups "$DNSFENCECTL" -s "$SOCK" status)" -eq 1
ok "... with a message saying why" grep -qi "permission denied" "$TB_DIR/err"
ok "... and nothing on stdout" test ! -s "$TB_DIR/out"
ok "... refused by the daemon, not by the file system" grep -q "is not root nor in group" "$TB_DIR/err"
n0=$(grep -c "control: refused uid" "$TB_DIR/dnsfenced.log" || true)
for _ in $(seq 20); do
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$DNSFENCECTL" -s "$SOCK" status >/dev/null 2>&1 || true
done
n1=$(grep -c "control: refused uid" "$TB_DIR/dnsfenced.log" || true)
ok "20 refusals in a row log at most a line a second ($((n1 - n0)) lines)" test $((n1 - n0)) -le 3
chmod 0660 "$SOCK"
chmod o-x "$TB_DIR"
tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
ok "no daemon: exit 3" test "$(status_of ctl status)" -eq 3
tb_done
