# A hermetic, DNSSEC-signed mini-internet, sourced after testbed.sh.
#
# mi_build DIR makes, with ldns tools, a signed zone tree under DIR:
#   .                  root, signed; its DNSKEY is the trust anchor
#   example.           TLD, signed, DS in the root
#   good.example.      signed, DS in example.: www, mail, a CNAME chain,
#                      *.wild (any name, 192.0.2.62)
#   other.example.     signed: the target of cross-zone CNAMEs
#   bogus.example.     signed, DS in example., but a record altered after
#                      signing: validation must fail
#   insecure.example.  not signed, no DS: provably insecure
#   dead.example.      delegated to 192.0.2.99, where nothing answers
#   slow.example.      not signed, no DS (insecure), delegated to
#                      192.0.2.54: tests/tools/slowdns.py relays, after a
#                      delay, what a second nsd at 192.0.2.55 answers
#                      (*.slow.example A 192.0.2.60); started only by
#                      mi_serve_slow
#   bulk.example.      not signed, no DS (insecure): with MI_BULK=N set,
#                      h1 .. hN.bulk.example AAAA 2001:db8:b::I (I in hex,
#                      as two groups), and any name below hI the same address
#                      (a wildcard); without it, empty
#   perf.example.      only with MI_PERF=N (tests/bench/compare): signed,
#                      DS in example.; n1 .. nN.perf.example each with
#                      1-4 A (name I has 1 + (I-1) % 4, from 384 addresses
#                      in 192.0.2.128/25, 198.51.100.128/25 and
#                      203.0.113.128/25) and one AAAA 2001:db8:c::I (I in
#                      hex, as two groups), TTL 3600; w1 .. w64 the same
#                      shape, for warming delegations up. Without MI_PERF
#                      neither the zone nor its delegation exists
# and mi_serve starts nsd in the "up" namespace at 192.0.2.53 (every zone
# on one server; resolvers follow the DS chain all the same; mi_stop and
# mi_start stop it and start it again). Writes DIR/root.key (the trust
# anchor) and DIR/root.hints.
#
# nsd limits its responses (RRL: past 200 a second of one kind to one /24,
# e.g. NODATA from one zone, it drops or truncates them). MI_NO_RRL=1 turns
# that off, for benchmarks asking hundreds of new names a second: before
# each new name in bulk.example libunbound asks "bulk.example A" (NODATA),
# and each query dropped costs a retry, 50 ms later at the earliest.

MI_NS=192.0.2.53
MI_DEAD=192.0.2.99
MI_SLOW=192.0.2.54
MI_SLOW_NSD=192.0.2.55

# mi_sign NAME FILE: sign FILE as zone NAME with a fresh KSK+ZSK; writes
# FILE.signed and NAME's DS records to FILE.ds.
mi_sign() {
	local zone=$1 file=$2 dir ksk zsk
	dir=$(dirname "$file")
	( cd "$dir" &&
	  ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$zone") &&
	  zsk=$(ldns-keygen -a ECDSAP256SHA256 "$zone") &&
	  cat "$ksk.key" "$zsk.key" >>"$file" &&
	  ldns-signzone -n -f "$file.signed" "$file" "$ksk" "$zsk" >/dev/null &&
	  ldns-key2ds -n -2 "$ksk.key" >"$file.ds" &&
	  cp "$ksk.key" "$file.ksk" )
}

mi_soa() {
	local rname=hostmaster.$1
	[ "$1" = . ] && rname=hostmaster.
	printf '%s 300 IN SOA ns.root. %s 1 3600 600 86400 60\n' "$1" "$rname"
	printf '%s 300 IN NS ns.root.\n' "$1"
}

