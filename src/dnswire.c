#include "dnswire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_PTR_HOPS 64
#define SVCB_MANDATORY 0 /* SvcParamKeys (RFC 9460, section 14.3.2) */
#define SVCB_IPV4HINT 4
#define SVCB_IPV6HINT 6
#define MAX_CHAIN 16
#define DICT_MAX 512

/* ---- reading ------------------------------------------------------------- */

static int
get16(const uint8_t *p, size_t len, size_t off, uint16_t *v)
{
	if (off > len || len - off < 2)
		return -1;
	*v = (uint16_t)(p[off] << 8 | p[off + 1]);
	return 0;
}

static int
get32(const uint8_t *p, size_t len, size_t off, uint32_t *v)
{
	if (off > len || len - off < 4)
		return -1;
	*v = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
		(uint32_t)p[off + 2] << 8 | p[off + 3];
	return 0;
}

/* Read a name at *off (following compression pointers, which must point
 * into earlier names) into out, uncompressed; *off moves past the name as
 * it stands in the message. */
static int
read_name(const uint8_t *pkt, size_t len, size_t *off, uint8_t *out,
	size_t *outlen)
{
	size_t pos = *off, o = 0, limit = *off;
	bool jumped = false;
	int hops = 0;

	for (;;) {
		uint8_t c;

		if (pos >= len)
			return -1;
		c = pkt[pos];
		if (c == 0) {
			out[o++] = 0;
			if (!jumped)
				*off = pos + 1;
			*outlen = o;
			return 0;
		}
		if ((c & 0xC0) == 0xC0) {
			size_t ptr;

			if (pos + 1 >= len || ++hops > MAX_PTR_HOPS)
				return -1;
			ptr = (size_t)(c & 0x3F) << 8 | pkt[pos + 1];
			/* Only into an earlier name: before where this name (or
			 * the name the last pointer led to) starts, and never
			 * into the header. A pointer into its own name can only
			 * loop or land inside a label; the question, the first
			 * name, can point nowhere. */
			if (ptr < DNS_HDRLEN || ptr >= limit)
				return -1;
			limit = ptr;
			if (!jumped)
				*off = pos + 2;
			jumped = true;
			pos = ptr;
			continue;
		}
		if (c & 0xC0) /* extended label types: obsolete */
			return -1;
		if (len - pos - 1 < c || o + 1 + c + 1 > DNS_MAXNAME)
			return -1;
		memcpy(out + o, pkt + pos, (size_t)c + 1);
		o += (size_t)c + 1;
		pos += (size_t)c + 1;
	}
}

static bool
name_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (tolower(a[i]) != tolower(b[i]))
			return false;
	return true;
}

