#include "admit.h"

#include <errno.h>
#include <event2/event.h>
#include <linux/netfilter.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elems.h"
#include "log.h"

/* What admitted each element, so that a reload knows exactly what still
 * admits it: up to MAX_NAMES names, and up to MAX_RULES rules (by
 * identity, see policy_rule_id). Past the names, the rules decide (while
 * the VM's deny rules stay the same); past both, the element is kept only
 * by a reload that leaves its VM's rules exactly as they were. */
#define MAX_NAMES 64
#define MAX_RULES 16

/* The names elements remember are interned per VM, each stored once. An
 * element's first name is always recorded (dnsfencectl list and why show
 * it, its comment in the kernel carries it); its others only while the
 * VM's elements hold fewer than set-size such further names together
 * (most have one name; a CDN's address many). Past that an element's new
 * names are not recorded, as past MAX_NAMES: its rules decide. So the
 * memory of a VM's shadow is bounded by set-size, whatever it resolves:
 * per element (4 sets of set-size), its entry and first name, and a
 * quarter of a name and its pointer more. */

/* An element closer than this to its end is not deleted by a reload or
 * at start-up (it goes on its own): the delete could reach the kernel
 * after it expired and fail the whole transaction with ENOENT. */
#define SOON_MS 1500

/* Retries of a delete + add batch that found an element gone (ENOENT). */
#define DELADD_RETRIES 3

struct abatch;
struct vmset;

/* A name that admitted elements of one VM, stored once however many of
 * them it admitted (a name's A and AAAA, each port range of its rules, a
 * CDN's many names on a few addresses): elements point at its text. */
struct iname {
	struct iname *next; /* hash chain of its VM's table */
	uint32_t hash;
	uint32_t refs; /* elements that point at it */
	char s[];      /* the name, NUL-terminated */
};

/* One element of one VM set. Most have one name and one rule: those live
 * in the entry itself (name1, rule1), a separate array only past one. */
struct entry {
	struct elem_key k;
	struct vmset *vs;
	uint64_t expiry;	/* ms, monotonic: what we asked for */
	uint64_t committed;	/* what the kernel has acknowledged; 0: none */
	struct abatch *pending; /* the latest batch carrying it */
	char **names;		/* that admitted it: &name1, or an array */
	char *name1;		/* interned (struct iname's text) */
	uint64_t *rules;	/* ... and the rules that did: &rule1, or an
				 * array */
	uint64_t rule1;
	uint8_t nnames, nrules;
	bool names_over, rules_over; /* more than we keep */
	bool forever;		     /* in the kernel without a timeout */
	struct entry *next;	     /* hash chain */
};

/* The shadow of one VM's sets. */
struct vmset {
	char name[VM_NAME_MAX + 1];
	size_t count[SET_COUNT];
	struct abatch *open; /* collecting this loop iteration */
	struct vmset *next;  /* hash chain of a->vmsets */
	struct vmset *next_open;
	/* During admit_prune: this VM in the new and old configurations. */
	const struct vm *prune_vm, *prune_old;
	/* the names its elements remember, each once */
	struct iname **names;
	size_t nnames_slots, nnames;
	size_t extra; /* names of its elements past their first */
};

struct admit_req {
	int nwait;
	int err;
	char msg[256];
	admit_done_cb cb;
	void *arg;
};

/* An element going into a batch, with what it must become. */
struct touch {
	struct entry *e;
	uint64_t value;
	char name[NAME_MAX_LEN + 1];
};

/* One VM's transaction: one VM's kernel error never fails another VM's
 * answers. */
struct abatch {
	struct admit *a;
	struct vmset *vs;
	struct touch *t;
	size_t nt;
	struct admit_req **w;
	size_t nw;
	int retries;
};

struct admit {
	struct nft *nft;
	struct nft_mon *mon;
	struct event *flush_ev;
	char table[TABLE_NAME_MAX];
	/* entries of every VM, by VM and key */
	struct entry **tab;
	size_t ntab, nentries;
	struct vmset **vmsets;
	size_t nvmsets_slots, nvmsets;
	struct vmset *open; /* VMs with an open batch */
	size_t inflight;    /* batches sent, not completed */
	bool deladd;	    /* the kernel ignores the timeout on re-add */
	char *broken;	    /* why nothing is admitted now, or NULL */
	uint64_t damage;    /* foreign changes seen */
	size_t extra_max;   /* names per VM past its elements' first */
	struct admit_stats st;
};

/* ---- the shadow ------------------------------------------------------------ */

