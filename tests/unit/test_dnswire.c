#include <arpa/inet.h>
#include <stdlib.h>

#include "../fuzz/dnscheck.h"
#include "check.h"
#include "dnswire.h"

#include "pk.h"

static struct pk
query(const char *qn, uint16_t qtype, bool edns, bool do_bit)
{
	struct pk p;

	hdr(&p, 0x1234, DNS_F_RD | DNS_F_CD, 1, 0, 0, edns);
	name(&p, qn);
	u16(&p, qtype);
	u16(&p, 1);
	if (edns)
		opt(&p, 4096, do_bit ? 0x8000 : 0);
	return p;
}

static void
test_parse_query(void)
{
	struct dns_query q;
	struct pk p = query("WWW.Example", DNS_T_A, true, true);

	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_NOERROR);
	CHECK(q.id == 0x1234 && q.qtype == DNS_T_A && q.qclass == 1);
	CHECK_STR(q.qname, "www.example");
	CHECK(q.qname_ok && q.edns && q.do_bit && q.udp_size == 4096);
	CHECK(q.qname_wire[1] == 'W'); /* the client's case, kept for 0x20 */
	CHECK(q.flags & DNS_F_CD);

	p = query("a.example", DNS_T_AAAA, false, false);
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_NOERROR);
	CHECK(!q.edns && q.udp_size == 512);

	CHECK(dnswire_parse_query(p.b, 11, &q) == -1); /* no header */
	p.b[2] |= 0x80;				       /* QR: a response */
	CHECK(dnswire_parse_query(p.b, p.n, &q) == -1);
	p = query("a.example", DNS_T_A, false, false);
	p.b[2] |= 2 << 3; /* opcode STATUS */
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_NOTIMP);
	p = query("a.example", DNS_T_A, false, false);
	p.b[5] = 2; /* QDCOUNT 2 */
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);
	p = query("a.example", DNS_T_A, false, false);
	CHECK(dnswire_parse_query(p.b, p.n - 1, &q) == DNS_R_FORMERR);
	u8(&p, 0); /* trailing byte */
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);

	/* a pointer in the question name: nothing to point back to */
	hdr(&p, 1, 0, 1, 0, 0, 0);
	ptr(&p, 12);
	u16(&p, 1);
	u16(&p, 1);
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);
	/* an extended label type */
	hdr(&p, 1, 0, 1, 0, 0, 0);
	u8(&p, 0x41);
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);
	/* a label claiming more than the packet holds */
	hdr(&p, 1, 0, 1, 0, 0, 0);
	u8(&p, 63);
	u8(&p, 'a');
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);
	/* a name over 255 bytes */
	hdr(&p, 1, 0, 1, 0, 0, 0);
	for (int i = 0; i < 5; i++) {
		u8(&p, 63);
		memset(p.b + p.n, 'a', 63);
		p.n += 63;
	}
	u8(&p, 0);
	u16(&p, 1);
	u16(&p, 1);
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);

	/* EDNS: version 1 -> BADVERS; a broken option -> FORMERR */
	p = query("a.example", DNS_T_A, false, false);
	p.b[11] = 1;
	opt(&p, 1232, 0x00010000);
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_BADVERS);
	p = query("a.example", DNS_T_A, false, false);
	p.b[11] = 1;
	u8(&p, 0);
	u16(&p, DNS_T_OPT);
	u16(&p, 1232);
	u32(&p, 0);
	u16(&p, 4);
	u16(&p, 10); /* cookie */
	u16(&p, 8);  /* claims 8 bytes, has none */
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);
	p = query("a.example", DNS_T_A, false, false);
	p.b[11] = 1;
	opt(&p, 100, 0); /* below 512: treated as 512 */
	CHECK(dnswire_parse_query(p.b, p.n, &q) == 0 && q.udp_size == 512);
	/* an OPT whose owner is not the root */
	p = query("a.example", DNS_T_A, false, false);
	p.b[11] = 1;
	name(&p, "x");
	u16(&p, DNS_T_OPT);
	u16(&p, 1232);
	u32(&p, 0);
	u16(&p, 0);
	CHECK(dnswire_parse_query(p.b, p.n, &q) == DNS_R_FORMERR);
}