int
dnswire_name_to_str(const uint8_t *wire, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	while (i < len && wire[i] != 0) {
		uint8_t l = wire[i++];

		if (i + l > len || o + l + 2 > outlen)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (uint8_t k = 0; k < l; k++) {
			int c = tolower(wire[i + k]);

			/* Bytes a host name cannot hold make the name
			 * unmatchable rather than ambiguous. */
			if (c == '.' || c <= ' ' || c >= 127)
				c = '?';
			out[o++] = (char)c;
		}
		i += l;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

/* ---- queries ------------------------------------------------------------- */

static int
parse_opt(const uint8_t *pkt, size_t len, size_t *off, struct dns_query *q)
{
	uint16_t type, cls, rdlen;
	uint32_t ttl;
	size_t end;

	/* Owner must be the root. */
	if (*off >= len || pkt[*off] != 0)
		return DNS_R_FORMERR;
	(*off)++;
	if (get16(pkt, len, *off, &type) < 0 || type != DNS_T_OPT ||
		get16(pkt, len, *off + 2, &cls) < 0 ||
		get32(pkt, len, *off + 4, &ttl) < 0 ||
		get16(pkt, len, *off + 8, &rdlen) < 0)
		return DNS_R_FORMERR;
	*off += 10;
	if (len - *off < rdlen)
		return DNS_R_FORMERR;
	end = *off + rdlen;
	while (*off < end) { /* options must fit exactly */
		uint16_t code, olen;

		if (get16(pkt, end, *off, &code) < 0 ||
			get16(pkt, end, *off + 2, &olen) < 0 ||
			end - *off - 4 < olen)
			return DNS_R_FORMERR;
		*off += 4 + (size_t)olen;
	}
	q->edns = true;
	q->udp_size = cls < 512 ? 512 : cls;
	q->do_bit = (ttl & 0x8000) != 0;
	if (((ttl >> 16) & 0xFF) != 0)
		return DNS_R_BADVERS;
	return DNS_R_NOERROR;
}

int
dnswire_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q)
{
	uint16_t qd, an, ns, ar;
	size_t off = DNS_HDRLEN;
	int rc;

	memset(q, 0, sizeof(*q));
	q->udp_size = 512;
	if (len < DNS_HDRLEN)
		return -1;
	q->id = (uint16_t)(pkt[0] << 8 | pkt[1]);
	q->flags = (uint16_t)(pkt[2] << 8 | pkt[3]);
	if (q->flags & DNS_F_QR)
		return -1; /* never answer a response: no loops, no reflection */
	get16(pkt, len, 4, &qd);
	get16(pkt, len, 6, &an);
	get16(pkt, len, 8, &ns);
	get16(pkt, len, 10, &ar);
	if (((q->flags >> 11) & 0xF) != 0)
		return DNS_R_NOTIMP; /* opcode other than QUERY */
	if (qd != 1 || an != 0 || ns != 0 || ar > 1)
		return DNS_R_FORMERR;
	/* The question name is the first name: nothing to point back to,
	 * so read_name refuses any pointer in it. */
	if (read_name(pkt, len, &off, q->qname_wire, &q->qname_wire_len) < 0 ||
		get16(pkt, len, off, &q->qtype) < 0 ||
		get16(pkt, len, off + 2, &q->qclass) < 0)
		return DNS_R_FORMERR;
	off += 4;
	if (ar == 1 && (rc = parse_opt(pkt, len, &off, q)) != DNS_R_NOERROR)
		return rc;
	if (off != len)
		return DNS_R_FORMERR; /* trailing bytes */
	if (dnswire_name_to_str(q->qname_wire, q->qname_wire_len, q->qname,
		    sizeof(q->qname)) < 0)
		return DNS_R_FORMERR;
	{
		char tmp[NAME_MAX_LEN + 2];

		q->qname_ok = q->qname[0] != '\0' &&
			policy_normalise_name(q->qname, tmp, sizeof(tmp)) == 0;
	}
	return DNS_R_NOERROR;
}

/* ---- writing ------------------------------------------------------------- */

/* An output buffer and the names written so far, for compression. */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
	uint16_t dict[DICT_MAX]; /* offsets of label starts written */
	size_t ndict;
};

static void
put(struct wbuf *w, const void *d, size_t n)
{
	if (w->overflow || w->cap - w->len < n) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, d, n);
	w->len += n;
}

static void
put16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	put(w, b, 2);
}

static void
put32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
		(uint8_t)(v >> 8), (uint8_t)v};

	put(w, b, 4);
}

/* Does the (possibly compressed) name at off in our own output equal the
 * uncompressed name n? */
static bool
out_name_eq(const struct wbuf *w, size_t off, const uint8_t *n, size_t nlen)
{
	uint8_t tmp[DNS_MAXNAME];
	size_t tl, o = off;

	if (read_name(w->p, w->len, &o, tmp, &tl) < 0)
		return false;
	return name_eq(tmp, tl, n, nlen);
}

/* Write an uncompressed name, compressing against names already written. */
static void
put_name(struct wbuf *w, const uint8_t *n, size_t nlen)
{
	size_t i = 0;

	while (i < nlen && n[i] != 0) {
		for (size_t d = 0; d < w->ndict; d++) {
			if (out_name_eq(w, w->dict[d], n + i, nlen - i)) {
				put16(w, (uint16_t)(0xC000 | w->dict[d]));
				return;
			}
		}
		if (w->len < 0x4000 && w->ndict < DICT_MAX)
			w->dict[w->ndict++] = (uint16_t)w->len;
		put(w, n + i, (size_t)n[i] + 1);
		i += (size_t)n[i] + 1;
	}
	put(w, "", 1);
}

static void
put_opt(struct wbuf *w, const struct dns_query *q, int ede, const char *text)
{
	size_t tl = text ? strlen(text) : 0;

	if (!q->edns)
		return;
	if (tl > 200)
		tl = 200;
	put(w, "", 1);
	put16(w, DNS_T_OPT);
	put16(w, DNS_OUR_UDP);
	put32(w, q->do_bit ? 0x8000 : 0);
	if (ede == EDE_NONE) {
		put16(w, 0);
		return;
	}
	put16(w, (uint16_t)(4 + 2 + tl));
	put16(w, 15); /* EDE option code */
	put16(w, (uint16_t)(2 + tl));
	put16(w, (uint16_t)ede);
	put(w, text, tl);
}