static uint32_t
hash_bytes(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static uint32_t
entry_hash(const struct vmset *vs, const struct elem_key *k)
{
	return hash_bytes(hash_bytes(2166136261u, &vs, sizeof(vs)), k,
		sizeof(*k));
}

static uint32_t
name_hash(const char *s)
{
	return hash_bytes(2166136261u, s, strlen(s));
}

/* ---- the names, interned per VM ------------------------------------------ */

static struct iname *
name_find(const struct vmset *vs, const char *s, uint32_t h)
{
	if (vs->nnames_slots == 0)
		return NULL;
	for (struct iname *n = vs->names[h & (vs->nnames_slots - 1)]; n;
		n = n->next)
		if (n->hash == h && strcmp(n->s, s) == 0)
			return n;
	return NULL;
}

static void
names_grow(struct vmset *vs)
{
	size_t ns = vs->nnames_slots ? vs->nnames_slots * 2 : 64;
	struct iname **t = xcalloc(ns, sizeof(*t));

	for (size_t i = 0; i < vs->nnames_slots; i++) {
		while (vs->names[i]) {
			struct iname *n = vs->names[i];

			vs->names[i] = n->next;
			n->next = t[n->hash & (ns - 1)];
			t[n->hash & (ns - 1)] = n;
		}
	}
	free(vs->names);
	vs->names = t;
	vs->nnames_slots = ns;
}

/* A new name in vs's table, with no reference yet. */
static struct iname *
name_add(struct vmset *vs, const char *s, uint32_t h)
{
	size_t len = strlen(s) + 1;
	struct iname *n;

	if (vs->nnames >= vs->nnames_slots)
		names_grow(vs);
	n = xcalloc(1, offsetof(struct iname, s) + len);
	memcpy(n->s, s, len);
	n->hash = h;
	n->next = vs->names[h & (vs->nnames_slots - 1)];
	vs->names[h & (vs->nnames_slots - 1)] = n;
	vs->nnames++;
	return n;
}

static void
names_limit(struct admit *a, const struct config *c)
{
	a->extra_max = c->limits.set_size;
}

/* An element no longer points at s (the text of one of vs's names). */
static void
name_unref(struct vmset *vs, char *s)
{
	struct iname *n =
		(struct iname *)(void *)(s - offsetof(struct iname, s));
	struct iname **pp = &vs->names[n->hash & (vs->nnames_slots - 1)];

	if (--n->refs > 0)
		return;
	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	vs->nnames--;
	free(n);
}

static void
tab_grow(struct admit *a)
{
	size_t n = a->ntab ? a->ntab * 2 : 4096;
	struct entry **t = xcalloc(n, sizeof(*t));

	for (size_t i = 0; i < a->ntab; i++) {
		while (a->tab[i]) {
			struct entry *e = a->tab[i];
			size_t b = entry_hash(e->vs, &e->k) & (n - 1);

			a->tab[i] = e->next;
			e->next = t[b];
			t[b] = e;
		}
	}
	free(a->tab);
	a->tab = t;
	a->ntab = n;
}

static struct entry *
entry_get(struct admit *a, struct vmset *vs, const struct elem_key *k,
	bool create)
{
	struct entry *e;
	size_t b;

	if (a->ntab == 0) {
		if (!create)
			return NULL;
		tab_grow(a);
	}
	b = entry_hash(vs, k) & (a->ntab - 1);
	for (e = a->tab[b]; e; e = e->next)
		if (e->vs == vs && memcmp(&e->k, k, sizeof(*k)) == 0)
			return e;
	if (!create)
		return NULL;
	if (a->nentries >= a->ntab) {
		tab_grow(a);
		b = entry_hash(vs, k) & (a->ntab - 1);
	}
	e = xcalloc(1, sizeof(*e));
	e->k = *k;
	e->vs = vs;
	e->next = a->tab[b];
	a->tab[b] = e;
	a->nentries++;
	vs->count[elem_set_index(k)]++;
	return e;
}

static void
entry_free(struct admit *a, struct entry *e)
{
	e->vs->count[elem_set_index(&e->k)]--;
	a->nentries--;
	for (int i = 0; i < e->nnames; i++)
		name_unref(e->vs, e->names[i]);
	if (e->nnames > 1)
		e->vs->extra -= (size_t)e->nnames - 1;
	if (e->names != &e->name1)
		free(e->names);
	if (e->rules != &e->rule1)
		free(e->rules);
	free(e);
}

/* Remove every entry the predicate selects. */
static void
entries_drop(struct admit *a, bool (*pred)(struct entry *, void *), void *arg)
{
	for (size_t b = 0; b < a->ntab; b++) {
		struct entry **pp = &a->tab[b];

		while (*pp) {
			struct entry *e = *pp;

			if (pred(e, arg)) {
				*pp = e->next;
				entry_free(a, e);
			} else {
				pp = &e->next;
			}
		}
	}
}

static bool ports_admit(const struct ports *ps, const struct elem_key *k);

static void
entry_rule(struct entry *e, uint64_t id)
{
	for (int i = 0; i < e->nrules; i++)
		if (e->rules[i] == id)
			return;
	if (e->nrules == MAX_RULES) {
		e->rules_over = true;
		return;
	}
	if (e->nrules == 0) {
		/* (an array rules_still() emptied) */
		if (e->rules != &e->rule1)
			free(e->rules);
		e->rules = &e->rule1;
	} else if (e->rules == &e->rule1) {
		e->rules = xcalloc(2, sizeof(*e->rules));
		e->rules[0] = e->rule1;
	} else {
		e->rules = xreallocarray(e->rules, e->nrules + 1,
			sizeof(*e->rules));
	}
	e->rules[e->nrules++] = id;
}

static void
key_ipaddr(const struct elem_key *k, struct ipaddr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = k->family;
	memcpy(a->b, k->addr, k->family == AF_INET ? 4 : 16);
}

/* The rules of vm through which name admits e (a private address: only
 * those that say allow-private). */
struct rules_of {
	struct entry *e;
	const struct vm *vm;
	int64_t now;
	bool priv;
};

static bool
rule_of_cb(size_t i, void *arg)
{
	struct rules_of *ro = arg;
	const struct rule *r = &ro->vm->allow[i];

	if (!policy_rule_ended(r, ro->now) && (!ro->priv || r->allow_private) &&
		ports_admit(&r->ports, &ro->e->k))
		entry_rule(ro->e, policy_rule_id(r));
	return true;
}

static void
entry_rules_of(struct entry *e, const struct vm *vm, const char *name)
{
	struct rules_of ro = {e, vm, util_wall_s(), false};
	struct ipaddr ad;

	key_ipaddr(&e->k, &ad);
	ro.priv = policy_addr_class(&ad) == ADDR_PRIVATE;
	policy_match(vm, false, name, rule_of_cb, &ro);
}

static void
entry_forget_rules(struct entry *e)
{
	if (e->rules != &e->rule1)
		free(e->rules);
	e->rules = NULL;
	e->nrules = 0;
	e->rules_over = false;
}

/* Record that name admitted e; vm (NULL when unknown: an adopted
 * comment) gives the rules it came through. */
static void
entry_name(struct admit *a, struct entry *e, const char *name,
	const struct vm *vm)
{
	struct vmset *vs = e->vs;
	uint32_t h = name_hash(name);
	struct iname *n = name_find(vs, name, h);

	for (int i = 0; n != NULL && i < e->nnames; i++)
		if (e->names[i] == n->s)
			return;
	if (vm != NULL)
		entry_rules_of(e, vm, name);
	else
		e->rules_over = true; /* rules unknown */
	if (e->nnames == MAX_NAMES ||
		(e->nnames > 0 && vs->extra >= a->extra_max)) {
		if (e->nnames < MAX_NAMES)
			a->st.names_unkept++;
		e->names_over = true;
		return;
	}
	if (n == NULL)
		n = name_add(vs, name, h);
	n->refs++;
	if (e->nnames > 0)
		vs->extra++;
	if (e->nnames == 0) {
		e->names = &e->name1;
	} else if (e->names == &e->name1) {
		e->names = xcalloc(2, sizeof(*e->names));
		e->names[0] = e->name1;
	} else {
		e->names = xreallocarray(e->names, e->nnames + 1,
			sizeof(*e->names));
	}
	e->names[e->nnames++] = n->s;
}

static struct vmset *
vmset_get(struct admit *a, const char *name, bool create)
{
	struct vmset *vs;
	size_t b;

	if (a->nvmsets_slots == 0) {
		a->nvmsets_slots = 1024;
		a->vmsets = xcalloc(a->nvmsets_slots, sizeof(*a->vmsets));
	}
	b = name_hash(name) & (a->nvmsets_slots - 1);
	for (vs = a->vmsets[b]; vs; vs = vs->next)
		if (strcmp(vs->name, name) == 0)
			return vs;
	if (!create)
		return NULL;
	vs = xcalloc(1, sizeof(*vs));
	snprintf(vs->name, sizeof(vs->name), "%s", name);
	vs->next = a->vmsets[b];
	a->vmsets[b] = vs;
	a->nvmsets++;
	return vs;
}

static void flush_cb(evutil_socket_t fd, short ev, void *arg);

void
admit_names_for(const struct admit *a, const char *vm,
	const struct ipaddr *addr, void (*cb)(const char *name, void *arg),
	void *arg)
{
	struct vmset *vs;
	struct elem_key k;
	const struct entry *e;

	if (a->nvmsets_slots == 0 || a->ntab == 0)
		return;
	for (vs = a->vmsets[name_hash(vm) & (a->nvmsets_slots - 1)]; vs;
		vs = vs->next)
		if (strcmp(vs->name, vm) == 0)
			break;
	if (vs == NULL)
		return;
	memset(&k, 0, sizeof(k));
	k.family = (uint8_t)addr->family;
	k.kind = SET_ANY;
	memcpy(k.addr, addr->b, addr->family == AF_INET ? 4 : 16);
	for (e = a->tab[entry_hash(vs, &k) & (a->ntab - 1)]; e; e = e->next)
		if (e->vs == vs && memcmp(&e->k, &k, sizeof(k)) == 0)
			break;
	for (int i = 0; e != NULL && i < e->nnames; i++)
		cb(e->names[i], arg);
}

struct admit *
admit_new(struct nft *n, struct event_base *base, const char *table,
	bool deladd)
{
	struct admit *a = xcalloc(1, sizeof(*a));

	a->nft = n;
	a->deladd = deladd;
	snprintf(a->table, sizeof(a->table), "%s", table);
	a->flush_ev = event_new(base, -1, 0, flush_cb, a);
	return a;
}

static bool
pred_all(struct entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

void
admit_free(struct admit *a)
{
	if (a == NULL)
		return;
	entries_drop(a, pred_all, NULL);
	free(a->tab);
	for (size_t b = 0; b < a->nvmsets_slots; b++) {
		while (a->vmsets[b]) {
			struct vmset *vs = a->vmsets[b];

			a->vmsets[b] = vs->next;
			free(vs->names); /* emptied with the entries */
			free(vs);
		}
	}
	free(a->vmsets);
	free(a->broken);
	event_free(a->flush_ev);
	free(a);
}

void
admit_set_monitor(struct admit *a, struct nft_mon *m)
{
	a->mon = m;
}

const struct admit_stats *
admit_stats(const struct admit *a)
{
	return &a->st;
}

bool
admit_idle(const struct admit *a)
{
	return a->open == NULL && a->inflight == 0;
}

/* ---- requests ------------------------------------------------------------ */

static void
req_finish_one(struct admit_req *r, int err, const char *msg)
{
	if (err != 0 && r->err == 0) {
		r->err = err;
		snprintf(r->msg, sizeof(r->msg), "%s", msg);
	}
	if (--r->nwait > 0)
		return;
	r->cb(r->err, r->msg, r->arg);
	free(r);
}

static void
batch_wait(struct abatch *b, struct admit_req *r)
{
	for (size_t i = 0; i < b->nw; i++)
		if (b->w[i] == r)
			return;
	b->w = xreallocarray(b->w, b->nw + 1, sizeof(*b->w));
	b->w[b->nw++] = r;
	r->nwait++;
}

static struct abatch *
open_batch(struct admit *a, struct vmset *vs)
{
	if (vs->open == NULL) {
		vs->open = xcalloc(1, sizeof(*vs->open));
		vs->open->a = a;
		vs->open->vs = vs;
		if (a->open == NULL)
			/* Run once this loop iteration's callbacks are
			 * done, so every answer completing now shares its
			 * VM's batch. */
			event_active(a->flush_ev, 0, 0);
		vs->next_open = a->open;
		a->open = vs;
	}
	return vs->open;
}

static void
touch(struct abatch *b, struct entry *e, uint64_t value, const char *name,
	const struct vm *vm)
{
	struct touch *t;

	b->t = xreallocarray(b->t, b->nt + 1, sizeof(*b->t));
	t = &b->t[b->nt++];
	memset(t, 0, sizeof(*t));
	t->e = e;
	t->value = value;
	snprintf(t->name, sizeof(t->name), "%s", name);
	e->expiry = value;
	e->pending = b;
	entry_name(b->a, e, name, vm);
}

/* The elements one address needs for the given ports; out has room for
 * vm->natoms + 1 (the atoms, and icmp). */
static size_t
keys_for(const struct vm *vm, const struct ipaddr *ad, const struct ports *ps,
	struct portspec *atoms, struct elem_key *out)
{
	struct elem_key k = {.family = (uint8_t)ad->family};
	size_t n = 0, na;

	memcpy(k.addr, ad->b, ad->family == AF_INET ? 4 : 16);
	if (ps->any) {
		k.kind = SET_ANY;
		out[n++] = k;
		return n;
	}
	if (ps->icmp) {
		elems_echo_key(&k, ad->family);
		out[n++] = k;
	}
	na = policy_atoms_for(vm, ps, atoms, vm->natoms);
	for (size_t i = 0; i < na; i++) {
		elems_port_key(&k, atoms[i].proto, atoms[i].lo, atoms[i].hi);
		out[n++] = k;
	}
	return n;
}

/* Fail the request before anything is touched. */
static void
refuse(struct admit_req *r, int err, const char *msg)
{
	r->err = err;
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	req_finish_one(r, 0, "");
}

void
admit_request(struct admit *a, const struct config *c, const struct vm *vm,
	const char *name, const struct admit_addr *addrs, size_t naddrs,
	uint32_t timeout_s, admit_done_cb cb, void *arg)
{
	struct admit_req *r = xcalloc(1, sizeof(*r));
	struct vmset *vs = vmset_get(a, vm->name, true);
	uint64_t now = util_now_ms(), need = now + (uint64_t)timeout_s * 1000;
	/* Every element, however many port ranges the policy has: a VM must
	 * never be handed an address with one of its elements missing. */
	struct portspec *atoms = xcalloc(vm->natoms + 1, sizeof(*atoms));
	struct elem_key *keys = xcalloc(vm->natoms + 2, sizeof(*keys));
	size_t grow[SET_COUNT] = {0};

	a->st.requests++;
	names_limit(a, c);
	r->cb = cb;
	r->arg = arg;
	r->nwait = 1; /* held until the loop below is done */
	/* A change to the table that we have not read yet would make the
	 * shadow lie: read the notifications first. */
	if (a->mon != NULL)
		nft_mon_dispatch(a->mon);
	if (a->broken != NULL) {
		a->st.broken++;
		refuse(r, EAGAIN, a->broken);
		goto out;
	}
	/* First check room in every set this answer would grow, so that a
	 * refused answer admits nothing at all. */
	for (size_t i = 0; i < naddrs; i++) {
		size_t nk =
			keys_for(vm, &addrs[i].a, addrs[i].ports, atoms, keys);

		for (size_t j = 0; j < nk; j++)
			if (entry_get(a, vs, &keys[j], false) == NULL)
				grow[elem_set_index(&keys[j])]++;
	}
	for (int s = 0; s < SET_COUNT; s++) {
		if (grow[s] > 0 &&
			vs->count[s] + grow[s] > c->limits.set_size) {
			char msg[128];

			a->st.full++;
			snprintf(msg, sizeof(msg),
				"a set of VM %s is full "
				"(limits: set-size %u)",
				vm->name, c->limits.set_size);
			refuse(r, ENFILE, msg);
			goto out;
		}
	}
	for (size_t i = 0; i < naddrs; i++) {
		size_t nk =
			keys_for(vm, &addrs[i].a, addrs[i].ports, atoms, keys);

		for (size_t j = 0; j < nk; j++) {
			struct entry *e = entry_get(a, vs, &keys[j], false);

			if (e != NULL && e->expiry >= need) {
				/* Long enough already; if the batch that
				 * made it so is not ACKed yet, wait for it:
				 * never release an answer early. */
				if (e->pending != NULL)
					batch_wait(e->pending, r);
				entry_name(a, e, name, vm);
				continue;
			}
			if (e == NULL)
				e = entry_get(a, vs, &keys[j], true);
			/* One second more than needed: cached answers count
			 * their TTL down in whole seconds, in step with the
			 * clock, so later hits for the same answer find the
			 * element long enough and cost no netlink round trip. */
			touch(open_batch(a, vs), e, need + 1000, name, vm);
			batch_wait(vs->open, r);
		}
	}
	if (r->nwait == 1)
		a->st.noop++;
	req_finish_one(r, 0, "");
out:
	free(atoms);
	free(keys);
}

/* ---- batches ------------------------------------------------------------- */

static void batch_done(int err, const char *msg, void *arg);

/* Kernels that keep the old timeout of a re-added element (before 6.12)
 * get a delete and an add in the same transaction, for every element the
 * kernel may hold: never just an add that it would ignore. */
static bool
needs_delete(const struct admit *a, const struct entry *e, uint64_t now)
{
	/* A delete of one already gone fails with ENOENT, which
	 * deladd_retry() settles by asking the kernel. */
	return a->deladd && elems_kernel_may_hold(e->committed, now);
}

static void
batch_send(struct admit *a, struct abatch *b)
{
	struct elems_msgs *m = elems_msgs_new(a->table);
	struct nft_batch *nb = nft_batch_new(a->nft);
	uint64_t now = util_now_ms();

	for (size_t i = 0; i < b->nt; i++) {
		const struct touch *t = &b->t[i];

		if (needs_delete(a, t->e, now))
			elems_msgs_del(m, b->vs->name, &t->e->k);
		elems_msgs_add(m, b->vs->name, &t->e->k,
			t->value > now ? t->value - now : 1000, t->name);
	}
	elems_msgs_emit(m, nb);
	a->st.batches++;
	a->st.elements += b->nt;
	a->inflight++;
	nft_batch_send(nb, batch_done, b);
}

static void
batch_free(struct abatch *b)
{
	free(b->t);
	free(b->w);
	free(b);
}

static void
resync_cb(const struct elem_key *k, uint64_t left_ms, const char *comment,
	void *arg)
{
	struct abatch *b = arg;
	uint64_t now = util_now_ms();

	(void)comment;
	/* (One without a timeout is deleted and added with ours.) */
	if (left_ms == ELEMS_FOREVER)
		left_ms = UINT32_MAX;
	for (size_t i = 0; i < b->nt; i++)
		if (memcmp(&b->t[i].e->k, k, sizeof(*k)) == 0)
			b->t[i].e->committed = now + left_ms;
}

/* A delete found an element gone: it expired between our look and the
 * kernel's, or someone removed it. Learn from the kernel which elements
 * of this batch it holds, and send again. */
static bool
deladd_retry(struct admit *a, struct abatch *b)
{
	bool seen[SET_COUNT] = {false};

	if (!a->deladd || b->retries >= DELADD_RETRIES)
		return false;
	b->retries++;
	for (size_t i = 0; i < b->nt; i++)
		b->t[i].e->committed = 0;
	for (size_t i = 0; i < b->nt; i++) {
		int idx = elem_set_index(&b->t[i].e->k);

		if (seen[idx])
			continue;
		seen[idx] = true;
		if (elems_dump(a->table, b->vs->name, idx, resync_cb, b) < 0)
			return false;
	}
	batch_send(a, b);
	return true;
}

static void
batch_done(int err, const char *msg, void *arg)
{
	struct abatch *b = arg;
	struct admit *a = b->a;

	a->inflight--;
	if (err == ENOENT && deladd_retry(a, b))
		return;
	/* A change to the table committed after ours may already be queued:
	 * read it before releasing any answer on the strength of this ACK. */
	if (err == 0 && a->mon != NULL)
		nft_mon_dispatch(a->mon);
	if (err == 0 && a->broken != NULL) {
		err = EAGAIN;
		msg = a->broken;
	}
	for (size_t i = 0; i < b->nt; i++) {
		struct entry *e = b->t[i].e;

		if (err == 0 && b->t[i].value > e->committed)
			e->committed = b->t[i].value;
		if (e->pending == b) {
			e->pending = NULL;
			/* The transaction was aborted whole: the kernel
			 * holds what it held before. */
			if (err != 0)
				e->expiry = e->committed;
		}
	}
	if (err != 0) {
		a->st.failures++;
		log_warnx("VM %s: admitting addresses failed: %s", b->vs->name,
			msg);
	}
	for (size_t i = 0; i < b->nw; i++)
		req_finish_one(b->w[i], err, msg);
	batch_free(b);
}

static void
flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct admit *a = arg;

	(void)fd;
	(void)ev;
	while (a->open != NULL) {
		struct vmset *vs = a->open;
		struct abatch *b = vs->open;

		a->open = vs->next_open;
		vs->next_open = NULL;
		vs->open = NULL;
		batch_send(a, b);
	}
}

/* ---- shadow maintenance ------------------------------------------------- */

static bool
pred_expired(struct entry *e, void *arg)
{
	return e->pending == NULL && e->expiry < *(uint64_t *)arg;
}

void
admit_sweep(struct admit *a)
{
	uint64_t now = util_now_ms();

	entries_drop(a, pred_expired, &now);
}

/* Does vm (NULL: a VM that went) still have the set of e? */
static bool
set_kept(const struct vm *vm, const struct entry *e)
{
	return vm != NULL &&
		elems_vm_has_set(vm->atoms, vm->natoms, elem_set_index(&e->k));
}

static bool
pred_vm_gone(struct entry *e, void *arg)
{
	const struct config *c = arg;

	return e->pending == NULL && config_vm(c, e->vs->name) == NULL;
}

void
admit_retain(struct admit *a, const struct config *c)
{
	/* A VM that went took its elements. (Those of a ranges set that
	 * went are the reload's plan's, which holds them until it is done:
	 * plan_gone.) Entries waiting on a batch stay until it completes;
	 * the sweep takes them then (their sets are gone from the kernel). */
	entries_drop(a, pred_vm_gone, (void *)c);
}

/* ---- adoption: the shadow from the kernel ---------------------------------- */

struct adopt {
	struct admit *a;
	struct vmset *vs;
	uint64_t now;
	size_t n;
};

static void
adopt_cb(const struct elem_key *k, uint64_t left_ms, const char *comment,
	void *arg)
{
	struct adopt *ad = arg;
	struct entry *e = entry_get(ad->a, ad->vs, k, true);
	char norm[NAME_MAX_LEN + 1];

	if (left_ms == ELEMS_FOREVER) {
		/* No answer of ours ever made one that never expires: the
		 * start-up prune removes it. */
		e->forever = true;
		e->committed = e->expiry = ELEMS_FOREVER;
		ad->n++;
		return;
	}
	e->committed = e->expiry = ad->now + left_ms;
	if (comment && policy_normalise_name(comment, norm, sizeof(norm)) == 0)
		entry_name(ad->a, e, norm, NULL);
	ad->n++;
}

int
admit_adopt(struct admit *a, const struct config *c,
	bool (*set_exists)(const char *set, void *arg), void *arg)
{
	struct adopt ad = {.a = a, .now = util_now_ms()};
	char sn[SET_NAME_MAX];

	names_limit(a, c);
	for (size_t i = 0; i < c->nvms; i++) {
		ad.vs = vmset_get(a, c->vms[i].name, true);
		for (int k = 0; k < SET_COUNT; k++)
			if (set_exists(elems_set_name(sn, sizeof(sn),
					       c->vms[i].name, k),
				    arg) &&
				elems_dump(a->table, c->vms[i].name, k,
					adopt_cb, &ad) < 0 &&
				errno != ENOENT) {
				log_warn("reading set %d of VM %s", k,
					c->vms[i].name);
				return -1;
			}
	}
	if (ad.n > 0)
		log_info("adopted %zu elements from table inet %s", ad.n,
			a->table);
	return 0;
}

/* ---- plans: changes to the shadow that ride a ruleset transaction ------ */

struct plan_set {
	struct entry *e;
	uint64_t value;
};

struct admit_plan {
	const struct config *conf; /* admit_prune: the new configuration */
	struct entry **del;	   /* leave the shadow on success */
	size_t ndel;
	struct plan_set *set; /* committed on success */
	size_t nset;
	bool restore;
	uint64_t damage; /* a restore repairs what was seen until then */
};

static void
plan_del(struct admit_plan *p, struct elems_msgs *m, struct entry *e)
{
	elems_msgs_del(m, e->vs->name, &e->k);
	p->del = xreallocarray(p->del, p->ndel + 1, sizeof(*p->del));
	p->del[p->ndel++] = e;
}

/* e goes with its set, which the same transaction deletes: no message
 * of its own (one naming a set deleted before it would fail the whole
 * transaction), but a deletion all the same. */
static void
plan_gone(struct admit_plan *p, struct entry *e)
{
	p->del = xreallocarray(p->del, p->ndel + 1, sizeof(*p->del));
	p->del[p->ndel++] = e;
}

static void
plan_add(struct admit_plan *p, struct elems_msgs *m, struct entry *e,
	uint64_t value, uint64_t now)
{
	elems_msgs_add(m, e->vs->name, &e->k, value - now,
		e->nnames > 0 ? e->names[e->nnames - 1] : NULL);
	p->set = xreallocarray(p->set, p->nset + 1, sizeof(*p->set));
	p->set[p->nset].e = e;
	p->set[p->nset++].value = value;
}

static bool
ports_admit(const struct ports *ps, const struct elem_key *k)
{
	if (ps->any)
		return true;
	if (!elems_has_ports(k))
		return false;
	if (elems_is_echo(k))
		return ps->icmp;
	for (size_t j = 0; j < ps->n; j++)
		if (ps->v[j].proto == k->proto && ps->v[j].lo <= k->lo &&
			k->hi <= ps->v[j].hi)
			return true;
	return false;
}

enum names_verdict {
	NAMES_UNKNOWN, /* none recorded, or more than we keep */
	NAMES_NONE,    /* none of them is allowed any more */
	NAMES_SOME,
};

/* The ports the VM's new rules give the names that admitted e, for an
 * address of class cl (a private one: only the rules that say
 * allow-private): their union, in out (released by the caller). */
static enum names_verdict
names_ports(const struct vm *vm, const struct entry *e, enum addr_class cl,
	struct ports *out)
{
	enum names_verdict nv = NAMES_NONE;

	memset(out, 0, sizeof(*out));
	if (e->names_over || e->nnames == 0)
		return NAMES_UNKNOWN;
	for (int i = 0; i < e->nnames; i++) {
		struct verdict v;
		const struct ports *ps;

		policy_decide(vm, e->names[i], util_wall_s(), &v);
		ps = policy_verdict_ports(&v, cl);
		if (v.allowed && ps != NULL) {
			nv = NAMES_SOME;
			policy_ports_union(out, ps);
		}
		verdict_finish(&v);
	}
	return nv;
}

static bool
is_atom(const struct vm *vm, const struct elem_key *k)
{
	if (!elems_key_canonical(k))
		return false;
	for (size_t i = 0; i < vm->natoms; i++)
		if (vm->atoms[i].proto == k->proto &&
			vm->atoms[i].lo == k->lo && vm->atoms[i].hi == k->hi)
			return true;
	return false;
}

/* A port element cut for the old rules overlaps the new cut (tcp/443
 * became tcp/443-444): replace it with the new atoms that cover it and
 * that the names still have, for the time it had left. */
static void
recut(struct admit *a, struct admit_plan *p, struct elems_msgs *m,
	const struct vm *vm, struct entry *e, const struct ports *ps,
	uint64_t now)
{
	struct elem_key k = e->k;

	for (size_t i = 0; i < vm->natoms; i++) {
		const struct portspec *at = &vm->atoms[i];
		struct entry *n;

		if (at->proto != e->k.proto || at->hi < e->k.lo ||
			at->lo > e->k.hi)
			continue;
		elems_port_key(&k, at->proto, at->lo, at->hi);
		if (!ports_admit(ps, &k))
			continue;
		n = entry_get(a, e->vs, &k, true);
		if (n->expiry >= e->expiry)
			continue;
		for (int j = 0; j < e->nnames; j++)
			entry_name(a, n, e->names[j], vm);
		n->names_over |= e->names_over;
		n->expiry = e->expiry;
		plan_add(p, m, n, e->expiry, now);
	}
}

/* Names unknown (an element someone else added) or too many to judge one
 * by one: the rules that admitted it decide, if they are known and the
 * VM's deny rules did not change (a name one of them matched still
 * matches it, and is still allowed); otherwise it is kept only if the
 * VM's rules did not change at all. At start-up (old NULL), never. */
static bool
rules_still(const struct vm *old, const struct vm *vm, struct entry *e)
{
	size_t kept = 0;

	if (old == NULL)
		return false;
	if (e->rules_over || e->nrules == 0 || !policy_vm_same_deny(old, vm))
		return policy_vm_same_rules(old, vm);
	for (int i = 0; i < e->nrules; i++) {
		bool found = false;

		for (size_t j = 0; j < vm->nallow && !found; j++)
			found = !vm->allow[j].is_net &&
				policy_rule_id(&vm->allow[j]) == e->rules[i];
		if (found)
			e->rules[kept++] = e->rules[i];
	}
	e->nrules = (uint8_t)kept;
	/* A port piece the new rules cut differently cannot be judged by
	 * rules alone: it goes (the next answer adds the new pieces). */
	return kept > 0 &&
		(!elems_has_ports(&e->k) || elems_is_echo(&e->k) ||
			is_atom(vm, &e->k));
}

/* What the new rules make of one element: kept, replaced, or deleted. */
static void
prune_one(struct admit *a, struct admit_plan *p, struct elems_msgs *m,
	const struct vm *old, const struct vm *vm, struct entry *e,
	uint64_t now)
{
	struct ports ps;
	struct ipaddr ad;
	enum addr_class cl;
	enum names_verdict nv;
	bool atom;

	key_ipaddr(&e->k, &ad);
	cl = config_addr_class(p->conf, &ad);
	nv = names_ports(vm, e, cl, &ps);
	if (e->forever) {
		/* Gone with its set, or deleted by itself. */
		if (set_kept(vm, e))
			plan_del(p, m, e);
		else
			plan_gone(p, e);
		goto out;
	}
	/* (One about to expire is left to the sweep, which may take it
	 * before this plan is done: it is never in the plan.) */
	if (e->pending != NULL || e->expiry < now + SOON_MS)
		goto out;
	if (!set_kept(vm, e)) {
		/* A range whose set goes with the VM's last range rule:
		 * the single ports it still has move to the hash. */
		plan_gone(p, e);
		if (nv == NAMES_SOME && cl != ADDR_RESERVED &&
			cl != ADDR_INTERNAL)
			recut(a, p, m, vm, e, &ps, now);
		goto out;
	}
	/* No name admits it any more, whatever admitted it: an address
	 * that became a VM's, or one reserved all along (added by hand). */
	if (cl == ADDR_RESERVED || cl == ADDR_INTERNAL) {
		plan_del(p, m, e);
		goto out;
	}
	if (nv == NAMES_UNKNOWN) {
		if (!rules_still(old, vm, e))
			plan_del(p, m, e);
		goto out;
	}
	atom = !elems_has_ports(&e->k) || elems_is_echo(&e->k) ||
		is_atom(vm, &e->k);
	if (nv == NAMES_NONE || !atom || !ports_admit(&ps, &e->k))
		plan_del(p, m, e);
	if (nv == NAMES_SOME && !atom)
		recut(a, p, m, vm, e, &ps, now);
	if (nv == NAMES_SOME) {
		/* The rules that admit it now. */
		entry_forget_rules(e);
		for (int i = 0; i < e->nnames; i++)
			entry_rules_of(e, vm, e->names[i]);
	}
out:
	policy_ports_finish(&ps);
}

struct admit_plan *
admit_prune(struct admit *a, const struct config *old, const struct config *c,
	struct nft_batch *b)
{
	struct admit_plan *p = xcalloc(1, sizeof(*p));
	struct elems_msgs *m = elems_msgs_new(a->table);
	uint64_t now = util_now_ms();
	size_t n = 0;
	struct entry **all = xcalloc(a->nentries + 1, sizeof(*all));

	p->conf = c;
	names_limit(a, c);
	/* Each VM looked up once, not once per element: with thousands
	 * of VMs a walk over them per element would cost more than the
	 * prune itself. */
	for (size_t b2 = 0; b2 < a->nvmsets_slots; b2++)
		for (struct vmset *vs = a->vmsets[b2]; vs; vs = vs->next)
			vs->prune_vm = vs->prune_old = NULL;
	for (size_t v = 0; v < c->nvms; v++) {
		struct vmset *vs = vmset_get(a, c->vms[v].name, false);

		if (vs != NULL)
			vs->prune_vm = &c->vms[v];
	}
	for (size_t v = 0; old != NULL && v < old->nvms; v++) {
		struct vmset *vs = vmset_get(a, old->vms[v].name, false);

		if (vs != NULL)
			vs->prune_old = &old->vms[v];
	}
	/* A snapshot first: recut() adds entries while we walk. */
	for (size_t bk = 0; bk < a->ntab; bk++)
		for (struct entry *e = a->tab[bk]; e; e = e->next)
			all[n++] = e;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = all[i];

		/* A VM that goes takes its sets with it. */
		if (e->vs->prune_vm != NULL)
			prune_one(a, p, m, e->vs->prune_old, e->vs->prune_vm, e,
				now);
	}
	free(all);
	elems_msgs_emit(m, b);
	return p;
}

