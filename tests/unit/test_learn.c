/* The learn store and the suggestion: what is recorded, the bounds, the
 * folding rule, and that every suggestion loads as a policy. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "learn.h"
#include "util.h"

static struct ipaddr
addr(const char *s)
{
	struct ipaddr a;

	memset(&a, 0, sizeof(a));
	if (policy_parse_addr(s, &a) < 0)
		abort();
	return a;
}

static struct elem_key
use_key(const char *a, uint8_t proto, uint16_t port)
{
	struct ipaddr ad = addr(a);
	struct elem_key k;

	memset(&k, 0, sizeof(k));
	k.family = (uint8_t)ad.family;
	memcpy(k.addr, ad.b, ad.family == AF_INET ? 4 : 16);
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		elems_echo_key(&k, ad.family);
	} else {
		k.kind = SET_PORTS;
		k.proto = proto;
		k.lo = k.hi = port;
	}
	return k;
}

static void
name1(struct learn *l, const char *vm, const char *name, const char *a,
	uint64_t now)
{
	struct ipaddr ad;

	if (a == NULL) {
		learn_name(l, vm, name, NULL, 0, now);
		return;
	}
	ad = addr(a);
	learn_name(l, vm, name, &ad, 1, now);
}

static void
use1(struct learn *l, const char *vm, const char *a, uint8_t proto,
	uint16_t port, uint64_t now)
{
	struct elem_key k = use_key(a, proto, port);

	learn_use(l, vm, &k, now, NULL, 0);
}

static struct vm
make_vm(void)
{
	struct vm vm;

	memset(&vm, 0, sizeof(vm));
	vm.name = "work";
	vm.learn = true;
	vm.naddrs = 2;
	vm.addrs = xcalloc(2, sizeof(*vm.addrs));
	vm.addrs[0] = addr("10.137.1.10");
	vm.addrs[1] = addr("2001:db8:a:1::10");
	vm.iface = "vif1.0";
	return vm;
}

/* The suggestion loads as a policy without a single problem (-n). */
static bool
loads(const char *text)
{
	struct diag d = {0};
	struct vm vm;
	int rc = config_load_policy_buf(&vm, "work", "work.yaml", text,
		strlen(text), &d);

	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	diag_finish(&d);
	if (rc == 0) {
		CHECK(!vm.learn && !vm.default_allow);
		CHECK(vm.naddrs == 2);
		CHECK(vm.iface != NULL && strcmp(vm.iface, "vif1.0") == 0);
	}
	policy_vm_finish(&vm);
	return rc == 0;
}

static void
test_suggest(void)
{
	struct learn *l = learn_new();
	struct vm vm = make_vm();
	const char *shadow[] = {"www.good.example"};
	struct elem_key k;
	char *s;

	name1(l, "work", "www.good.example", "192.0.2.10", 1);
	name1(l, "work", "mail.good.example", "192.0.2.11", 2);
	name1(l, "work", "long.good.example", "192.0.2.16", 3);
	name1(l, "work", "nx.good.example", NULL, 4);
	/* Named through the store's own record of the answer. */
	use1(l, "work", "192.0.2.10", IPPROTO_TCP, 443, 10);
	use1(l, "work", "192.0.2.10", IPPROTO_TCP, 443, 11); /* again */
	use1(l, "work", "192.0.2.10", IPPROTO_UDP, 53, 12);
	use1(l, "work", "192.0.2.10", IPPROTO_ICMP, 0, 13);
	use1(l, "work", "192.0.2.11", IPPROTO_TCP, 993, 14);
	/* Named through the shadow only. */
	k = use_key("2001:db8:5::10", IPPROTO_TCP, 443);
	learn_use(l, "work", &k, 15, shadow, 1);
	/* No name gave it. */
	use1(l, "work", "192.0.2.12", IPPROTO_TCP, 8080, 16);
	s = learn_suggest(l, &vm);
	CHECK(strstr(s, "default: deny\n") != NULL);
	CHECK(strstr(s, "addresses: [\"10.137.1.10\", \"2001:db8:a:1::10\"]") !=
		NULL);
	CHECK(strstr(s, "interface: \"vif1.0\"\n") != NULL);
	CHECK(strstr(s,
		      "  - name: \"www.good.example\"\n"
		      "    ports: [tcp/443, udp/53, icmp]\n") != NULL);
	CHECK(strstr(s,
		      "  - name: \"mail.good.example\"\n"
		      "    ports: [tcp/993]\n") != NULL);
	CHECK(strstr(s,
		      "  - net: \"192.0.2.12/32\"\n"
		      "    ports: [tcp/8080]\n") != NULL);
	CHECK(strstr(s, "# resolved, never used: long.good.example\n") != NULL);
	CHECK(strstr(s, "# resolved, never used: nx.good.example\n") != NULL);
	CHECK(strstr(s, "*.") == NULL); /* different ports: no folding */
	/* Names before nets, sorted. */
	CHECK(strstr(s, "mail.good") < strstr(s, "www.good"));
	CHECK(strstr(s, "www.good") < strstr(s, "192.0.2.12/32"));
	CHECK(loads(s));
	/* Deterministic. */
	{
		char *t = learn_suggest(l, &vm);

		CHECK_STR(s, t);
		free(t);
	}
	free(s);
	learn_free(l);
	free(vm.addrs);
}

