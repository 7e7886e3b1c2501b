# shellcheck shell=bash
# A Qubes-shaped test bed, sourced after testbed.sh: the firewall
# namespace is shaped like a Qubes R4.3 firewall qube (sys-dnsfence),
# the "up" namespace stands for its netvm (sys-firewall) and, behind it,
# the signed mini-internet of minternet.sh.
#
#   AppVM ns ──eth0 ═ vifN.0 (group 2)── fw ──eth0 ═ uplink── up
#   10.137.0.X/32                        10.137.0.6      10.137.0.5
#                                        (on eth0 and every vif, /32)
#
# What it reproduces of R4.3 (shared/qubes-notes.md §1.3, §1.5, §2):
# - the fw qube's own address 10.137.0.6 (/qubes-netvm-gateway) as /32 on
#   eth0 and on every vif, a /32 route per VM, vifs in link group 2, and
#   each VM's "vifN.0" . IP in `ip qubes allowed`, IP in `downstream`
#   (vif-route-qubes);
# - the tables of tests/lib/qubes-r43.nft: `ip qubes` (raw anti-spoofing,
#   input policy drop with custom-input, forward with custom-forward,
#   masquerade out of non-vifs, dnat-dns at dstnat), `ip qubes-firewall`
#   (forward at priority 0, policy drop, one qbs-<ip> chain per VM),
#   `inet qubes-nat-accel` (a software flowtable at filter + 5, when the
#   kernel has flowtables);
# - dnat-dns as qubes-setup-dnat-to-ns writes it: 10.139.1.1 and
#   10.139.1.2, udp and tcp 53, DNAT to the upstream's resolver (here the
#   up namespace, 10.137.0.5), with counters added so the test can see
#   that they stay at 0.
# What it cannot reproduce: Xen (vifs are veths), QubesDB and dom0,
# qubes-firewall's own daemon (in layered mode its qbs-* chains are written
# here, once) and its conntrack purge, the ip6 tables and IPv6 (Qubes has
# no IPv6 virtual DNS), systemd ordering and units, and real VM names.
#
# Everything is named df-<test>-<pid>-*, and removed by testbed.sh's trap.

. "$(dirname "${BASH_SOURCE[0]}")/minternet.sh"

QB_GW=10.137.0.6     # the fw qube's own address: /qubes-netvm-gateway
QB_UPSTREAM=10.137.0.5 # its netvm (sys-firewall)
QB_NFT="$(dirname "${BASH_SOURCE[0]}")/qubes-r43.nft"
QB_ACCEL=0 # 1 once inet qubes-nat-accel exists
# layered: qubes-firewall runs (its table, a qbs-<ip> chain per VM);
# takeover (qvm-service ... qubes-firewall off, doc/qubes.md): it never
# starts, so there is no `ip qubes-firewall` table. Set before qb_init.
QB_MODE=${QB_MODE:-layered}

# The firewall qube and its netvm; the uplink address comes later
# (qb_uplink), as qubes-network-uplink@eth0 adds it after boot.
qb_init() {
	mkdir -p "$TB_DIR/vms"
	tb_ns "$FW"
	tb_ns "$UP"
	nsx "$FW" sysctl -qw net.ipv4.ip_forward=1
	ip link add eth0 netns "$FW" type veth peer name uplink netns "$UP"
	nsx "$FW" ip link set eth0 up
	nsx "$UP" ip addr add "$QB_UPSTREAM/32" dev uplink
	nsx "$UP" ip link set uplink up
	nsx "$UP" ip route add "$QB_GW/32" dev uplink
	nsx "$FW" nft -f "$QB_NFT"
	if [ "$QB_MODE" = takeover ]; then
		nsx "$FW" nft delete table ip qubes-firewall
	fi
	qb_dnat_dns "$QB_UPSTREAM"
	# The internet behind the netvm, with names.
	mi_build "$TB_DIR/mi"
	mi_serve "$TB_DIR/mi"
	local h
	for h in 192.0.2.10 192.0.2.11 192.0.2.12; do tb_host "$h"; done
	tb_bg "$TB_DIR/serve-any.log" "$UP" "$PROBE" serve 0.0.0.0 443 22
	tb_wait_for "$TB_DIR/serve-any.log" listening 5
}