static void
put_header(struct wbuf *w, const struct dns_query *q, uint16_t flags, int rcode,
	uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar)
{
	put16(w, q->id);
	put16(w,
		(uint16_t)(DNS_F_QR | (q->flags & (0xF << 11)) |
			(q->flags & (DNS_F_RD | DNS_F_CD)) | DNS_F_RA | flags |
			(rcode & 0xF)));
	put16(w, qd);
	put16(w, an);
	put16(w, ns);
	put16(w, ar);
}

size_t
dnswire_error(const struct dns_query *q, int rcode, int ede,
	const char *ede_text, uint8_t *out, size_t outlen)
{
	struct wbuf w = {.p = out, .cap = outlen};
	bool hasq = q->qname_wire_len > 0;

	/* BADVERS lives in the OPT's extended rcode; it needs our OPT. */
	put_header(&w, q, 0, rcode, hasq, 0, 0, q->edns);
	if (hasq) {
		put_name(&w, q->qname_wire, q->qname_wire_len);
		put16(&w, q->qtype);
		put16(&w, q->qclass);
	}
	if (rcode == DNS_R_BADVERS && q->edns) {
		size_t at = w.len;

		put_opt(&w, q, EDE_NONE, NULL);
		if (!w.overflow)
			w.p[at + 5] = (uint8_t)(DNS_R_BADVERS >> 4);
	} else {
		put_opt(&w, q, ede, ede_text);
	}
	return w.overflow ? 0 : w.len;
}

/* ---- answers --------------------------------------------------------- */

struct rr {
	uint8_t name[DNS_MAXNAME];
	size_t nlen;
	uint16_t type, cls;
	uint32_t ttl;
	size_t rdoff;
	uint16_t rdlen;
	int section; /* 0 answer, 1 authority, 2 additional */
};

struct msg {
	uint16_t id, flags;
	int rcode;
	struct rr *rrs;
	size_t nrr;
};

static void
msg_finish(struct msg *m)
{
	free(m->rrs);
	m->rrs = NULL;
}

static int
msg_parse(const uint8_t *pkt, size_t len, struct msg *m)
{
	uint16_t cnt[4];
	size_t off = DNS_HDRLEN;
	uint8_t tmp[DNS_MAXNAME];
	size_t tl;

	memset(m, 0, sizeof(*m));
	if (len < DNS_HDRLEN)
		return -1;
	m->id = (uint16_t)(pkt[0] << 8 | pkt[1]);
	m->flags = (uint16_t)(pkt[2] << 8 | pkt[3]);
	m->rcode = m->flags & 0xF;
	for (int i = 0; i < 4; i++)
		get16(pkt, len, 4 + 2 * (size_t)i, &cnt[i]);
	if (cnt[0] > 1 || (size_t)cnt[1] + cnt[2] + cnt[3] > DNS_MAX_RRS)
		return -1;
	if (cnt[0] == 1) {
		if (read_name(pkt, len, &off, tmp, &tl) < 0 || len - off < 4)
			return -1;
		off += 4;
	}
	m->rrs = xcalloc((size_t)cnt[1] + cnt[2] + cnt[3] + 1, sizeof(*m->rrs));
	for (int s = 0; s < 3; s++) {
		for (uint16_t i = 0; i < cnt[s + 1]; i++) {
			struct rr *r = &m->rrs[m->nrr];

			if (read_name(pkt, len, &off, r->name, &r->nlen) < 0 ||
				get16(pkt, len, off, &r->type) < 0 ||
				get16(pkt, len, off + 2, &r->cls) < 0 ||
				get32(pkt, len, off + 4, &r->ttl) < 0 ||
				get16(pkt, len, off + 8, &r->rdlen) < 0 ||
				len - off - 10 < r->rdlen) {
				msg_finish(m);
				return -1;
			}
			r->rdoff = off + 10;
			r->section = s;
			off = r->rdoff + r->rdlen;
			m->nrr++;
		}
	}
	return 0;
}

/* The smallest TTL of the records of a message (not OPT's), -1 if it is
 * malformed; INT64_MAX if it has none. No allocation: the answer cache
 * reads it for every answer it keeps. */
