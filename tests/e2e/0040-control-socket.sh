#!/bin/bash
# The control socket (control.c) and dnsfencectl, against ctlecho (canned
# answers, no namespaces): exit statuses 0/1/2/3, -s and -c, the socket's
# mode and group, the peer-credential check (a stranger is refused even
# through a 0666 socket; members of the group, primary or supplementary,
# are let in), garbage and oversized requests refused with the server
# alive, the connection cap, the request deadline, `log -f` followed and
# its end noticed, a held reload, and the exit of the server.
set -euo pipefail
: "${CTLECHO:?CTLECHO must name the ctlecho binary}"
: "${DNSFENCECTL:?DNSFENCECTL must name the dnsfencectl binary}"

PASS=0
FAIL=0
PIDS=()
GROUP="dfctl$$"
DIR=$(mktemp -d "/tmp/df-0040-$$.XXXXXX")
SOCK="$DIR/run/control.sock"
CTL=$DNSFENCECTL

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	if [ "$FAIL" -ne 0 ] && [ -f "$DIR/echo.log" ]; then
		echo "--- ctlecho log"
		tail -n 40 "$DIR/echo.log"
	fi
	getent group "$GROUP" >/dev/null && groupdel "$GROUP"
	rm -rf "$DIR"
}
trap cleanup EXIT

ok() {
	local desc=$1
	shift
	if "$@"; then
		PASS=$((PASS + 1))
		echo "ok - $desc"
	else
		FAIL=$((FAIL + 1))
		echo "not ok - $desc"
	fi
}

# status_is N cmd...: cmd exits with status N (its output in $DIR/out,
# $DIR/err).
status_is() {
	local want=$1 rc=0
	shift
	"$@" >"$DIR/out" 2>"$DIR/err" </dev/null || rc=$?
	[ "$rc" -eq "$want" ] || {
		echo "# exit $rc, expected $want: $*"
		sed 's/^/# /' "$DIR/err"
		return 1
	}
}

