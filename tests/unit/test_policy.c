#include <arpa/inet.h>
#include <stdlib.h>

#include "check.h"
#include "nameidx.h"
#include "policy.h"
#include "util.h"

static void
test_names(void)
{
	struct name_pattern p;
	const char *err;
	char out[NAME_MAX_LEN + 1];

	CHECK(policy_parse_name("Mail.Example.COM.", &p, &err) == 0);
	CHECK(p.kind == MATCH_EXACT);
	CHECK_STR(p.name, "mail.example.com");
	CHECK(policy_parse_name("*.aws.amazon.com", &p, &err) == 0);
	CHECK(p.kind == MATCH_SUFFIX);
	CHECK_STR(p.name, "aws.amazon.com");
	CHECK(policy_parse_name("*", &p, &err) == 0 && p.kind == MATCH_ALL);
	CHECK(policy_parse_name("xn--bcher-kva.example", &p, &err) == 0);
	CHECK(policy_parse_name("_dmarc.example.com", &p, &err) == 0);

	/* misplaced or malformed */
	CHECK(policy_parse_name("a.*.example.com", &p, &err) < 0 && err);
	CHECK(policy_parse_name("*example.com", &p, &err) < 0);
	CHECK(policy_parse_name("**.example.com", &p, &err) < 0);
	CHECK(policy_parse_name("*.*.example.com", &p, &err) < 0);
	CHECK(policy_parse_name("a..b", &p, &err) < 0);
	CHECK(policy_parse_name(".a", &p, &err) < 0);
	CHECK(policy_parse_name("", &p, &err) < 0);
	CHECK(policy_parse_name("-a.example", &p, &err) < 0);
	CHECK(policy_parse_name("a-.example", &p, &err) < 0);
	CHECK(policy_parse_name("bücher.example", &p, &err) < 0);
	CHECK(policy_parse_name("a b.example", &p, &err) < 0);
	CHECK(policy_parse_name("a/b.example", &p, &err) < 0);

	/* label and name length limits */
	char lab[80];
	memset(lab, 'a', 63);
	strcpy(lab + 63, ".x");
	CHECK(policy_normalise_name(lab, out, sizeof(out)) == 0);
	memset(lab, 'a', 64);
	strcpy(lab + 64, ".x");
	CHECK(policy_normalise_name(lab, out, sizeof(out)) < 0);
	char longname[300];
	for (int i = 0; i < 127; i++)
		memcpy(longname + 2 * i, "a.", 2);
	longname[253] = '\0'; /* 253 chars: a.a.….a */
	CHECK(policy_normalise_name(longname, out, sizeof(out)) == 0);
	longname[253] = 'b';
	longname[254] = '\0';
	CHECK(policy_normalise_name(longname, out, sizeof(out)) < 0);
}

static void
test_match(void)
{
	struct name_pattern p;
	const char *err;

	policy_parse_name("*.aws.amazon.com", &p, &err);
	CHECK(policy_pattern_match(&p, "s3.aws.amazon.com"));
	CHECK(policy_pattern_match(&p, "a.b.c.aws.amazon.com"));
	CHECK(!policy_pattern_match(&p, "aws.amazon.com"));
	CHECK(!policy_pattern_match(&p, "xaws.amazon.com"));
	CHECK(!policy_pattern_match(&p, "amazon.com"));
	CHECK(!policy_pattern_match(&p, "s3.aws.amazon.com.evil"));
	policy_parse_name("mail.example.com", &p, &err);
	CHECK(policy_pattern_match(&p, "mail.example.com"));
	CHECK(!policy_pattern_match(&p, "x.mail.example.com"));
	CHECK(!policy_pattern_match(&p, "ail.example.com"));
	policy_parse_name("*", &p, &err);
	CHECK(policy_pattern_match(&p, "anything.example"));
}

static void
test_ports(void)
{
	struct portspec ps;
	const char *err;

	CHECK(policy_parse_port("tcp/443", &ps, &err) == 0);
	CHECK(ps.proto == IPPROTO_TCP && ps.lo == 443 && ps.hi == 443);
	CHECK(policy_parse_port("udp/1000-2000", &ps, &err) == 0);
	CHECK(ps.proto == IPPROTO_UDP && ps.lo == 1000 && ps.hi == 2000);
	CHECK(policy_parse_port("icmp", &ps, &err) == 0 &&
		ps.proto == IPPROTO_ICMP);
	CHECK(policy_parse_port("tcp/65535", &ps, &err) == 0);
	CHECK(policy_parse_port("tcp/65536", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/0", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/2000-1000", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/1-", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/-1", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/+80", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/0080", &ps, &err) == 0 && ps.lo == 80);
	CHECK(policy_parse_port("sctp/80", &ps, &err) < 0);
	CHECK(policy_parse_port("TCP/80", &ps, &err) < 0);
	CHECK(policy_parse_port("icmpv6", &ps, &err) < 0);
	CHECK(policy_parse_port("tcp/99999999999999999999", &ps, &err) < 0);

	/* union and normalisation: overlapping and adjacent ranges merge */
	struct portspec a[] = {{IPPROTO_TCP, 443, 443}, {IPPROTO_TCP, 80, 80},
		{IPPROTO_UDP, 53, 53}, {IPPROTO_TCP, 81, 100},
		{IPPROTO_TCP, 90, 95}};
	struct ports x = {0}, y = {0};
	x.v = malloc(sizeof(a));
	memcpy(x.v, a, sizeof(a));
	x.n = 5;
	policy_ports_normalise(&x);
	CHECK(x.n == 3);
	CHECK(x.v[0].proto == IPPROTO_TCP && x.v[0].lo == 80 &&
		x.v[0].hi == 100);
	CHECK(x.v[1].lo == 443 && x.v[2].proto == IPPROTO_UDP);
	y.icmp = true;
	policy_ports_union(&y, &x);
	CHECK(y.icmp && !y.any && y.n == 3);
	policy_ports_finish(&x);
	policy_ports_finish(&y);
}