int64_t
dnswire_ttl_min(const uint8_t *pkt, size_t len)
{
	uint16_t cnt[4], type, rdlen;
	size_t off = DNS_HDRLEN;
	uint8_t tmp[DNS_MAXNAME];
	int64_t min = INT64_MAX;
	uint32_t ttl;
	size_t tl;

	if (len < DNS_HDRLEN)
		return -1;
	for (int i = 0; i < 4; i++)
		get16(pkt, len, 4 + 2 * (size_t)i, &cnt[i]);
	if (cnt[0] > 1 || (size_t)cnt[1] + cnt[2] + cnt[3] > DNS_MAX_RRS)
		return -1;
	if (cnt[0] == 1) {
		if (read_name(pkt, len, &off, tmp, &tl) < 0 || len - off < 4)
			return -1;
		off += 4;
	}
	for (size_t i = 0; i < (size_t)cnt[1] + cnt[2] + cnt[3]; i++) {
		if (read_name(pkt, len, &off, tmp, &tl) < 0 ||
			get16(pkt, len, off, &type) < 0 ||
			get32(pkt, len, off + 4, &ttl) < 0 ||
			get16(pkt, len, off + 8, &rdlen) < 0 ||
			len - off - 10 < rdlen)
			return -1;
		if (type != DNS_T_OPT && ttl < min)
			min = ttl;
		off += 10 + (size_t)rdlen;
	}
	return min;
}

static void
add_addr(struct dns_answer *ans, size_t max, int family, const uint8_t *b)
{
	struct ipaddr a = {.family = family};

	memcpy(a.b, b, family == AF_INET ? 4 : 16);
	for (size_t i = 0; i < ans->naddrs; i++)
		if (memcmp(&ans->addrs[i].a, &a, sizeof(a)) == 0)
			return;
	if (ans->naddrs >= max) {
		ans->truncated_addrs = true;
		return;
	}
	ans->addrs =
		xreallocarray(ans->addrs, ans->naddrs + 1, sizeof(*ans->addrs));
	ans->addrs[ans->naddrs++].a = a;
}

/* SVCB/HTTPS rdata: where its SvcParams start, past SvcPriority and the
 * TargetName; 0 when malformed. TargetName is never compressed (RFC 9460,
 * section 2.2): the rdata goes to the client verbatim, where a pointer
 * would point into another message. */
static size_t
svcb_params_at(const uint8_t *pkt, const struct rr *r)
{
	size_t end = r->rdoff + r->rdlen, off = r->rdoff + 2;
	uint8_t tmp[DNS_MAXNAME];
	size_t tl;

	if (r->rdlen < 3)
		return 0;
	for (size_t p = off; p < end; p += (size_t)pkt[p] + 1) {
		if (pkt[p] & 0xC0)
			return 0;
		if (pkt[p] == 0)
			break;
	}
	if (read_name(pkt, end, &off, tmp, &tl) < 0)
		return 0;
	return off;
}

/* The SvcParam at *off (before end): its key, and its value at *val,
 * *vlen bytes; *off moves past it. 1: one read; 0: none left; -1:
 * malformed (it overruns the rdata, or a hint is not whole addresses). */
static int
svcb_param(const uint8_t *pkt, size_t end, size_t *off, uint16_t *key,
	size_t *val, uint16_t *vlen)
{
	if (*off >= end)
		return 0;
	if (get16(pkt, end, *off, key) < 0 ||
		get16(pkt, end, *off + 2, vlen) < 0 || end - *off - 4 < *vlen)
		return -1;
	if ((*key == SVCB_IPV4HINT && *vlen % 4) ||
		(*key == SVCB_IPV6HINT && *vlen % 16))
		return -1;
	*val = *off + 4;
	*off += 4 + (size_t)*vlen;
	return 1;
}

static size_t
hint_len(uint16_t key)
{
	return key == SVCB_IPV4HINT ? 4 : key == SVCB_IPV6HINT ? 16 : 0;
}

static void
hint_addr(uint16_t key, const uint8_t *b, struct ipaddr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = key == SVCB_IPV4HINT ? AF_INET : AF_INET6;
	memcpy(a->b, b, hint_len(key));
}

/* ipv4hint (4) and ipv6hint (6) of an SVCB/HTTPS record's SvcParams. */
static int
svcb_hints(const uint8_t *pkt, const struct rr *r, struct dns_answer *ans,
	size_t max)
{
	size_t end = r->rdoff + r->rdlen, off = svcb_params_at(pkt, r), val;
	uint16_t key, vlen;
	int rc;

	if (off == 0)
		return -1;
	while ((rc = svcb_param(pkt, end, &off, &key, &val, &vlen)) > 0) {
		size_t hl = hint_len(key);

		for (size_t i = 0; hl > 0 && i < vlen; i += hl)
			add_addr(ans, max,
				key == SVCB_IPV4HINT ? AF_INET : AF_INET6,
				pkt + val + i);
	}
	return rc;
}

static void
take_ttl(struct dns_answer *ans, uint32_t ttl)
{
	if (ttl < ans->min_ttl)
		ans->min_ttl = ttl;
}

