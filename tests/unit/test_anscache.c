/* The answer cache: what it keeps (secure and insecure NOERROR/NXDOMAIN
 * with a TTL, nothing else), its age in whole seconds on every hit and
 * the client's TTLs counted down by it (never to 0), expiry with the
 * smallest TTL, a newer answer replacing an older, and the least recently
 * used going first when the bound is reached. */
#include <stdlib.h>

#include "anscache.h"
#include "check.h"
#include "config.h"
#include "dnswire.h"
#include "pk.h"
#include "resolver.h"

#define SECURE 2
#define INSECURE 0
#define BOGUS 1

/* www.example A: two A records (TTL a, b), an OPT whose TTL field holds
 * the DO bit, and rcode. */
static struct pk
answer(uint32_t a, uint32_t b, int rcode)
{
	struct pk p;
	size_t q;

	hdr(&p, 7, (uint16_t)(DNS_F_QR | rcode), 1, 2, 0, 1);
	q = name(&p, "www.example");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	for (int i = 0; i < 2; i++) {
		ptr(&p, q);
		u16(&p, DNS_T_A);
		u16(&p, 1);
		u32(&p, i ? b : a);
		u16(&p, 4);
		u32(&p, 0xC0000200u + (uint32_t)i);
	}
	u8(&p, 0);
	u16(&p, DNS_T_OPT);
	u16(&p, 1232);
	u32(&p, 0x8000);
	u16(&p, 0);
	return p;
}