static void
test_prefix(void)
{
	struct prefix p;
	struct ipaddr a;
	const char *err;
	char buf[64];

	CHECK(policy_parse_prefix("192.0.2.0/24", &p, &err) == 0);
	CHECK(p.len == 24 && p.addr.family == AF_INET);
	CHECK_STR(policy_prefix_str(&p, buf, sizeof(buf)), "192.0.2.0/24");
	CHECK(policy_parse_prefix("192.0.2.1", &p, &err) == 0 && p.len == 32);
	CHECK(policy_parse_prefix("2001:db8::/32", &p, &err) == 0 &&
		p.len == 32 && p.addr.family == AF_INET6);
	CHECK(policy_parse_prefix("0.0.0.0/0", &p, &err) == 0);
	CHECK(policy_parse_prefix("192.0.2.1/24", &p, &err) < 0 && err);
	CHECK(policy_parse_prefix("192.0.2.0/33", &p, &err) < 0);
	CHECK(policy_parse_prefix("192.0.2.0/", &p, &err) < 0);
	CHECK(policy_parse_prefix("192.0.2.0/-1", &p, &err) < 0);
	CHECK(policy_parse_prefix("192.0.2.0/2x", &p, &err) < 0);
	CHECK(policy_parse_prefix("2001:db8::/129", &p, &err) < 0);
	CHECK(policy_parse_prefix("2001:db8::1/64", &p, &err) < 0);
	CHECK(policy_parse_prefix("example.com/24", &p, &err) < 0);
	CHECK(policy_parse_prefix("192.0.2/24", &p, &err) < 0);
	CHECK(policy_parse_addr("10.137.0.12", &a) == 0);
	CHECK(policy_parse_addr("10.137.0.256", &a) < 0);
	CHECK(policy_parse_addr("fd09:24ef:4179::a89:c", &a) == 0 &&
		a.family == AF_INET6);
}

static void
test_vm_names(void)
{
	CHECK(policy_vm_name_valid("work"));
	CHECK(policy_vm_name_valid("work-admin"));
	CHECK(policy_vm_name_valid("sys_firewall2"));
	CHECK(!policy_vm_name_valid("2work"));
	CHECK(!policy_vm_name_valid("-work"));
	CHECK(!policy_vm_name_valid("wo rk"));
	CHECK(!policy_vm_name_valid("wo.rk"));
	CHECK(!policy_vm_name_valid(""));
	CHECK(policy_vm_name_valid("a234567890123456789012345678901"));
	CHECK(!policy_vm_name_valid("a2345678901234567890123456789012"));
	CHECK(policy_ifname_valid("vif12.0"));
	CHECK(!policy_ifname_valid("vif 1"));
	CHECK(!policy_ifname_valid("a234567890123456"));
	CHECK(!policy_ifname_valid(""));
}

static void
test_ttl(void)
{
	struct ttl_conf t = {.min = 30, .max = 86400, .grace = 10};

	CHECK(policy_ttl_element(&t, 0) == 40);
	CHECK(policy_ttl_element(&t, 5) == 40);
	CHECK(policy_ttl_element(&t, 300) == 310);
	CHECK(policy_ttl_element(&t, 1000000) == 86410);
	CHECK(policy_ttl_element(&t, UINT32_MAX) == 86410);
}

