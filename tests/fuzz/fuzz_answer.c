/* libFuzzer target: a resolver's answer message, walked for addresses and
 * rebuilt for a client, at several client buffer sizes and TTL caps.
 *
 * Invariants (abort() when broken):
 * - every address dnswire_walk returns is the rdata of an A/AAAA record,
 *   or an ipv4hint/ipv6hint of an SVCB/HTTPS record, of class IN in the
 *   answer section, owned by a name on the CNAME chain from the question
 *   name (found here by an independent reader, dnscheck.h); no address
 *   twice; at most max_addrs; min_ttl is the TTL of one of the records;
 * - a rebuilt answer parses again, exactly, as a response with the
 *   client's ID, opcode, RD and CD, and its question; it fits maxlen;
 *   every TTL but the OPT's is at most the cap, and counted down by the
 *   age given (an answer from the cache) before it; our OPT is there when
 *   the client used EDNS; AD only when secure and asked for; DNSSEC
 *   records only with DO; TC answers carry no records but the OPT;
 * - the rebuilt answer, walked again, admits the same addresses;
 * - the rebinding guard (dnswire_strip, with a guard refusing reserved,
 *   internal and, unless allow-private, private addresses): it fails, or
 *   leaves the message alone only when no A/AAAA record nor SVCB/HTTPS
 *   hint holds a refused address, or gives a message that parses
 *   exactly, in which none does, whose records of other types (RRSIG
 *   aside) are all still there, whose walk admits only what the walk
 *   of the original admitted and nothing refused, whose removed list
 *   holds distinct refused addresses found in the original, and whose
 *   rebuilt answer for a client (every check above) holds none either. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "dnscheck.h"
#include "dnswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t qname[] = "\3www\7example";

/* Names reachable from the question name through CNAMEs of the answer
 * section (any number of links, any order, any class: a superset of the
 * chain the walk may follow). */
static size_t
chain(const uint8_t *pkt, const struct dc_msg *m, uint8_t (*names)[DC_MAXNAME],
	size_t *nlen, size_t max)
{
	size_t n = 1;

	memcpy(names[0], qname, sizeof(qname));
	nlen[0] = sizeof(qname);
	for (size_t c = 0; c < n; c++) {
		for (size_t i = 0; i < m->nrr; i++) {
			const struct dc_rr *r = &m->rr[i];
			size_t off = r->rd, tl;
			uint8_t t[DC_MAXNAME];
			bool known = false;

			if (r->section != 1 || r->type != 5 ||
				!dc_name_eq(r->name, r->nlen, names[c],
					nlen[c]) ||
				!dc_name(pkt, r->rd + r->rdlen, &off, t, &tl))
				continue;
			for (size_t k = 0; k < n; k++)
				known |= dc_name_eq(names[k], nlen[k], t, tl);
			if (!known && n < max) {
				memcpy(names[n], t, tl);
				nlen[n++] = tl;
			}
		}
	}
	return n;
}

static bool
on_chain(const struct dc_rr *r, uint8_t (*names)[DC_MAXNAME],
	const size_t *nlen, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (dc_name_eq(r->name, r->nlen, names[k], nlen[k]))
			return true;
	return false;
}

/* Is a (family, 4 or 16 bytes) a hint in the SVCB/HTTPS rdata of r? */
static bool
in_svcb(const uint8_t *pkt, const struct dc_rr *r, int family, const uint8_t *a)
{
	size_t end = r->rd + r->rdlen, off = r->rd + 2, tl;
	uint16_t want = family == AF_INET ? 4 : 6;
	size_t alen = family == AF_INET ? 4 : 16;
	uint8_t t[DC_MAXNAME];

	if (r->rdlen < 3 || !dc_name(pkt, end, &off, t, &tl))
		return false;
	while (end - off >= 4) {
		uint16_t key = dc_u16(pkt + off), vl = dc_u16(pkt + off + 2);

		off += 4;
		if (end - off < vl)
			return false;
		for (size_t i = 0; key == want && i + alen <= vl; i += alen)
			if (memcmp(pkt + off + i, a, alen) == 0)
				return true;
		off += vl;
	}
	return false;
}

static bool
addr_in_answer(const uint8_t *pkt, const struct dc_msg *m,
	uint8_t (*names)[DC_MAXNAME], const size_t *nlen, size_t n,
	const struct ipaddr *a)
{
	size_t alen = a->family == AF_INET ? 4 : 16;
	uint16_t type = a->family == AF_INET ? 1 : 28;

	for (size_t i = 0; i < m->nrr; i++) {
		const struct dc_rr *r = &m->rr[i];

		if (r->section != 1 || r->cls != 1 ||
			!on_chain(r, names, nlen, n))
			continue;
		if (r->type == type && r->rdlen == alen &&
			memcmp(pkt + r->rd, a->b, alen) == 0)
			return true;
		if ((r->type == 64 || r->type == 65) &&
			in_svcb(pkt, r, a->family, a->b))
			return true;
	}
	return false;
}