static void
test_error(void)
{
	struct pk p = query("Blocked.Example", DNS_T_A, true, false);
	struct dns_query q;
	uint8_t out[512];
	size_t n;

	dnswire_parse_query(p.b, p.n, &q);
	n = dnswire_error(&q, DNS_R_REFUSED, EDE_BLOCKED, "not in policy", out,
		sizeof(out));
	CHECK(n > 0);
	CHECK(out[0] == 0x12 && out[1] == 0x34);
	CHECK((out[2] & 0x80) && (out[3] & 0xF) == DNS_R_REFUSED);
	CHECK(out[2] & 0x01);		    /* RD echoed */
	CHECK(out[3] & DNS_F_CD);	    /* CD echoed */
	CHECK(out[5] == 1 && out[11] == 1); /* question, OPT */
	CHECK(memcmp(out + 12, q.qname_wire, q.qname_wire_len) == 0);
	/* the EDE option: code 15, info 15 */
	size_t o = 12 + q.qname_wire_len + 4 + 11;
	CHECK(out[o] == 0 && out[o + 1] == 15 && out[o + 4] == 0 &&
		out[o + 5] == EDE_BLOCKED);
	CHECK(memcmp(out + o + 6, "not in policy", 13) == 0);
	CHECK(dnswire_error(&q, DNS_R_REFUSED, EDE_BLOCKED, "x", out, 20) == 0);

	/* without EDNS, no OPT */
	p = query("a.example", DNS_T_A, false, false);
	dnswire_parse_query(p.b, p.n, &q);
	n = dnswire_error(&q, DNS_R_SERVFAIL, EDE_DNSSEC_BOGUS, NULL, out,
		sizeof(out));
	CHECK(n == 12 + q.qname_wire_len + 4 && out[11] == 0);
}

/* An answer for www.a.example: a CNAME chain given out of order, with
 * compression pointers in owners and rdata, plus records that must not be
 * admitted. */
static struct pk
chain_answer(void)
{
	struct pk p;
	size_t qn, bn, cn;

	hdr(&p, 0, DNS_F_QR | DNS_F_RD | DNS_F_RA, 1, 7, 0, 1);
	qn = name(&p, "www.a.example");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	/* c.other A 192.0.2.1 (ttl 600): c.other is written in full here */
	cn = name(&p, "c.other");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	u32(&p, 600);
	u16(&p, 4);
	u32(&p, 0xC0000201);
	/* b.example CNAME c.other (ttl 60) */
	bn = name(&p, "b.example");
	u16(&p, DNS_T_CNAME);
	u16(&p, 1);
	u32(&p, 60);
	u16(&p, 2);
	ptr(&p, cn);
	/* www.a.example CNAME b.example (ttl 300) */
	ptr(&p, qn);
	u16(&p, DNS_T_CNAME);
	u16(&p, 1);
	u32(&p, 300);
	u16(&p, 2);
	ptr(&p, bn);
	/* c.other A 192.0.2.2, AAAA 2001:db8::1 */
	ptr(&p, cn);
	u16(&p, DNS_T_A);
	u16(&p, 1);
	u32(&p, 600);
	u16(&p, 4);
	u32(&p, 0xC0000202);
	ptr(&p, cn);
	u16(&p, DNS_T_AAAA);
	u16(&p, 1);
	u32(&p, 900);
	u16(&p, 16);
	u32(&p, 0x20010db8);
	u32(&p, 0);
	u32(&p, 0);
	u32(&p, 1);
	/* an RRSIG over it (opaque here) */
	ptr(&p, cn);
	u16(&p, DNS_T_RRSIG);
	u16(&p, 1);
	u32(&p, 600);
	u16(&p, 3);
	u8(&p, 1);
	u8(&p, 2);
	u8(&p, 3);
	/* unrelated.example A 198.51.100.1: not on the chain */
	name(&p, "unrelated.example");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	u32(&p, 5);
	u16(&p, 4);
	u32(&p, 0xC6336401);
	opt(&p, 1232, 0x8000);
	return p;
}

static bool
has_addr(const struct dns_answer *a, const char *s)
{
	struct ipaddr x;

	policy_parse_addr(s, &x);
	for (size_t i = 0; i < a->naddrs; i++)
		if (memcmp(&a->addrs[i].a, &x, sizeof(x)) == 0)
			return true;
	return false;
}

