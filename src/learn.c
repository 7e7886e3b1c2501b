#include "learn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "log.h"
#include "util.h"

#define KEY_MAX (NAME_MAX_LEN + 1)

/* One entry of a bounded table (a name, an address or a usage), with the
 * names linked to it (those that gave the address, or its address). */
struct lrec {
	uint8_t key[KEY_MAX]; /* zero-padded, compared whole */
	uint64_t last;	      /* ms, monotonic: last seen */
	char *links[LEARN_LINKS_MAX];
	uint8_t nlinks;
};

struct ltab {
	struct lrec *v;
	size_t n, max;
	uint32_t *slot; /* open addressing over v: index + 1 */
	size_t nslot;
	uint64_t dropped;
};

struct lvm {
	char name[VM_NAME_MAX + 1];
	struct ltab names, addrs, uses;
	struct lvm *next;
};

struct learn {
	struct lvm *vms;
};

/* ---- bounded tables ------------------------------------------------------- */

static uint32_t
key_hash(const uint8_t *k)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < KEY_MAX; i++)
		h = (h ^ k[i]) * 16777619u;
	return h;
}

static void
ltab_slot_put(struct ltab *t, size_t i)
{
	size_t s = key_hash(t->v[i].key) & (t->nslot - 1);

	while (t->slot[s])
		s = (s + 1) & (t->nslot - 1);
	t->slot[s] = (uint32_t)i + 1;
}

static void
ltab_reindex(struct ltab *t)
{
	free(t->slot);
	t->nslot = 64;
	while (t->nslot < t->max * 2 && t->nslot < (t->n + 1) * 2)
		t->nslot *= 2;
	t->slot = xcalloc(t->nslot, sizeof(*t->slot));
	for (size_t i = 0; i < t->n; i++)
		ltab_slot_put(t, i);
}

static struct lrec *
ltab_find(const struct ltab *t, const uint8_t *key)
{
	if (t->nslot == 0)
		return NULL;
	for (size_t s = key_hash(key) & (t->nslot - 1); t->slot[s];
		s = (s + 1) & (t->nslot - 1))
		if (memcmp(t->v[t->slot[s] - 1].key, key, KEY_MAX) == 0)
			return &t->v[t->slot[s] - 1];
	return NULL;
}

static void
lrec_clear(struct lrec *r)
{
	for (int i = 0; i < r->nlinks; i++)
		free(r->links[i]);
	memset(r, 0, sizeof(*r));
}

/* Full: the least recently seen entry goes (O(n), only when full). */
static void
ltab_evict(struct ltab *t)
{
	size_t old = 0;

	for (size_t i = 1; i < t->n; i++)
		if (t->v[i].last < t->v[old].last)
			old = i;
	lrec_clear(&t->v[old]);
	t->v[old] = t->v[--t->n];
	t->dropped++;
	ltab_reindex(t);
}

static struct lrec *
ltab_get(struct ltab *t, const uint8_t *key, uint64_t now)
{
	struct lrec *r = ltab_find(t, key);

	if (r == NULL) {
		if (t->n >= t->max)
			ltab_evict(t);
		if (t->v == NULL)
			t->v = xcalloc(t->max, sizeof(*t->v));
		r = &t->v[t->n++];
		memset(r, 0, sizeof(*r));
		memcpy(r->key, key, KEY_MAX);
		if (t->n * 2 > t->nslot)
			ltab_reindex(t);
		else
			ltab_slot_put(t, t->n - 1);
	}
	if (now > r->last)
		r->last = now;
	return r;
}