static void
check_walk(const uint8_t *data, size_t size, size_t max, struct dns_answer *a)
{
	static uint8_t names[64][DC_MAXNAME];
	size_t nlen[64], n;
	struct dc_msg m;
	bool ttl_seen = false;

	/* The walk accepted it, so it parses (trailing bytes allowed). */
	INVARIANT(dc_parse(data, size, false, &m));
	n = chain(data, &m, names, nlen, 64);
	INVARIANT(a->naddrs <= max);
	INVARIANT(a->rcode == (dc_u16(data + 2) & 0xF));
	for (size_t i = 0; i < a->naddrs; i++) {
		const struct ipaddr *x = &a->addrs[i].a;

		INVARIANT(x->family == AF_INET || x->family == AF_INET6);
		INVARIANT(addr_in_answer(data, &m, names, nlen, n, x));
		for (size_t j = 0; j < i; j++)
			INVARIANT(a->addrs[j].a.family != x->family ||
				memcmp(a->addrs[j].a.b, x->b,
					x->family == AF_INET ? 4 : 16) != 0);
	}
	if (a->naddrs == 0) {
		INVARIANT(a->min_ttl == 0 && !a->truncated_addrs);
	} else {
		for (size_t i = 0; i < m.nrr; i++)
			ttl_seen |= m.rr[i].section == 1 &&
				m.rr[i].ttl == a->min_ttl;
		INVARIANT(ttl_seen);
	}
	dc_free(&m);
}

/* The same addresses, in any order (max is large enough for both). */
static bool
same_addrs(const struct dns_answer *x, const struct dns_answer *y)
{
	if (x->naddrs != y->naddrs)
		return false;
	for (size_t i = 0; i < x->naddrs; i++) {
		bool found = false;

		for (size_t j = 0; j < y->naddrs && !found; j++)
			found = x->addrs[i].a.family == y->addrs[j].a.family &&
				memcmp(x->addrs[i].a.b, y->addrs[j].a.b, 16) ==
					0;
		if (!found)
			return false;
	}
	return true;
}

/* An answer built with age against the same without age and cap: the
 * same records, each TTL (the OPT's aside) counted down by age, never
 * below 0, then capped. */
static void
check_aged(const struct dc_msg *m, const struct dns_query *q,
	const uint8_t *data, size_t size, bool secure, uint32_t cap,
	uint32_t age, size_t maxlen, const char *ede)
{
	static uint8_t raw[DNS_MAXMSG];
	size_t n = dnswire_build_answer(q, data, size, secure, UINT32_MAX, 0,
		ede ? EDE_BLOCKED : EDE_NONE, ede, maxlen, raw, sizeof(raw));
	struct dc_msg r;

	INVARIANT(n > 0 && dc_parse(raw, n, true, &r) && r.nrr == m->nrr);
	for (size_t i = 0; i < m->nrr; i++) {
		uint32_t t = r.rr[i].ttl > age ? r.rr[i].ttl - age : 0;

		INVARIANT(r.rr[i].type == m->rr[i].type);
		INVARIANT(m->rr[i].ttl ==
			(r.rr[i].type == DNS_T_OPT ? r.rr[i].ttl
					: t < cap  ? t
						   : cap));
	}
	dc_free(&r);
}

