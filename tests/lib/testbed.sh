# The namespace test bed, sourced by every e2e test.
#
#   vm namespaces ──vifN.0── fw (dnsfenced, forwarding) ──uplink── up
#
# fw answers DNS at 10.139.1.1 / 2001:db8:53::1 (a virtual address, as in
# Qubes). VM N: 10.137.N.10/24 and 2001:db8:a:N::10/64, gateway .1 / ::1
# on fw's vifN.0. up: 198.51.100.2 and 2001:db8:ff::2 on the uplink, and the
# "internet" on its loopback: 192.0.2.0/24, 203.0.113.0/24,
# 2001:db8:5::/64. Only documentation ranges and 10.x inside namespaces.
#
# Everything is named df-<test>-<pid>-*, removed by an EXIT trap, and every
# wait is bounded.

set -euo pipefail

: "${DNSFENCED:?DNSFENCED must name the dnsfenced binary}"
: "${PROBE:?PROBE must name the probe binary}"

TB_PASS=0
TB_FAIL=0
TB_PIDS=()
TB_NS=()
TB_ID="df-$(basename "$0" .sh | cut -c1-4)-$$"
TB_DIR=$(mktemp -d "/tmp/${TB_ID}.XXXXXX")
FW="$TB_ID-fw"
UP="$TB_ID-up"

tb_cleanup() {
	local rc=$? pid ns
	# Stop the daemon first, checking it exits cleanly.
	if [ -n "${DAEMON_PID:-}" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		tb_daemon_stop TERM || true
	fi
	for pid in "${TB_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${TB_PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	for ns in "${TB_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	# The daemon's log on any failure, an aborted script included.
	if { [ "$TB_FAIL" -ne 0 ] || [ "$rc" -ne 0 ]; } &&
		[ -f "$TB_DIR/dnsfenced.log" ]; then
		echo "--- dnsfenced log"
		tail -n 40 "$TB_DIR/dnsfenced.log"
	fi
	rm -rf "$TB_DIR"
}
trap tb_cleanup EXIT

# Run in a namespace: nsx NS cmd...
nsx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

tb_ns() {
	ip netns add "$1"
	TB_NS+=("$1")
	# No duplicate address detection: link-local addresses would stay
	# tentative for a second or two, delaying the first IPv6 packets.
	nsx "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0
	nsx "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0
	nsx "$1" ip link set lo up
}

# The firewall and the upstream "internet".
tb_init() {
	tb_ns "$FW"
	tb_ns "$UP"
	nsx "$FW" sysctl -qw net.ipv4.ip_forward=1
	nsx "$FW" sysctl -qw net.ipv6.conf.all.forwarding=1
	ip link add uplink netns "$FW" type veth peer name eth0 netns "$UP"
	nsx "$FW" ip addr add 198.51.100.1/24 dev uplink
	nsx "$FW" ip addr add 2001:db8:ff::1/64 dev uplink nodad
	nsx "$FW" ip link set uplink up
	nsx "$FW" ip route add default via 198.51.100.2
	nsx "$FW" ip -6 route add default via 2001:db8:ff::2
	nsx "$FW" ip addr add 10.139.1.1/32 dev lo
	nsx "$FW" ip addr add 2001:db8:53::1/128 dev lo nodad
	nsx "$UP" ip addr add 198.51.100.2/24 dev eth0
	nsx "$UP" ip addr add 2001:db8:ff::2/64 dev eth0 nodad
	nsx "$UP" ip link set eth0 up
	nsx "$UP" ip route add 10.137.0.0/16 via 198.51.100.1
	nsx "$UP" ip -6 route add 2001:db8:a::/48 via 2001:db8:ff::1
	nsx "$UP" ip route add 10.139.1.1/32 via 198.51.100.1
}

# Give the internet a host: tb_host ADDR (v4 or v6).
tb_host() {
	case $1 in
	*:*) nsx "$UP" ip addr add "$1/128" dev lo nodad ;;
	*) nsx "$UP" ip addr add "$1/32" dev lo ;;
	esac
}