static void
ltab_finish(struct ltab *t)
{
	for (size_t i = 0; i < t->n; i++)
		lrec_clear(&t->v[i]);
	free(t->v);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

/* The most recent LEARN_LINKS_MAX names stay. */
static void
lrec_link(struct lrec *r, const char *name)
{
	for (int i = 0; i < r->nlinks; i++)
		if (strcmp(r->links[i], name) == 0)
			return;
	if (r->nlinks == LEARN_LINKS_MAX) {
		free(r->links[0]);
		memmove(&r->links[0], &r->links[1],
			(LEARN_LINKS_MAX - 1) * sizeof(r->links[0]));
		r->nlinks--;
	}
	r->links[r->nlinks++] = xstrdup(name);
}

static void
key_name(uint8_t key[KEY_MAX], const char *name)
{
	memset(key, 0, KEY_MAX);
	memcpy(key, name, strnlen(name, NAME_MAX_LEN));
}

static void
key_addr(uint8_t key[KEY_MAX], int family, const uint8_t *addr)
{
	memset(key, 0, KEY_MAX);
	key[0] = (uint8_t)family;
	memcpy(key + 1, addr, family == AF_INET ? 4 : 16);
}

static void
key_use(uint8_t key[KEY_MAX], const struct elem_key *k)
{
	key_addr(key, k->family, k->addr);
	key[17] = k->proto;
	key[18] = (uint8_t)(k->lo >> 8);
	key[19] = (uint8_t)k->lo;
}

static void
use_of(const struct lrec *r, struct elem_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = r->key[0];
	k->kind = SET_PORTS;
	memcpy(k->addr, r->key + 1, k->family == AF_INET ? 4 : 16);
	k->proto = r->key[17];
	k->lo = k->hi = (uint16_t)(r->key[18] << 8 | r->key[19]);
}

/* ---- the store -------------------------------------------------------------- */

struct learn *
learn_new(void)
{
	return xcalloc(1, sizeof(struct learn));
}

static void
lvm_free(struct lvm *v)
{
	ltab_finish(&v->names);
	ltab_finish(&v->addrs);
	ltab_finish(&v->uses);
	free(v);
}

void
learn_free(struct learn *l)
{
	if (l == NULL)
		return;
	while (l->vms) {
		struct lvm *v = l->vms;

		l->vms = v->next;
		lvm_free(v);
	}
	free(l);
}

static struct lvm *
lvm_get(const struct learn *l, const char *name)
{
	for (struct lvm *v = l->vms; v; v = v->next)
		if (strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

static struct lvm *
lvm_make(struct learn *l, const char *name)
{
	struct lvm *v = lvm_get(l, name);

	if (v != NULL)
		return v;
	v = xcalloc(1, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->names.max = LEARN_NAMES_MAX;
	v->addrs.max = LEARN_ADDRS_MAX;
	v->uses.max = LEARN_USES_MAX;
	v->next = l->vms;
	l->vms = v;
	return v;
}

void
learn_name(struct learn *l, const char *vm, const char *name,
	const struct ipaddr *addrs, size_t naddrs, uint64_t now_ms)
{
	struct lvm *v = lvm_make(l, vm);
	uint8_t key[KEY_MAX];

	key_name(key, name);
	ltab_get(&v->names, key, now_ms);
	for (size_t i = 0; i < naddrs; i++) {
		key_addr(key, addrs[i].family, addrs[i].b);
		lrec_link(ltab_get(&v->addrs, key, now_ms), name);
	}
}

void
learn_use(struct learn *l, const char *vm, const struct elem_key *k,
	uint64_t last_ms, const char *const *names, size_t nnames)
{
	struct lvm *v = lvm_make(l, vm);
	uint8_t key[KEY_MAX];
	struct lrec *r;

	key_use(key, k);
	r = ltab_get(&v->uses, key, last_ms);
	for (size_t i = 0; i < nnames; i++)
		lrec_link(r, names[i]);
}

void
learn_retain(struct learn *l, const struct config *c)
{
	struct lvm **pp = &l->vms;

	while (*pp) {
		struct lvm *v = *pp;

		if (config_vm(c, v->name) == NULL) {
			*pp = v->next;
			lvm_free(v);
		} else {
			pp = &v->next;
		}
	}
}

static void
stats_add(struct learn_stats *st, const struct lvm *v)
{
	st->names += v->names.n;
	st->addrs += v->addrs.n;
	st->uses += v->uses.n;
	st->names_dropped += v->names.dropped;
	st->addrs_dropped += v->addrs.dropped;
	st->uses_dropped += v->uses.dropped;
}

struct learn_stats
learn_stats(const struct learn *l, const char *vm)
{
	struct learn_stats st = {0};

	for (const struct lvm *v = l->vms; v; v = v->next)
		if (vm == NULL || strcmp(v->name, vm) == 0)
			stats_add(&st, v);
	return st;
}

/* ---- reading the kernel ------------------------------------------------------ */

struct refresh {
	struct learn *l;
	const struct admit *a;
	const char *vm;
	uint64_t now;
	const char *names[LEARN_LINKS_MAX];
	size_t nnames;
};

static void
name_cb(const char *name, void *arg)
{
	struct refresh *rf = arg;

	if (rf->nnames < LEARN_LINKS_MAX)
		rf->names[rf->nnames++] = name;
}

static void
seen_cb(const struct elem_key *k, uint64_t left_ms, void *arg)
{
	struct refresh *rf = arg;
	struct ipaddr a = {.family = k->family};
	/* Each new connection resets the element's timeout: its age is the
	 * time since the VM last used it. */
	uint64_t age =
		left_ms < SEEN_TIMEOUT_MS ? SEEN_TIMEOUT_MS - left_ms : 0;

	memcpy(a.b, k->addr, k->family == AF_INET ? 4 : 16);
	rf->nnames = 0;
	admit_names_for(rf->a, rf->vm, &a, name_cb, rf);
	learn_use(rf->l, rf->vm, k, rf->now > age ? rf->now - age : 0,
		rf->names, rf->nnames);
}

static bool
has_family(const struct vm *vm, int family)
{
	for (size_t i = 0; i < vm->naddrs; i++)
		if (vm->addrs[i].family == family)
			return true;
	return false;
}

int
learn_refresh(struct learn *l, const struct config *c, const struct admit *a,
	uint64_t now_ms)
{
	static const int fams[2] = {AF_INET, AF_INET6};
	int rc = 0;

	for (size_t i = 0; i < c->nvms; i++) {
		const struct vm *vm = &c->vms[i];
		struct refresh rf = {.l = l,
			.a = a,
			.vm = vm->name,
			.now = now_ms};
		struct learn_stats st;

		if (!vm->learn)
			continue;
		for (int f = 0; f < 2; f++) {
			char sn[SET_NAME_MAX];

			if (!has_family(vm, fams[f]) ||
				elems_dump_seen(c->table, vm->name, fams[f],
					seen_cb, &rf) == 0)
				continue;
			log_warn("learn: reading set %s",
				elems_seen_name(sn, sizeof(sn), vm->name,
					fams[f]));
			rc = -1;
		}
		st = learn_stats(l, vm->name);
		log_debug("learn: VM %s: %llu names, %llu usages, %llu "
			  "addresses; dropped %llu names, %llu usages, %llu "
			  "addresses",
			vm->name, (unsigned long long)st.names,
			(unsigned long long)st.uses,
			(unsigned long long)st.addrs,
			(unsigned long long)st.names_dropped,
			(unsigned long long)st.uses_dropped,
			(unsigned long long)st.addrs_dropped);
	}
	return rc;
}

/* ---- the suggestion ------------------------------------------------------------ */

/* One use of one name (or of a bare address: name NULL). */
struct pair {
	const char *name;
	struct ipaddr addr;
	struct portspec p; /* proto IPPROTO_ICMP: an echo request */
};

/* One allow entry of the suggestion. */
struct sentry {
	char name[NAME_MAX_LEN + 3]; /* room for "*." */
	bool is_net, folded;
	bool priv; /* a private address it used: allow-private */
	struct ipaddr addr;
	struct ports ports;
	char *members; /* of a wildcard: the names folded into it */
};

struct suggest {
	struct pair *pairs;
	size_t npairs;
	struct sentry *e;
	size_t ne;
};

static int
addr_cmp(const struct ipaddr *a, const struct ipaddr *b)
{
	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	return memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16);
}

static int
pair_cmp(const void *x, const void *y)
{
	const struct pair *a = x, *b = y;

	if ((a->name == NULL) != (b->name == NULL))
		return a->name == NULL ? 1 : -1;
	if (a->name != NULL)
		return strcmp(a->name, b->name);
	return addr_cmp(&a->addr, &b->addr);
}

static void
pair_add(struct suggest *sg, const char *name, const struct elem_key *k)
{
	struct pair *p = ARRAY_PUSH(sg->pairs, sg->npairs);

	memset(p, 0, sizeof(*p));
	p->name = name;
	p->addr.family = k->family;
	memcpy(p->addr.b, k->addr, k->family == AF_INET ? 4 : 16);
	if (elems_is_echo(k)) {
		p->p.proto = IPPROTO_ICMP;
	} else {
		p->p.proto = k->proto;
		p->p.lo = p->p.hi = k->lo;
	}
}

/* Every usage, once per name that gave its address (through the shadow
 * when it was read, or through an answer this store recorded). */
static void
collect(struct suggest *sg, const struct lvm *v)
{
	for (size_t i = 0; i < v->uses.n; i++) {
		const struct lrec *u = &v->uses.v[i];
		const struct lrec *ar;
		struct elem_key k;
		uint8_t key[KEY_MAX];
		size_t before = sg->npairs;

		use_of(u, &k);
		if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP &&
			!elems_is_echo(&k))
			continue;
		for (int j = 0; j < u->nlinks; j++)
			pair_add(sg, u->links[j], &k);
		key_addr(key, k.family, k.addr);
		if ((ar = ltab_find(&v->addrs, key)) != NULL)
			for (int j = 0; j < ar->nlinks; j++)
				pair_add(sg, ar->links[j], &k);
		if (sg->npairs == before)
			pair_add(sg, NULL, &k);
	}
	if (sg->npairs > 0)
		qsort(sg->pairs, sg->npairs, sizeof(*sg->pairs), pair_cmp);
}

static void
ports_add(struct ports *ps, const struct portspec *p)
{
	struct portspec copy = *p;
	struct ports one = {.v = &copy, .n = 1};

	if (p->proto == IPPROTO_ICMP) {
		ps->icmp = true;
		return;
	}
	policy_ports_union(ps, &one);
}

/* Consecutive pairs of one name (or address) make one entry. */
static void
group(struct suggest *sg)
{
	sg->e = xcalloc(sg->npairs + 1, sizeof(*sg->e));
	for (size_t i = 0; i < sg->npairs; i++) {
		const struct pair *p = &sg->pairs[i];
		struct sentry *e = sg->ne ? &sg->e[sg->ne - 1] : NULL;

		if (i == 0 || pair_cmp(p, &sg->pairs[i - 1]) != 0) {
			e = &sg->e[sg->ne++];
			e->is_net = p->name == NULL;
			if (p->name)
				snprintf(e->name, sizeof(e->name), "%s",
					p->name);
			e->addr = p->addr;
		}
		/* The answer kept a private address only under an
		 * allow-private rule: the suggestion needs one too. */
		e->priv |= !e->is_net &&
			policy_addr_class(&p->addr) == ADDR_PRIVATE;
		ports_add(&e->ports, &p->p);
	}
}

static bool
ports_same(const struct ports *a, const struct ports *b)
{
	if (a->icmp != b->icmp || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].proto != b->v[i].proto ||
			a->v[i].lo != b->v[i].lo || a->v[i].hi != b->v[i].hi)
			return false;
	return true;
}

static const char *
parent_of(const char *name)
{
	const char *dot = strchr(name, '.');

	return dot ? dot + 1 : NULL;
}

static bool
under(const char *name, const char *parent)
{
	size_t n = strlen(name), p = strlen(parent);

	return n > p + 1 && name[n - p - 1] == '.' &&
		strcmp(name + n - p, parent) == 0;
}

static size_t
labels(const char *s)
{
	size_t n = 1;

	for (; *s; s++)
		n += *s == '.';
	return n;
}

static int
parent_cmp(const void *x, const void *y)
{
	const char *a = *(const char *const *)x, *b = *(const char *const *)y;
	size_t la = labels(a), lb = labels(b);

	if (la != lb)
		return la > lb ? -1 : 1; /* deepest first */
	return strcmp(a, b);
}

/* Fold the names under parent into *.parent when the rule in the file
 * says so (doc/configuration.md, "Learning"). */
static void
fold_one(struct suggest *sg, size_t nnames, const char *parent)
{
	const struct ports *ps = NULL;
	size_t siblings = 0, len = 0;
	struct sentry *w;
	int priv = -1;

	if (labels(parent) < 2)
		return;
	for (size_t i = 0; i < nnames; i++) {
		const struct sentry *e = &sg->e[i];

		if (e->is_net || !under(e->name, parent))
			continue;
		if (e->folded)
			return; /* already in a deeper wildcard */
		if (ps == NULL)
			ps = &e->ports;
		else if (!ports_same(ps, &e->ports))
			return;
		/* allow-private for every name below, or for none */
		if (priv < 0)
			priv = e->priv;
		else if (priv != e->priv)
			return;
		siblings += strcmp(parent_of(e->name), parent) == 0;
		len += strlen(e->name) + 2;
	}
	if (siblings < 2)
		return;
	w = &sg->e[sg->ne++];
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "*.%s", parent);
	policy_ports_union(&w->ports, ps);
	w->priv = priv > 0;
	w->members = xcalloc(1, len + 1);
	for (size_t i = 0; i < nnames; i++) {
		struct sentry *e = &sg->e[i];

		if (e->is_net || !under(e->name, parent))
			continue;
		e->folded = true;
		if (w->members[0])
			strcat(w->members, ", ");
		strcat(w->members, e->name);
	}
}