static bool
pred_zero(struct entry *e, void *arg)
{
	(void)arg;
	return e->pending == NULL && e->expiry == 0;
}

size_t
admit_plan_deletes(const struct admit_plan *p, const char *vm)
{
	size_t n = 0;

	for (size_t i = 0; p != NULL && i < p->ndel; i++)
		n += strcmp(p->del[i]->vs->name, vm) == 0;
	return n;
}

void
admit_plan_done(struct admit *a, struct admit_plan *p, bool ok)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nset; i++) {
		struct entry *e = p->set[i].e;

		if (ok && p->set[i].value > e->committed)
			e->committed = p->set[i].value;
		/* A failed restore keeps what the VMs were promised: the
		 * next attempt puts it back. */
		if (!ok && !p->restore)
			e->expiry = e->committed;
	}
	/* Forgotten: the next answer that needs one adds it again. */
	for (size_t i = 0; ok && i < p->ndel; i++)
		p->del[i]->expiry = p->del[i]->committed = 0;
	if (ok && p->restore && p->damage == a->damage) {
		free(a->broken);
		a->broken = NULL;
	}
	entries_drop(a, pred_zero, NULL);
	free(p->del);
	free(p->set);
	free(p);
}

/* ---- damage: our table changed behind our back --------------------------- */

