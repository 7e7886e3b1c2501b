# The world of the resolver tests, sourced after testbed.sh: the signed
# mini-internet (minternet.sh) served by nsd, every address its zones name
# alive on the internet side with servers on tcp/udp 443, 993, 22 and
# 8080, and dnsfenced configured to use its root hints and trust anchor.
# `dw_config <<< extra-yaml` writes dnsfence.yaml (extra top-level keys go
# after the resolver block).

. "$(dirname "${BASH_SOURCE[0]}")/minternet.sh"

dw_setup() {
	tb_init
	mi_build "$TB_DIR/mi"
	mi_serve "$TB_DIR/mi"
	local h
	for h in 192.0.2.10 192.0.2.11 192.0.2.12 192.0.2.13 192.0.2.14 \
		192.0.2.15 192.0.2.16 192.0.2.20 192.0.2.30 192.0.2.31 \
		192.0.2.40 192.0.2.50 192.0.2.60 2001:db8:5::10 2001:db8:5::15; do
		tb_host "$h"
	done
	for h in $(seq 101 200); do tb_host "192.0.2.$h"; done
	for h in $(seq 1 90); do tb_host "203.0.113.$h"; done
	# The server that never answers.
	tb_host "$MI_DEAD"
	nsx "$UP" nft add table inet dead
	nsx "$UP" nft add chain inet dead in '{ type filter hook input priority 0; }'
	nsx "$UP" nft add rule inet dead in ip daddr "$MI_DEAD" drop
	# One server for every address ([::] takes IPv4 too).
	tb_bg "$TB_DIR/serve-any.log" "$UP" "$PROBE" serve :: 443 993 22 8080
	tb_wait_for "$TB_DIR/serve-any.log" listening 5
}

dw_config() {
	mkdir -p "$TB_DIR/vms"
	{
		echo 'listen: [10.139.1.1, "2001:db8:53::1"]'
		echo 'policies: vms'
		echo 'control: control.sock'
		echo 'resolver:'
		echo '  trust-anchor-file: mi/root.key'
		echo '  root-hints: mi/root.hints'
		cat
	} >"$TB_DIR/dnsfence.yaml"
}

# Remaining timeout of ADDR . PROTO . PORT in VM's v4 ports set, -1 if none.
dw_expires() {
	elem_expires "$1_v4_ports" "$2 . $3 . $4"
}

# Addresses (the A records) of a dig answer from a VM.
dw_addrs() {
	local vm=$1
	shift
	{ dig_vm "$vm" +short "$@" || true; } | { grep -E '^[0-9.]+$|:' || true; } | sort
}