static void
fold(struct suggest *sg)
{
	size_t nnames = sg->ne, np = 0;
	const char **parents = xcalloc(nnames + 1, sizeof(*parents));

	/* At most one wildcard per parent, one parent per name: room for
	 * nnames more entries, made before parents points into the names
	 * (a move of sg->e would leave it dangling). */
	sg->e = xreallocarray(sg->e, 2 * nnames + 1, sizeof(*sg->e));
	for (size_t i = 0; i < nnames; i++)
		if (!sg->e[i].is_net && parent_of(sg->e[i].name))
			parents[np++] = parent_of(sg->e[i].name);
	if (np > 0)
		qsort(parents, np, sizeof(*parents), parent_cmp);
	for (size_t i = 0; i < np; i++)
		if (i == 0 || strcmp(parents[i], parents[i - 1]) != 0)
			fold_one(sg, nnames, parents[i]);
	free(parents);
}

static int
sentry_cmp(const void *x, const void *y)
{
	const struct sentry *a = x, *b = y;

	if (a->is_net != b->is_net)
		return a->is_net ? 1 : -1;
	if (a->is_net)
		return addr_cmp(&a->addr, &b->addr);
	return strcmp(a->name, b->name);
}

static void
print_ports(FILE *f, const struct ports *ps)
{
	char buf[32];
	const char *sep = "";

	fputs("    ports: [", f);
	for (size_t i = 0; i < ps->n; i++) {
		fprintf(f, "%s%s", sep,
			policy_portspec_str(&ps->v[i], buf, sizeof(buf)));
		sep = ", ";
	}
	if (ps->icmp)
		fprintf(f, "%sicmp", sep);
	fputs("]\n", f);
}

