#!/bin/bash
# The interface a query came in on, as the kernel names it now: the
# frontend maps interface indexes to names once and follows the links'
# changes over rtnetlink (doc/design.md, "A query"). A vif created after
# the daemon started is its VM's at once; renamed away from the name its
# policy claims, its queries are nobody's (REFUSED, nothing admitted);
# renamed back, its VM's again. A link deleted and another made with the
# same name, or with the same index, is known by its own name, never by
# the one that index had before.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
# late's link does not exist yet when the daemon starts
tb_policy late <<'P'
addresses: [10.137.7.10, "2001:db8:a:7::10"]
interface: vif7.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start

ok "work, on a vif there at the start, is answered" \
	dns_is "$VM_work" NOERROR www.good.example

# --- created after the start
tb_vm late 7
ok "late's vif7.0, created after the start: its query is answered" \
	dns_is "$VM_late" NOERROR www.good.example
ok "... and admitted for late" \
	test "$(dw_expires late 192.0.2.10 tcp 443)" -gt 0
ok "... over IPv6 too" \
	dns_is "$VM_late" NOERROR www.good.example AAAA -6 @2001:db8:53::1

# A rename needs the link down; its addresses stay, its routes come back.
rename() {
	nsx "$FW" ip link set "$1" down
	nsx "$FW" ip link set "$1" name "$2"
	nsx "$FW" ip link set "$2" up
}
refused_18() {
	local out
	out=$(dig_vm "$VM_late" "$1" 2>&1)
	[[ $out == *"status: REFUSED,"* && $out == *"EDE: 18"* ]] && return 0
	echo "$out" | grep -E "status|EDE|timed out" | head -3
	return 1
}

# --- renamed away from the name its policy claims, and back
rename vif7.0 vif8.0
ok "vif7.0 renamed vif8.0: late's query is REFUSED with EDE 18" \
	refused_18 n1.fresh.good.example
ok "... and admits nothing" \
	test "$(dw_expires late 192.0.2.101 tcp 443)" = -1
rename vif8.0 vif7.0
ok "renamed back to vif7.0: answered again" \
	dns_is "$VM_late" NOERROR n1.fresh.good.example
ok "... and admitted" test "$(dw_expires late 192.0.2.101 tcp 443)" -gt 0

# --- deleted, and a new link with the same name (another index)
idx=$(nsx "$FW" cat /sys/class/net/vif7.0/ifindex)
ip netns del "$VM_late"
for _ in $(seq 50); do
	nsx "$FW" ip link show vif7.0 >/dev/null 2>&1 || break
	sleep 0.1
done
tb_vm late 7
ok "a new vif7.0 (index $(nsx "$FW" cat /sys/class/net/vif7.0/ifindex), was $idx): answered" \
	dns_is "$VM_late" NOERROR www.good.example

# --- the old index given to a link of another name: not late's
new_link() { # new_link NS IFNAME INDEX
	ip netns add "$1"
	TB_NS+=("$1")
	nsx "$1" ip link set lo up
	nsx "$FW" ip link add "$2" index "$3" type veth peer name eth0 \
		netns "$1"
	nsx "$FW" ip addr add 10.137.7.1/24 dev "$2" 2>/dev/null || true
	nsx "$FW" ip link set "$2" up
	nsx "$1" ip addr add 10.137.7.10/24 dev eth0
	nsx "$1" ip link set eth0 up
	nsx "$1" ip route add default via 10.137.7.1
}
idx=$(nsx "$FW" cat /sys/class/net/vif7.0/ifindex)
ip netns del "$VM_late"
for _ in $(seq 50); do
	nsx "$FW" ip link show vif7.0 >/dev/null 2>&1 || break
	sleep 0.1
done
VM_late=$TB_ID-other
new_link "$VM_late" vif9.0 "$idx"
ok "vif9.0 made with vif7.0's old index $idx" \
	test "$(nsx "$FW" cat /sys/class/net/vif9.0/ifindex)" = "$idx"
ok "... a query from late's address on it is REFUSED with EDE 18" \
	refused_18 n2.fresh.good.example
ok "... and admits nothing" \
	test "$(dw_expires late 192.0.2.102 tcp 443)" = -1
# and the same index under the policy's name again
nsx "$FW" ip link del vif9.0
for _ in $(seq 50); do
	nsx "$FW" ip link show vif9.0 >/dev/null 2>&1 || break
	sleep 0.1
done
ip netns del "$VM_late"
VM_late=$TB_ID-again
new_link "$VM_late" vif7.0 "$idx"
ok "vif7.0 made again with index $idx: answered" \
	dns_is "$VM_late" NOERROR n2.fresh.good.example
ok "... and admitted" test "$(dw_expires late 192.0.2.102 tcp 443)" -gt 0
tb_done