mi_build() {
	local d=$1
	mkdir -p "$d/zones"
	local z=$d/zones

	{ mi_soa good.example.
	  cat <<-Z
	www.good.example. 300 IN A 192.0.2.10
	www.good.example. 300 IN AAAA 2001:db8:5::10
	mail.good.example. 300 IN A 192.0.2.11
	short.good.example. 5 IN A 192.0.2.12
	alias.good.example. 120 IN CNAME www.other.example.
	deep.sub.good.example. 300 IN A 192.0.2.13
	good.example. 300 IN A 192.0.2.14
	svc.good.example. 300 IN HTTPS 1 . ipv4hint=192.0.2.15 ipv6hint=2001:db8:5::15
	txt.good.example. 300 IN TXT "hello"
	good.example. 300 IN MX 10 mail.good.example.
	long.good.example. 604800 IN A 192.0.2.16
	short2.good.example. 5 IN A 192.0.2.10
	Z
	  # DNS rebinding (0045): public, reserved, private, a VM's (work in
	  # the bed), the listen address; only 192.0.2.17/18, 2001:db8:5::17/18
	  # and, under allow-private, 10.99.0.1/2 are ever hosted.
	  for a in 192.0.2.17 127.0.0.1 10.137.1.10 10.139.1.1 192.168.1.1 \
		169.254.1.1 10.99.0.1; do
		echo "rebind.good.example. 300 IN A $a"
	  done
	  for a in 2001:db8:5::17 ::1 fe80::1 ::ffff:192.0.2.17; do
		echo "rebind.good.example. 300 IN AAAA $a"
	  done
	  echo "rebind.good.example. 300 IN HTTPS 1 . alpn=h2 ipv4hint=192.0.2.18,127.0.0.2,10.99.0.2 ipv6hint=fe80::2,2001:db8:5::18"
	  echo "loopback.good.example. 300 IN A 127.0.0.1"
	  for i in $(seq 1 100); do
		echo "n$i.fresh.good.example. 300 IN A 192.0.2.$((100 + i))"
	  done
	  # Twenty names, one address.
	  for i in $(seq 1 20); do
		echo "m$i.many.good.example. 300 IN A 192.0.2.50"
	  done
	  # Names without end, one address (tests/bench/soak).
	  echo "*.wild.good.example. 300 IN A 192.0.2.62"
	  for i in $(seq 1 40); do
		echo "big.good.example. 300 IN A 203.0.113.$i"
	  done
	  for i in $(seq 41 90); do
		echo "huge.good.example. 300 IN A 203.0.113.$i"
	  done
	} >"$z/good.example"
	{ mi_soa other.example.
	  echo "www.other.example. 600 IN A 192.0.2.20"; } >"$z/other.example"
	{ mi_soa bogus.example.
	  echo "www.bogus.example. 300 IN A 192.0.2.30"; } >"$z/bogus.example"
	{ mi_soa insecure.example.
	  echo "www.insecure.example. 300 IN A 192.0.2.40"; } >"$z/insecure.example"
	{ mi_soa slow.example.
	  echo "*.slow.example. 300 IN A 192.0.2.60"; } >"$z/slow.example"
	{ mi_soa bulk.example.
	  awk -v n="${MI_BULK:-0}" 'BEGIN { for (i = 1; i <= n; i++) {
		a = sprintf("2001:db8:b::%x:%x", int(i / 65536), i % 65536)
		printf "h%d.bulk.example. 300 IN AAAA %s\n", i, a
		printf "*.h%d.bulk.example. 300 IN AAAA %s\n", i, a } }'
	} >"$z/bulk.example"
	for c in good other bogus; do
		mi_sign "$c.example." "$z/$c.example" || return 1
	done
	if [ -n "${MI_PERF:-}" ]; then
		{ mi_soa perf.example.
		  mi_perf_names w 64
		  mi_perf_names n "$MI_PERF"
		} >"$z/perf.example"
		mi_sign perf.example. "$z/perf.example" || return 1
	fi
	# Alter a signed record: the signature no longer matches.
	sed -i 's/^\(www\.bogus\.example\.\s.*\sA\s\+\)192\.0\.2\.30$/\1192.0.2.31/' \
		"$z/bogus.example.signed"
	grep -q "192.0.2.31" "$z/bogus.example.signed" || return 1

	{ mi_soa example.
	  for c in good other bogus insecure bulk; do
		echo "$c.example. 300 IN NS ns.root."
	  done
	  # A delegation to a server that never answers (insecure: no DS).
	  echo "dead.example. 300 IN NS ns.dead.example."
	  echo "ns.dead.example. 300 IN A $MI_DEAD"
	  # A delegation to the slow server (insecure: no DS).
	  echo "slow.example. 300 IN NS ns.slow.example."
	  echo "ns.slow.example. 300 IN A $MI_SLOW"
	  cat "$z/good.example.ds" "$z/other.example.ds" "$z/bogus.example.ds"
	  if [ -n "${MI_PERF:-}" ]; then
		echo "perf.example. 300 IN NS ns.root."
		cat "$z/perf.example.ds"
	  fi
	} >"$z/example"
	mi_sign example. "$z/example" || return 1

	{ mi_soa .
	  echo "ns.root. 300 IN A $MI_NS"
	  echo "example. 300 IN NS ns.root."
	  cat "$z/example.ds"
	} >"$z/root"
	mi_sign . "$z/root" || return 1
	grep -v '^;' "$z/root.ksk" >"$d/root.key"
	printf '. 3600000 NS ns.root.\nns.root. 3600000 A %s\n' "$MI_NS" \
		>"$d/root.hints"

	cat >"$d/nsd.conf" <<-C
	server:
	  ip-address: $MI_NS
	  port: 53
	  username: ""
	  chroot: ""
	  zonesdir: "$z"
	  database: ""
	  zonelistfile: "$d/zone.list"
	  xfrdfile: "$d/xfrd.state"
	  pidfile: "$d/nsd.pid"
	  logfile: "$d/nsd.log"
	  verbosity: 2
	  log-only-syslog: no
	  hide-version: yes
	  server-count: 1
	remote-control:
	  control-enable: no
	C
	if [ -n "${MI_NO_RRL:-}" ]; then
		sed -i 's/^  server-count: 1$/&\n  rrl-ratelimit: 0/' "$d/nsd.conf"
	fi
	for zn in root:. example:example. good.example:good.example. \
		other.example:other.example. bogus.example:bogus.example. \
		insecure.example:insecure.example. bulk.example:bulk.example.; do
		local f=${zn%%:*} n=${zn#*:} file
		file=$f
		[ -f "$z/$f.signed" ] && file=$f.signed
		printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n' "$n" "$file" \
			>>"$d/nsd.conf"
	done
	if [ -n "${MI_PERF:-}" ]; then
		printf 'zone:\n  name: "perf.example."\n  zonefile: "perf.example.signed"\n' \
			>>"$d/nsd.conf"
	fi
}