int
dnswire_walk(const uint8_t *pkt, size_t len, const uint8_t *qname, size_t qlen,
	size_t max_addrs, struct dns_answer *ans)
{
	uint8_t chain[MAX_CHAIN + 1][DNS_MAXNAME];
	size_t clen[MAX_CHAIN + 1], nchain = 1;
	uint32_t chain_ttl = UINT32_MAX;
	struct msg m;

	memset(ans, 0, sizeof(*ans));
	ans->min_ttl = UINT32_MAX;
	if (msg_parse(pkt, len, &m) < 0 || qlen > DNS_MAXNAME)
		return -1;
	ans->rcode = m.rcode;
	memcpy(chain[0], qname, qlen);
	clen[0] = qlen;
	/* Follow CNAMEs from the question name, in any order in the answer
	 * section: a pass finds at most one new link, MAX_CHAIN passes end
	 * any loop. */
	for (bool grew = true; grew && nchain <= MAX_CHAIN;) {
		grew = false;
		for (size_t i = 0; i < m.nrr && !grew; i++) {
			const struct rr *r = &m.rrs[i];
			size_t off = r->rdoff, tl;
			uint8_t target[DNS_MAXNAME];

			if (r->section != 0 || r->type != DNS_T_CNAME ||
				!name_eq(r->name, r->nlen, chain[nchain - 1],
					clen[nchain - 1]))
				continue;
			if (read_name(pkt, r->rdoff + r->rdlen, &off, target,
				    &tl) < 0)
				goto fail;
			bool seen = false;
			for (size_t c = 0; c < nchain; c++)
				seen |= name_eq(chain[c], clen[c], target, tl);
			if (seen || nchain == MAX_CHAIN + 1)
				break;
			if (r->ttl < chain_ttl)
				chain_ttl = r->ttl;
			memcpy(chain[nchain], target, tl);
			clen[nchain++] = tl;
			grew = true;
		}
	}
	for (size_t i = 0; i < m.nrr; i++) {
		const struct rr *r = &m.rrs[i];
		bool on_chain = false;

		if (r->section != 0 || r->cls != 1)
			continue;
		for (size_t c = 0; c < nchain && !on_chain; c++)
			on_chain = name_eq(r->name, r->nlen, chain[c], clen[c]);
		if (!on_chain)
			continue;
		if (r->type == DNS_T_A && r->rdlen == 4) {
			add_addr(ans, max_addrs, AF_INET, pkt + r->rdoff);
			take_ttl(ans, r->ttl);
		} else if (r->type == DNS_T_AAAA && r->rdlen == 16) {
			add_addr(ans, max_addrs, AF_INET6, pkt + r->rdoff);
			take_ttl(ans, r->ttl);
		} else if (r->type == DNS_T_SVCB || r->type == DNS_T_HTTPS) {
			if (svcb_hints(pkt, r, ans, max_addrs) < 0)
				goto fail;
			take_ttl(ans, r->ttl);
		}
	}
	if (ans->naddrs > 0)
		take_ttl(ans, chain_ttl);
	else
		ans->min_ttl = 0;
	msg_finish(&m);
	return 0;
fail:
	/* A malformed answer admits nothing, not even what came before. */
	msg_finish(&m);
	dnswire_answer_finish(ans);
	return -1;
}

void
dnswire_answer_finish(struct dns_answer *ans)
{
	free(ans->addrs);
	memset(ans, 0, sizeof(*ans));
}

/* Is rdata of this type made of (or ending in) names that may be
 * compressed (RFC 1035 types, and those that followed its layout)? Returns
 * the offset of the first name, -1 for verbatim rdata. */
static int
rdata_name_at(uint16_t type)
{
	switch (type) {
	case 2:
	case 3:
	case 4:
	case 5:
	case 7:
	case 8:
	case 9:
	case 12:
	case 39: /* NS MD MF CNAME MB MG MR PTR DNAME */
	case 6:	 /* SOA: two names, then 20 bytes */
	case 14:
	case 17: /* MINFO, RP: two names */
		return 0;
	case 15:
	case 18:
	case 21:
	case 36: /* MX AFSDB RT KX */
		return 2;
	case 33: /* SRV */
		return 6;
	default:
		return -1;
	}
}

static int
names_in_rdata(uint16_t type)
{
	return type == 6 || type == 14 || type == 17 ? 2 : 1;
}

/* Copy one record, re-encoding the names in its rdata. Whatever the class:
 * a compression pointer copied verbatim would point into the resolver's
 * message, not ours, and the walk follows CNAMEs of every class. */