static void
test_ttl_cap(void)
{
	struct ttl_conf t = {.min = 30, .max = 86400, .grace = 10};
	struct ttl_conf zero = {.min = 0, .max = 1, .grace = 0};
	struct ttl_conf flat = {.min = 60, .max = 60, .grace = 3600};

	/* Admitting: clamp(ttl, min, max); the grace is never handed out. */
	CHECK(policy_ttl_cap(&t, true, 0) == 30);
	CHECK(policy_ttl_cap(&t, true, 29) == 30);
	CHECK(policy_ttl_cap(&t, true, 30) == 30);
	CHECK(policy_ttl_cap(&t, true, 31) == 31);
	CHECK(policy_ttl_cap(&t, true, 300) == 300);
	CHECK(policy_ttl_cap(&t, true, 86399) == 86399);
	CHECK(policy_ttl_cap(&t, true, 86400) == 86400);
	CHECK(policy_ttl_cap(&t, true, 86401) == 86400);
	CHECK(policy_ttl_cap(&t, true, UINT32_MAX) == 86400);
	/* Never longer than the element lives, minus its grace. */
	for (uint32_t ttl = 0; ttl < 100000; ttl += 997)
		CHECK(policy_ttl_cap(&t, true, ttl) + t.grace ==
			policy_ttl_element(&t, ttl));
	/* Admitting nothing: the ceiling, whatever the TTL. */
	CHECK(policy_ttl_cap(&t, false, 0) == 86400);
	CHECK(policy_ttl_cap(&t, false, 5) == 86400);
	CHECK(policy_ttl_cap(&t, false, UINT32_MAX) == 86400);
	/* min 0: a TTL of 0 stays 0 (no caching by the VM). */
	CHECK(policy_ttl_cap(&zero, true, 0) == 0);
	CHECK(policy_ttl_cap(&zero, true, 7) == 1);
	CHECK(policy_ttl_element(&zero, 0) == 0);
	CHECK(policy_ttl_cap(&zero, false, 0) == 1);
	/* min == max: every answer gets that; a large grace changes
	 * nothing the VM sees. */
	CHECK(policy_ttl_cap(&flat, true, 0) == 60);
	CHECK(policy_ttl_cap(&flat, true, UINT32_MAX) == 60);
	CHECK(policy_ttl_element(&flat, 0) == 3660);
	/* The configuration's extremes (ttl: max 604800, grace 3600) do
	 * not overflow. */
	struct ttl_conf big = {.min = 604800, .max = 604800, .grace = 3600};
	CHECK(policy_ttl_cap(&big, true, UINT32_MAX) == 604800);
	CHECK(policy_ttl_element(&big, UINT32_MAX) == 608400);
}

static void
decide_checks(struct vm *vm)
{
	struct verdict v;

	policy_decide(vm, "mail.example.com", 0, &v);
	CHECK(v.allowed && v.require_dnssec && !v.ports.any && v.ports.n == 2);
	verdict_finish(&v);
	policy_decide(vm, "www.example.com", 0, &v);
	CHECK(v.allowed && !v.require_dnssec && v.ports.n == 1);
	verdict_finish(&v);
	policy_decide(vm, "example.com", 0, &v);
	CHECK(!v.allowed);
	verdict_finish(&v);
	policy_decide(vm, "x.ads.example.com", 0, &v);
	CHECK(!v.allowed); /* deny is checked before allow */
	verdict_finish(&v);
	vm->default_allow = true;
	policy_decide(vm, "elsewhere.example.org", 0, &v);
	CHECK(v.allowed && v.ports.any);
	verdict_finish(&v);
	policy_decide(vm, "x.ads.example.com", 0, &v);
	CHECK(!v.allowed);
	verdict_finish(&v);
}

static void
test_decide(void)
{
	struct rule allow[3] = {0}, deny[1] = {0};
	struct portspec tcp443 = {IPPROTO_TCP, 443, 443};
	struct portspec tcp993 = {IPPROTO_TCP, 993, 993};
	struct vm vm = {.allow = allow, .nallow = 3, .deny = deny, .ndeny = 1};
	const char *err;

	policy_parse_name("*.example.com", &allow[0].pat, &err);
	allow[0].ports.v = &tcp443;
	allow[0].ports.n = 1;
	policy_parse_name("mail.example.com", &allow[1].pat, &err);
	allow[1].ports.v = &tcp993;
	allow[1].ports.n = 1;
	allow[1].require_dnssec = true;
	allow[2].is_net = true; /* never matches names */
	allow[2].ports.any = true;
	policy_parse_name("*.ads.example.com", &deny[0].pat, &err);

	/* Rule by rule (a VM put together by hand), then through the index
	 * the loader builds: the same decisions. */
	for (int indexed = 0; indexed < 2; indexed++) {
		vm.default_allow = false;
		if (indexed)
			policy_vm_index(&vm);
		decide_checks(&vm);
	}
	nameidx_destroy(vm.idx);
}

static void
test_find_vm(void)
{
	struct ipaddr a1, a2, a3;
	struct vm vms[2] = {{.name = "a", .addrs = &a1, .naddrs = 1},
		{.name = "b", .addrs = &a2, .naddrs = 1, .iface = "vif2.0"}};

	policy_parse_addr("10.137.0.1", &a1);
	policy_parse_addr("10.137.0.2", &a2);
	policy_parse_addr("10.137.0.3", &a3);
	CHECK(policy_find_vm(vms, 2, &a1, "anything") == &vms[0]);
	CHECK(policy_find_vm(vms, 2, &a2, "vif2.0") == &vms[1]);
	CHECK(policy_find_vm(vms, 2, &a2, "vif3.0") == NULL);
	CHECK(policy_find_vm(vms, 2, &a3, NULL) == NULL);
}

/* A source address is its VM's only where it may come from, whatever the
 * order of the files: on an interface some VMs claim, only theirs. */
