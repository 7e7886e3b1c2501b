#!/bin/bash
# What a VM sees from dnsfenced: exact, *.suffix and * rules; ports; the
# CNAME chain across zones; IPv6; HTTPS hints; TTL clamping in the answer
# and in the set; non-address types; unknown clients; unlisted names (never
# sent upstream); per-VM isolation; bogus and insecure answers, with and
# without the client's CD bit and require-dnssec.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
tb_vm web 2
tb_vm bank 3
tb_vm stranger 4
dw_config <<'C'
ttl:
  min: 30
  max: 100
  grace: 10
C
tb_policy work <<'P'
addresses: [10.137.1.10, "2001:db8:a:1::10"]
interface: vif1.0
allow:
  - name: mail.good.example
    ports: [tcp/993]
  - name: "*.good.example"
    ports: [tcp/443]
  - name: "*.bogus.example"
  - name: www.insecure.example
    ports: [tcp/443]
deny:
  - name: "*.fresh.good.example"
P
tb_policy web <<'P'
addresses: [10.137.2.10, "2001:db8:a:2::10"]
interface: vif2.0
allow:
  - name: "*"
    ports: [tcp/443]
P
tb_policy bank <<'P'
addresses: [10.137.3.10]
interface: vif3.0
unlisted: nxdomain
allow:
  - name: www.insecure.example
    require-dnssec: true
  - name: www.good.example
    require-dnssec: true
    ports: [tcp/8080]
P
tb_daemon_start

# --- exact, suffix, apex, deep; ports
ok "work resolves www.good.example" dns_is "$VM_work" NOERROR www.good.example
ok "... and reaches it on tcp/443 at once" reach_tcp "$VM_work" 192.0.2.10 443
blocked "... but not on tcp/22" reach_tcp "$VM_work" 192.0.2.10 22
ok "the element carries the name" \
	grep -q 'comment "www.good.example"' <(nsx "$FW" nft list set inet dnsfence work_v4_ports)
ok "mail.good.example: exact rule adds tcp/993 to the suffix's tcp/443" \
	dns_is "$VM_work" NOERROR mail.good.example
ok "... tcp/993 works" reach_tcp "$VM_work" 192.0.2.11 993
ok "... tcp/443 works (ports add up)" reach_tcp "$VM_work" 192.0.2.11 443
ok "deep.sub.good.example (two labels down) is allowed" \
	dns_is "$VM_work" NOERROR deep.sub.good.example
ok "... and reachable" reach_tcp "$VM_work" 192.0.2.13 443
ok "good.example itself is not under *.good.example: REFUSED" \
	dns_is "$VM_work" REFUSED good.example
blocked "... and its address is not admitted" reach_tcp "$VM_work" 192.0.2.14 443
ede_blocked() { [[ $(dig_vm "$VM_work" good.example) == *"EDE: 15 (Blocked)"* ]]; }
ok "... with Extended DNS Error 15 (Blocked)" ede_blocked
ok "deny wins over allow: n1.fresh.good.example REFUSED" \
	dns_is "$VM_work" REFUSED n1.fresh.good.example

# --- a bare IP never slips through
blocked "work: a bare IP it never resolved (192.0.2.16)" reach_tcp "$VM_work" 192.0.2.16 443
blocked "web (*): a bare IP it never resolved" reach_tcp "$VM_web" 192.0.2.16 443
ok "web (*): any name resolves" dns_is "$VM_web" NOERROR www.other.example
ok "... and is reachable on tcp/443" reach_tcp "$VM_web" 192.0.2.20 443
blocked "... only on tcp/443" reach_tcp "$VM_web" 192.0.2.20 22

# --- names libunbound answers locally (RFC 6761) stay local; the answer
# comes from inside ub_resolve_event, before it returns
ok "web (*): foo.test is NXDOMAIN, answered locally" dns_is "$VM_web" NXDOMAIN foo.test
ok "web (*): localhost answers" dns_is "$VM_web" NOERROR localhost
ok "web (*): x.onion is NXDOMAIN" dns_is "$VM_web" NXDOMAIN x.onion

# --- CNAME across zones: the chain's addresses are admitted
ok "alias.good.example (CNAME to www.other.example)" \
	dns_is "$VM_work" NOERROR alias.good.example
ok "... its target's address is reachable" reach_tcp "$VM_work" 192.0.2.20 443
ok "www.other.example asked directly is REFUSED" \
	dns_is "$VM_work" REFUSED www.other.example

# --- IPv6 and HTTPS hints
ok "AAAA www.good.example" dns_is "$VM_work" NOERROR www.good.example AAAA
ok "... reachable over IPv6" reach_tcp "$VM_work" 2001:db8:5::10 443
ok "HTTPS svc.good.example" dns_is "$VM_work" NOERROR svc.good.example HTTPS
ok "... its ipv4hint is admitted" reach_tcp "$VM_work" 192.0.2.15 443
ok "... its ipv6hint is admitted" reach_tcp "$VM_work" 2001:db8:5::15 443