# The uplink comes up: the qube's address on eth0, its default route.
qb_uplink() {
	nsx "$FW" ip addr add "$QB_GW/32" dev eth0
	nsx "$FW" ip route add "$QB_UPSTREAM/32" dev eth0
	nsx "$FW" ip route add default via "$QB_UPSTREAM"
}

# As qubes-setup-dnat-to-ns: replace `ip qubes dnat-dns` atomically with
# one DNAT per virtual DNS address, to the real resolver (counted here).
qb_dnat_dns() {
	local to=$1
	nsx "$FW" nft -f - <<-NFT
	flush chain ip qubes dnat-dns
	table ip qubes {
		chain dnat-dns {
			ip daddr 10.139.1.1 udp dport 53 counter dnat to $to
			ip daddr 10.139.1.1 tcp dport 53 counter dnat to $to
			ip daddr 10.139.1.2 udp dport 53 counter dnat to $to
			ip daddr 10.139.1.2 tcp dport 53 counter dnat to $to
		}
	}
	NFT
}

# qb_vm NAME IP N [QBS-RULES]: an AppVM at IP behind vifN.0, as
# vif-route-qubes connects it; QBS-RULES is its qubes-firewall chain's
# body (default: accept, i.e. qvm-firewall "allow all"). Sets VM_NAME.
qb_vm() {
	local name=$1 ip=$2 n=$3 rules=${4:-accept} ns="$TB_ID-$1"
	local vif="vif$n.0" qbs="qbs-${2//./-}"
	tb_ns "$ns"
	ip link add "$vif" netns "$FW" type veth peer name eth0 netns "$ns"
	nsx "$FW" ip link set "$vif" group 2
	nsx "$FW" ip addr add "$QB_GW/32" dev "$vif"
	nsx "$FW" ip link set "$vif" up
	nsx "$FW" ip route add "$ip/32" dev "$vif"
	nsx "$FW" nft add element ip qubes allowed "{ \"$vif\" . $ip }"
	nsx "$FW" nft add element ip qubes downstream "{ $ip }"
	# qubes-firewall's per-source chain (R4.3: jumped to from
	# qubes-forward), in the layered mode.
	[ "$QB_MODE" = takeover ] || nsx "$FW" nft -f - <<-NFT
	table ip qubes-firewall {
		chain $qbs {
			$rules
		}
	}
	add rule ip qubes-firewall qubes-forward ip saddr $ip jump $qbs
	NFT
	qb_accel_add "$vif"
	nsx "$ns" ip addr add "$ip/32" dev eth0
	nsx "$ns" ip link set eth0 up
	nsx "$ns" ip route add "$QB_GW/32" dev eth0
	nsx "$ns" ip route add default via "$QB_GW"
	eval "VM_$name=\$ns"
}

# inet qubes-nat-accel: created with the first vif, each later vif added
# to its flowtable (vif-route-qubes). Left out, and said so, when the
# kernel has no flowtables.
qb_accel_add() {
	local vif=$1
	[ "$QB_ACCEL" != skip ] || return 0
	if [ "$QB_ACCEL" = 1 ]; then
		nsx "$FW" nft add flowtable inet qubes-nat-accel qubes-accel \
			"{ hook ingress priority filter; devices = { $vif }; }"
		return
	fi
	if nsx "$FW" nft -f - 2>"$TB_DIR/accel.err" <<-NFT
	table inet qubes-nat-accel {
		flowtable qubes-accel {
			hook ingress priority filter
			devices = { eth0, $vif }
		}
		chain qubes-accel {
			type filter hook forward priority filter + 5; policy accept;
			meta l4proto { tcp, udp } iifgroup 2 flow add @qubes-accel
			meta l4proto { tcp, udp } oifgroup 2 flow add @qubes-accel
			counter
		}
	}
	NFT
	then
		QB_ACCEL=1
	else
		echo "# no flowtables in this kernel: inet qubes-nat-accel left out ($(head -n 1 "$TB_DIR/accel.err"))"
		QB_ACCEL=skip
	fi
}