static void
test_find_vm_claimed(void)
{
	struct ipaddr a[5], b6, c6;
	struct ipaddr alpha[1], bravo[2], mike[1], yankee[2], zulu[1];
	struct vm vms[5] = {
		{.name = "alpha",
			.addrs = alpha,
			.naddrs = 1,
			.iface = "vif1.0"},
		{.name = "bravo", .addrs = bravo, .naddrs = 2},
		{.name = "mike", .addrs = mike, .naddrs = 1, .iface = "vif3.0"},
		{.name = "yankee", .addrs = yankee, .naddrs = 2},
		{.name = "zulu", .addrs = zulu, .naddrs = 1, .iface = "vif5.0"},
	};

	for (int i = 0; i < 5; i++) {
		char s[32];

		snprintf(s, sizeof(s), "10.137.%d.10", i + 1);
		policy_parse_addr(s, &a[i]);
	}
	policy_parse_addr("2001:db8:a:2::10", &b6);
	policy_parse_addr("2001:db8:a:4::10", &c6);
	alpha[0] = a[0];
	bravo[0] = a[1], bravo[1] = b6;
	mike[0] = a[2];
	yankee[0] = a[3], yankee[1] = c6;
	zulu[0] = a[4];

	/* mike's interface: mike, and nobody else, before or after it */
	CHECK(policy_find_vm(vms, 5, &a[2], "vif3.0") == &vms[2]);
	CHECK(policy_find_vm(vms, 5, &a[0], "vif3.0") == NULL);
	CHECK(policy_find_vm(vms, 5, &a[1], "vif3.0") == NULL);
	CHECK(policy_find_vm(vms, 5, &b6, "vif3.0") == NULL);
	CHECK(policy_find_vm(vms, 5, &a[3], "vif3.0") == NULL);
	CHECK(policy_find_vm(vms, 5, &c6, "vif3.0") == NULL);
	CHECK(policy_find_vm(vms, 5, &a[4], "vif3.0") == NULL);
	/* a VM without interface: from any interface nobody claims */
	CHECK(policy_find_vm(vms, 5, &a[1], "vif2.0") == &vms[1]);
	CHECK(policy_find_vm(vms, 5, &b6, "vif4.0") == &vms[1]);
	CHECK(policy_find_vm(vms, 5, &c6, "eth0") == &vms[3]);
	CHECK(policy_find_vm(vms, 5, &a[3], "?") == &vms[3]);
	CHECK(policy_find_vm(vms, 5, &a[1], "vif5.0") == NULL);
	/* unknown interface (TCP, why, conntrack): the address alone */
	CHECK(policy_find_vm(vms, 5, &a[1], NULL) == &vms[1]);
	CHECK(policy_find_vm(vms, 5, &a[4], NULL) == &vms[4]);

	/* two VMs behind one interface: both theirs there, nobody else's */
	vms[3].iface = "vif3.0";
	CHECK(policy_find_vm(vms, 5, &a[2], "vif3.0") == &vms[2]);
	CHECK(policy_find_vm(vms, 5, &c6, "vif3.0") == &vms[3]);
	CHECK(policy_find_vm(vms, 5, &c6, "vif4.0") == NULL);
	CHECK(policy_find_vm(vms, 5, &a[1], "vif3.0") == NULL);
}

/* The forward chain's order: every interface's rules before any dispatch
 * by address alone, VMs sharing an interface next to each other. */
static void
test_dispatch_order(void)
{
	struct vm vms[6] = {
		{.name = "alpha", .iface = "vif1.0"},
		{.name = "bravo"},
		{.name = "kilo", .iface = "vif6.0"},
		{.name = "mike", .iface = "vif3.0"},
		{.name = "yankee"},
		{.name = "zulu", .iface = "vif6.0"},
	};
	size_t order[6], want[6] = {0, 3, 2, 5, 1, 4};
	bool same = true;

	CHECK(policy_dispatch_order(vms, 6, order) == 4);
	for (int i = 0; i < 6; i++)
		same = same && order[i] == want[i];
	CHECK(same);
	for (int i = 0; i < 6; i++)
		vms[i].iface = NULL;
	CHECK(policy_dispatch_order(vms, 6, order) == 0);
	for (size_t i = 0; i < 6; i++)
		CHECK(order[i] == i);
	CHECK(policy_dispatch_order(vms, 0, order) == 0);
}

static void
test_atoms(void)
{
	struct rule allow[3] = {0};
	struct portspec r0[] = {{IPPROTO_TCP, 400, 500}, {IPPROTO_UDP, 53, 53}};
	struct portspec r1[] = {{IPPROTO_TCP, 443, 443}};
	struct portspec r2[] = {{IPPROTO_TCP, 450, 600}};
	struct vm vm = {.allow = allow, .nallow = 3};
	struct portspec out[16];
	size_t n;

	allow[0].ports = (struct ports){.v = r0, .n = 2};
	allow[1].ports = (struct ports){.v = r1, .n = 1};
	allow[2].ports = (struct ports){.v = r2, .n = 1};
	policy_vm_atoms(&vm);
	/* tcp: 400-442, 443, 444-449, 450-500, 501-600; udp: 53 */
	CHECK(vm.natoms == 6);
	CHECK(vm.atoms[0].lo == 400 && vm.atoms[0].hi == 442);
	CHECK(vm.atoms[1].lo == 443 && vm.atoms[1].hi == 443);
	CHECK(vm.atoms[4].lo == 501 && vm.atoms[4].hi == 600);
	CHECK(vm.atoms[5].proto == IPPROTO_UDP && vm.atoms[5].lo == 53);
	for (size_t i = 0; i + 1 < vm.natoms; i++)
		CHECK(vm.atoms[i].proto != vm.atoms[i + 1].proto ||
			vm.atoms[i].hi < vm.atoms[i + 1].lo);
	n = policy_atoms_for(&vm, &allow[1].ports, out, 16);
	CHECK(n == 1 && out[0].lo == 443 && out[0].hi == 443);
	n = policy_atoms_for(&vm, &allow[0].ports, out, 16);
	CHECK(n == 5); /* 400-442, 443, 444-449, 450-500, udp/53 */
	n = policy_atoms_for(&vm, &allow[2].ports, out, 2);
	CHECK(n == 2); /* 450-500, 501-600 */
	free(vm.atoms);
}