# mi_perf_names PREFIX N: PREFIX1 .. PREFIXN.perf.example, 1-4 A and one
# AAAA each (see above). Addresses outside 10.x and the ones the test bed
# uses, none private: the rebinding guard would drop them.
mi_perf_names() {
	awk -v p="$1" -v n="$2" 'BEGIN {
		split("192.0.2 198.51.100 203.0.113", net, " ")
		o = (p == "n") ? 0 : 7
		for (i = 1; i <= n; i++) {
			for (j = 0; j <= (i - 1) % 4; j++) {
				a = (i * 4 + j + o) % 384
				printf "%s%d.perf.example. 3600 IN A %s.%d\n", p, i,
					net[int(a / 128) + 1], 128 + a % 128
			}
			printf "%s%d.perf.example. 3600 IN AAAA 2001:db8:c:%x::%x:%x\n",
				p, i, (p == "n") ? 0 : 1, int(i / 65536), i % 65536
		}
	}'
}

# mi_serve_slow DIR DELAY: serve slow.example. from a second nsd at
# $MI_SLOW_NSD behind tests/tools/slowdns.py at $MI_SLOW, which answers
# DELAY seconds late. Both are stopped by the test bed's EXIT trap.
mi_serve_slow() {
	local d=$1 delay=$2 slowdns
	slowdns=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/slowdns.py
	sed -e "s/ip-address: $MI_NS/ip-address: $MI_SLOW_NSD/" \
	    -e "s|$d/\(zone.list\|xfrdfile\|xfrd.state\|nsd.pid\|nsd.log\)|$d/slow-\1|" \
	    -e '/^zone:/,$d' "$d/nsd.conf" >"$d/slow-nsd.conf"
	printf 'zone:\n  name: "slow.example."\n  zonefile: "slow.example"\n' \
		>>"$d/slow-nsd.conf"
	tb_host "$MI_SLOW_NSD"
	tb_host "$MI_SLOW"
	nsd-checkconf "$d/slow-nsd.conf" || return 1
	tb_bg "$d/slow-nsd.out" "$UP" nsd -d -c "$d/slow-nsd.conf"
	tb_bg "$d/slowdns.log" "$UP" python3 "$slowdns" "$MI_SLOW" "$MI_SLOW_NSD" "$delay"
	MI_SLOW_PID=$TB_LAST
	tb_wait_for "$d/slowdns.log" listening 5 || return 1
	for _ in $(seq 50); do
		nsx "$UP" dig +short +time=1 +tries=1 @"$MI_SLOW_NSD" \
			www.slow.example A >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the slow zone's nsd did not come up" >&2
	cat "$d/slow-nsd.out" >&2
	return 1
}

# Start nsd in the upstream namespace; log queries to DIR/nsd.log.
mi_serve() {
	tb_host "$MI_NS"
	mi_start "$1"
}

# mi_start DIR: start nsd (again, after mi_stop) and wait until it answers.
mi_start() {
	local d=$1
	nsd-checkconf "$d/nsd.conf" || return 1
	tb_bg "$d/nsd.out" "$UP" nsd -d -c "$d/nsd.conf"
	MI_PID=$TB_LAST
	for _ in $(seq 50); do
		nsx "$UP" dig +short +time=1 +tries=1 @"$MI_NS" \
			www.good.example A >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "nsd did not come up" >&2
	cat "$d/nsd.out" >&2
	return 1
}

# mi_stop: stop the nsd mi_start started (SIGTERM to its PID) and wait
# until it is gone; its address stays, so queries to it are refused (ICMP
# port unreachable). The PID leaves the test bed's list: it is not ours to
# kill at exit once reaped.
mi_stop() {
	local p keep=()
	kill "$MI_PID" 2>/dev/null || return 1
	for _ in $(seq 50); do
		kill -0 "$MI_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$MI_PID" 2>/dev/null && return 1
	wait "$MI_PID" 2>/dev/null || true
	for p in "${TB_PIDS[@]}"; do
		[ "$p" = "$MI_PID" ] || keep+=("$p")
	done
	TB_PIDS=("${keep[@]}")
	MI_PID=
}