static void
test_fold(void)
{
	struct learn *l = learn_new();
	struct vm vm = make_vm();
	char *s;

	/* a, b, c.cdn.example: same ports: *.cdn.example. */
	name1(l, "work", "a.cdn.example", "192.0.2.1", 1);
	name1(l, "work", "b.cdn.example", "192.0.2.2", 1);
	name1(l, "work", "x.b.cdn.example", "192.0.2.3", 1);
	/* The parent itself: *.x never matches x, it stays explicit. */
	name1(l, "work", "cdn.example", "192.0.2.4", 1);
	/* Siblings with different ports: no folding. */
	name1(l, "work", "p.mix.example", "192.0.2.5", 1);
	name1(l, "work", "q.mix.example", "192.0.2.6", 1);
	/* One label under a TLD: never *.example... only because
	 * example has one label. */
	name1(l, "work", "one.example", "192.0.2.7", 1);
	name1(l, "work", "two.example", "192.0.2.8", 1);
	use1(l, "work", "192.0.2.1", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.2", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.3", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.4", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.5", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.6", IPPROTO_TCP, 80, 2);
	use1(l, "work", "192.0.2.7", IPPROTO_TCP, 22, 2);
	use1(l, "work", "192.0.2.8", IPPROTO_TCP, 22, 2);
	s = learn_suggest(l, &vm);
	CHECK(strstr(s,
		      "  # folded: a.cdn.example, b.cdn.example, "
		      "x.b.cdn.example\n"
		      "  - name: \"*.cdn.example\"\n"
		      "    ports: [tcp/443]\n") != NULL);
	CHECK(strstr(s, "name: \"a.cdn.example\"") == NULL);
	CHECK(strstr(s, "name: \"x.b.cdn.example\"") == NULL);
	CHECK(strstr(s, "name: \"cdn.example\"") != NULL);
	CHECK(strstr(s, "name: \"p.mix.example\"") != NULL);
	CHECK(strstr(s, "name: \"q.mix.example\"") != NULL);
	CHECK(strstr(s, "*.mix.example") == NULL);
	CHECK(strstr(s, "*.example\"") == NULL);
	CHECK(strstr(s, "name: \"one.example\"") != NULL);
	CHECK(loads(s));
	free(s);
	learn_free(l);

	/* A name under the parent with other ports prevents the fold: the
	 * wildcard would give it ports it never used. */
	l = learn_new();
	name1(l, "work", "a.cdn.example", "192.0.2.1", 1);
	name1(l, "work", "b.cdn.example", "192.0.2.2", 1);
	name1(l, "work", "x.b.cdn.example", "192.0.2.3", 1);
	use1(l, "work", "192.0.2.1", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.2", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.3", IPPROTO_TCP, 8443, 2);
	s = learn_suggest(l, &vm);
	CHECK(strstr(s, "*.cdn.example") == NULL);
	CHECK(loads(s));
	free(s);
	learn_free(l);
	free(vm.addrs);
}

static void
test_bounds(void)
{
	struct learn *l = learn_new();
	struct vm vm = make_vm();
	struct learn_stats st;
	char name[64], *s;

	for (int i = 0; i < LEARN_NAMES_MAX + 10; i++) {
		snprintf(name, sizeof(name), "n%d.example.org", i);
		name1(l, "work", name, NULL, (uint64_t)i + 1);
	}
	/* n0..n9 went; n0 comes back, and n10, then n11 go. */
	name1(l, "work", "n0.example.org", NULL, 100000);
	snprintf(name, sizeof(name), "late.example.org");
	name1(l, "work", name, NULL, 100001);
	st = learn_stats(l, "work");
	CHECK(st.names == LEARN_NAMES_MAX);
	CHECK(st.names_dropped == 12);
	s = learn_suggest(l, &vm);
	CHECK(strstr(s, "never used: n0.example.org\n") != NULL);
	CHECK(strstr(s, "never used: n1.example.org\n") == NULL);
	CHECK(strstr(s, "never used: n11.example.org\n") == NULL);
	CHECK(strstr(s, "never used: n12.example.org\n") != NULL);
	CHECK(strstr(s, "never used: late.example.org\n") != NULL);
	CHECK(strstr(s, "the oldest 12 names") != NULL);
	CHECK(loads(s));
	free(s);
	for (int i = 0; i < LEARN_USES_MAX + 5; i++)
		use1(l, "work", "192.0.2.1", IPPROTO_UDP, (uint16_t)(i + 1),
			(uint64_t)i + 1);
	st = learn_stats(l, "work");
	CHECK(st.uses == LEARN_USES_MAX);
	CHECK(st.uses_dropped == 5);
	/* The whole-store counters, and a VM without data. */
	CHECK(learn_stats(l, NULL).uses == LEARN_USES_MAX);
	CHECK(learn_stats(l, "other").names == 0);
	s = learn_suggest(l, &vm);
	/* The 5 oldest ports (1-5) went: udp/6-4101, merged. */
	CHECK(strstr(s, "ports: [udp/6-4101]") != NULL);
	CHECK(loads(s));
	free(s);
	learn_free(l);
	free(vm.addrs);
}

static void
test_retain_empty(void)
{
	struct learn *l = learn_new();
	struct vm vm = make_vm();
	struct config c;
	char *s;

	memset(&c, 0, sizeof(c));
	name1(l, "work", "www.good.example", "192.0.2.10", 1);
	name1(l, "gone", "www.good.example", "192.0.2.10", 1);
	c.vms = &vm;
	c.nvms = 1;
	learn_retain(l, &c);
	CHECK(learn_stats(l, "work").names == 1);
	CHECK(learn_stats(l, "gone").names == 0);
	learn_free(l);
	/* Nothing learnt: a policy that allows nothing, and still loads. */
	l = learn_new();
	s = learn_suggest(l, &vm);
	CHECK(strstr(s, "allow: []\n") != NULL);
	CHECK(loads(s));
	free(s);
	learn_free(l);
	learn_free(NULL);
	free(vm.addrs);
}

/* A name whose answer kept a private address (under an allow-private
 * rule in learn mode) needs allow-private in the suggestion, or the
 * suggested policy would strip what the VM used; a wildcard folds only
 * names that all need it, or all do not. */
static void
test_private(void)
{
	struct learn *l = learn_new();
	struct vm vm = make_vm();
	char *s;

	name1(l, "work", "git.corp.example", "10.1.2.3", 1);
	name1(l, "work", "www.good.example", "192.0.2.10", 1);
	name1(l, "work", "a.lab.example", "192.168.7.1", 1);
	name1(l, "work", "b.lab.example", "192.0.2.20", 1);
	use1(l, "work", "10.1.2.3", IPPROTO_TCP, 22, 2);
	use1(l, "work", "192.0.2.10", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.168.7.1", IPPROTO_TCP, 443, 2);
	use1(l, "work", "192.0.2.20", IPPROTO_TCP, 443, 2);
	s = learn_suggest(l, &vm);
	CHECK(strstr(s,
		      "  - name: \"git.corp.example\"\n"
		      "    ports: [tcp/22]\n"
		      "    allow-private: true\n") != NULL);
	CHECK(strstr(s,
		      "  - name: \"www.good.example\"\n"
		      "    ports: [tcp/443]\n") != NULL);
	CHECK(strstr(strstr(s, "www.good.example"), "allow-private") == NULL);
	CHECK(strstr(s, "*.lab.example") == NULL);
	CHECK(strstr(s,
		      "  - name: \"a.lab.example\"\n"
		      "    ports: [tcp/443]\n"
		      "    allow-private: true\n") != NULL);
	CHECK(loads(s));
	free(s);
	learn_free(l);
	free(vm.addrs);
}

int
main(void)
{
	test_suggest();
	test_fold();
	test_bounds();
	test_retain_empty();
	test_private();
	return check_done("learn");
}
