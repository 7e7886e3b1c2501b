/* The element layout shared by ruleset.c and admit.c: set names, key
 * types and lengths, and keys written into a netlink message and parsed
 * back with libnftnl, as the kernel would return them. */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "check.h"
#include "elems.h"
#include "policy.h"

static void
test_names(void)
{
	char b[SET_NAME_MAX];

	CHECK(SET_COUNT == 6);
	CHECK_STR(elems_set_name(b, sizeof(b), "work",
			  set_index(SET_ANY, AF_INET)),
		"work_v4");
	CHECK_STR(elems_set_name(b, sizeof(b), "work",
			  set_index(SET_ANY, AF_INET6)),
		"work_v6");
	CHECK_STR(elems_set_name(b, sizeof(b), "work-admin",
			  set_index(SET_PORTS, AF_INET)),
		"work-admin_v4_ports");
	CHECK_STR(elems_set_name(b, sizeof(b), "w",
			  set_index(SET_PORTS, AF_INET6)),
		"w_v6_ports");
	CHECK_STR(elems_set_name(b, sizeof(b), "w",
			  set_index(SET_RANGES, AF_INET)),
		"w_v4_ranges");
	for (int i = 0; i < SET_COUNT; i++) {
		CHECK(set_index(set_index_kind(i), set_index_family(i)) == i);
		CHECK(set_index_family(i) == AF_INET ||
			set_index_family(i) == AF_INET6);
	}
}

static void
test_layout(void)
{
	uint8_t f[3];
	int v4p = set_index(SET_PORTS, AF_INET),
	    v6p = set_index(SET_PORTS, AF_INET6);

	CHECK(elems_key_len(set_index(SET_ANY, AF_INET)) == 4);
	CHECK(elems_key_len(set_index(SET_ANY, AF_INET6)) == 16);
	CHECK(elems_key_len(v4p) == 12 && elems_key_len(v6p) == 24);
	CHECK(elems_key_type(set_index(SET_ANY, AF_INET)) == TYPE_IPADDR);
	CHECK(elems_key_type(v4p) ==
		(((TYPE_IPADDR << TYPE_BITS) | TYPE_INET_PROTO) << TYPE_BITS |
			TYPE_INET_SERVICE));
	CHECK(elems_concat(set_index(SET_ANY, AF_INET), f) == 0);
	CHECK(elems_concat(v6p, f) == 3 && f[0] == 16 && f[1] == 1 &&
		f[2] == 2);
	/* Single ports: a hash, no intervals. Ranges: pipapo. */
	CHECK(elems_set_flags(v4p) == (NFT_SET_TIMEOUT | NFT_SET_CONCAT));
	CHECK(elems_set_flags(set_index(SET_RANGES, AF_INET6)) ==
		(NFT_SET_TIMEOUT | NFT_SET_INTERVAL | NFT_SET_CONCAT));
	CHECK(elems_key_len(set_index(SET_RANGES, AF_INET)) == 12);
	CHECK(elems_concat(set_index(SET_RANGES, AF_INET), f) == 3 &&
		f[0] == 4);
	CHECK(elems_set_flags(set_index(SET_ANY, AF_INET6)) == NFT_SET_TIMEOUT);
}

/* Put k into a NEWSETELEM message, parse the message back, read k. */
static bool
round_trip(const struct elem_key *k, struct elem_key *out)
{
	char buf[4096];
	struct nftnl_set *s = nftnl_set_alloc(), *p = nftnl_set_alloc();
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();
	struct nftnl_set_elems_iter *it;
	struct nlmsghdr *nlh;
	bool ok = false;

	nftnl_set_set_str(s, NFTNL_SET_TABLE, "t");
	nftnl_set_set_str(s, NFTNL_SET_NAME, "s");
	elems_key_put(el, k);
	nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, 5000);
	nftnl_set_elem_add(s, el);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWSETELEM, NFPROTO_INET, 0,
		1);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	if (nftnl_set_elems_nlmsg_parse(nlh, p) == 0) {
		it = nftnl_set_elems_iter_create(p);
		el = nftnl_set_elems_iter_next(it);
		ok = el != NULL && elems_key_get(el, elem_set_index(k), out);
		nftnl_set_elems_iter_destroy(it);
	}
	nftnl_set_free(s);
	nftnl_set_free(p);
	return ok;
}