static uint32_t
ttl_at(const uint8_t *b, size_t off)
{
	return (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 |
		(uint32_t)b[off + 2] << 8 | b[off + 3];
}

/* Offsets of the records' TTLs in answer() and in the client's answer
 * built from it (the same layout): header 12, question 13 + 4, each A
 * record 2 + 2 + 2, then its TTL, 4 + 2 + 4 after it. */
#define TTL1 (12 + 13 + 4 + 6)
#define TTL2 (TTL1 + 16)

static void
test_countdown(void)
{
	struct anscache *c = anscache_create(ANSCACHE_BYTES);
	struct pk p = answer(300, 60, DNS_R_NOERROR);
	uint8_t out[512], cl[512];
	struct dns_query q = {.id = 9, .qtype = DNS_T_A, .qclass = 1};
	int sec = -1;
	uint32_t age = 99;
	size_t n;

	memcpy(q.qname_wire, "\3www\7example", 13);
	q.qname_wire_len = 13;
	CHECK(c != NULL);
	anscache_put(c, "www.example", DNS_T_A, 1, p.b, p.n, SECURE, 10000);
	n = anscache_get(c, "www.example", DNS_T_A, 1, 10000, out, sizeof(out),
		&sec, &age);
	CHECK(n == p.n && sec == SECURE && age == 0 &&
		memcmp(out, p.b, n) == 0);
	/* 1.9 s later: one whole second; the message kept as it came, the
	 * client's TTLs counted down by it. */
	n = anscache_get(c, "www.example", DNS_T_A, 1, 11900, out, sizeof(out),
		&sec, &age);
	CHECK(n == p.n && age == 1 && memcmp(out, p.b, n) == 0);
	n = dnswire_build_answer(&q, out, n, true, 86400, age, EDE_NONE, NULL,
		512, cl, sizeof(cl));
	CHECK(n > 0 && ttl_at(cl, TTL1) == 299 && ttl_at(cl, TTL2) == 59);
	/* ... and capped after: the cap is of what the client is handed. */
	n = dnswire_build_answer(&q, out, p.n, true, 100, age, EDE_NONE, NULL,
		512, cl, sizeof(cl));
	CHECK(n > 0 && ttl_at(cl, TTL1) == 100 && ttl_at(cl, TTL2) == 59);
	n = anscache_get(c, "www.example", DNS_T_A, 1, 69999, out, sizeof(out),
		&sec, &age);
	CHECK(n == p.n && age == 59);
	n = dnswire_build_answer(&q, out, n, true, 86400, age, EDE_NONE, NULL,
		512, cl, sizeof(cl));
	CHECK(n > 0 && ttl_at(cl, TTL1) == 241 && ttl_at(cl, TTL2) == 1);
	/* Another type, another class: not this answer. */
	CHECK(anscache_get(c, "www.example", DNS_T_AAAA, 1, 10000, out,
		      sizeof(out), &sec, &age) == 0);
	CHECK(anscache_get(c, "www.example", DNS_T_A, 3, 10000, out,
		      sizeof(out), &sec, &age) == 0);
	CHECK(anscache_get(c, "ww.example", DNS_T_A, 1, 10000, out, sizeof(out),
		      &sec, &age) == 0);
	/* The smallest TTL has run out: gone, never a TTL of 0. */
	CHECK(anscache_get(c, "www.example", DNS_T_A, 1, 70000, out,
		      sizeof(out), &sec, &age) == 0);
	{
		struct anscache_stats st;

		anscache_stats(c, &st);
		CHECK(st.entries == 0 && st.bytes == 0 && st.stored == 1);
		CHECK(st.hits == 3 && st.misses == 4);
	}
	/* An answer from before the clock (a clock step): as if new. */
	anscache_put(c, "www.example", DNS_T_A, 1, p.b, p.n, INSECURE, 5000);
	n = anscache_get(c, "www.example", DNS_T_A, 1, 4000, out, sizeof(out),
		&sec, &age);
	CHECK(n == p.n && sec == INSECURE && age == 0);
	/* Too small a buffer: nothing copied, no hit. */
	CHECK(anscache_get(c, "www.example", DNS_T_A, 1, 5000, out, 10, &sec,
		      &age) == 0);
	anscache_destroy(c);
}

static void
test_what_is_kept(void)
{
	struct anscache *c = anscache_create(ANSCACHE_BYTES);
	struct pk p = answer(300, 60, DNS_R_NOERROR);
	uint8_t out[512];
	uint32_t age;
	int sec;

	/* Bogus: never. */
	anscache_put(c, "www.example", DNS_T_A, 1, p.b, p.n, BOGUS, 0);
	CHECK(anscache_get(c, "www.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == 0);
	anscache_put(c, "www.example", DNS_T_A, 1, p.b, p.n, 7, 0);
	CHECK(anscache_get(c, "www.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == 0);
	/* A failure, even one libunbound calls secure. */
	p = answer(300, 60, DNS_R_SERVFAIL);
	anscache_put(c, "www.example", DNS_T_A, 1, p.b, p.n, SECURE, 0);
	CHECK(anscache_get(c, "www.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == 0);
	/* NXDOMAIN is kept. */
	p = answer(300, 60, DNS_R_NXDOMAIN);
	anscache_put(c, "www.example", DNS_T_A, 1, p.b, p.n, SECURE, 0);
	CHECK(anscache_get(c, "www.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == p.n);
	/* A TTL of 0 anywhere: not kept. */
	p = answer(300, 0, DNS_R_NOERROR);
	anscache_put(c, "x.example", DNS_T_A, 1, p.b, p.n, SECURE, 0);
	CHECK(anscache_get(c, "x.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == 0);
	/* A message that does not parse: not kept. */
	p = answer(300, 60, DNS_R_NOERROR);
	anscache_put(c, "y.example", DNS_T_A, 1, p.b, p.n - 3, SECURE, 0);
	CHECK(anscache_get(c, "y.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == 0);
	anscache_put(c, "y.example", DNS_T_A, 1, p.b, 5, SECURE, 0);
	CHECK(anscache_get(c, "y.example", DNS_T_A, 1, 0, out, sizeof(out),
		      &sec, &age) == 0);
	/* A newer answer replaces the older. */
	anscache_put(c, "z.example", DNS_T_A, 1, p.b, p.n, SECURE, 0);
	p = answer(100, 50, DNS_R_NOERROR);
	anscache_put(c, "z.example", DNS_T_A, 1, p.b, p.n, INSECURE, 1000);
	CHECK(anscache_get(c, "z.example", DNS_T_A, 1, 1000, out, sizeof(out),
		      &sec, &age) == p.n &&
		sec == INSECURE && ttl_at(out, TTL1) == 100 && age == 0);
	anscache_destroy(c);
	anscache_destroy(NULL);
}

/* Room for about three answers: the least recently used goes. */
static void
test_bound(void)
{
	struct pk p = answer(300, 60, DNS_R_NOERROR);
	struct anscache *c = anscache_create(3 * (p.n + 100));
	struct anscache_stats st;
	char nm[4][16];
	uint8_t out[512];
	uint32_t age;
	int sec;

	for (int i = 0; i < 4; i++)
		snprintf(nm[i], sizeof(nm[i]), "n%d.example", i);
	for (int i = 0; i < 3; i++)
		anscache_put(c, nm[i], DNS_T_A, 1, p.b, p.n, SECURE, 0);
	/* n0 used last: n1 is the oldest now. */
	CHECK(anscache_get(c, nm[0], DNS_T_A, 1, 0, out, sizeof(out), &sec,
		      &age) == p.n);
	anscache_put(c, nm[3], DNS_T_A, 1, p.b, p.n, SECURE, 0);
	anscache_stats(c, &st);
	CHECK(st.evicted >= 1 && st.bytes <= 3 * (p.n + 100));
	CHECK(anscache_get(c, nm[1], DNS_T_A, 1, 0, out, sizeof(out), &sec,
		      &age) == 0);
	CHECK(anscache_get(c, nm[0], DNS_T_A, 1, 0, out, sizeof(out), &sec,
		      &age) == p.n);
	CHECK(anscache_get(c, nm[3], DNS_T_A, 1, 0, out, sizeof(out), &sec,
		      &age) == p.n);
	anscache_destroy(c);
	/* Many: the table grows, every one found. */
	c = anscache_create(ANSCACHE_BYTES);
	for (int i = 0; i < 5000; i++) {
		char n[32];

		snprintf(n, sizeof(n), "h%d.example", i);
		anscache_put(c, n, DNS_T_A, 1, p.b, p.n, SECURE, 0);
	}
	for (int i = 0; i < 5000; i += 7) {
		char n[32];

		snprintf(n, sizeof(n), "h%d.example", i);
		CHECK(anscache_get(c, n, DNS_T_A, 1, 0, out, sizeof(out), &sec,
			      &age) == p.n);
	}
	anscache_destroy(c);
}

/* As large as libunbound's message cache (unbound's size syntax). */
static void
test_size(void)
{
	static const struct {
		const char *v;
		size_t want;
	} t[] = {
		{"64m", 64u << 20},
		{"512k", 512u << 10},
		{"2G",
			2ull << 30 > RESOLVER_CACHE_MAX ? RESOLVER_CACHE_MAX
							: 0},
		{"1000", 1000},
		{"1mb", 1u << 20},
		{"0", ANSCACHE_BYTES},
		{"x", ANSCACHE_BYTES},
	};
	struct config c;
	struct kv o = {.key = "msg-cache-size"};

	memset(&c, 0, sizeof(c));
	CHECK(resolver_msg_cache_bytes(&c) == ANSCACHE_BYTES);
	c.options = &o;
	c.noptions = 1;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		o.value = (char *)t[i].v;
		CHECK(resolver_msg_cache_bytes(&c) == t[i].want);
	}
	o.key = "rrset-cache-size";
	o.value = "64m";
	CHECK(resolver_msg_cache_bytes(&c) == ANSCACHE_BYTES);
}

int
main(void)
{
	test_countdown();
	test_what_is_kept();
	test_bound();
	test_size();
	return check_done("anscache");
}