static int
put_rr(struct wbuf *w, const uint8_t *pkt, const struct rr *r, uint32_t cap,
	uint32_t age)
{
	size_t lenpos, end = r->rdoff + r->rdlen;
	int at = rdata_name_at(r->type);
	uint32_t ttl = r->ttl > age ? r->ttl - age : 0;

	put_name(w, r->name, r->nlen);
	put16(w, r->type);
	put16(w, r->cls);
	put32(w, r->type == DNS_T_OPT ? r->ttl : ttl <= cap ? ttl : cap);
	lenpos = w->len;
	put16(w, 0);
	if (at < 0) {
		put(w, pkt + r->rdoff, r->rdlen);
	} else {
		size_t off = r->rdoff + (size_t)at;

		if ((size_t)at > r->rdlen)
			return -1;
		put(w, pkt + r->rdoff, (size_t)at);
		for (int i = 0; i < names_in_rdata(r->type); i++) {
			uint8_t n[DNS_MAXNAME];
			size_t nl;

			if (read_name(pkt, end, &off, n, &nl) < 0)
				return -1;
			put_name(w, n, nl);
		}
		if (off > end)
			return -1;
		put(w, pkt + off, end - off);
	}
	if (!w->overflow) {
		size_t rdlen = w->len - lenpos - 2;

		w->p[lenpos] = (uint8_t)(rdlen >> 8);
		w->p[lenpos + 1] = (uint8_t)rdlen;
	}
	return 0;
}

static bool
dnssec_type(uint16_t t)
{
	return t == DNS_T_RRSIG || t == DNS_T_NSEC || t == DNS_T_NSEC3;
}

/* Bytes put_opt() writes. */
static size_t
opt_len(const struct dns_query *q, int ede, const char *text)
{
	size_t tl = text ? strlen(text) : 0;

	if (!q->edns)
		return 0;
	return 11 + (ede == EDE_NONE ? 0 : 6 + (tl > 200 ? 200 : tl));
}

size_t
dnswire_build_answer(const struct dns_query *q, const uint8_t *pkt, size_t len,
	bool secure, uint32_t ttl_cap, uint32_t age, int ede,
	const char *ede_text, size_t maxlen, uint8_t *out, size_t outlen)
{
	struct wbuf w = {.p = out, .cap = outlen < maxlen ? outlen : maxlen};
	uint16_t cnt[3] = {0, 0, 0}, flags = 0;
	size_t countpos, optlen = opt_len(q, ede, ede_text);
	struct msg m;
	int rc = 0;

	if (msg_parse(pkt, len, &m) < 0)
		return 0;
	if (secure && (q->do_bit || (q->flags & DNS_F_AD)))
		flags |= DNS_F_AD;
	put_header(&w, q, flags, m.rcode, 1, 0, 0, 0);
	countpos = 6;
	put_name(&w, q->qname_wire, q->qname_wire_len);
	put16(&w, q->qtype);
	put16(&w, q->qclass);
	for (size_t i = 0; i < m.nrr && rc == 0 && !w.overflow; i++) {
		const struct rr *r = &m.rrs[i];

		if (r->type == DNS_T_OPT ||
			(!q->do_bit && dnssec_type(r->type) &&
				r->type != q->qtype))
			continue;
		/* Keep room for our OPT so truncation never drops it. */
		if (w.cap < optlen) {
			w.overflow = true;
			break;
		}
		w.cap -= optlen;
		rc = put_rr(&w, pkt, r, ttl_cap, age);
		w.cap += optlen;
		if (!w.overflow)
			cnt[r->section]++;
	}
	if (rc < 0) {
		msg_finish(&m);
		return 0;
	}
	if (w.overflow) {
		/* Too big: the header and question with TC, so the client
		 * retries over TCP. */
		w.overflow = false;
		w.len = DNS_HDRLEN;
		w.ndict = 0;
		cnt[0] = cnt[1] = cnt[2] = 0;
		put_name(&w, q->qname_wire, q->qname_wire_len);
		put16(&w, q->qtype);
		put16(&w, q->qclass);
		w.p[2] |= DNS_F_TC >> 8;
	}
	put_opt(&w, q, ede, ede_text);
	msg_finish(&m);
	if (w.overflow)
		return 0;
	for (int s = 0; s < 3; s++) {
		uint16_t v = (uint16_t)(cnt[s] + (s == 2 && q->edns));

		w.p[countpos + 2 * (size_t)s] = (uint8_t)(v >> 8);
		w.p[countpos + 2 * (size_t)s + 1] = (uint8_t)v;
	}
	return w.len;
}

/* ---- the rebinding guard ------------------------------------------------ */

enum fate {
	FATE_KEEP,
	FATE_DROP,
	FATE_REWRITE, /* an SVCB/HTTPS record that loses hints */
};

