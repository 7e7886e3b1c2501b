#include "anscache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dnswire.h"
#include "util.h"

struct entry {
	struct entry *hnext;	   /* its hash bucket */
	struct entry *prev, *next; /* least recently used last */
	uint32_t hash;
	uint16_t qtype, qclass;
	uint8_t sec;
	uint64_t stored_ms, until_ms;
	size_t len, size;
	uint8_t *pkt; /* after the name, in the same block */
	char name[];
};

struct anscache {
	struct entry **tab;
	size_t ntab, n;
	struct entry *newest, *oldest; /* the LRU list */
	size_t bytes, max_bytes;
	struct anscache_stats st;
};

static uint32_t
key_hash(const char *qname, uint16_t qtype, uint16_t qclass)
{
	uint32_t h = 2166136261u;

	for (const char *p = qname; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ qtype) * 16777619u;
	return (h ^ qclass) * 16777619u;
}

struct anscache *
anscache_create(size_t max_bytes)
{
	struct anscache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ntab = 1024;
	if ((c->tab = calloc(c->ntab, sizeof(*c->tab))) == NULL) {
		free(c);
		return NULL;
	}
	c->max_bytes = max_bytes;
	return c;
}

void
anscache_destroy(struct anscache *c)
{
	if (c == NULL)
		return;
	while (c->newest != NULL) {
		struct entry *e = c->newest;

		c->newest = e->next;
		free(e);
	}
	free(c->tab);
	free(c);
}

static void
lru_unlink(struct anscache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->newest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->oldest = e->prev;
}

static void
lru_front(struct anscache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->newest;
	if (c->newest)
		c->newest->prev = e;
	else
		c->oldest = e;
	c->newest = e;
}

static struct entry **
find(struct anscache *c, const char *qname, uint16_t qtype, uint16_t qclass,
	uint32_t h)
{
	struct entry **pp = &c->tab[h & (c->ntab - 1)];

	for (; *pp; pp = &(*pp)->hnext)
		if ((*pp)->hash == h && (*pp)->qtype == qtype &&
			(*pp)->qclass == qclass &&
			strcmp((*pp)->name, qname) == 0)
			return pp;
	return pp;
}

static void
drop(struct anscache *c, struct entry **pp)
{
	struct entry *e = *pp;

	*pp = e->hnext;
	lru_unlink(c, e);
	c->bytes -= e->size;
	c->n--;
	free(e);
}

/* The least recently used go until size more bytes fit. */
static void
make_room(struct anscache *c, size_t size)
{
	while (c->bytes + size > c->max_bytes && c->oldest != NULL) {
		struct entry *e = c->oldest;

		drop(c, find(c, e->name, e->qtype, e->qclass, e->hash));
		c->st.evicted++;
	}
}

static void
grow(struct anscache *c)
{
	size_t n = c->ntab * 2;
	struct entry **t = calloc(n, sizeof(*t));

	if (t == NULL)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->ntab; i++) {
		while (c->tab[i]) {
			struct entry *e = c->tab[i];

			c->tab[i] = e->hnext;
			e->hnext = t[e->hash & (n - 1)];
			t[e->hash & (n - 1)] = e;
		}
	}
	free(c->tab);
	c->tab = t;
	c->ntab = n;
}

void
anscache_put(struct anscache *c, const char *qname, uint16_t qtype,
	uint16_t qclass, const uint8_t *pkt, size_t len, int sec,
	uint64_t now_ms)
{
	uint32_t h = key_hash(qname, qtype, qclass);
	size_t nl = strlen(qname) + 1, size;
	struct entry **pp, *e;
	int64_t min;
	int rcode;

	if ((sec != 0 && sec != 2) || len < DNS_HDRLEN || len > DNS_MAXMSG)
		return;
	rcode = pkt[3] & 0xF;
	if (rcode != DNS_R_NOERROR && rcode != DNS_R_NXDOMAIN)
		return;
	size = sizeof(*e) + nl + len;
	if (size > c->max_bytes)
		return;
	if ((e = malloc(size)) == NULL)
		return;
	e->pkt = (uint8_t *)e->name + nl;
	memcpy(e->pkt, pkt, len);
	/* The smallest TTL, and whether it parses. */
	if ((min = dnswire_ttl_min(e->pkt, len)) <= 0 || min == INT64_MAX) {
		free(e);
		return;
	}
	memcpy(e->name, qname, nl);
	e->hash = h;
	e->qtype = qtype;
	e->qclass = qclass;
	e->sec = (uint8_t)sec;
	e->stored_ms = now_ms;
	e->until_ms = now_ms + (uint64_t)min * 1000;
	e->len = len;
	e->size = size;
	pp = find(c, qname, qtype, qclass, h);
	if (*pp != NULL)
		drop(c, pp);
	make_room(c, size);
	if (c->n >= c->ntab)
		grow(c);
	pp = &c->tab[h & (c->ntab - 1)];
	e->hnext = *pp;
	*pp = e;
	lru_front(c, e);
	c->bytes += size;
	c->n++;
	c->st.stored++;
}

size_t
anscache_get(struct anscache *c, const char *qname, uint16_t qtype,
	uint16_t qclass, uint64_t now_ms, uint8_t *out, size_t cap, int *sec,
	uint32_t *age)
{
	uint32_t h = key_hash(qname, qtype, qclass);
	struct entry **pp = find(c, qname, qtype, qclass, h), *e = *pp;

	if (e == NULL) {
		c->st.misses++;
		return 0;
	}
	if (now_ms >= e->until_ms || e->len > cap) {
		drop(c, pp);
		c->st.misses++;
		return 0;
	}
	/* Whole seconds since libunbound handed it over (below its smallest
	 * TTL, by until_ms): the TTLs a client sees only ever go down. */
	*age = now_ms > e->stored_ms
		? (uint32_t)((now_ms - e->stored_ms) / 1000)
		: 0;
	memcpy(out, e->pkt, e->len);
	lru_unlink(c, e);
	lru_front(c, e);
	*sec = e->sec;
	c->st.hits++;
	return e->len;
}

void
anscache_stats(const struct anscache *c, struct anscache_stats *st)
{
	*st = c->st;
	st->entries = c->n;
	st->bytes = c->bytes;
}
