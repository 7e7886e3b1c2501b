#include "privproto.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "util.h"

#define ENTRY_FIXED 40 /* bytes of an entry before its two strings */

int
priv_header(const uint8_t *hdr, uint32_t *len, uint16_t *type)
{
	uint16_t zero;

	memcpy(len, hdr, 4);
	memcpy(type, hdr + 4, 2);
	memcpy(&zero, hdr + 6, 2);
	return zero == 0 && *len <= PRIV_FRAME_MAX ? 0 : -1;
}

static void
set_len(uint8_t *buf, size_t len)
{
	uint32_t l = (uint32_t)(len - PRIV_HDR);

	memcpy(buf, &l, 4);
}

static void
header(uint8_t *buf, uint16_t type)
{
	memset(buf, 0, PRIV_HDR);
	memcpy(buf + 4, &type, 2);
}

/* A VM name or a comment: printable ASCII or UTF-8, never a control
 * character (a log line must stay one line). */
static bool
text_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int
priv_elems_parse(const uint8_t *p, size_t len, struct priv_elems *out,
	char *why, size_t whylen)
{
	const uint8_t *end = p + len;
	uint32_t n;
	char *s;

	memset(out, 0, sizeof(*out));
	if (len < 8) {
		snprintf(why, whylen, "elements: no header");
		return -1;
	}
	memcpy(&out->seq, p, 4);
	memcpy(&n, p + 4, 4);
	p += 8;
	/* Every entry takes at least ENTRY_FIXED + 1 bytes (a name). */
	if (n == 0 || n > PRIV_ELEMS_MAX ||
		(size_t)(end - p) / (ENTRY_FIXED + 1) < n) {
		snprintf(why, whylen, "elements: a count of %u", n);
		return -1;
	}
	out->v = xcalloc(n, sizeof(*out->v));
	/* The strings take at most what the frame holds, plus their NULs. */
	s = out->strings = xcalloc(1, len + 2 * (size_t)n);
	for (uint32_t i = 0; i < n; i++) {
		struct priv_elem *e = &out->v[i];
		uint8_t vl, cl, zero;

		if ((size_t)(end - p) < ENTRY_FIXED) {
			snprintf(why, whylen, "element %u: cut short", i);
			goto bad;
		}
		e->op = p[0];
		e->idx = p[1];
		vl = p[2];
		cl = p[3];
		memset(&e->k, 0, sizeof(e->k));
		e->k.family = p[4];
		e->k.kind = p[5];
		e->k.proto = p[6];
		zero = p[7];
		memcpy(&e->k.lo, p + 8, 2);
		memcpy(&e->k.hi, p + 10, 2);
		memcpy(e->k.addr, p + 12, 16);
		memcpy(&e->timeout_ms, p + 28, 8);
		/* p + 36: four zero bytes, room for a later field. */
		if (zero != 0 || p[36] || p[37] || p[38] || p[39]) {
			snprintf(why, whylen, "element %u: reserved bytes set",
				i);
			goto bad;
		}
		p += ENTRY_FIXED;
		if (e->op != PRIV_OP_ADD && e->op != PRIV_OP_DEL) {
			snprintf(why, whylen, "element %u: op %u", i, e->op);
			goto bad;
		}
		if (e->idx >= SET_COUNT ||
			(e->k.family != AF_INET && e->k.family != AF_INET6) ||
			e->k.kind >= SET_KINDS) {
			snprintf(why, whylen,
				"element %u: set %u, family %u, kind %u", i,
				e->idx, e->k.family, e->k.kind);
			goto bad;
		}
		/* cl is 8 bits: at most PRIV_COMMENT_MAX. */
		if (vl == 0 || vl > VM_NAME_MAX ||
			(e->op == PRIV_OP_DEL && cl != 0) ||
			(size_t)(end - p) < (size_t)vl + cl ||
			!text_ok(p, vl) || !text_ok(p + vl, cl)) {
			snprintf(why, whylen,
				"element %u: a bad VM name or comment", i);
			goto bad;
		}
		e->vm = s;
		memcpy(s, p, vl);
		s += vl + 1;
		p += vl;
		e->comment = s;
		memcpy(s, p, cl);
		s += cl + 1;
		p += cl;
		if (e->op == PRIV_OP_DEL && e->timeout_ms != 0) {
			snprintf(why, whylen,
				"element %u: a delete with a timeout", i);
			goto bad;
		}
	}
	if (p != end) {
		snprintf(why, whylen, "elements: %zu bytes after the last",
			(size_t)(end - p));
		goto bad;
	}
	out->n = n;
	return 0;
bad:
	priv_elems_free(out);
	return -1;
}