static void
print_entry(FILE *f, const struct sentry *e)
{
	char buf[INET6_ADDRSTRLEN];

	if (e->is_net) {
		fprintf(f, "  # no name it resolved gave this address\n");
		fprintf(f, "  - net: \"%s/%d\"\n",
			policy_addr_str(&e->addr, buf, sizeof(buf)),
			e->addr.family == AF_INET ? 32 : 128);
	} else {
		if (e->members)
			fprintf(f, "  # folded: %s\n", e->members);
		fprintf(f, "  - name: \"%s\"\n", e->name);
	}
	print_ports(f, &e->ports);
	if (e->priv)
		fputs("    allow-private: true\n", f);
}

static bool
name_used(const struct suggest *sg, const char *name)
{
	struct pair key = {.name = name};

	return sg->npairs > 0 &&
		bsearch(&key, sg->pairs, sg->npairs, sizeof(*sg->pairs),
			pair_cmp) != NULL;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
print_unused(FILE *f, const struct suggest *sg, const struct lvm *v)
{
	const char **un = xcalloc(v->names.n + 1, sizeof(*un));
	size_t n = 0;

	for (size_t i = 0; i < v->names.n; i++) {
		const char *name = (const char *)v->names.v[i].key;

		if (!name_used(sg, name))
			un[n++] = name;
	}
	if (n > 0)
		qsort(un, n, sizeof(*un), str_cmp);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "# resolved, never used: %s\n", un[i]);
	free(un);
}