static void
check_built(const struct dns_query *q, const uint8_t *data, size_t size,
	bool secure, uint32_t cap, uint32_t age, size_t maxlen, const char *ede)
{
	static uint8_t out[DNS_MAXMSG];
	size_t n = dnswire_build_answer(q, data, size, secure, cap, age,
		ede ? EDE_BLOCKED : EDE_NONE, ede, maxlen, out, sizeof(out));
	struct dns_answer before, after;
	bool opt = false;
	struct dc_msg m;

	if (n == 0)
		return; /* the resolver's message was malformed */
	INVARIANT(n <= maxlen);
	INVARIANT(dc_parse(out, n, true, &m));
	INVARIANT(m.id == q->id);
	INVARIANT(m.flags & DNS_F_QR);
	INVARIANT((m.flags & 0x7800) == (q->flags & 0x7800));
	INVARIANT((m.flags & (DNS_F_RD | DNS_F_CD)) ==
		(q->flags & (DNS_F_RD | DNS_F_CD)));
	INVARIANT((m.flags & 0xF) == (dc_u16(data + 2) & 0xF));
	INVARIANT(!(m.flags & DNS_F_AD) ||
		(secure && (q->do_bit || (q->flags & DNS_F_AD))));
	INVARIANT(m.count[0] == 1);
	INVARIANT(
		dc_name_eq(m.qname, m.qnlen, q->qname_wire, q->qname_wire_len));
	INVARIANT(memcmp(m.qname, q->qname_wire, m.qnlen) == 0);
	INVARIANT(m.qtype == q->qtype && m.qclass == q->qclass);
	for (size_t i = 0; i < m.nrr; i++) {
		const struct dc_rr *r = &m.rr[i];

		if (r->type == DNS_T_OPT) {
			INVARIANT(r->section == 3 && !opt && q->edns);
			/* our EDE, whole, or no option at all */
			INVARIANT(ede ? r->rdlen == 6 + strlen(ede) &&
						dc_u16(out + r->rd) == 15 &&
						dc_u16(out + r->rd + 4) ==
							EDE_BLOCKED &&
						memcmp(out + r->rd + 6, ede,
							strlen(ede)) == 0
				      : r->rdlen == 0);
			opt = true;
			continue;
		}
		INVARIANT(r->ttl <= cap);
		INVARIANT(q->do_bit || q->qtype == r->type ||
			(r->type != DNS_T_RRSIG && r->type != DNS_T_NSEC &&
				r->type != DNS_T_NSEC3));
		INVARIANT(!(m.flags & DNS_F_TC));
	}
	INVARIANT(opt == q->edns);
	check_aged(&m, q, data, size, secure, cap, age, maxlen, ede);
	/* The client is handed what was admitted, no more, no less. */
	if (!(m.flags & DNS_F_TC) &&
		dnswire_walk(data, size, qname, sizeof(qname), 4096, &before) ==
			0) {
		INVARIANT(dnswire_walk(out, n, qname, sizeof(qname), 4096,
				  &after) == 0);
		INVARIANT(same_addrs(&before, &after));
		dnswire_answer_finish(&after);
		dnswire_answer_finish(&before);
	}
	dc_free(&m);
}

/* ---- the rebinding guard ---- */

/* Two "VM" addresses: internal, never kept. */
static struct ipaddr internal[2];
static struct config guard_conf = {.internal = internal, .ninternal = 2};

static int
guard(const struct ipaddr *a, void *arg)
{
	enum addr_class c = config_addr_class(&guard_conf, a);

	if (c == ADDR_PUBLIC || (c == ADDR_PRIVATE && *(bool *)arg))
		return 0;
	return 1 + (int)c;
}

/* Does any A/AAAA record (any section, any class) or SVCB/HTTPS hint of
 * the message hold an address the guard refuses? Its own reading. */
static bool
any_refused(const uint8_t *pkt, const struct dc_msg *m, bool priv)
{
	for (size_t i = 0; i < m->nrr; i++) {
		const struct dc_rr *r = &m->rr[i];
		struct ipaddr a;
		size_t end = r->rd + r->rdlen, off = r->rd + 2, tl;
		uint8_t t[DC_MAXNAME];

		memset(&a, 0, sizeof(a));
		if ((r->type == 1 && r->rdlen == 4) ||
			(r->type == 28 && r->rdlen == 16)) {
			a.family = r->type == 1 ? AF_INET : AF_INET6;
			memcpy(a.b, pkt + r->rd, r->rdlen);
			if (guard(&a, &priv))
				return true;
			continue;
		}
		if ((r->type != 64 && r->type != 65) || r->rdlen < 3 ||
			!dc_name(pkt, end, &off, t, &tl))
			continue;
		while (end - off >= 4) {
			uint16_t key = dc_u16(pkt + off),
				 vl = dc_u16(pkt + off + 2);
			size_t al = key == 4 ? 4 : 16;

			off += 4;
			if (end - off < vl)
				break;
			for (size_t k = 0;
				(key == 4 || key == 6) && k + al <= vl;
				k += al) {
				a.family = key == 4 ? AF_INET : AF_INET6;
				memcpy(a.b, pkt + off + k, al);
				if (guard(&a, &priv))
					return true;
			}
			off += vl;
		}
	}
	return false;
}

static size_t
others(const struct dc_msg *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nrr; i++)
		n += m->rr[i].type != 1 && m->rr[i].type != 28 &&
			m->rr[i].type != 46 && m->rr[i].type != 64 &&
			m->rr[i].type != 65;
	return n;
}