static void
test_walk(void)
{
	struct pk p = chain_answer();
	struct pk q = query("www.a.example", DNS_T_A, false, false);
	struct dns_query dq;
	struct dns_answer a;

	dnswire_parse_query(q.b, q.n, &dq);
	CHECK(dnswire_walk(p.b, p.n, dq.qname_wire, dq.qname_wire_len, 100,
		      &a) == 0);
	CHECK(a.naddrs == 3);
	CHECK(has_addr(&a, "192.0.2.1") && has_addr(&a, "192.0.2.2") &&
		has_addr(&a, "2001:db8::1"));
	CHECK(!has_addr(&a, "198.51.100.1"));
	CHECK(a.min_ttl == 60); /* smallest along the chain */
	dnswire_answer_finish(&a);

	CHECK(dnswire_walk(p.b, p.n, dq.qname_wire, dq.qname_wire_len, 2, &a) ==
		0);
	CHECK(a.naddrs == 2 && a.truncated_addrs);
	dnswire_answer_finish(&a);

	/* every truncation of the message is refused or walked safely */
	for (size_t n = 0; n < p.n; n++) {
		if (dnswire_walk(p.b, n, dq.qname_wire, dq.qname_wire_len, 100,
			    &a) == 0)
			CHECK(a.naddrs <= 3);
		dnswire_answer_finish(&a);
	}

	/* a CNAME loop ends */
	struct pk l;
	size_t xa, xb;
	hdr(&l, 0, DNS_F_QR, 1, 2, 0, 0);
	xa = name(&l, "x.example");
	u16(&l, 1);
	u16(&l, 1);
	xb = name(&l, "y.example");
	u16(&l, DNS_T_CNAME);
	u16(&l, 1);
	u32(&l, 9);
	u16(&l, 2);
	ptr(&l, xa);
	ptr(&l, xa);
	u16(&l, DNS_T_CNAME);
	u16(&l, 1);
	u32(&l, 9);
	u16(&l, 2);
	ptr(&l, xb);
	CHECK(dnswire_walk(l.b, l.n, l.b + xa, 11, 100, &a) == 0 &&
		a.naddrs == 0);
	dnswire_answer_finish(&a);

	/* a pointer pointing forwards (or at itself) is refused */
	hdr(&l, 0, DNS_F_QR, 0, 1, 0, 0);
	ptr(&l, 12);
	u16(&l, 1);
	u16(&l, 1);
	u32(&l, 1);
	u16(&l, 4);
	u32(&l, 1);
	CHECK(dnswire_walk(l.b, l.n, (const uint8_t *)"\0", 1, 10, &a) < 0);

	/* HTTPS hints */
	hdr(&l, 0, DNS_F_QR, 1, 1, 0, 0);
	xa = name(&l, "h.example");
	u16(&l, DNS_T_HTTPS);
	u16(&l, 1);
	ptr(&l, xa);
	u16(&l, DNS_T_HTTPS);
	u16(&l, 1);
	u32(&l, 120);
	u16(&l, 2 + 1 + 4 + 8 + 4 + 16);
	u16(&l, 1);
	u8(&l, 0); /* priority 1, target "." */
	u16(&l, 4);
	u16(&l, 8); /* ipv4hint: two addresses */
	u32(&l, 0xC0000205);
	u32(&l, 0xC0000206);
	u16(&l, 6);
	u16(&l, 16); /* ipv6hint */
	u32(&l, 0x20010db8);
	u32(&l, 0);
	u32(&l, 0);
	u32(&l, 5);
	CHECK(dnswire_walk(l.b, l.n, l.b + xa, 11, 100, &a) == 0);
	CHECK(a.naddrs == 3 && has_addr(&a, "192.0.2.6") &&
		has_addr(&a, "2001:db8::5") && a.min_ttl == 120);
	dnswire_answer_finish(&a);
	l.b[l.n - 17] = 15; /* ipv6hint length no longer a multiple of 16 */
	CHECK(dnswire_walk(l.b, l.n, l.b + xa, 11, 100, &a) < 0);
	dnswire_answer_finish(&a);
}