# --- TTLs: clamped in the answer (max 100) and in the set (+ grace)
ttl_of() { dig_vm "$1" +noall +answer "$2" "${3:-A}" | awk '{print $2; exit}'; }
t=$(ttl_of "$VM_work" long.good.example)
ok "a TTL of 604800 is handed out as at most 100 ($t)" test "$t" -le 100 -a "$t" -gt 90
e=$(dw_expires work 192.0.2.16 tcp 443)
ok "... and its element lives 100 + 10 s ($e)" test "$e" -gt 100 -a "$e" -le 110
t=$(ttl_of "$VM_work" short.good.example)
ok "a TTL of 5, below min, is handed out as it is ($t)" test "$t" -le 5
e=$(dw_expires work 192.0.2.12 tcp 443)
ok "... while its element lives min + grace = 40 s ($e)" test "$e" -gt 30 -a "$e" -le 40

# --- other types answered normally, admitting nothing new
ok "TXT for an allowed name" dns_is "$VM_work" NOERROR txt.good.example TXT
ok "MX needs an allowed owner: good.example is not" dns_is "$VM_work" REFUSED good.example MX
ok "ANY is refused (RFC 8482)" dns_is "$VM_work" REFUSED www.good.example ANY

# --- unknown clients, unlisted names
ok "a VM without a policy gets REFUSED" dns_is "$VM_stranger" REFUSED www.good.example
ok "bank (unlisted: nxdomain) gets NXDOMAIN for other names" \
	dns_is "$VM_bank" NXDOMAIN www.other.example
upstream_queries() {
	nsx "$UP" nft list chain inet count in | grep -o 'packets [0-9]*' | awk '{s+=$2} END {print s+0}'
}
nsx "$UP" nft add table inet count
nsx "$UP" nft add chain inet count in '{ type filter hook input priority -50; }'
nsx "$UP" nft add rule inet count in ip daddr "$MI_NS" udp dport 53 counter
nsx "$UP" nft add rule inet count in ip daddr "$MI_NS" tcp dport 53 counter
before=$(upstream_queries)
for i in $(seq 1 10); do dig_vm "$VM_work" "leak$i.other.example" >/dev/null; done
for i in $(seq 1 10); do dig_vm "$VM_bank" "leak$i.good.example" >/dev/null; done
after=$(upstream_queries)
ok "names outside a policy never reach the authoritative server ($before -> $after)" \
	test "$before" -eq "$after"
dig_vm "$VM_work" never-before.good.example >/dev/null
after2=$(upstream_queries)
ok "... while an allowed name does (the count works: $after -> $after2)" \
	test "$after2" -gt "$after"

# --- a query is the VM's only from its own interface: web borrowing
# work's address admits nothing for work (and the answer, if any, would be
# routed to work, not web)
spoofed_query() {
	nsx "$VM_web" ip addr add 10.137.1.10/32 dev eth0
	nsx "$VM_web" dig +time=2 +tries=1 -b 10.137.1.10 @10.139.1.1 \
		big.good.example >/dev/null 2>&1 || true
	nsx "$VM_web" ip addr del 10.137.1.10/32 dev eth0
	[ "$(dw_expires work 203.0.113.1 tcp 443)" = -1 ]
}
ok "a query with work's address from web's interface admits nothing" spoofed_query
ok "... while the same query from work does" dns_is "$VM_work" NOERROR big.good.example
ok "... (its element is there)" test "$(dw_expires work 203.0.113.1 tcp 443)" -gt 0

# --- isolation: work's answers open nothing for bank
blocked "bank cannot reach what work resolved" reach_tcp "$VM_bank" 192.0.2.10 443
blocked "web cannot reach mail.good.example's tcp/993 opened for work" \
	reach_tcp "$VM_web" 192.0.2.11 993

# --- DNSSEC: bogus never admits, whatever CD says; insecure per policy
ok "bogus: SERVFAIL" dns_is "$VM_work" SERVFAIL www.bogus.example
ede_bogus() { [[ $(dig_vm "$VM_work" www.bogus.example) == *"EDE: 6 (DNSSEC Bogus)"* ]]; }
ok "... with EDE 6 (DNSSEC Bogus)" ede_bogus
ok "bogus with CD set: still SERVFAIL" dns_is "$VM_work" SERVFAIL www.bogus.example A +cd
ok "bogus with DO and CD: still SERVFAIL" dns_is "$VM_work" SERVFAIL www.bogus.example A +cd +dnssec
blocked "... and the forged address is not reachable" reach_tcp "$VM_work" 192.0.2.31 443
blocked "... nor the original one" reach_tcp "$VM_work" 192.0.2.30 443
ok "insecure name, no require-dnssec: answered" dns_is "$VM_work" NOERROR www.insecure.example
no_ad() { [[ $(dig_vm "$VM_work" www.insecure.example) != *" ad;"* ]]; }
ok "... without AD" no_ad
ok "... and admitted" reach_tcp "$VM_work" 192.0.2.40 443
ok "insecure name under require-dnssec: SERVFAIL" dns_is "$VM_bank" SERVFAIL www.insecure.example
blocked "... nothing admitted for bank" reach_tcp "$VM_bank" 192.0.2.40 443
ok "secure name under require-dnssec: answered" dns_is "$VM_bank" NOERROR www.good.example
ok "... on its port" reach_tcp "$VM_bank" 192.0.2.10 8080
ad_set() { [[ $(dig_vm "$VM_bank" +dnssec www.good.example) == *" ad;"* ]]; }
ok "... with AD when asked (DO)" ad_set

tb_done