/* What a reload compares: the rules deciding names, and a rule's
 * identity across configurations. */
static void
test_same(void)
{
	struct rule a[2] = {0}, b[2] = {0}, d[1] = {0};
	struct portspec p443 = {IPPROTO_TCP, 443, 443};
	struct portspec p444 = {IPPROTO_TCP, 443, 444};
	struct vm x = {.name = "x", .allow = a, .nallow = 2};
	struct vm y = {.name = "y", .allow = b, .nallow = 2};
	const char *err;

	for (int i = 0; i < 2; i++) {
		policy_parse_name(i ? "mail.example.com" : "*.example.com",
			&a[i].pat, &err);
		b[i] = a[i];
		a[i].ports.v = b[i].ports.v = &p443;
		a[i].ports.n = b[i].ports.n = 1;
	}
	CHECK(policy_vm_same_rules(&x, &y) && policy_vm_same_deny(&x, &y));
	CHECK(policy_rule_id(&a[0]) == policy_rule_id(&b[0]));
	CHECK(policy_rule_id(&a[0]) != policy_rule_id(&a[1]));
	b[1].ports.v = &p444;
	CHECK(!policy_vm_same_rules(&x, &y) && policy_vm_same_deny(&x, &y));
	CHECK(policy_rule_id(&a[1]) != policy_rule_id(&b[1]));
	b[1].ports.v = &p443;
	b[1].require_dnssec = true;
	CHECK(!policy_vm_same_rules(&x, &y));
	CHECK(policy_rule_id(&a[1]) != policy_rule_id(&b[1]));
	b[1].require_dnssec = false;
	b[1].allow_private = true; /* what an answer keeps: another rule */
	CHECK(!policy_vm_same_rules(&x, &y));
	CHECK(policy_rule_id(&a[1]) != policy_rule_id(&b[1]));
	b[1].allow_private = false;
	b[1].ports.icmp = true;
	CHECK(policy_rule_id(&a[1]) != policy_rule_id(&b[1]));
	b[1].ports.icmp = false;
	policy_parse_name("*.ads.example.com", &d[0].pat, &err);
	y.deny = d;
	y.ndeny = 1;
	CHECK(!policy_vm_same_rules(&x, &y) && !policy_vm_same_deny(&x, &y));
	y.ndeny = 0;
	y.default_allow = true;
	CHECK(!policy_vm_same_deny(&x, &y));
	y.default_allow = false;
	y.nallow = 1;
	CHECK(!policy_vm_same_rules(&x, &y));
	y.nallow = x.nallow;
	CHECK(policy_vm_same_rules(&x, &y));
	/* dns: deny changes what every name gets: a rules change. */
	y.dns_deny = true;
	CHECK(!policy_vm_same_rules(&x, &y) && !policy_vm_same_deny(&x, &y));
	{
		struct verdict v;

		policy_decide(&x, "www.example.com", 0, &v);
		CHECK(v.allowed);
		verdict_finish(&v);
		policy_decide(&y, "www.example.com", 0, &v);
		CHECK(!v.allowed && v.ports.n == 0 && !v.ports.any);
		verdict_finish(&v);
	}
	y.dns_deny = false;

	struct vm vms[2] = {x, y};
	CHECK(policy_vm_by_name(vms, 2, "y") == &vms[1]);
	CHECK(policy_vm_by_name(vms, 2, "z") == NULL);
}

/* Each guarded prefix at its edges: the first and the last address in
 * it, and the addresses just outside it. */