static void
test_build(void)
{
	struct pk p = chain_answer();
	struct pk q = query("WWW.A.example", DNS_T_A, true, false);
	struct dns_query dq;
	struct dns_answer a;
	uint8_t out[4096];
	size_t n;

	dnswire_parse_query(q.b, q.n, &dq);
	n = dnswire_build_answer(&dq, p.b, p.n, true, 100, 0, EDE_NONE, NULL,
		4096, out, sizeof(out));
	CHECK(n > 0);
	CHECK(out[0] == 0x12 && out[1] == 0x34);
	CHECK(!(out[3] & DNS_F_AD)); /* neither DO nor AD asked */
	CHECK(out[7] == 6);	     /* RRSIG dropped: no DO */
	CHECK(out[11] == 1);	     /* our OPT */
	CHECK(memcmp(out + 12, dq.qname_wire, dq.qname_wire_len) == 0);
	/* the result walks to the same addresses, TTLs capped at 100 */
	CHECK(dnswire_walk(out, n, dq.qname_wire, dq.qname_wire_len, 100, &a) ==
		0);
	CHECK(a.naddrs == 3 && a.min_ttl == 60);
	dnswire_answer_finish(&a);
	q = query("www.a.example", DNS_T_A, true, true);
	dnswire_parse_query(q.b, q.n, &dq);
	n = dnswire_build_answer(&dq, p.b, p.n, true, 86400, 0, EDE_NONE, NULL,
		4096, out, sizeof(out));
	CHECK(n > 0 && out[7] == 7 && (out[3] & DNS_F_AD));

	/* too big for the client: TC, question and OPT only */
	n = dnswire_build_answer(&dq, p.b, p.n, true, 86400, 0, EDE_NONE, NULL,
		100, out, sizeof(out));
	CHECK(n > 0 && n <= 100);
	CHECK(out[2] & (DNS_F_TC >> 8));
	CHECK(out[7] == 0 && out[9] == 0 && out[11] == 1);

	/* an EDE with its text, kept when truncated too */
	n = dnswire_build_answer(&dq, p.b, p.n, true, 86400, 0, EDE_BLOCKED,
		"dnsfence removed 2 addresses", 4096, out, sizeof(out));
	CHECK(n > 30 && out[11] == 1);
	CHECK(memcmp(out + n - 28, "dnsfence removed 2 addresses", 28) == 0);
	CHECK(out[n - 30] == 0 && out[n - 29] == EDE_BLOCKED);
	CHECK(out[n - 32] == 0 && out[n - 31] == 30); /* option length */
	n = dnswire_build_answer(&dq, p.b, p.n, true, 86400, 0, EDE_BLOCKED,
		"dnsfence removed 2 addresses", 100, out, sizeof(out));
	CHECK(n > 0 && n <= 100 && (out[2] & (DNS_F_TC >> 8)));
	CHECK(memcmp(out + n - 28, "dnsfence removed 2 addresses", 28) == 0);

	/* a malformed resolver message gives nothing */
	CHECK(dnswire_build_answer(&dq, p.b, 20, true, 1, 0, EDE_NONE, NULL,
		      4096, out, sizeof(out)) == 0);
}

static void
test_ttl_cap(void)
{
	struct pk p = chain_answer();
	struct pk q = query("www.a.example", DNS_T_A, false, false);
	struct dns_query dq;
	uint8_t out[4096];
	size_t n, off = 12;
	int seen = 0;

	dnswire_parse_query(q.b, q.n, &dq);
	n = dnswire_build_answer(&dq, p.b, p.n, false, 100, 0, EDE_NONE, NULL,
		4096, out, sizeof(out));
	CHECK(n > 0);
	/* walk the records by hand: skip the question, read every TTL */
	off += dq.qname_wire_len + 4;
	for (int i = 0; i < out[7]; i++) {
		while (out[off] != 0 && (out[off] & 0xC0) != 0xC0)
			off += out[off] + 1;
		off += (out[off] & 0xC0) ? 2 : 1;
		uint32_t ttl = (uint32_t)out[off + 4] << 24 |
			(uint32_t)out[off + 5] << 16 |
			(uint32_t)out[off + 6] << 8 | out[off + 7];
		CHECK(ttl <= 100);
		seen++;
		off += 10 + (size_t)(out[off + 8] << 8 | out[off + 9]);
	}
	CHECK(seen == 6);
}

/* ---- the rebinding guard ---- */

static void
rr_head(struct pk *p, size_t owner, uint16_t type, uint32_t ttl, uint16_t rdlen)
{
	ptr(p, owner);
	u16(p, type);
	u16(p, 1);
	u32(p, ttl);
	u16(p, rdlen);
}

