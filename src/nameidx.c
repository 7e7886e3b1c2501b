#include "nameidx.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"

/* One pattern (kind and name) and the rules that have it: the index of
 * each in its list, the deny list's marked by DENY_BIT. */
#define DENY_BIT ((size_t)1 << (sizeof(size_t) * 8 - 1))

struct pat {
	struct pat *next;
	uint32_t hash;
	enum match_kind kind;
	const char *name; /* the rule's own */
	size_t *rules;
	size_t nrules;
};

struct nameidx {
	struct pat **tab;
	size_t ntab;
	size_t *all; /* the rules of pattern `*` */
	size_t nall;
};

static uint32_t
pat_hash(enum match_kind kind, const char *s)
{
	uint32_t h = 2166136261u ^ (uint32_t)kind;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct pat *
pat_find(const struct nameidx *x, enum match_kind kind, const char *name,
	uint32_t h)
{
	for (struct pat *p = x->tab[h & (x->ntab - 1)]; p; p = p->next)
		if (p->hash == h && p->kind == kind &&
			strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static void
add(struct nameidx *x, const struct rule *r, size_t ref)
{
	uint32_t h;
	struct pat *p;

	if (r->pat.kind == MATCH_ALL) {
		*ARRAY_PUSH(x->all, x->nall) = ref;
		return;
	}
	h = pat_hash(r->pat.kind, r->pat.name);
	if ((p = pat_find(x, r->pat.kind, r->pat.name, h)) == NULL) {
		p = xcalloc(1, sizeof(*p));
		p->hash = h;
		p->kind = r->pat.kind;
		p->name = r->pat.name;
		p->next = x->tab[h & (x->ntab - 1)];
		x->tab[h & (x->ntab - 1)] = p;
	}
	*ARRAY_PUSH(p->rules, p->nrules) = ref;
}

struct nameidx *
nameidx_create(const struct rule *allow, size_t nallow, const struct rule *deny,
	size_t ndeny)
{
	struct nameidx *x = xcalloc(1, sizeof(*x));
	size_t n = nallow + ndeny;

	/* A bucket per rule at most: chains stay short. */
	for (x->ntab = 16; x->ntab < n; x->ntab *= 2)
		;
	x->tab = xcalloc(x->ntab, sizeof(*x->tab));
	for (size_t i = 0; i < nallow; i++)
		if (!allow[i].is_net)
			add(x, &allow[i], i);
	for (size_t i = 0; i < ndeny; i++)
		if (!deny[i].is_net)
			add(x, &deny[i], i | DENY_BIT);
	return x;
}

void
nameidx_destroy(struct nameidx *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->ntab; i++) {
		while (x->tab[i]) {
			struct pat *p = x->tab[i];

			x->tab[i] = p->next;
			free(p->rules);
			free(p);
		}
	}
	free(x->tab);
	free(x->all);
	free(x);
}

/* The rules of one list among refs; false when cb said stop. */
static bool
each(const size_t *refs, size_t n, bool deny, bool (*cb)(size_t i, void *arg),
	void *arg)
{
	for (size_t i = 0; i < n; i++)
		if (((refs[i] & DENY_BIT) != 0) == deny &&
			!cb(refs[i] & ~DENY_BIT, arg))
			return false;
	return true;
}

static bool
each_pat(const struct nameidx *x, enum match_kind kind, const char *name,
	bool deny, bool (*cb)(size_t i, void *arg), void *arg)
{
	const struct pat *p = pat_find(x, kind, name, pat_hash(kind, name));

	return p == NULL || each(p->rules, p->nrules, deny, cb, arg);
}

void
nameidx_match(const struct nameidx *x, bool deny, const char *name,
	bool (*cb)(size_t i, void *arg), void *arg)
{
	if (x == NULL || !each(x->all, x->nall, deny, cb, arg) ||
		!each_pat(x, MATCH_EXACT, name, deny, cb, arg))
		return;
	/* `*.suffix` matches a name strictly below suffix: each suffix
	 * after a dot. */
	for (const char *s = strchr(name, '.'); s; s = strchr(s + 1, '.'))
		if (s[1] != '\0' &&
			!each_pat(x, MATCH_SUFFIX, s + 1, deny, cb, arg))
			return;
}