# As qubes-setup start would, the same rule: the tagged accept for DNS to
# the gateway in ip qubes custom-input (ip qubes input rejects the rest
# from the vifs).
qb_custom_input() {
	nsx "$FW" nft add rule ip qubes custom-input iifgroup 2 ip daddr \
		"$QB_GW" meta l4proto "{ tcp, udp }" th dport 53 counter accept \
		comment '"dnsfence"'
}

# contrib/qubes/qubes-setup against the bed, as dnsfence.service runs it
# (ExecStartPre start, ExecStopPost stop), with the bed's nft; its output
# goes to $TB_DIR/qubes-setup.log. start renders from a QubesDB stand-in
# into $TB_DIR/rendered.yaml (checked with dnsfenced -n, not used: the
# bed's daemon runs on qb_config's file) and adds the tagged accept.
QB_SETUP="$(dirname "${BASH_SOURCE[0]}")/../../contrib/qubes/qubes-setup"
qb_setup() {
	local cmd=$1
	shift
	if [ "$cmd" = start ]; then
		[ -f "$TB_DIR/qubesdb.json" ] || cat >"$TB_DIR/qubesdb.json" <<-J
		{"/qubes-netvm-gateway": "$QB_GW",
		 "/qubes-netvm-primary-dns": "10.139.1.1",
		 "/qubes-netvm-secondary-dns": "10.139.1.2",
		 "/qubes-primary-dns": "10.139.1.1",
		 "/qubes-secondary-dns": "10.139.1.2"}
		J
		set -- --qubesdb-json "$TB_DIR/qubesdb.json" \
			--config "$TB_DIR/rendered.yaml" --policies "$TB_DIR/vms" \
			--qubes-conf "$TB_DIR/qubes.conf" \
			--trust-anchor "$TB_DIR/mi/root.key" --control-group root \
			--dnsfenced "$DNSFENCED" "$@"
	fi
	echo "--- qubes-setup $cmd" >>"$TB_DIR/qubes-setup.log"
	# (Its failsafe.nft is the one next to it, contrib/qubes/.)
	python3 "$QB_SETUP" "$cmd" --nft "ip netns exec $FW nft" "$@" \
		>>"$TB_DIR/qubes-setup.log" 2>&1
}

# dnsfence.yaml as contrib/qubes/qubes-setup renders it (policies in
# $TB_DIR/vms, the minternet as the internet); extra top-level keys on
# stdin.
qb_config() {
	mkdir -p "$TB_DIR/vms"
	{
		echo "listen: [$QB_GW]"
		echo 'policies: vms'
		echo 'control: control.sock'
		echo 'resolver:'
		echo '  trust-anchor-file: mi/root.key'
		echo '  root-hints: mi/root.hints'
		cat
	} >"$TB_DIR/dnsfence.yaml"
}

# A table without its counters' values, for before/after comparisons.
qb_table() {
	nsx "$FW" nft list table "$@" |
		sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
}

# Packets counted by the rule of table FAMILY NAME, chain CHAIN, whose
# text matches the regex RE (the sum when several do).
qb_count() {
	local fam=$1 table=$2 chain=$3 re=$4
	nsx "$FW" nft list chain "$fam" "$table" "$chain" |
		awk -v re="$re" '$0 ~ re && match($0, /packets [0-9]+/) {
			n += substr($0, RSTART + 8, RLENGTH - 8) }
			END { print n + 0 }'
}

# dig from a VM to a server (10.139.1.1 by default): qb_dig VM SERVER ARGS
qb_dig() {
	local vm=$1 server=$2
	shift 2
	nsx "$vm" dig +time=3 +tries=1 @"$server" "$@"
}

# qb_dns_is VM SERVER STATUS NAME...: the answer's status is STATUS.
qb_dns_is() {
	local vm=$1 server=$2 want=$3 out
	shift 3
	out=$(qb_dig "$vm" "$server" "$@" 2>&1)
	[[ $out == *"status: $want,"* ]] && return 0
	echo "$out" | grep -E "status|EDE|timed out" | head -3
	return 1
}