void
admit_broken(struct admit *a, const char *why)
{
	a->damage++;
	if (a->broken == NULL)
		a->broken =
			xasprintf("table inet %s changed behind dnsfenced's "
				  "back (%s): being reinstalled",
				a->table, why);
}

bool
admit_is_broken(const struct admit *a)
{
	return a->broken != NULL;
}

struct restore {
	struct admit *a;
	struct vmset *vs;
	uint64_t now;
};

static void
restore_cb(const struct elem_key *k, uint64_t left_ms, const char *comment,
	void *arg)
{
	struct restore *r = arg;
	struct entry *e = entry_get(r->a, r->vs, k, false);
	char norm[NAME_MAX_LEN + 1];

	if (left_ms == ELEMS_FOREVER) {
		/* Never expires: no answer vouches for that; it goes (and
		 * an element of ours under it comes back, see below). */
		if (e == NULL)
			e = entry_get(r->a, r->vs, k, true);
		e->forever = true;
		e->committed = 0;
		return;
	}
	if (e == NULL) {
		/* Someone else's element, with a timeout: the shadow tells
		 * the truth about the kernel, so it is known from now on,
		 * and goes at its end (or with the next reload that changes
		 * the VM's rules: no name vouches for it). */
		e = entry_get(r->a, r->vs, k, true);
		e->expiry = r->now + left_ms;
		if (comment &&
			policy_normalise_name(comment, norm, sizeof(norm)) == 0)
			entry_name(r->a, e, norm, NULL);
	}
	e->committed = r->now + left_ms;
}