# wait_for TENTHS cmd...: until cmd succeeds, at most TENTHS/10 s.
wait_for() {
	local n=$1
	shift
	for _ in $(seq "$n"); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

echo_start() {
	"$CTLECHO" "$SOCK" "$GID" </dev/null 2>>"$DIR/echo.log" &
	ECHO_PID=$!
	PIDS+=("$ECHO_PID")
	wait_for 50 test -S "$SOCK"
}

alive() { kill -0 "$ECHO_PID" 2>/dev/null; }

as_stranger() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
as_primary() { setpriv --reuid=nobody --regid="$GID" --clear-groups "$@"; }
as_supplementary() {
	setpriv --reuid=nobody --regid=nogroup --groups="$GID" "$@"
}

# A raw exchange: rawreq HEX-BYTES sends the bytes, then
# prints "status N" from the END frame, or "closed" when none came.
rawreq() {
	python3 - "$SOCK" "$@" <<'PY'
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(15)
s.connect(sys.argv[1])
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
except OSError:
    pass
data = b""
while True:
    try:
        b = s.recv(65536)
    except OSError:
        break
    if not b:
        break
    data += b
off = 0
while off + 8 <= len(data):
    ver, kind, st, z, ln = struct.unpack(">BBBBI", data[off:off + 8])
    if kind == 3:
        print("status", st)
        sys.exit(0)
    sys.stderr.write(data[off + 8:off + 8 + ln].decode(errors="replace"))
    off += 8 + ln
print("closed")
PY
}

groupadd "$GROUP"
GID=$(getent group "$GROUP" | cut -d: -f3)
chmod 0755 "$DIR"
echo_start

# ---- the socket file
ok "socket is mode 0660, group $GROUP" \
	test "$(stat -c '%a %G %U' "$SOCK")" = "660 $GROUP root"
ok "its directory was created 0755" test "$(stat -c '%a' "$DIR/run")" = 755

# ---- exit statuses
ok "status: exit 0, its output on stdout" status_is 0 "$CTL" -s "$SOCK" status
ok "status output" test "$(cat "$DIR/out")" = ok
ok "-j reaches the daemon" status_is 0 "$CTL" -s "$SOCK" -j status
ok "-j output" test "$(cat "$DIR/out")" = '{"ok": true}'
ok "why: exit 1 (dropped), text on stderr" \
	status_is 1 "$CTL" -s "$SOCK" why work 192.0.2.1 tcp/443
ok "why stderr" grep -qx dropped "$DIR/err"
ok "list with an argument" status_is 0 "$CTL" -s "$SOCK" list work
ok "list output" test "$(cat "$DIR/out")" = "list work"
ok "usage: too few arguments is 2" status_is 2 "$CTL" -s "$SOCK" why work
ok "usage message" grep -q '^usage: dnsfencectl' "$DIR/err"
ok "usage: too many arguments is 2" status_is 2 "$CTL" -s "$SOCK" status x
ok "usage: unknown command is 2" status_is 2 "$CTL" -s "$SOCK" frobnicate
ok "usage: no command is 2" status_is 2 "$CTL" -s "$SOCK"
ok "usage: -f is only for log" status_is 2 "$CTL" -s "$SOCK" status -f
ok "usage: -c and -s together is 2" \
	status_is 2 "$CTL" -c "$DIR/x.yaml" -s "$SOCK" status
ok "-h is usage on stdout, exit 0" status_is 0 "$CTL" -h
ok "--version" status_is 0 "$CTL" --version
ok "no socket: exit 3" status_is 3 "$CTL" -s "$DIR/nothing.sock" status
ok "no socket: the message names it" grep -q "$DIR/nothing.sock" "$DIR/err"
ok "a file that is no socket: exit 3" status_is 3 "$CTL" -s "$DIR" status

# ---- -c: the socket path from a configuration
mkdir "$DIR/vms"
cp "$(dirname "$0")/../config/cases/good-minimal/root.key" "$DIR/root.key"
cat >"$DIR/dnsfence.yaml" <<EOF
listen: [10.137.0.1]
resolver: {trust-anchor-file: root.key}
control: run/control.sock
control-group: $GROUP
EOF
ok "-c FILE: the socket from its control:" \
	status_is 0 "$CTL" -c "$DIR/dnsfence.yaml" status
echo "listen: [" >"$DIR/bad.yaml"
ok "-c with a broken file: exit 3" status_is 3 "$CTL" -c "$DIR/bad.yaml" status
ok "-c with a broken file: its problem shown" grep -q "bad.yaml:" "$DIR/err"

# ---- who may connect
ok "a stranger cannot even open the 0660 socket: exit 3" \
	status_is 3 as_stranger "$CTL" -s "$SOCK" status
chmod 0666 "$SOCK"
ok "through a 0666 socket, a stranger is refused: exit 1" \
	status_is 1 as_stranger "$CTL" -s "$SOCK" status
ok "the refusal names the uid and the group" grep -q \
	"permission denied: uid 65534 is not root nor in group $GROUP" \
	"$DIR/err"
ok "nothing reached the command handler" test ! -s "$DIR/out"
ok "a stranger's reload is refused too" \
	status_is 1 as_stranger "$CTL" -s "$SOCK" reload
ok "a stranger's log -f is refused too" \
	status_is 1 as_stranger "$CTL" -s "$SOCK" log -f
# Anyone on the machine can connect: refusals must not flood the log.
n0=$(grep -c "refused" "$DIR/echo.log" || true)
as_stranger /usr/bin/python3 - "$SOCK" <<'PY'
import socket, sys
for _ in range(500):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.close()
PY
n1=$(grep -c "refused" "$DIR/echo.log" || true)
ok "500 refused connections in a burst: a few log lines ($((n1 - n0)))" \
	test $((n1 - n0)) -le 5
ok "... and the server goes on" status_is 0 "$CTL" -s "$SOCK" status
ok "the group as primary group: accepted" \
	status_is 0 as_primary "$CTL" -s "$SOCK" status
ok "the group as supplementary group: accepted" \
	status_is 0 as_supplementary "$CTL" -s "$SOCK" status
ok "its output" test "$(cat "$DIR/out")" = ok
chmod 0660 "$SOCK"

# ---- bad requests: refused, the server goes on
ok "wrong version: refused with status 2" \
	test "$(rawreq 0206000000000000 2>/dev/null)" = "status 2"
ok "unknown command: refused" \
	test "$(rawreq 0163000000000000 2>/dev/null)" = "status 2"
ok "bad flags: refused" \
	test "$(rawreq 0101000000000002 2>/dev/null)" = "status 2"
ok "an argument without NUL: refused" \
	test "$(rawreq 01050002000000006162 2>/dev/null)" = "status 2"
ok "a length beyond the bound: refused from the header" \
	test "$(rawreq "0105ffff00000000$(head -c 4000 /dev/zero | od -An -v -tx1 | tr -d ' \n')" 2>/dev/null)" = "status 2"
ok "garbage: refused" \
	test "$(rawreq "$(head -c 3000 /dev/urandom | od -An -v -tx1 | tr -d ' \n' | sed 's/^../00/')" 2>/dev/null)" = "status 2"
ok "a byte sent with a request, after it: refused as a bad request" \
	test "$(rawreq 010600000000000241 2>/dev/null)" = "status 2"
ok "a byte sent later to a held request (log -f): the connection is dropped" python3 - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(bytes.fromhex("0106000000000002"))
time.sleep(0.5)
s.sendall(b"A")
data = b""
while True:
    try:
        b = s.recv(65536)
    except ConnectionResetError:
        break
    if not b:
        break
    data += b
# held: OUT frames perhaps (ctlecho's lines), never an END frame: the
# request was not refused, the connection was dropped
off = 0
while off + 8 <= len(data):
    kind, ln = data[off + 1], int.from_bytes(data[off + 4:off + 8], "big")
    assert kind != 3, "an END frame: the request was refused"
    off += 8 + ln
PY
ok "the server is alive" alive
ok "and answers" status_is 0 "$CTL" -s "$SOCK" status

# A half-sent request: cut after the deadline (5 s).
start=$(date +%s)
ok "a request never completed: refused after the deadline" \
	test "$(rawreq 0101 2>/dev/null)" = "status 2"
ok "within 4-8 s" test $(($(date +%s) - start)) -ge 4 -a \
	$(($(date +%s) - start)) -le 8

# The connection cap: 40 idle connections, the ones past 32 are refused.
python3 - "$SOCK" >"$DIR/cap" <<'PY'
import socket, sys
socks, refused = [], 0
for i in range(40):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    socks.append(s)
for s in socks[32:]:
    s.settimeout(3)
    if b"busy" in s.recv(4096):
        refused += 1
print(refused)
PY
ok "connections past 32 are refused as busy" test "$(cat "$DIR/cap")" = 8
ok "after they close, the server answers" \
	wait_for 30 status_is 0 "$CTL" -s "$SOCK" status

# ---- big output: many frames
ok "300 KiB of output in frames" status_is 0 "$CTL" -s "$SOCK" suggest 300
ok "all of it" test "$(wc -c <"$DIR/out")" -eq 307200
{
	rc=0
	"$CTL" -s "$SOCK" suggest 3000 2>"$DIR/err" || rc=$?
	echo "$rc" >"$DIR/rc"
} | head -c 10 >/dev/null
ok "stdout closed early (| head): exit 0" test "$(cat "$DIR/rc")" = 0
ok "stdout closed early (| head): nothing on stderr" test ! -s "$DIR/err"

# ---- held requests
start=$(date +%s%N)
ok "reload returns when done" status_is 0 "$CTL" -s "$SOCK" reload
ok "reload waited for it (>= 300 ms)" \
	test $((($(date +%s%N) - start) / 1000000)) -ge 300
ok "reload output" test "$(cat "$DIR/out")" = reloaded

gone() { grep -c "follower gone" "$DIR/echo.log" || true; }
more_gone() { [ "$(gone)" -gt "$before" ]; }
lines() { [ "$(wc -l <"$DIR/follow")" -ge "$1" ]; }
before=$(gone)
"$CTL" -s "$SOCK" log -f >"$DIR/follow" 2>&1 </dev/null &
fpid=$!
PIDS+=("$fpid")
ok "log -f follows" wait_for 30 lines 3
kill "$fpid"
wait "$fpid" 2>/dev/null || true
ok "the server notices the follower go" \
	wait_for 20 more_gone

# ---- a stale socket is replaced; a live one is not taken
ok "a second server does not take a live socket" \
	status_is 1 "$CTLECHO" "$SOCK" "$GID"
ok "it says why" grep -q "in use" "$DIR/err"
kill -9 "$ECHO_PID"
wait "$ECHO_PID" 2>/dev/null || true
ok "a killed server leaves its socket" test -S "$SOCK"
ok "a new server replaces the stale socket" echo_start
ok "and answers" status_is 0 "$CTL" -s "$SOCK" status

# ---- the server exits: a follower is told, the socket goes
"$CTL" -s "$SOCK" log -f >"$DIR/follow" 2>"$DIR/follow.err" </dev/null &
fpid=$!
PIDS+=("$fpid")
wait_for 30 test -s "$DIR/follow" || true
kill "$ECHO_PID"
rc=0
for _ in $(seq 50); do
	kill -0 "$fpid" 2>/dev/null || break
	sleep 0.1
done
wait "$fpid" 2>/dev/null || rc=$?
ok "a follower gets status 1 when the server exits" test "$rc" -eq 1
ok "and is told why" grep -q "dnsfenced is exiting" "$DIR/follow.err"
ok "the server exits cleanly" wait "$ECHO_PID"
ok "the socket is removed" test ! -e "$SOCK"
ok "no daemon: exit 3" status_is 3 "$CTL" -s "$SOCK" status

echo "# $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
