/* An independent reader of DNS messages for the fuzz targets' invariants:
 * written apart from src/dnswire.c (and kept simple rather than fast), so
 * that a bug there is not repeated here. A violated invariant abort()s,
 * which libFuzzer and the replay both report. */
#ifndef DNSFENCE_FUZZ_DNSCHECK_H
#define DNSFENCE_FUZZ_DNSCHECK_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DC_MAXNAME 255
#define DC_MAXRR 2048

#define INVARIANT(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", \
				__FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

struct dc_rr {
	uint8_t name[DC_MAXNAME];
	size_t nlen;
	uint16_t type, cls;
	uint32_t ttl;
	size_t rd, rdlen; /* offset and length of the rdata in the message */
	int section;	  /* 1 answer, 2 authority, 3 additional */
};

struct dc_msg {
	uint16_t id, flags, count[4];
	uint8_t qname[DC_MAXNAME];
	size_t qnlen;
	uint16_t qtype, qclass;
	struct dc_rr *rr;
	size_t nrr;
};

static inline uint16_t
dc_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A name at *off within m[0..lim): pointers only to earlier bytes of the
 * message, at most 255 bytes uncompressed. *off moves past it. */
static inline bool
dc_name(const uint8_t *m, size_t lim, size_t *off, uint8_t *out, size_t *olen)
{
	size_t p = *off, o = 0, hops = 0;
	bool jumped = false;

	while (p < lim) {
		uint8_t l = m[p];

		if (l >= 0xC0) {
			size_t to;

			if (p + 1 >= lim || ++hops > 128)
				return false;
			to = (size_t)(l & 0x3F) << 8 | m[p + 1];
			if (to >= p)
				return false;
			if (!jumped)
				*off = p + 2;
			jumped = true;
			p = to;
			continue;
		}
		/* a label and, at least, the root after it */
		if (l >= 0x40 || p + 1 + l > lim ||
			o + 1 + l + (l > 0) > DC_MAXNAME)
			return false;
		memcpy(out + o, m + p, 1 + (size_t)l);
		o += 1 + (size_t)l;
		p += 1 + (size_t)l;
		if (l == 0) {
			if (!jumped)
				*off = p;
			*olen = o;
			return true;
		}
	}
	return false;
}

static inline bool
dc_name_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	if (al != bl)
		return false;
	for (size_t i = 0; i < al; i++)
		if (tolower(a[i]) != tolower(b[i]))
			return false;
	return true;
}

static inline void
dc_free(struct dc_msg *m)
{
	free(m->rr);
	m->rr = NULL;
}

/* The message: at most one question, every record whole; with exact,
 * nothing after the last one. */
static inline bool
dc_parse(const uint8_t *m, size_t len, bool exact, struct dc_msg *out)
{
	size_t off = 12, total;

	memset(out, 0, sizeof(*out));
	if (len < 12)
		return false;
	out->id = dc_u16(m);
	out->flags = dc_u16(m + 2);
	for (int i = 0; i < 4; i++)
		out->count[i] = dc_u16(m + 4 + 2 * i);
	if (out->count[0] > 1)
		return false;
	if (out->count[0] == 1) {
		if (!dc_name(m, len, &off, out->qname, &out->qnlen) ||
			len - off < 4)
			return false;
		out->qtype = dc_u16(m + off);
		out->qclass = dc_u16(m + off + 2);
		off += 4;
	}
	total = (size_t)out->count[1] + out->count[2] + out->count[3];
	if (total > DC_MAXRR)
		return false;
	out->rr = calloc(total + 1, sizeof(*out->rr));
	if (out->rr == NULL)
		abort();
	for (int s = 1; s <= 3; s++) {
		for (size_t i = 0; i < out->count[s]; i++) {
			struct dc_rr *r = &out->rr[out->nrr++];

			if (!dc_name(m, len, &off, r->name, &r->nlen) ||
				len - off < 10)
				goto bad;
			r->type = dc_u16(m + off);
			r->cls = dc_u16(m + off + 2);
			r->ttl = (uint32_t)dc_u16(m + off + 4) << 16 |
				dc_u16(m + off + 6);
			r->rdlen = dc_u16(m + off + 8);
			r->rd = off + 10;
			r->section = s;
			if (len - r->rd < r->rdlen)
				goto bad;
			off = r->rd + r->rdlen;
		}
	}
	if (exact && off != len)
		goto bad;
	return true;
bad:
	dc_free(out);
	return false;
}

#endif