/* The kernel's elements of one VM, after someone else's change: each
 * entry's committed time becomes the kernel's (0 when it is gone). */
static int
restore_read(struct admit *a, struct vmset *vs, const bool *have_set,
	uint64_t now)
{
	struct restore r = {.a = a, .vs = vs, .now = now};

	for (size_t bk = 0; bk < a->ntab; bk++)
		for (struct entry *e = a->tab[bk]; e; e = e->next)
			if (e->vs == vs)
				e->committed = 0;
	for (int k = 0; k < SET_COUNT; k++)
		if (have_set[k] &&
			elems_dump(a->table, vs->name, k, restore_cb, &r) < 0 &&
			errno != ENOENT)
			return -1;
	return 0;
}

struct admit_plan *
admit_restore(struct admit *a, const struct config *c,
	bool (*set_exists)(const char *set, void *arg), void *arg,
	struct nft_batch *b)
{
	struct admit_plan *p = xcalloc(1, sizeof(*p));
	struct elems_msgs *m = elems_msgs_new(a->table);
	uint64_t now = util_now_ms();

	p->restore = true;
	p->damage = a->damage;
	names_limit(a, c);
	for (size_t v = 0; v < c->nvms; v++) {
		struct vmset *vs = vmset_get(a, c->vms[v].name, true);
		bool have[SET_COUNT];
		char sn[SET_NAME_MAX];

		for (int k = 0; k < SET_COUNT; k++)
			have[k] = set_exists(elems_set_name(sn, sizeof(sn),
						     vs->name, k),
				arg);
		if (restore_read(a, vs, have, now) < 0) {
			log_warn("reading the sets of VM %s", vs->name);
			elems_msgs_emit(m, b);
			admit_plan_done(a, p, false);
			return NULL;
		}
	}
	/* Every element the shadow says is live goes back for the time it
	 * has left, unless the kernel holds it that long already. One the
	 * kernel holds without a timeout goes first. */
	for (size_t bk = 0; bk < a->ntab; bk++) {
		for (struct entry *e = a->tab[bk]; e; e = e->next) {
			bool ours = e->expiry != ELEMS_FOREVER;

			if (e->forever) {
				e->forever = false;
				if (!ours || e->expiry < now + SOON_MS) {
					plan_del(p, m, e);
					continue;
				}
				elems_msgs_del(m, e->vs->name, &e->k);
			} else if (e->expiry < now + SOON_MS ||
				e->committed + 1000 >= e->expiry) {
				continue;
			} else if (needs_delete(a, e, now)) {
				elems_msgs_del(m, e->vs->name, &e->k);
			}
			plan_add(p, m, e, e->expiry, now);
		}
	}
	elems_msgs_emit(m, b);
	return p;
}