# tb_vm NAME N: an AppVM namespace "$TB_ID-NAME" on fw's vifN.0.
tb_vm() {
	local name=$1 n=$2 ns="$TB_ID-$1"
	tb_ns "$ns"
	ip link add "vif$n.0" netns "$FW" type veth peer name eth0 netns "$ns"
	nsx "$FW" ip addr add "10.137.$n.1/24" dev "vif$n.0"
	nsx "$FW" ip addr add "2001:db8:a:$n::1/64" dev "vif$n.0" nodad
	nsx "$FW" ip link set "vif$n.0" up
	nsx "$ns" ip addr add "10.137.$n.10/24" dev eth0
	nsx "$ns" ip addr add "2001:db8:a:$n::10/64" dev eth0 nodad
	nsx "$ns" ip link set eth0 up
	nsx "$ns" ip route add default via "10.137.$n.1"
	nsx "$ns" ip -6 route add default via "2001:db8:a:$n::1"
	eval "VM_$name=\$ns"
}

# Start a process in a namespace in the background, remember its PID (the
# process itself: ip netns exec execs it) for cleanup; sets TB_LAST.
# tb_bg LOG NS cmd...
tb_bg() {
	local log=$1 ns=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 &
	TB_LAST=$!
	TB_PIDS+=("$TB_LAST")
}

# Wait up to SECS for a file to contain a pattern.
tb_wait_for() {
	local file=$1 pattern=$2 secs=${3:-10} i
	for i in $(seq $((secs * 10))); do
		grep -q -- "$pattern" "$file" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for '$pattern' in $file" >&2
	return 1
}

# Servers on the internet: tb_serve ADDR PORT...
tb_serve() {
	tb_bg "$TB_DIR/serve-$1.log" "$UP" "$PROBE" serve "$@"
	tb_wait_for "$TB_DIR/serve-$1.log" listening 5
}

# A minimal dnsfence.yaml in $TB_DIR; policies in $TB_DIR/vms.
tb_config() {
	mkdir -p "$TB_DIR/vms"
	echo '. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D' >"$TB_DIR/root.key"
	cat >"$TB_DIR/dnsfence.yaml" <<-CONF
	listen: [10.139.1.1, "2001:db8:53::1"]
	policies: vms
	control: control.sock
	resolver:
	  trust-anchor-file: ${TB_TRUST_ANCHOR:-root.key}
	$(cat)
	CONF
}

# tb_policy VM <<< yaml
tb_policy() {
	cat >"$TB_DIR/vms/$1.yaml"
}

# dnsfenced's engine runs as this user (meson option `user`); made here
# if missing, as contrib/install-deps does (two tests may race to it).
tb_user() {
	id -u "${DNSFENCE_USER:-dnsfence}" >/dev/null 2>&1 ||
		useradd --system --no-create-home --shell /usr/sbin/nologin \
			"${DNSFENCE_USER:-dnsfence}" 2>/dev/null ||
		id -u "${DNSFENCE_USER:-dnsfence}" >/dev/null
}

# DNSFENCE_WRAP (e.g. valgrind) runs the daemon under a wrapper that keeps
# its PID (valgrind does); the wrapper's failures fail the test at exit.
tb_daemon_start() {
	# Emptied here, not only by tb_bg's redirection, which the background
	# child performs: the wait below could otherwise find the previous
	# run's "ready" before the new daemon has even truncated its log.
	: >"$TB_DIR/dnsfenced.log"
	tb_user
	# shellcheck disable=SC2086
	tb_bg "$TB_DIR/dnsfenced.log" "$FW" ${DNSFENCE_WRAP:-} "$DNSFENCED" \
		-c "$TB_DIR/dnsfence.yaml" "$@"
	DAEMON_PID=$TB_LAST
	# Ready, or gone (a failed start need not wait the whole bound).
	local i
	for i in $(seq $((${TB_READY_WAIT:-10} * 10))); do
		grep -q "ready" "$TB_DIR/dnsfenced.log" 2>/dev/null && return 0
		if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			grep -q "ready" "$TB_DIR/dnsfenced.log" 2>/dev/null && return 0
			echo "dnsfenced exited before it was ready" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "timed out waiting for 'ready' in $TB_DIR/dnsfenced.log" >&2
	return 1
}

# Stop the daemon with a signal (TERM by default) and wait for it.
tb_daemon_stop() {
	local sig=${1:-TERM} i
	kill -"$sig" "$DAEMON_PID"
	for i in $(seq "${TB_STOP_WAIT:-100}"); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	# Still there: a bounded, reported failure (a bare `! kill -0` is
	# exempt from set -e, and wait would hang until meson's timeout).
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		echo "not ok - dnsfenced still running $((${TB_STOP_WAIT:-100} / 10)) s after SIG$sig; killing it (SIGKILL)"
		TB_FAIL=$((TB_FAIL + 1))
		kill -9 "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_STATUS=137
		return 1
	fi
	DAEMON_STATUS=0
	wait "$DAEMON_PID" 2>/dev/null || DAEMON_STATUS=$?
	# A clean exit on TERM is part of the contract; a crash is a failure.
	if [ "$sig" = TERM ] && [ "$DAEMON_STATUS" -ne 0 ]; then
		echo "dnsfenced exited with status $DAEMON_STATUS on SIGTERM" >&2
		TB_FAIL=$((TB_FAIL + 1))
	fi
}