struct strip {
	const uint8_t *pkt;
	dnswire_guard_fn guard;
	void *arg;
	struct dns_strip *out;
	/* RRsets that lost records: their RRSIGs go too */
	const struct rr **changed;
	size_t nchanged;
};

/* May the answer keep address a? Remember it if not. */
static bool
keeps(struct strip *st, const struct ipaddr *a)
{
	struct dns_strip *o = st->out;
	int why = st->guard(a, st->arg);

	if (why == 0)
		return true;
	for (size_t i = 0; i < o->nremoved; i++)
		if (policy_addr_cmp(&o->removed[i].a, a) == 0)
			return false;
	o->removed =
		xreallocarray(o->removed, o->nremoved + 1, sizeof(*o->removed));
	o->removed[o->nremoved].a = *a;
	o->removed[o->nremoved++].why = why;
	return false;
}

/* Does the mandatory SvcParam (its value at val, vlen bytes) list key? */
static bool
mandatory_has(const uint8_t *pkt, size_t val, uint16_t vlen, uint16_t key)
{
	for (size_t i = 0; i + 2 <= vlen; i += 2)
		if ((uint16_t)(pkt[val + i] << 8 | pkt[val + i + 1]) == key)
			return true;
	return false;
}

/* What becomes of an SVCB/HTTPS record: kept, rewritten without the hints
 * the guard refuses (a hint parameter left empty goes), or dropped whole
 * when a parameter that would go is listed in its `mandatory` (the
 * record would be malformed without it: RFC 9460, section 8). -1 when
 * malformed. */
static int
svcb_fate(struct strip *st, const struct rr *r, enum fate *f)
{
	const uint8_t *pkt = st->pkt;
	size_t end = r->rdoff + r->rdlen, off = svcb_params_at(pkt, r), val;
	size_t mval = 0;
	uint16_t key, vlen, mlen = 0, emptied[2];
	size_t nemptied = 0;
	int rc;

	*f = FATE_KEEP;
	if (off == 0)
		return -1;
	while ((rc = svcb_param(pkt, end, &off, &key, &val, &vlen)) > 0) {
		size_t hl = hint_len(key), left = 0;

		if (key == SVCB_MANDATORY) {
			mval = val;
			mlen = vlen;
		}
		for (size_t i = 0; hl > 0 && i < vlen; i += hl) {
			struct ipaddr a;

			hint_addr(key, pkt + val + i, &a);
			if (keeps(st, &a))
				left++;
			else
				*f = FATE_REWRITE;
		}
		if (hl > 0 && left == 0 && vlen > 0 && nemptied < 2)
			emptied[nemptied++] = key;
	}
	for (size_t i = 0; rc == 0 && i < nemptied; i++)
		if (mandatory_has(pkt, mval, mlen, emptied[i]))
			*f = FATE_DROP;
	return rc;
}

/* Write the rdata of SVCB/HTTPS record r without the refused hints. */
static void
put_svcb(struct wbuf *w, struct strip *st, const struct rr *r)
{
	const uint8_t *pkt = st->pkt;
	size_t end = r->rdoff + r->rdlen, off = svcb_params_at(pkt, r), val;
	uint16_t key, vlen;

	put(w, pkt + r->rdoff, off - r->rdoff); /* priority, target */
	while (svcb_param(pkt, end, &off, &key, &val, &vlen) > 0) {
		size_t hl = hint_len(key), kept = 0, at;

		if (hl == 0) {
			put(w, pkt + val - 4, 4 + (size_t)vlen);
			continue;
		}
		at = w->len;
		put16(w, key);
		put16(w, 0);
		for (size_t i = 0; i < vlen; i += hl) {
			struct ipaddr a;

			hint_addr(key, pkt + val + i, &a);
			if (st->guard(&a, st->arg) == 0) {
				put(w, pkt + val + i, hl);
				kept += hl;
			}
		}
		if (w->overflow)
			return;
		if (kept == 0 && vlen > 0) {
			w->len = at; /* nothing left: no parameter */
			continue;
		}
		w->p[at + 2] = (uint8_t)(kept >> 8);
		w->p[at + 3] = (uint8_t)kept;
	}
}

static void
put_rewritten(struct wbuf *w, struct strip *st, const struct rr *r)
{
	size_t lenpos;

	put_name(w, r->name, r->nlen);
	put16(w, r->type);
	put16(w, r->cls);
	put32(w, r->ttl);
	lenpos = w->len;
	put16(w, 0);
	put_svcb(w, st, r);
	if (!w->overflow) {
		size_t rdlen = w->len - lenpos - 2;

		w->p[lenpos] = (uint8_t)(rdlen >> 8);
		w->p[lenpos + 1] = (uint8_t)rdlen;
	}
}