/* ---- inspection ------------------------------------------------------------ */

void
admit_foreach(const struct admit *a, const char *vm, admit_elem_cb cb,
	void *arg)
{
	uint64_t now = util_now_ms();

	for (size_t bk = 0; bk < a->ntab; bk++) {
		for (const struct entry *e = a->tab[bk]; e; e = e->next) {
			struct admit_elem ae;

			if (e->committed <= now ||
				(vm != NULL && strcmp(e->vs->name, vm) != 0))
				continue;
			ae = (struct admit_elem){
				.vm = e->vs->name,
				.k = &e->k,
				.left_ms = e->committed == ELEMS_FOREVER
					? ELEMS_FOREVER
					: e->committed - now,
				.names = e->names,
				.nnames = e->nnames,
				.names_over = e->names_over,
				.rules = e->rules,
				.nrules = e->nrules,
			};
			cb(&ae, arg);
		}
	}
}

static void
count_cb(const struct admit_elem *e, void *arg)
{
	(void)e;
	(*(size_t *)arg)++;
}

size_t
admit_count(const struct admit *a, const char *vm)
{
	size_t n = 0;

	if (vmset_get((struct admit *)a, vm, false) == NULL)
		return 0;
	admit_foreach(a, vm, count_cb, &n);
	return n;
}

struct admit_plan *
admit_flush(struct admit *a, const char *vm, struct nft_batch *b, size_t *n)
{
	struct admit_plan *p = xcalloc(1, sizeof(*p));
	struct elems_msgs *m = elems_msgs_new(a->table);
	struct vmset *vs = vmset_get(a, vm, false);
	uint64_t now = util_now_ms();

	for (size_t bk = 0; vs != NULL && bk < a->ntab; bk++)
		for (struct entry *e = a->tab[bk]; e; e = e->next)
			if (e->vs == vs && e->committed >= now + SOON_MS)
				plan_del(p, m, e);
	*n = p->ndel;
	elems_msgs_emit(m, b);
	return p;
}