static void
addr_rr(struct pk *p, size_t owner, const char *a)
{
	struct ipaddr x;

	policy_parse_addr(a, &x);
	rr_head(p, owner, x.family == AF_INET ? DNS_T_A : DNS_T_AAAA, 300,
		x.family == AF_INET ? 4 : 16);
	memcpy(p->b + p->n, x.b, x.family == AF_INET ? 4 : 16);
	p->n += x.family == AF_INET ? 4 : 16;
}

static void
rrsig(struct pk *p, size_t owner, uint16_t covered)
{
	rr_head(p, owner, DNS_T_RRSIG, 300, 4);
	u16(p, covered);
	u16(p, 0x0d02);
}

static void
bytes(struct pk *p, const char *a, size_t n)
{
	struct ipaddr x;

	policy_parse_addr(a, &x);
	memcpy(p->b + p->n, x.b, n);
	p->n += n;
}

/* m.example CNAME t.example, t.example: A and AAAA of every class,
 * signatures, an HTTPS with mixed hints; in the additional section an
 * off-chain A of a private address and the OPT. */
static struct pk
mixed_answer(size_t *qn_at)
{
	struct pk p;
	size_t qn, tn, xn;

	hdr(&p, 0, DNS_F_QR | DNS_F_RD | DNS_F_RA, 1, 11, 0, 2);
	qn = name(&p, "m.example");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	/* m.example CNAME t.example, and its signature */
	ptr(&p, qn);
	u16(&p, DNS_T_CNAME);
	u16(&p, 1);
	u32(&p, 300);
	u16(&p, 11);
	tn = name(&p, "t.example");
	rrsig(&p, qn, DNS_T_CNAME);
	addr_rr(&p, tn, "192.0.2.1");
	addr_rr(&p, tn, "127.0.0.1");
	addr_rr(&p, tn, "10.1.2.3");
	rrsig(&p, tn, DNS_T_A);
	addr_rr(&p, tn, "::1");
	addr_rr(&p, tn, "2001:db8::1");
	addr_rr(&p, tn, "fe80::1");
	/* t.example HTTPS 1 . alpn=h2 ipv4hint=192.0.2.5,10.0.0.5
	 * ipv6hint=fe80::5 */
	rr_head(&p, tn, DNS_T_HTTPS, 300, 2 + 1 + 4 + 3 + 4 + 8 + 4 + 16);
	u16(&p, 1);
	u8(&p, 0);
	u16(&p, 1); /* alpn */
	u16(&p, 3);
	u8(&p, 2);
	u8(&p, 'h');
	u8(&p, '2');
	u16(&p, 4);
	u16(&p, 8);
	bytes(&p, "192.0.2.5", 4);
	bytes(&p, "10.0.0.5", 4);
	u16(&p, 6);
	u16(&p, 16);
	bytes(&p, "fe80::5", 16);
	rrsig(&p, tn, DNS_T_HTTPS);
	/* additional: x.example A 169.254.1.1, OPT */
	xn = name(&p, "x.example");
	p.n = xn; /* written in full below instead */
	name(&p, "x.example");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	u32(&p, 300);
	u16(&p, 4);
	bytes(&p, "169.254.1.1", 4);
	opt(&p, 1232, 0x8000);
	*qn_at = qn;
	return p;
}

/* The guard of a rule without allow-private (arg NULL) or with it. */
static int
guard_cb(const struct ipaddr *a, void *arg)
{
	enum addr_class c = policy_addr_class(a);

	if (c == ADDR_PUBLIC || (c == ADDR_PRIVATE && arg != NULL))
		return 0;
	return (int)c;
}

static int
keep_all(const struct ipaddr *a, void *arg)
{
	(void)a;
	(void)arg;
	return 0;
}

/* The records of a message by type, with an independent reader. */
static int
count_type(const uint8_t *pkt, size_t len, uint16_t type)
{
	struct dc_msg m;
	int n = 0;

	if (!dc_parse(pkt, len, true, &m))
		return -1;
	for (size_t i = 0; i < m.nrr; i++)
		n += m.rr[i].type == type;
	dc_free(&m);
	return n;
}

static bool
removed_has(const struct dns_strip *s, const char *a, int why)
{
	struct ipaddr x;

	policy_parse_addr(a, &x);
	for (size_t i = 0; i < s->nremoved; i++)
		if (policy_addr_cmp(&s->removed[i].a, &x) == 0)
			return s->removed[i].why == why;
	return false;
}