/* Is a (family, bytes) an A/AAAA rdata or a hint anywhere in m? */
static bool
in_message(const uint8_t *pkt, const struct dc_msg *m, const struct ipaddr *a)
{
	size_t alen = a->family == AF_INET ? 4 : 16;
	uint16_t type = a->family == AF_INET ? 1 : 28;

	for (size_t i = 0; i < m->nrr; i++) {
		const struct dc_rr *r = &m->rr[i];

		if (r->type == type && r->rdlen == alen &&
			memcmp(pkt + r->rd, a->b, alen) == 0)
			return true;
		if ((r->type == 64 || r->type == 65) &&
			in_svcb(pkt, r, a->family, a->b))
			return true;
	}
	return false;
}

static bool
addr_in(const struct dns_answer *x, const struct ipaddr *a)
{
	for (size_t i = 0; i < x->naddrs; i++)
		if (policy_addr_cmp(&x->addrs[i].a, a) == 0)
			return true;
	return false;
}

static void
check_strip(const struct dns_query *q, const uint8_t *data, size_t size,
	bool priv)
{
	static uint8_t out[DNS_MAXMSG];
	struct dns_strip s;
	struct dc_msg orig, m;
	struct dns_answer before, after;
	size_t n;

	if (dnswire_strip(data, size, guard, &priv, &s) < 0) {
		INVARIANT(s.pkt == NULL && s.nremoved == 0);
		return;
	}
	INVARIANT(dc_parse(data, size, false, &orig));
	if (s.pkt == NULL) {
		INVARIANT(s.nremoved == 0 && !any_refused(data, &orig, priv));
		dc_free(&orig);
		return;
	}
	INVARIANT(s.nremoved > 0);
	INVARIANT(dc_parse(s.pkt, s.len, true, &m));
	INVARIANT(!any_refused(s.pkt, &m, priv));
	INVARIANT(others(&m) == others(&orig));
	INVARIANT(m.id == orig.id && m.flags == orig.flags &&
		m.count[0] == orig.count[0]);
	for (size_t i = 0; i < s.nremoved; i++) {
		INVARIANT(guard(&s.removed[i].a, &priv) == s.removed[i].why &&
			s.removed[i].why > 0);
		INVARIANT(in_message(data, &orig, &s.removed[i].a));
		for (size_t j = 0; j < i; j++)
			INVARIANT(policy_addr_cmp(&s.removed[i].a,
					  &s.removed[j].a) != 0);
	}
	if (dnswire_walk(data, size, qname, sizeof(qname), 4096, &before) ==
		0) {
		INVARIANT(dnswire_walk(s.pkt, s.len, qname, sizeof(qname), 4096,
				  &after) == 0);
		for (size_t i = 0; i < after.naddrs; i++)
			INVARIANT(addr_in(&before, &after.addrs[i].a) &&
				guard(&after.addrs[i].a, &priv) == 0);
		dnswire_answer_finish(&after);
	}
	dnswire_answer_finish(&before);
	n = dnswire_build_answer(q, s.pkt, s.len, false, 300, 0, EDE_NONE, NULL,
		DNS_MAXMSG, out, sizeof(out));
	if (n > 0) {
		struct dc_msg b;

		INVARIANT(dc_parse(out, n, true, &b));
		INVARIANT(!any_refused(out, &b, priv));
		dc_free(&b);
	}
	check_built(q, s.pkt, s.len, true, 300, 0, 512, "removed");
	dc_free(&m);
	dc_free(&orig);
	dnswire_strip_finish(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_query q = {.id = 0x1234,
		.flags = 0x0100,
		.qtype = 1,
		.qclass = 1,
		.edns = !(size & 2),
		.do_bit = size & 1,
		.udp_size = 1232};
	struct dns_answer a;
	size_t max = size & 4 ? 2 : 64;

	memcpy(q.qname_wire, qname, sizeof(qname));
	q.qname_wire_len = sizeof(qname);
	if (size & 8)
		q.flags |= DNS_F_CD | DNS_F_AD;
	if (dnswire_walk(data, size, qname, sizeof(qname), max, &a) == 0) {
		check_walk(data, size, max, &a);
		dnswire_answer_finish(&a);
	}
	check_built(&q, data, size, true, 300, 0, 512, NULL);
	check_built(&q, data, size, false, 86400, (uint32_t)size % 600,
		DNS_MAXMSG, NULL);
	check_built(&q, data, size, size & 16, 0, 1, DNS_MAXMSG,
		size & 32 ? "dnsfence removed 2 addresses" : NULL);
	if (internal[0].family == 0) {
		policy_parse_addr("192.0.2.1", &internal[0]);
		policy_parse_addr("2001:db8::1", &internal[1]);
	}
	check_strip(&q, data, size, false);
	check_strip(&q, data, size, true);
	return 0;
}