static bool
is_address_rr(const struct rr *r)
{
	return (r->type == DNS_T_A && r->rdlen == 4) ||
		(r->type == DNS_T_AAAA && r->rdlen == 16);
}

/* Decide every record's fate; RRSIGs last, once the changed RRsets are
 * known. */
static int
fates(struct strip *st, const struct msg *m, enum fate *f)
{
	for (size_t i = 0; i < m->nrr; i++) {
		const struct rr *r = &m->rrs[i];

		f[i] = FATE_KEEP;
		if (is_address_rr(r)) {
			struct ipaddr a = {.family = r->type == DNS_T_A
					? AF_INET
					: AF_INET6};

			memcpy(a.b, st->pkt + r->rdoff, r->rdlen);
			if (!keeps(st, &a))
				f[i] = FATE_DROP;
		} else if (r->type == DNS_T_SVCB || r->type == DNS_T_HTTPS) {
			if (svcb_fate(st, r, &f[i]) < 0)
				return -1;
		}
		if (f[i] != FATE_KEEP)
			st->changed[st->nchanged++] = r;
	}
	/* A signature over an RRset that lost records signs nothing the
	 * client gets: it goes too. */
	for (size_t i = 0; i < m->nrr; i++) {
		const struct rr *r = &m->rrs[i];
		uint16_t covered;

		if (r->type != DNS_T_RRSIG ||
			get16(st->pkt, r->rdoff + r->rdlen, r->rdoff,
				&covered) < 0)
			continue;
		for (size_t c = 0; c < st->nchanged; c++)
			if (st->changed[c]->type == covered &&
				name_eq(st->changed[c]->name,
					st->changed[c]->nlen, r->name, r->nlen))
				f[i] = FATE_DROP;
	}
	return 0;
}

/* The message again, without what the fates drop. */
static int
rebuild(struct strip *st, const struct msg *m, const enum fate *f, size_t len)
{
	const uint8_t *pkt = st->pkt;
	size_t cap = len < DNS_MAXMSG ? DNS_MAXMSG : len;
	struct wbuf w = {.p = xcalloc(1, cap), .cap = cap};
	uint16_t qd = 0, cnt[3] = {0, 0, 0};
	size_t off = DNS_HDRLEN;

	put(&w, pkt, 4); /* ID, flags */
	get16(pkt, len, 4, &qd);
	put16(&w, qd);
	put(&w, "\0\0\0\0\0\0", 6); /* counts, below */
	if (qd == 1) {
		uint8_t n[DNS_MAXNAME];
		size_t nl;

		if (read_name(pkt, len, &off, n, &nl) < 0)
			goto fail;
		put_name(&w, n, nl);
		put(&w, pkt + off, 4);
	}
	for (size_t i = 0; i < m->nrr; i++) {
		const struct rr *r = &m->rrs[i];

		if (f[i] == FATE_DROP)
			continue;
		if (f[i] == FATE_REWRITE)
			put_rewritten(&w, st, r);
		else if (put_rr(&w, pkt, r, UINT32_MAX, 0) < 0)
			goto fail;
		cnt[r->section]++;
	}
	if (w.overflow)
		goto fail;
	for (int s = 0; s < 3; s++) {
		w.p[6 + 2 * s] = (uint8_t)(cnt[s] >> 8);
		w.p[7 + 2 * s] = (uint8_t)cnt[s];
	}
	st->out->pkt = w.p;
	st->out->len = w.len;
	return 0;
fail:
	free(w.p);
	return -1;
}

int
dnswire_strip(const uint8_t *pkt, size_t len, dnswire_guard_fn guard, void *arg,
	struct dns_strip *out)
{
	struct strip st = {.pkt = pkt, .guard = guard, .arg = arg, .out = out};
	enum fate *f = NULL;
	struct msg m;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (msg_parse(pkt, len, &m) < 0)
		return -1;
	f = xcalloc(m.nrr + 1, sizeof(*f));
	st.changed = xcalloc(m.nrr + 1, sizeof(*st.changed));
	if (fates(&st, &m, f) == 0)
		rc = st.nchanged == 0 ? 0 : rebuild(&st, &m, f, len);
	free(st.changed);
	free(f);
	msg_finish(&m);
	if (rc < 0)
		dnswire_strip_finish(out);
	return rc;
}

void
dnswire_strip_finish(struct dns_strip *s)
{
	free(s->pkt);
	free(s->removed);
	memset(s, 0, sizeof(*s));
}