static const struct {
	const char *addr;
	enum addr_class c;
} edges[] = {
	{"0.0.0.0", ADDR_RESERVED},
	{"0.255.255.255", ADDR_RESERVED},
	{"1.0.0.0", ADDR_PUBLIC},
	{"9.255.255.255", ADDR_PUBLIC},
	{"10.0.0.0", ADDR_PRIVATE},
	{"10.255.255.255", ADDR_PRIVATE},
	{"11.0.0.0", ADDR_PUBLIC},
	{"100.63.255.255", ADDR_PUBLIC},
	{"100.64.0.0", ADDR_PRIVATE},
	{"100.127.255.255", ADDR_PRIVATE},
	{"100.128.0.0", ADDR_PUBLIC},
	{"126.255.255.255", ADDR_PUBLIC},
	{"127.0.0.0", ADDR_RESERVED},
	{"127.0.0.1", ADDR_RESERVED},
	{"127.255.255.255", ADDR_RESERVED},
	{"128.0.0.0", ADDR_PUBLIC},
	{"169.253.255.255", ADDR_PUBLIC},
	{"169.254.0.0", ADDR_PRIVATE},
	{"169.254.255.255", ADDR_PRIVATE},
	{"169.255.0.0", ADDR_PUBLIC},
	{"172.15.255.255", ADDR_PUBLIC},
	{"172.16.0.0", ADDR_PRIVATE},
	{"172.31.255.255", ADDR_PRIVATE},
	{"172.32.0.0", ADDR_PUBLIC},
	{"192.0.2.1", ADDR_PUBLIC},
	{"192.167.255.255", ADDR_PUBLIC},
	{"192.168.0.0", ADDR_PRIVATE},
	{"192.168.255.255", ADDR_PRIVATE},
	{"192.169.0.0", ADDR_PUBLIC},
	{"223.255.255.255", ADDR_PUBLIC},
	{"224.0.0.0", ADDR_RESERVED},
	{"240.0.0.1", ADDR_RESERVED},
	{"255.255.255.255", ADDR_RESERVED},
	{"::", ADDR_RESERVED},
	{"::1", ADDR_RESERVED},
	{"::2", ADDR_RESERVED}, /* v4-compatible, deprecated */
	{"::192.0.2.1", ADDR_RESERVED},
	{"::1:0:0:0", ADDR_PUBLIC},
	{"64:ff9b::192.0.2.1", ADDR_PUBLIC}, /* NAT64: the v4 inside */
	{"64:ff9b::10.137.2.10", ADDR_PRIVATE},
	{"64:ff9b::127.0.0.1", ADDR_RESERVED},
	{"64:ff9b:1::a89:20a", ADDR_PRIVATE}, /* local-use NAT64 */
	{"2002:c000:201::1", ADDR_PUBLIC},    /* 6to4 of 192.0.2.1 */
	{"2002:a89:20a::", ADDR_PRIVATE},     /* 6to4 of 10.137.2.10 */
	{"2002:7f00:1::", ADDR_RESERVED},
	{"0:0:0:0:0:fffe:ffff:ffff", ADDR_PUBLIC},
	{"::ffff:0:0", ADDR_RESERVED},
	{"::ffff:192.0.2.1", ADDR_RESERVED}, /* v4-mapped, public or not */
	{"::ffff:127.0.0.1", ADDR_RESERVED},
	{"::ffff:ffff:ffff", ADDR_RESERVED},
	{"0:0:0:1::", ADDR_PUBLIC},
	{"::1:0:0", ADDR_PUBLIC},
	{"2001:db8::1", ADDR_PUBLIC},
	{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
	{"fc00::", ADDR_PRIVATE},
	{"fd09:24ef:4179::a89:c", ADDR_PRIVATE},
	{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PRIVATE},
	{"fe00::", ADDR_PUBLIC},
	{"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
	{"fe80::", ADDR_PRIVATE},
	{"fe80::1", ADDR_PRIVATE},
	{"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PRIVATE},
	{"fec0::", ADDR_PUBLIC},
	{"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC},
	{"ff00::", ADDR_RESERVED},
	{"ff02::1", ADDR_RESERVED},
	{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED},
};

static void
test_addr_class(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(edges); i++) {
		struct ipaddr a;
		enum addr_class c;

		CHECK(policy_parse_addr(edges[i].addr, &a) == 0);
		c = policy_addr_class(&a);
		if (c != edges[i].c)
			fprintf(stderr, "%s: %s, expected %s\n", edges[i].addr,
				policy_addr_class_name(c),
				policy_addr_class_name(edges[i].c));
		CHECK(c == edges[i].c);
	}
}

/* allow-private: private addresses get the ports of the matching rules
 * that say it, and only theirs; public ones those of every matching
 * rule; reserved ones nothing, whatever the rules. */
static void
test_decide_private(void)
{
	struct rule allow[3] = {0};
	struct portspec tcp443 = {IPPROTO_TCP, 443, 443};
	struct portspec tcp22 = {IPPROTO_TCP, 22, 22};
	struct portspec udp53 = {IPPROTO_UDP, 53, 53};
	struct vm vm = {.allow = allow, .nallow = 3};
	struct verdict v;
	const struct ports *ps;
	const char *err;

	policy_parse_name("*", &allow[0].pat, &err);
	allow[0].ports.v = &tcp443;
	allow[0].ports.n = 1;
	policy_parse_name("*.corp.example", &allow[1].pat, &err);
	allow[1].ports.v = &tcp22;
	allow[1].ports.n = 1;
	allow[1].allow_private = true;
	policy_parse_name("dns.corp.example", &allow[2].pat, &err);
	allow[2].ports.v = &udp53;
	allow[2].ports.n = 1;
	allow[2].allow_private = true;

	policy_decide(&vm, "www.example.com", 0, &v);
	CHECK(v.allowed && !v.allow_private && v.private_ports.n == 0);
	CHECK(policy_verdict_ports(&v, ADDR_PUBLIC) == &v.ports);
	CHECK(policy_verdict_ports(&v, ADDR_PRIVATE) == NULL);
	CHECK(policy_verdict_ports(&v, ADDR_RESERVED) == NULL);
	CHECK(policy_verdict_ports(&v, ADDR_INTERNAL) == NULL);
	verdict_finish(&v);

	policy_decide(&vm, "git.corp.example", 0, &v);
	CHECK(v.allowed && v.allow_private);
	CHECK(v.ports.n == 2); /* tcp/22 and tcp/443 */
	ps = policy_verdict_ports(&v, ADDR_PRIVATE);
	CHECK(ps == &v.private_ports && ps->n == 1 && !ps->any &&
		ps->v[0].proto == IPPROTO_TCP && ps->v[0].lo == 22);
	CHECK(policy_verdict_ports(&v, ADDR_RESERVED) == NULL);
	CHECK(policy_verdict_ports(&v, ADDR_INTERNAL) == NULL);
	verdict_finish(&v);

	/* two rules say it: their ports add up, the third's do not */
	policy_decide(&vm, "dns.corp.example", 0, &v);
	ps = policy_verdict_ports(&v, ADDR_PRIVATE);
	CHECK(ps != NULL && ps->n == 2 && v.ports.n == 3);
	verdict_finish(&v);

	/* default: allow: every port for public addresses, but private
	 * ones still need a rule that says allow-private */
	vm.default_allow = true;
	policy_decide(&vm, "elsewhere.example.org", 0, &v);
	CHECK(v.allowed && v.ports.any && !v.allow_private);
	CHECK(policy_verdict_ports(&v, ADDR_PRIVATE) == NULL);
	verdict_finish(&v);
	policy_decide(&vm, "git.corp.example", 0, &v);
	ps = policy_verdict_ports(&v, ADDR_PRIVATE);
	CHECK(ps != NULL && !ps->any && ps->n == 1);
	verdict_finish(&v);
	vm.default_allow = false;

	/* an allow-private rule without ports: every port, for it */
	allow[1].ports.n = 0;
	allow[1].ports.any = true;
	policy_decide(&vm, "git.corp.example", 0, &v);
	ps = policy_verdict_ports(&v, ADDR_PRIVATE);
	CHECK(ps != NULL && ps->any);
	verdict_finish(&v);
	/* ... until it ends */
	allow[1].until = 100;
	policy_decide(&vm, "git.corp.example", 100, &v);
	CHECK(v.allowed && !v.allow_private);
	CHECK(policy_verdict_ports(&v, ADDR_PRIVATE) == NULL);
	verdict_finish(&v);
}

static int64_t
t_of(const char *s)
{
	int64_t t = -12345;
	const char *err;

	if (policy_parse_time(s, &t, &err) < 0)
		return -12345;
	return t;
}

static bool
t_bad(const char *s)
{
	int64_t t;
	const char *err = NULL;

	return policy_parse_time(s, &t, &err) < 0 && err != NULL;
}

static void
test_time(void)
{
	char buf[32];

	CHECK(t_of("1970-01-01T00:00:00Z") == 0);
	CHECK(t_of("1970-01-01T00:00:01Z") == 1);
	CHECK(t_of("2000-01-01T00:00:00Z") == 946684800);
	CHECK(t_of("2026-12-31T18:00:00Z") == 1798740000);
	CHECK(t_of("2038-01-19T03:14:08Z") == 2147483648LL);
	CHECK(t_of("9999-12-31T23:59:59Z") == 253402300799LL);
	CHECK(t_of("1969-12-31T23:59:59Z") == -1);
	CHECK(t_of("0000-01-01T00:00:00Z") == -62167219200LL);
	/* lower case t and z, RFC 3339 5.6 */
	CHECK(t_of("2026-12-31t18:00:00z") == 1798740000);
	/* offsets: local time minus the offset is UTC */
	CHECK(t_of("2026-12-31T19:00:00+01:00") == 1798740000);
	CHECK(t_of("2026-12-31T12:30:00-05:30") == 1798740000);
	CHECK(t_of("2026-12-31T18:00:00-00:00") == 1798740000);
	CHECK(t_of("2027-01-01T04:59:00+10:59") == 1798740000);
	CHECK(t_of("2026-12-31T18:00:00+23:59") == 1798740000 - 86340);
	/* a fraction is dropped: never later than written */
	CHECK(t_of("2026-12-31T18:00:00.999999999Z") == 1798740000);
	CHECK(t_of("2026-12-31T18:00:00.5+01:00") == 1798740000 - 3600);
	CHECK(t_of("1969-12-31T23:59:59.5Z") == -1);
	/* leap years */
	CHECK(t_of("2024-02-29T00:00:00Z") == 1709164800);
	CHECK(t_of("2000-02-29T00:00:00Z") == 951782400);
	CHECK(t_bad("2023-02-29T00:00:00Z"));
	CHECK(t_bad("1900-02-29T00:00:00Z"));
	CHECK(t_bad("2100-02-29T00:00:00Z"));
	CHECK(t_of("2024-03-01T00:00:00Z") - t_of("2024-02-28T00:00:00Z") ==
		2 * 86400);
	CHECK(t_of("2023-03-01T00:00:00Z") - t_of("2023-02-28T00:00:00Z") ==
		86400);
	/* days per month */
	CHECK(t_of("2026-04-30T00:00:00Z") != -12345);
	CHECK(t_bad("2026-04-31T00:00:00Z"));
	CHECK(t_bad("2026-06-31T00:00:00Z"));
	CHECK(t_of("2026-07-31T00:00:00Z") != -12345);
	CHECK(t_bad("2026-01-32T00:00:00Z"));
	CHECK(t_bad("2026-01-00T00:00:00Z"));
	CHECK(t_bad("2026-00-10T00:00:00Z"));
	CHECK(t_bad("2026-13-10T00:00:00Z"));
	/* time fields */
	CHECK(t_bad("2026-01-10T24:00:00Z"));
	CHECK(t_bad("2026-01-10T23:60:00Z"));
	CHECK(t_bad("2026-01-10T23:59:61Z"));
	CHECK(t_bad("2026-12-31T23:59:60Z")); /* leap second: refused */
	/* offsets */
	CHECK(t_bad("2026-01-10T10:00:00+24:00"));
	CHECK(t_bad("2026-01-10T10:00:00+01:60"));
	CHECK(t_bad("2026-01-10T10:00:00+0100"));
	CHECK(t_bad("2026-01-10T10:00:00+1:00"));
	CHECK(t_bad("2026-01-10T10:00:00+01"));
	CHECK(t_bad("2026-01-10T10:00:00")); /* no offset: whose time? */
	/* shape */
	CHECK(t_bad(""));
	CHECK(t_bad("2026-01-10"));
	CHECK(t_bad("2026-01-10 10:00:00Z")); /* space separator */
	CHECK(t_bad("2026-1-10T10:00:00Z"));
	CHECK(t_bad("26-01-10T10:00:00Z"));
	CHECK(t_bad("+2026-01-10T10:00:00Z"));
	CHECK(t_bad("20260110T100000Z"));
	CHECK(t_bad("2026-01-10T10:00Z"));
	CHECK(t_bad("2026-01-10T10:00:00.Z"));
	CHECK(t_bad("2026-01-10T10:00:00.1234567890Z"));
	CHECK(t_bad("2026-01-10T10:00:00ZZ"));
	CHECK(t_bad("2026-01-10T10:00:00Z "));
	CHECK(t_bad(" 2026-01-10T10:00:00Z"));
	CHECK(t_bad("2026-01-10T10:00:00UTC"));
	CHECK(t_bad("2026-01-10X10:00:00Z"));
	CHECK(t_bad("2026-01-1aT10:00:00Z"));
	CHECK(t_bad("1798740000"));

	/* and back */
	CHECK_STR(policy_time_str(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
	CHECK_STR(policy_time_str(1798740000, buf, sizeof(buf)),
		"2026-12-31T18:00:00Z");
	CHECK_STR(policy_time_str(-1, buf, sizeof(buf)),
		"1969-12-31T23:59:59Z");
	CHECK_STR(policy_time_str(951782400, buf, sizeof(buf)),
		"2000-02-29T00:00:00Z");
	CHECK_STR(policy_time_str(253402300799LL, buf, sizeof(buf)),
		"9999-12-31T23:59:59Z");
	/* every day over 800 years (two leap-year cycles) round-trips */
	for (int64_t t = -62167219200LL; t < 253402300799LL;
		t += 86400 * 37 + 3661) {
		int64_t back;
		const char *err;

		policy_time_str(t, buf, sizeof(buf));
		if (policy_parse_time(buf, &back, &err) < 0 || back != t) {
			CHECK(!"round trip");
			break;
		}
	}
}

static void
test_decide_until(void)
{
	struct rule allow[3] = {0};
	struct vm vm = {.allow = allow, .nallow = 3};
	struct portspec tcp443 = {IPPROTO_TCP, 443, 443};
	struct verdict v;
	const char *err;

	policy_parse_name("build.example.org", &allow[0].pat, &err);
	allow[0].ports.any = true;
	allow[0].until = 1000;
	policy_parse_name("*.example.org", &allow[1].pat, &err);
	allow[1].ports.v = &tcp443;
	allow[1].ports.n = 1;
	allow[1].until = 2000;
	allow[2].is_net = true;
	allow[2].until = 500;

	CHECK(!policy_rule_ended(&allow[0], 999));
	CHECK(policy_rule_ended(&allow[0], 1000));
	CHECK(policy_rule_ended(&allow[0], 1001));

	/* both rules: the verdict is good until the earlier end */
	policy_decide(&vm, "build.example.org", 999, &v);
	CHECK(v.allowed && v.ports.any && v.until == 1000);
	verdict_finish(&v);
	/* at the second of the until the rule is gone, exactly */
	policy_decide(&vm, "build.example.org", 1000, &v);
	CHECK(v.allowed && !v.ports.any && v.ports.n == 1 && v.until == 2000);
	verdict_finish(&v);
	policy_decide(&vm, "build.example.org", 2000, &v);
	CHECK(!v.allowed && v.until == 0);
	verdict_finish(&v);
	/* no until: a verdict that never goes stale by time */
	allow[1].until = 0;
	policy_decide(&vm, "www.example.org", 1 << 30, &v);
	CHECK(v.allowed && v.until == 0);
	verdict_finish(&v);
}

int
main(void)
{
	test_names();
	test_match();
	test_ports();
	test_prefix();
	test_vm_names();
	test_ttl();
	test_ttl_cap();
	test_decide();
	test_find_vm();
	test_find_vm_claimed();
	test_dispatch_order();
	test_atoms();
	test_same();
	test_time();
	test_decide_until();
	test_addr_class();
	test_decide_private();
	return check_done("policy");
}