static void
test_keys(void)
{
	struct elem_key k = {.family = AF_INET}, o;

	inet_pton(AF_INET, "192.0.2.10", k.addr);
	elems_port_key(&k, IPPROTO_TCP, 8000, 8080);
	CHECK(k.kind == SET_RANGES && elems_key_canonical(&k));
	CHECK(round_trip(&k, &o) && memcmp(&k, &o, sizeof(k)) == 0);
	elems_port_key(&k, IPPROTO_TCP, 443, 443);
	CHECK(k.kind == SET_PORTS && elems_key_canonical(&k));
	CHECK(round_trip(&k, &o) && memcmp(&k, &o, sizeof(k)) == 0);
	/* A single port is never a range, a range never in the hash. */
	k.kind = SET_RANGES;
	CHECK(!elems_key_canonical(&k));
	k.kind = SET_PORTS;
	k.hi = 444;
	CHECK(!elems_key_canonical(&k));
	k.kind = SET_ANY;
	CHECK(!elems_key_canonical(&k));
	memset(&k, 0, sizeof(k));
	k.family = AF_INET6;
	k.kind = SET_ANY;
	inet_pton(AF_INET6, "2001:db8::10", k.addr);
	CHECK(round_trip(&k, &o) && memcmp(&k, &o, sizeof(k)) == 0);
	memset(&k, 0, sizeof(k));
	k.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::10", k.addr);
	elems_echo_key(&k, AF_INET6);
	CHECK(elems_is_echo(&k) && k.lo == 32768 && k.hi == 32768 &&
		k.proto == IPPROTO_ICMPV6);
	CHECK(round_trip(&k, &o) && memcmp(&k, &o, sizeof(k)) == 0);
	CHECK(elems_is_echo(&o));
	memset(&k, 0, sizeof(k));
	k.family = AF_INET;
	elems_echo_key(&k, AF_INET);
	CHECK(k.proto == IPPROTO_ICMP && k.lo == 2048 && elems_is_echo(&k));
	k.proto = IPPROTO_TCP;
	CHECK(!elems_is_echo(&k));
}

/* Keys we could not have written are refused, not misread. */
static void
test_bad_keys(void)
{
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();
	uint8_t key[12] = {192, 0, 2, 10, 6, 0, 0, 0, 1, 187, 0, 0};
	uint8_t end[12] = {192, 0, 2, 10, 17, 0, 0, 0, 1, 187, 0, 0};
	struct elem_key k;
	int v4p = set_index(SET_RANGES, AF_INET);

	CHECK(!elems_key_get(el, v4p, &k)); /* no key */
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, 8);
	CHECK(!elems_key_get(el, v4p, &k)); /* short key */
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key, 12);
	/* The hash of single ports has no key end. */
	CHECK(elems_key_get(el, set_index(SET_PORTS, AF_INET), &k) &&
		k.kind == SET_PORTS && k.lo == 443 && k.hi == 443 &&
		k.proto == IPPROTO_TCP);
	CHECK(!elems_key_get(el, v4p, &k)); /* no key end */
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, end, 12);
	CHECK(!elems_key_get(el, v4p, &k)); /* protocol differs */
	end[4] = 6;
	end[8] = 0; /* end below start */
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, end, 12);
	CHECK(!elems_key_get(el, v4p, &k));
	end[8] = 1;
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, end, 12);
	CHECK(elems_key_get(el, v4p, &k) && k.lo == 443 && k.hi == 443);
	CHECK(!elems_key_get(el, set_index(SET_ANY, AF_INET), &k));
	/* The ports set of an older table was an interval set: its single
	 * ports (a key end equal to the key) are the hash's, its ranges the
	 * ranges set's. */
	CHECK(elems_key_get(el, set_index(SET_PORTS, AF_INET), &k) &&
		k.kind == SET_PORTS && k.lo == 443 && k.hi == 443);
	end[9] = 190;
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, end, 12);
	CHECK(elems_key_get(el, set_index(SET_PORTS, AF_INET), &k) &&
		k.kind == SET_RANGES && k.lo == 443 && k.hi == 446 &&
		elem_set_index(&k) == v4p);
	nftnl_set_elem_free(el);
}

/* Before 6.12, an add of an element the kernel still holds is ignored:
 * until a full ELEMS_KERNEL_LAG_MS past its end by our clock, it may. */
static void
test_kernel_may_hold(void)
{
	uint64_t end = 5000000;

	CHECK(elems_kernel_may_hold(end, 0));
	CHECK(elems_kernel_may_hold(end, end - 1));
	CHECK(elems_kernel_may_hold(end, end));
	CHECK(elems_kernel_may_hold(end, end + 1));
	CHECK(elems_kernel_may_hold(end, end + ELEMS_KERNEL_LAG_MS - 1));
	CHECK(!elems_kernel_may_hold(end, end + ELEMS_KERNEL_LAG_MS));
	CHECK(!elems_kernel_may_hold(end, end + 3600000));
	CHECK(!elems_kernel_may_hold(0, ELEMS_KERNEL_LAG_MS));
}

/* A ranges set only for a VM whose rules cut a range. */
static void
test_vm_sets(void)
{
	struct portspec one[] = {{IPPROTO_TCP, 443, 443},
		{IPPROTO_UDP, 53, 53}};
	struct portspec two[] = {{IPPROTO_TCP, 443, 443},
		{IPPROTO_TCP, 8000, 8080}};

	for (int i = 0; i < SET_COUNT; i++) {
		bool r = set_index_kind(i) == SET_RANGES;

		CHECK(elems_vm_has_set(NULL, 0, i) == !r);
		CHECK(elems_vm_has_set(one, 2, i) == !r);
		CHECK(elems_vm_has_set(two, 2, i));
	}
}

int
main(void)
{
	test_names();
	test_layout();
	test_keys();
	test_bad_keys();
	test_vm_sets();
	test_kernel_may_hold();
	return check_done("elems");
}
