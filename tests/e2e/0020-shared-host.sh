#!/bin/bash
# Sharing the host (interface.md): tables that are not ours — Debian 12's
# stock /etc/nftables.conf, a Qubes R4.3-shaped ruleset, docker's, and a
# user's own table named "dnsfence-probe" — are loaded before dnsfenced
# starts. Their presence changes nothing in how it starts, admits, reloads
# and exits, and they stay byte for byte as they were (nft -s: no counter
# values) after every phase; nft monitor sees no event outside our table,
# not even a brief one.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1

# (a) Debian 12's stock /etc/nftables.conf, verbatim.
cat >"$TB_DIR/debian.nft" <<'N'
#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter;
	}
	chain forward {
		type filter hook forward priority filter;
	}
	chain output {
		type filter hook output priority filter;
	}
}
N
# (b) Qubes R4.3-shaped (qubes-core-agent's firewall VM tables), made
# permissive for VM work so that our table decides; (c) docker's iptables-nft
# tables (its bridge network in 10.x); (d) a user's own table whose name is
# the one a careless daemon would use for a feature probe.
cat >"$TB_DIR/others.nft" <<'N'
table ip qubes {
	set downstream {
		type ipv4_addr
		elements = { 10.137.1.10 }
	}
	set allowed {
		type ifname . ipv4_addr
		elements = { "vif1.0" . 10.137.1.10 }
	}
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname "vif*" goto antispoof
		ip saddr @downstream counter drop
	}
	chain antispoof {
		iifname . ip saddr @allowed accept
		counter drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "vif*" accept
		oifname "lo" accept
		oifname "uplink" masquerade
	}
	chain custom-input {
	}
	chain custom-forward {
	}
	chain input {
		type filter hook input priority filter; policy accept;
		jump custom-input
		ct state invalid counter drop
		iifname "vif*" udp dport 68 counter drop
		ct state established,related accept
		iifname "vif*" meta l4proto icmp accept
		iifname "lo" accept
		counter
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		jump custom-forward
		ct state invalid counter drop
		ct state established,related accept
		oifname "vif*" counter drop
	}
	chain dnat-dns {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.139.1.3 udp dport 53 dnat to 198.51.100.2
		ip daddr 10.139.1.3 tcp dport 53 dnat to 198.51.100.2
	}
}
table ip qubes-firewall {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname != "vif*" accept
		ip saddr 10.137.1.10 jump qbs-10-137-1-10
	}
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname != "vif*" ip daddr 10.137.1.10 drop
	}
	chain postrouting {
		type filter hook postrouting priority raw; policy accept;
		oifname != "vif*" ip saddr 10.137.1.10 accept
	}
	chain qbs-10-137-1-10 {
		ip protocol icmp accept
		meta l4proto { tcp, udp } accept
		counter reject with icmp admin-prohibited
	}
}
table inet qubes-nat-accel {
	chain qubes-accel {
		type filter hook forward priority filter + 5; policy accept;
		meta l4proto { tcp, udp } counter
	}
}
table ip nat {
	chain DOCKER {
		iifname "docker0" counter return
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump DOCKER
	}
	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		ip daddr != 127.0.0.0/8 fib daddr type local counter jump DOCKER
	}
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname != "docker0" ip saddr 10.200.0.0/16 counter masquerade
	}
}
table ip filter {
	chain DOCKER {
	}
	chain DOCKER-ISOLATION-STAGE-1 {
		iifname "docker0" oifname != "docker0" counter jump DOCKER-ISOLATION-STAGE-2
		counter return
	}
	chain DOCKER-ISOLATION-STAGE-2 {
		oifname "docker0" counter drop
		counter return
	}
	chain DOCKER-USER {
		counter return
	}
	chain FORWARD {
		type filter hook forward priority filter; policy accept;
		counter jump DOCKER-USER
		counter jump DOCKER-ISOLATION-STAGE-1
		oifname "docker0" ct state related,established counter accept
		oifname "docker0" counter jump DOCKER
		iifname "docker0" oifname != "docker0" counter accept
		iifname "docker0" oifname "docker0" counter accept
	}
}
table inet dnsfence-probe {
	set p {
		type ipv4_addr
		flags timeout
		elements = { 192.0.2.77 }
	}
	set mine {
		type ipv4_addr
		elements = { 198.51.100.77 }
	}
	chain c {
		ip daddr @mine counter
	}
}
N
nsx "$FW" nft -f "$TB_DIR/debian.nft"
nsx "$FW" nft -f "$TB_DIR/others.nft"

