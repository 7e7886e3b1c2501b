#!/bin/bash
# The table outlives the daemon: elements survive a clean exit, a crash and
# a restart (with their remaining timeouts); a reload adds and removes VMs in
# one transaction and keeps every element of the sets that stay; a bad
# reload changes nothing; a bad configuration at start installs nothing.
. "$(dirname "$0")/../lib/testbed.sh"

tb_init
tb_vm work 1
tb_vm dev 2
tb_host 192.0.2.10
tb_host 192.0.2.11
tb_serve 192.0.2.10 443
tb_serve 192.0.2.11 443

tb_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.example"
    ports: [tcp/443]
P

# A bad configuration at start: exit 1, nothing installed.
echo "unknown-key: 1" >>"$TB_DIR/dnsfence.yaml"
rc=0
nsx "$FW" "$DNSFENCED" -c "$TB_DIR/dnsfence.yaml" 2>"$TB_DIR/bad.log" || rc=$?
ok "a bad configuration at start exits 1" test "$rc" -eq 1
ok "... saying where the problem is" \
	grep -q "dnsfence.yaml:[0-9]*:1: unknown key 'unknown-key'" "$TB_DIR/bad.log"
no_table() { ! nsx "$FW" nft list table inet dnsfence >/dev/null 2>&1; }
ok "... and installs nothing" no_table
sed -i '/unknown-key/d' "$TB_DIR/dnsfence.yaml"

# systemd readiness: READY=1 on $NOTIFY_SOCKET once the table is in and
# DNS is served.
notify_ready() {
	python3 - "$TB_DIR/notify.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(10)
open(sys.argv[1] + ".msg", "wb").write(s.recv(256))
PY
	local listener=$!
	for _ in $(seq 50); do [ -S "$TB_DIR/notify.sock" ] && break; sleep 0.1; done
	NOTIFY_SOCKET="$TB_DIR/notify.sock" tb_daemon_start
	wait "$listener"
	[ "$(cat "$TB_DIR/notify.sock.msg")" = "READY=1" ]
}
ok "dnsfenced tells systemd READY=1" notify_ready
tb_daemon_stop TERM
tb_daemon_start
# Stand in for the resolver: admit an address as it would, with the name
# that admitted it in the comment (what a restart adopts it by).
nsx "$FW" nft add element inet dnsfence work_v4_ports \
	"{ 192.0.2.10 . tcp . 443 timeout 600s comment \"www.example\" }"
ok "an admitted address is reachable" reach_tcp "$VM_work" 192.0.2.10 443
blocked "a port not admitted is not" reach_tcp "$VM_work" 192.0.2.11 443

tb_daemon_stop TERM
ok "while the daemon is down, admitted addresses stay reachable" \
	reach_tcp "$VM_work" 192.0.2.10 443
blocked "... and nothing else is" reach_tcp "$VM_work" 192.0.2.11 443
tb_daemon_start
e=$(elem_expires work_v4_ports "192.0.2.10 . tcp . 443")
ok "restart adopts the element with its remaining timeout ($e s)" \
	test "$e" -gt 500 -a "$e" -le 600
ok "... and it still admits" reach_tcp "$VM_work" 192.0.2.10 443

tb_daemon_stop KILL
tb_daemon_start
e=$(elem_expires work_v4_ports "192.0.2.10 . tcp . 443")
ok "after a crash (SIGKILL) too ($e s)" test "$e" -gt 500 -a "$e" -le 600

# Reload: add a VM.
blocked "dev has no policy yet" reach_tcp "$VM_dev" 192.0.2.11 443
tb_policy dev <<'P'
addresses: [10.137.2.10]
allow:
  - net: 192.0.2.11
P
tb_reload
ok "reload logs success" grep -q "reloaded: 2 VM policies" "$TB_DIR/dnsfenced.log"
ok "reload adds dev's rules" reach_tcp "$VM_dev" 192.0.2.11 443
sets_of() { nsx "$FW" nft list table inet dnsfence | grep -c "set $1_v" || true; }
ok "reload adds dev's four sets" test "$(sets_of dev)" -eq 4
e=$(elem_expires work_v4_ports "192.0.2.10 . tcp . 443")
ok "reload keeps work's element ($e s)" test "$e" -gt 500
ok "... which still admits" reach_tcp "$VM_work" 192.0.2.10 443

# A bad reload changes nothing.
echo "allow: [ {name: 'a.*.b'} ]" >>"$TB_DIR/vms/dev.yaml"
tb_reload
ok "a bad reload is refused" grep -q "reload failed" "$TB_DIR/dnsfenced.log"
ok "... naming the problem" grep -q "dev.yaml:.*duplicate key 'allow'" "$TB_DIR/dnsfenced.log"
ok "... and dev keeps its rules" reach_tcp "$VM_dev" 192.0.2.11 443
ok "... and work its element" reach_tcp "$VM_work" 192.0.2.10 443

# Remove a VM; change the set size (sets are made anew, elements carried).
rm "$TB_DIR/vms/dev.yaml"
cat >>"$TB_DIR/dnsfence.yaml" <<'C'
limits:
  set-size: 1024
C
tb_reload
ok "reload removes dev's sets" test "$(sets_of dev)" -eq 0
blocked "... and dev's rules" reach_tcp "$VM_dev" 192.0.2.11 443
size_ok() { [[ $(nsx "$FW" nft list set inet dnsfence work_v4) == *"size 2048"* ]]; }
ok "the new set size is in force" size_ok
e=$(elem_expires work_v4_ports "192.0.2.10 . tcp . 443")
ok "the element moved to the new set with its timeout ($e s)" \
	test "$e" -gt 500 -a "$e" -le 600
ok "... and still admits" reach_tcp "$VM_work" 192.0.2.10 443

# A transaction the kernel refuses changes nothing: shrink the sets below
# what they hold (set-size 16: 32 in the kernel), so carrying the
# elements over fails (ENFILE).
for i in $(seq 20 60); do
	nsx "$FW" nft add element inet dnsfence work_v4 "{ 198.51.100.$i timeout 600s }"
done
sed -i 's/set-size: 1024/set-size: 16/' "$TB_DIR/dnsfence.yaml"
tb_reload
ok "a reload the kernel refuses fails" \
	grep -q "reload failed, the running configuration stays: .*work_v4" "$TB_DIR/dnsfenced.log"
ok "... the set keeps its size" size_ok
n=$(nsx "$FW" nft list set inet dnsfence work_v4 | grep -o "198.51.100" | wc -l)
ok "... and every element ($n of 41)" test "$n" -eq 41
ok "... and admission still works" reach_tcp "$VM_work" 192.0.2.10 443

tb_done