/* The rdata of the message's only HTTPS record. */
static const uint8_t *
https_rdata(const uint8_t *pkt, size_t len, size_t *rdlen)
{
	struct dc_msg m;
	const uint8_t *rd = NULL;

	if (!dc_parse(pkt, len, true, &m))
		return NULL;
	for (size_t i = 0; i < m.nrr; i++)
		if (m.rr[i].type == DNS_T_HTTPS) {
			rd = pkt + m.rr[i].rd;
			*rdlen = m.rr[i].rdlen;
		}
	dc_free(&m);
	return rd;
}

static void
test_strip(void)
{
	size_t qn;
	struct pk p = mixed_answer(&qn);
	struct dns_strip s;
	struct dns_answer a;
	const uint8_t *rd;
	size_t rdlen = 0;
	static const uint8_t want_https[] = {0, 1, 0, 0, 1, 0, 3, 2, 'h', '2',
		0, 4, 0, 4, 192, 0, 2, 5};

	/* nothing to remove: no new message */
	CHECK(dnswire_strip(p.b, p.n, keep_all, NULL, &s) == 0);
	CHECK(s.pkt == NULL && s.nremoved == 0);
	dnswire_strip_finish(&s);

	/* without allow-private: only the public addresses are left */
	CHECK(dnswire_strip(p.b, p.n, guard_cb, NULL, &s) == 0);
	CHECK(s.pkt != NULL && s.nremoved == 7);
	CHECK(removed_has(&s, "127.0.0.1", ADDR_RESERVED));
	CHECK(removed_has(&s, "::1", ADDR_RESERVED));
	CHECK(removed_has(&s, "10.1.2.3", ADDR_PRIVATE));
	CHECK(removed_has(&s, "fe80::1", ADDR_PRIVATE));
	CHECK(removed_has(&s, "10.0.0.5", ADDR_PRIVATE));
	CHECK(removed_has(&s, "fe80::5", ADDR_PRIVATE));
	CHECK(removed_has(&s, "169.254.1.1", ADDR_PRIVATE));
	CHECK(dnswire_walk(s.pkt, s.len, p.b + qn, 11, 100, &a) == 0);
	CHECK(a.naddrs == 3 && has_addr(&a, "192.0.2.1") &&
		has_addr(&a, "2001:db8::1") && has_addr(&a, "192.0.2.5"));
	dnswire_answer_finish(&a);
	CHECK(count_type(s.pkt, s.len, DNS_T_A) == 1);
	CHECK(count_type(s.pkt, s.len, DNS_T_AAAA) == 1);
	CHECK(count_type(s.pkt, s.len, DNS_T_CNAME) == 1);
	/* the signatures over A and HTTPS went with their records; the
	 * CNAME's stays */
	CHECK(count_type(s.pkt, s.len, DNS_T_RRSIG) == 1);
	CHECK(count_type(s.pkt, s.len, DNS_T_OPT) == 1);
	CHECK(s.pkt[7] == 5 && s.pkt[9] == 0 && s.pkt[11] == 1);
	CHECK(s.pkt[0] == p.b[0] && s.pkt[2] == p.b[2] && s.pkt[3] == p.b[3]);
	/* alpn as it was, ipv4hint=192.0.2.5, no ipv6hint */
	rd = https_rdata(s.pkt, s.len, &rdlen);
	CHECK(rd != NULL && rdlen == sizeof(want_https) &&
		memcmp(rd, want_https, sizeof(want_https)) == 0);
	/* a client's answer from it parses, and holds what the walk saw */
	{
		struct pk q = query("m.example", DNS_T_A, true, true);
		struct dns_query dq;
		uint8_t out[4096];
		size_t n;

		dnswire_parse_query(q.b, q.n, &dq);
		n = dnswire_build_answer(&dq, s.pkt, s.len, true, 300, 0,
			EDE_NONE, NULL, 4096, out, sizeof(out));
		CHECK(n > 0 && count_type(out, n, DNS_T_A) == 1);
		CHECK(dnswire_walk(out, n, p.b + qn, 11, 100, &a) == 0 &&
			a.naddrs == 3);
		dnswire_answer_finish(&a);
	}
	dnswire_strip_finish(&s);

	/* with allow-private: only the reserved ones go */
	CHECK(dnswire_strip(p.b, p.n, guard_cb, &p, &s) == 0);
	CHECK(s.pkt != NULL && s.nremoved == 2);
	CHECK(dnswire_walk(s.pkt, s.len, p.b + qn, 11, 100, &a) == 0);
	CHECK(a.naddrs == 7 && has_addr(&a, "10.1.2.3") &&
		has_addr(&a, "fe80::5") && !has_addr(&a, "::1"));
	dnswire_answer_finish(&a);
	CHECK(count_type(s.pkt, s.len, DNS_T_RRSIG) == 2); /* CNAME, HTTPS */
	CHECK(count_type(s.pkt, s.len, DNS_T_A) == 3);
	dnswire_strip_finish(&s);

	/* every truncation is refused or stripped into a message that parses
	 * and keeps no refused address */
	for (size_t n = 0; n < p.n; n++) {
		if (dnswire_strip(p.b, n, guard_cb, NULL, &s) == 0 &&
			s.pkt != NULL) {
			CHECK(count_type(s.pkt, s.len, DNS_T_A) >= 0);
			if (dnswire_walk(s.pkt, s.len, p.b + qn, 11, 100, &a) ==
				0)
				CHECK(!has_addr(&a, "127.0.0.1") &&
					!has_addr(&a, "10.0.0.5"));
			dnswire_answer_finish(&a);
		}
		dnswire_strip_finish(&s);
	}
}