void
priv_elems_free(struct priv_elems *e)
{
	free(e->v);
	free(e->strings);
	memset(e, 0, sizeof(*e));
}

void
priv_elems_begin(uint8_t **buf, size_t *len, uint32_t seq)
{
	uint32_t zero = 0;

	*buf = xcalloc(1, PRIV_HDR + 8);
	header(*buf, PRIV_ELEMS);
	memcpy(*buf + PRIV_HDR, &seq, 4);
	memcpy(*buf + PRIV_HDR + 4, &zero, 4);
	*len = PRIV_HDR + 8;
	set_len(*buf, *len);
}

int
priv_elems_add(uint8_t **buf, size_t *len, const struct priv_elem *e)
{
	size_t vl = strlen(e->vm), cl = e->comment ? strlen(e->comment) : 0;
	size_t need = ENTRY_FIXED + vl + cl;
	uint32_t n;
	uint8_t *p;

	memcpy(&n, *buf + PRIV_HDR + 4, 4);
	if (vl == 0 || vl > VM_NAME_MAX || cl > PRIV_COMMENT_MAX ||
		n >= PRIV_ELEMS_MAX || *len + need - PRIV_HDR > PRIV_FRAME_MAX)
		return -1;
	*buf = xreallocarray(*buf, 1, *len + need);
	p = *buf + *len;
	memset(p, 0, ENTRY_FIXED);
	p[0] = e->op;
	p[1] = e->idx;
	p[2] = (uint8_t)vl;
	p[3] = (uint8_t)cl;
	p[4] = e->k.family;
	p[5] = e->k.kind;
	p[6] = e->k.proto;
	memcpy(p + 8, &e->k.lo, 2);
	memcpy(p + 10, &e->k.hi, 2);
	memcpy(p + 12, e->k.addr, 16);
	memcpy(p + 28, &e->timeout_ms, 8);
	memcpy(p + ENTRY_FIXED, e->vm, vl);
	if (cl > 0)
		memcpy(p + ENTRY_FIXED + vl, e->comment, cl);
	*len += need;
	n++;
	memcpy(*buf + PRIV_HDR + 4, &n, 4);
	set_len(*buf, *len);
	return 0;
}

int
priv_done_parse(const uint8_t *p, size_t len, uint32_t *seq, int *err,
	char *msg, size_t msglen)
{
	uint16_t ml, zero;
	int32_t e;

	if (len < 12)
		return -1;
	memcpy(seq, p, 4);
	memcpy(&e, p + 4, 4);
	memcpy(&ml, p + 8, 2);
	memcpy(&zero, p + 10, 2);
	if (zero != 0 || e < 0 || ml > PRIV_MSG_MAX || len != 12u + ml ||
		!text_ok(p + 12, ml) || msglen == 0)
		return -1;
	*err = e;
	snprintf(msg, msglen, "%.*s", (int)ml, (const char *)p + 12);
	return 0;
}

uint8_t *
priv_done_build(uint32_t seq, int err, const char *msg, size_t *len)
{
	size_t ml = msg ? strlen(msg) : 0;
	uint16_t m16;
	int32_t e = err;
	uint8_t *buf;

	if (ml > PRIV_MSG_MAX)
		ml = PRIV_MSG_MAX;
	m16 = (uint16_t)ml;
	*len = PRIV_HDR + 12 + ml;
	buf = xcalloc(1, *len);
	header(buf, PRIV_DONE);
	memcpy(buf + PRIV_HDR, &seq, 4);
	memcpy(buf + PRIV_HDR + 4, &e, 4);
	memcpy(buf + PRIV_HDR + 8, &m16, 2);
	if (ml > 0)
		memcpy(buf + PRIV_HDR + 12, msg, ml);
	/* A text with control characters would be refused at the other
	 * end: they become spaces. */
	for (size_t i = 0; i < ml; i++)
		if (buf[PRIV_HDR + 12 + i] < 0x20 ||
			buf[PRIV_HDR + 12 + i] == 0x7f)
			buf[PRIV_HDR + 12 + i] = ' ';
	set_len(buf, *len);
	return buf;
}