static void
print_head(FILE *f, const struct vm *vm, const struct lvm *v)
{
	char buf[INET6_ADDRSTRLEN];
	struct learn_stats st = {0};

	if (v)
		stats_add(&st, v);
	fprintf(f,
		"# dnsfence policy for VM %s, suggested from what it used in "
		"mode: learn\n# (%llu names resolved, %llu uses seen",
		vm->name, (unsigned long long)st.names,
		(unsigned long long)st.uses);
	if (st.names_dropped + st.uses_dropped + st.addrs_dropped > 0)
		fprintf(f,
			"; over the limits, the oldest %llu names, %llu "
			"uses and %llu addresses were dropped",
			(unsigned long long)st.names_dropped,
			(unsigned long long)st.uses_dropped,
			(unsigned long long)st.addrs_dropped);
	fputs(").\naddresses: [", f);
	for (size_t i = 0; i < vm->naddrs; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "",
			policy_addr_str(&vm->addrs[i], buf, sizeof(buf)));
	fputs("]\n", f);
	if (vm->iface)
		fprintf(f, "interface: \"%s\"\n", vm->iface);
	fputs("mode: enforce\ndefault: deny\n", f);
	if (vm->unlisted == UNLISTED_NXDOMAIN)
		fputs("unlisted: nxdomain\n", f);
}

char *
learn_suggest(const struct learn *l, const struct vm *vm)
{
	const struct lvm *v = lvm_get(l, vm->name);
	struct suggest sg = {0};
	size_t nshown = 0;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		fatal("open_memstream");
	if (v != NULL) {
		collect(&sg, v);
		group(&sg);
		fold(&sg);
		if (sg.ne > 0)
			qsort(sg.e, sg.ne, sizeof(*sg.e), sentry_cmp);
	}
	print_head(f, vm, v);
	for (size_t i = 0; i < sg.ne; i++)
		nshown += !sg.e[i].folded;
	fprintf(f, "allow:%s\n", nshown ? "" : " []");
	for (size_t i = 0; i < sg.ne; i++)
		if (!sg.e[i].folded)
			print_entry(f, &sg.e[i]);
	if (v != NULL)
		print_unused(f, &sg, v);
	if (fclose(f) != 0)
		fatal("open_memstream");
	for (size_t i = 0; i < sg.ne; i++) {
		policy_ports_finish(&sg.e[i].ports);
		free(sg.e[i].members);
	}
	free(sg.e);
	free(sg.pairs);
	return out;
}