/* Every address removed: NOERROR with no address left, as unbound's
 * private-address leaves it (NODATA); a hint listed in `mandatory`
 * takes its record with it; a malformed HTTPS record fails the answer. */
static void
test_strip_edges(void)
{
	struct pk p;
	struct dns_strip s;
	size_t qn;

	hdr(&p, 7, DNS_F_QR | DNS_F_AA, 1, 2, 0, 0);
	qn = name(&p, "lo.example");
	u16(&p, DNS_T_A);
	u16(&p, 1);
	addr_rr(&p, qn, "127.0.0.1");
	addr_rr(&p, qn, "0.1.2.3");
	CHECK(dnswire_strip(p.b, p.n, guard_cb, &p, &s) == 0);
	CHECK(s.pkt != NULL && s.nremoved == 2);
	CHECK(s.len == 12 + 12 + 4); /* the header and the question */
	CHECK((s.pkt[3] & 0xF) == DNS_R_NOERROR && s.pkt[5] == 1 &&
		s.pkt[7] == 0);
	CHECK(memcmp(s.pkt, p.b, 4) == 0);
	dnswire_strip_finish(&s);

	/* HTTPS 1 . mandatory=ipv4hint ipv4hint=10.0.0.5 */
	hdr(&p, 7, DNS_F_QR, 1, 2, 0, 0);
	qn = name(&p, "h.example");
	u16(&p, DNS_T_HTTPS);
	u16(&p, 1);
	rr_head(&p, qn, DNS_T_HTTPS, 60, 2 + 1 + 4 + 2 + 4 + 4);
	u16(&p, 1);
	u8(&p, 0);
	u16(&p, 0);
	u16(&p, 2);
	u16(&p, 4);
	u16(&p, 4);
	u16(&p, 4);
	bytes(&p, "10.0.0.5", 4);
	addr_rr(&p, qn, "192.0.2.9");
	CHECK(dnswire_strip(p.b, p.n, guard_cb, NULL, &s) == 0);
	CHECK(s.pkt != NULL && count_type(s.pkt, s.len, DNS_T_HTTPS) == 0 &&
		count_type(s.pkt, s.len, DNS_T_A) == 1);
	dnswire_strip_finish(&s);
	/* allowed, it stays as it was */
	CHECK(dnswire_strip(p.b, p.n, guard_cb, &p, &s) == 0 && s.pkt == NULL);
	dnswire_strip_finish(&s);
	/* an ipv4hint that is not whole addresses: malformed */
	p.b[12 + 11 + 4 + 12 + 2 + 1 + 4 + 2 + 3] = 3;
	CHECK(dnswire_strip(p.b, p.n, guard_cb, NULL, &s) < 0);
	CHECK(s.pkt == NULL && s.nremoved == 0);
	dnswire_strip_finish(&s);
}

int
main(void)
{
	test_parse_query();
	test_error();
	test_walk();
	test_build();
	test_ttl_cap();
	test_strip();
	test_strip_edges();
	return check_done("dnswire");
}
