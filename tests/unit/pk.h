/* A tiny builder of DNS messages for fixed test packets (unit tests). */
#ifndef DNSFENCE_TEST_PK_H
#define DNSFENCE_TEST_PK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dnswire.h"

struct pk {
	uint8_t b[4096];
	size_t n;
};

static inline void
u8(struct pk *p, uint8_t v)
{
	p->b[p->n++] = v;
}

static inline void
u16(struct pk *p, uint16_t v)
{
	u8(p, (uint8_t)(v >> 8));
	u8(p, (uint8_t)v);
}

static inline void
u32(struct pk *p, uint32_t v)
{
	u16(p, (uint16_t)(v >> 16));
	u16(p, (uint16_t)v);
}

/* "www.example" -> labels; returns the offset where the name starts. */
static inline size_t
name(struct pk *p, const char *s)
{
	size_t at = p->n;

	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);

		u8(p, (uint8_t)l);
		memcpy(p->b + p->n, s, l);
		p->n += l;
		s += l + (dot ? 1 : 0);
	}
	u8(p, 0);
	return at;
}

static inline void
ptr(struct pk *p, size_t off)
{
	u16(p, (uint16_t)(0xC000 | off));
}

static inline void
hdr(struct pk *p, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
	uint16_t ns, uint16_t ar)
{
	p->n = 0;
	u16(p, id);
	u16(p, flags);
	u16(p, qd);
	u16(p, an);
	u16(p, ns);
	u16(p, ar);
}

static inline void
opt(struct pk *p, uint16_t size, uint32_t ttl)
{
	u8(p, 0);
	u16(p, DNS_T_OPT);
	u16(p, size);
	u32(p, ttl);
	u16(p, 0);
}

#endif