FOREIGN="inet:filter ip:qubes ip:qubes-firewall inet:qubes-nat-accel ip:nat ip:filter inet:dnsfence-probe"
snapshot() { # snapshot DIR: every foreign table, stateless, and the table list
	local d=$1 t
	mkdir -p "$d"
	for t in $FOREIGN; do
		nsx "$FW" nft -s list table "${t%%:*}" "${t#*:}" >"$d/$t" 2>&1 || true
	done
	nsx "$FW" nft list tables | grep -v '^table inet dnsfence$' >"$d/tables"
}
snapshot "$TB_DIR/before"
ok "the foreign tables are loaded (7 of them)" \
	test "$(wc -l <"$TB_DIR/before/tables")" -eq 7
ok "... the user's dnsfence-probe table has its element" \
	grep -q "192.0.2.77" "$TB_DIR/before/inet:dnsfence-probe"

same_as_before() { # same_as_before PHASE
	snapshot "$TB_DIR/$1"
	diff -r "$TB_DIR/before" "$TB_DIR/$1" >"$TB_DIR/$1.diff" && return 0
	head -12 "$TB_DIR/$1.diff"
	return 1
}

# Every nftables event in fw from here on: none may name another table.
tb_bg "$TB_DIR/monitor.log" "$FW" nft monitor
MON_PID=$TB_LAST
sleep 0.3
only_ours() {
	local bad
	bad=$(grep -E '^(add|delete|flush|replace|update|destroy|reset) ' \
		"$TB_DIR/monitor.log" | grep -vE '^[a-z]+ [a-z]+ inet dnsfence( |$)' || true)
	[ -z "$bad" ] && return 0
	echo "$bad" | head -5
	return 1
}

dw_config <<'C'
ttl:
  min: 30
  max: 300
  grace: 5
C
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: www.good.example
    ports: [tcp/443]
P

started=no
tb_daemon_start && started=yes
ok "dnsfenced starts beside the foreign tables" test "$started" = yes
if [ "$started" = no ]; then
	grep -iE "error|fail|No such" "$TB_DIR/dnsfenced.log" | head -3 | sed 's/^/# /'
	DAEMON_PID=
fi
ok "after start: the foreign tables are unchanged" same_as_before start
ok "after start: our table is there too" nsx "$FW" nft list table inet dnsfence

if [ "$started" = yes ]; then
	ok "www.good.example resolves" dns_is "$VM_work" NOERROR www.good.example
	ok "... and is reached on tcp/443" reach_tcp "$VM_work" 192.0.2.10 443
	blocked "... not on tcp/22 (our drop is final)" reach_tcp "$VM_work" 192.0.2.10 22
	blocked "a bare IP is blocked" reach_tcp "$VM_work" 192.0.2.16 443
	ok "after admitting: the foreign tables are unchanged" same_as_before admit

	tb_policy work <<-'P'
	addresses: [10.137.1.10, "2001:db8:a:1::10"]
	interface: vif1.0
	allow:
	  - name: www.good.example
	    ports: [tcp/443]
	  - name: mail.good.example
	    ports: [tcp/993]
	P
	tb_reload
	ok "the reload succeeds" grep -q "reloaded" "$TB_DIR/dnsfenced.log"
	ok "after reload: mail.good.example resolves" dns_is "$VM_work" NOERROR mail.good.example
	ok "... and is reached on tcp/993" reach_tcp "$VM_work" 192.0.2.11 993
	ok "... www.good.example's element survived the reload" \
		reach_tcp "$VM_work" 192.0.2.10 443
	blocked "... a bare IP is still blocked" reach_tcp "$VM_work" 192.0.2.16 443
	ok "after reload: the foreign tables are unchanged" same_as_before reload

	tb_daemon_stop TERM
	ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
fi
ok "after stop: the foreign tables are unchanged" same_as_before stop
ok "no nftables event ever touched a table other than ours" only_ours

tb_done