# Send SIGHUP and wait (bounded) for the daemon to say how it went.
tb_reload() {
	local n
	n=$(grep -cE "reloaded|reload failed" "$TB_DIR/dnsfenced.log" || true)
	kill -HUP "$DAEMON_PID"
	for _ in $(seq 100); do
		[ "$(grep -cE "reloaded|reload failed" "$TB_DIR/dnsfenced.log" \
			|| true)" -gt "$n" ] && return 0
		sleep 0.1
	done
	echo "reload: no answer from dnsfenced" >&2
	return 1
}

# Assertions. ok DESC cmd...: cmd must succeed. blocked DESC cmd...: cmd
# must exit 1 (probe's "did not pass"), not 2 (a broken test).
ok() {
	local desc=$1
	shift
	if "$@"; then
		TB_PASS=$((TB_PASS + 1))
		echo "ok - $desc"
	else
		TB_FAIL=$((TB_FAIL + 1))
		echo "not ok - $desc"
	fi
}

blocked() {
	local desc=$1 rc=0
	shift
	"$@" || rc=$?
	if [ "$rc" -eq 1 ]; then
		TB_PASS=$((TB_PASS + 1))
		echo "ok - $desc: blocked"
	else
		TB_FAIL=$((TB_FAIL + 1))
		echo "not ok - $desc (exit $rc, expected 1)"
	fi
}

# Reach helpers: reach_tcp VMNS ADDR PORT; reach_udp; reach_ping.
reach_tcp() { nsx "$1" "$PROBE" tcp "$2" "$3" 1000; }
reach_udp() { nsx "$1" "$PROBE" udp "$2" "$3" 1000; }
reach_ping() {
	local fam=-4
	case $2 in *:*) fam=-6 ;; esac
	nsx "$1" ping "$fam" -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
	return 1
}

# dig from a VM to the firewall's DNS address: dig_vm VM NAME [TYPE] [opts]
dig_vm() {
	local vm=$1
	shift
	nsx "$vm" dig +time=3 +tries=1 @10.139.1.1 "$@"
}

# dns_is VM STATUS NAME [TYPE] [opts]: the answer's status is STATUS.
dns_is() {
	local vm=$1 want=$2 out
	shift 2
	out=$(dig_vm "$vm" "$@" 2>&1)
	[[ $out == *"status: $want,"* ]] && return 0
	echo "$out" | grep -E "status|EDE|timed out" | head -3
	return 1
}

# Packets counted by the rule whose comment is given, in a chain of ours.
counter_of() {
	local chain=$1 comment=$2
	nsx "$FW" nft -j list chain inet dnsfence "$chain" | python3 -c '
import json, sys
want = sys.argv[1]
for item in json.load(sys.stdin)["nftables"]:
    r = item.get("rule")
    if r and r.get("comment") == want:
        for e in r["expr"]:
            if "counter" in e:
                print(e["counter"]["packets"]); sys.exit(0)
print(-1)' "$comment"
}

# Remaining timeout (seconds) of an element in a set, -1 if absent.
elem_expires() {
	local set=$1 key=$2
	nsx "$FW" nft -j list set inet dnsfence "$set" | python3 -c '
import json, sys
want = sys.argv[1]
for item in json.load(sys.stdin)["nftables"]:
    s = item.get("set")
    if not s: continue
    for e in s.get("elem", []):
        el = e.get("elem", e) if isinstance(e, dict) else e
        val = el.get("val") if isinstance(el, dict) else el
        if isinstance(val, dict) and "concat" in val:
            parts = []
            for p in val["concat"]:
                if isinstance(p, dict) and "range" in p:
                    parts.append("%s-%s" % tuple(p["range"]))
                else:
                    parts.append(str(p))
            val = " . ".join(parts)
        if str(val) == want:
            print(el.get("expires", 0) if isinstance(el, dict) else 0)
            sys.exit(0)
print(-1)' "$key"
}

tb_done() {
	if [ -n "${DAEMON_PID:-}" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		tb_daemon_stop TERM || true
		ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
	fi
	echo "# $TB_PASS passed, $TB_FAIL failed"
	[ "$TB_FAIL" -eq 0 ]
}
