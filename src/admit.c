#include "admit.h"

#include <errno.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "ruleset.h"

#define NBUCKETS 4096
#define MAX_NAMES 8 /* names remembered per element, for reloads */

/* One element of one VM set. */
struct ekey {
	uint8_t family, kind, proto;
	uint16_t lo, hi;
	uint8_t addr[16];
};

struct abatch;

struct entry {
	struct ekey k;
	uint64_t expiry;	 /* ms, monotonic: what we asked for */
	uint64_t committed;	 /* what the kernel has acknowledged */
	struct abatch *pending; /* the latest batch carrying it */
	char *names[MAX_NAMES];  /* that admitted it; NULL-terminated */
	bool many;		 /* more than MAX_NAMES: never pruned */
	struct entry *next;
};

/* The shadow of one VM's sets. */
struct vmset {
	char name[VM_NAME_MAX + 1];
	struct entry *buckets[NBUCKETS];
	size_t count[SET_KINDS * 2];
	struct vmset *next;
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
	struct vmset *vs;
	uint64_t value;
	bool extend; /* already in the kernel: delete + add on old kernels */
	char name[NAME_MAX_LEN + 1];
};

struct abatch {
	struct admit *a;
	struct touch *t;
	size_t nt;
	struct admit_req **w;
	size_t nw;
	bool retried;
};

struct admit {
	struct nft *nft;
	struct event_base *base;
	struct event *flush_ev;
	char table[TABLE_NAME_MAX];
	struct vmset *vms;
	struct abatch *open; /* collecting this loop iteration */
	bool deladd;	     /* kernel ignores timeout on re-add */
	struct admit_stats st;
	uint32_t set_size;
};

static uint32_t
ekey_hash(const struct ekey *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static int
set_index(const struct ekey *k)
{
	return k->kind * 2 + (k->family == AF_INET6);
}

static struct vmset *
vmset_get(struct admit *a, const char *name, bool create)
{
	struct vmset *vs;

	for (vs = a->vms; vs; vs = vs->next)
		if (strcmp(vs->name, name) == 0)
			return vs;
	if (!create)
		return NULL;
	vs = xcalloc(1, sizeof(*vs));
	snprintf(vs->name, sizeof(vs->name), "%s", name);
	vs->next = a->vms;
	a->vms = vs;
	return vs;
}

static struct entry *
entry_get(struct vmset *vs, const struct ekey *k, bool create)
{
	uint32_t b = ekey_hash(k) % NBUCKETS;
	struct entry *e;

	for (e = vs->buckets[b]; e; e = e->next)
		if (memcmp(&e->k, k, sizeof(*k)) == 0)
			return e;
	if (!create)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->k = *k;
	e->next = vs->buckets[b];
	vs->buckets[b] = e;
	vs->count[set_index(k)]++;
	return e;
}

static void
entry_free(struct entry *e)
{
	for (int i = 0; i < MAX_NAMES && e->names[i]; i++)
		free(e->names[i]);
	free(e);
}

static void
entry_name(struct entry *e, const char *name)
{
	int i;

	for (i = 0; i < MAX_NAMES && e->names[i]; i++)
		if (strcmp(e->names[i], name) == 0)
			return;
	if (i == MAX_NAMES)
		e->many = true;
	else
		e->names[i] = xstrdup(name);
}

static void
vmset_free(struct vmset *vs)
{
	for (size_t b = 0; b < NBUCKETS; b++) {
		while (vs->buckets[b]) {
			struct entry *e = vs->buckets[b];

			vs->buckets[b] = e->next;
			entry_free(e);
		}
	}
	free(vs);
}

static void flush_cb(evutil_socket_t fd, short ev, void *arg);

struct admit *
admit_new(struct nft *n, struct event_base *base, const char *table)
{
	struct admit *a = xcalloc(1, sizeof(*a));

	a->nft = n;
	a->base = base;
	snprintf(a->table, sizeof(a->table), "%s", table);
	a->flush_ev = event_new(base, -1, 0, flush_cb, a);
	return a;
}

void
admit_free(struct admit *a)
{
	if (a == NULL)
		return;
	while (a->vms) {
		struct vmset *vs = a->vms;

		a->vms = vs->next;
		vmset_free(vs);
	}
	event_free(a->flush_ev);
	free(a);
}

const struct admit_stats *
admit_stats(const struct admit *a)
{
	return &a->st;
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
open_batch(struct admit *a)
{
	if (a->open == NULL) {
		a->open = xcalloc(1, sizeof(*a->open));
		a->open->a = a;
		/* Run once this loop iteration's callbacks are done, so
		 * every answer completing now shares one batch. */
		event_active(a->flush_ev, 0, 0);
	}
	return a->open;
}

static void
touch(struct abatch *b, struct vmset *vs, struct entry *e, uint64_t value,
	bool extend, const char *name)
{
	struct touch *t;

	b->t = xreallocarray(b->t, b->nt + 1, sizeof(*b->t));
	t = &b->t[b->nt++];
	memset(t, 0, sizeof(*t));
	t->e = e;
	t->vs = vs;
	t->value = value;
	t->extend = extend;
	snprintf(t->name, sizeof(t->name), "%s", name);
	e->expiry = value;
	e->pending = b;
	entry_name(e, name);
}

/* The elements one address needs for the given ports; out has room for
 * vm->natoms + 1 (the atoms, and icmp). */
static size_t
keys_for(const struct vm *vm, const struct ipaddr *ad,
	const struct ports *ps, struct portspec *atoms, struct ekey *out)
{
	struct ekey k = {.family = (uint8_t)ad->family};
	size_t n = 0, na;

	memcpy(k.addr, ad->b, ad->family == AF_INET ? 4 : 16);
	if (ps->any) {
		k.kind = SET_ANY;
		out[n++] = k;
		return n;
	}
	if (ps->icmp) {
		k.kind = SET_ICMP;
		out[n++] = k;
	}
	na = policy_atoms_for(vm, ps, atoms, vm->natoms);
	for (size_t i = 0; i < na; i++) {
		k.kind = SET_PORTS;
		k.proto = atoms[i].proto;
		k.lo = atoms[i].lo;
		k.hi = atoms[i].hi;
		out[n++] = k;
	}
	return n;
}

void
admit_request(struct admit *a, const struct config *c, const struct vm *vm,
	const char *name, const struct dns_addr *addrs, size_t naddrs,
	const struct ports *ports, uint32_t timeout_s, admit_done_cb cb,
	void *arg)
{
	struct admit_req *r = xcalloc(1, sizeof(*r));
	struct vmset *vs = vmset_get(a, vm->name, true);
	uint64_t now = util_now_ms(), need = now + (uint64_t)timeout_s * 1000;
	/* Every element, however many port ranges the policy has: a VM must
	 * never be handed an address with one of its elements missing. */
	struct portspec *atoms = xcalloc(vm->natoms + 1, sizeof(*atoms));
	struct ekey *keys = xcalloc(vm->natoms + 2, sizeof(*keys));

	a->st.requests++;
	a->set_size = c->limits.set_size;
	r->cb = cb;
	r->arg = arg;
	r->nwait = 1; /* held until the loop below is done */
	/* First check room in every set this answer would grow, so that a
	 * refused answer admits nothing at all. */
	size_t grow[SET_KINDS * 2] = {0};
	for (size_t i = 0; i < naddrs; i++) {
		size_t nk = keys_for(vm, &addrs[i].a, ports, atoms, keys);

		for (size_t j = 0; j < nk; j++)
			if (entry_get(vs, &keys[j], false) == NULL)
				grow[set_index(&keys[j])]++;
	}
	for (int s = 0; s < SET_KINDS * 2; s++) {
		if (grow[s] > 0 && vs->count[s] + grow[s] > c->limits.set_size) {
			a->st.full++;
			r->err = ENFILE;
			snprintf(r->msg, sizeof(r->msg), "a set of VM %s is full "
				"(limits: set-size %u)", vm->name,
				c->limits.set_size);
			req_finish_one(r, 0, "");
			free(atoms);
			free(keys);
			return;
		}
	}
	for (size_t i = 0; i < naddrs; i++) {
		size_t nk = keys_for(vm, &addrs[i].a, ports, atoms, keys);

		for (size_t j = 0; j < nk; j++) {
			struct entry *e = entry_get(vs, &keys[j], false);

			if (e != NULL && e->expiry >= need) {
				/* Long enough already; if the batch that
				 * made it so is not ACKed yet, wait for it:
				 * never release an answer early. */
				if (e->pending != NULL)
					batch_wait(e->pending, r);
				entry_name(e, name);
				continue;
			}
			if (e == NULL)
				e = entry_get(vs, &keys[j], true);
			/* One second more than needed: cached answers count
			 * their TTL down in whole seconds, in step with the
			 * clock, so later hits for the same answer find the
			 * element long enough and cost no netlink round trip. */
			touch(open_batch(a), vs, e, need + 1000,
				e->committed > now + 500, name);
			batch_wait(a->open, r);
		}
	}
	if (r->nwait == 1 && r->err == 0)
		a->st.noop++;
	free(atoms);
	free(keys);
	req_finish_one(r, 0, "");
}

/* ---- batches ------------------------------------------------------------- */

static void
elem_key(struct nftnl_set_elem *el, const struct ekey *k, bool end)
{
	uint8_t buf[24] = {0};
	size_t alen = k->family == AF_INET ? 4 : 16;
	uint16_t port = end ? k->hi : k->lo;

	memcpy(buf, k->addr, alen);
	if (k->kind != SET_PORTS) {
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, buf, (uint32_t)alen);
		return;
	}
	/* addr . inet_proto . inet_service, each padded to 32 bits */
	buf[alen] = k->proto;
	buf[alen + 4] = (uint8_t)(port >> 8);
	buf[alen + 5] = (uint8_t)port;
	nftnl_set_elem_set(el, end ? NFTNL_SET_ELEM_KEY_END : NFTNL_SET_ELEM_KEY,
		buf, (uint32_t)alen + 8);
}

static struct nftnl_set *
set_for(struct nftnl_set **sets, size_t *nsets, const char *table,
	const char *name)
{
	for (size_t i = 0; i < *nsets; i++)
		if (strcmp(nftnl_set_get_str(sets[i], NFTNL_SET_NAME), name) == 0)
			return sets[i];
	sets[*nsets] = nftnl_set_alloc();
	nftnl_set_set_str(sets[*nsets], NFTNL_SET_TABLE, table);
	nftnl_set_set_str(sets[*nsets], NFTNL_SET_NAME, name);
	nftnl_set_set_u32(sets[*nsets], NFTNL_SET_FAMILY, NFPROTO_INET);
	return sets[(*nsets)++];
}

static void
add_msgs(struct nft_batch *nb, struct nftnl_set **sets, size_t nsets,
	uint16_t type)
{
	for (size_t i = 0; i < nsets; i++) {
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(
			sets[i]);
		char what[128];
		int more = 1;

		snprintf(what, sizeof(what), "%s set %s",
			type == NFT_MSG_NEWSETELEM ? "elements of"
						   : "old elements of",
			nftnl_set_get_str(sets[i], NFTNL_SET_NAME));
		while (nftnl_set_elems_iter_cur(it) != NULL && more > 0) {
			struct nlmsghdr *nlh = nft_batch_msg(nb, type,
				NFPROTO_INET, type == NFT_MSG_NEWSETELEM
						      ? NLM_F_CREATE : 0,
				70000, what);

			more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);
		}
		nftnl_set_elems_iter_destroy(it);
		nftnl_set_free(sets[i]);
	}
}

static void batch_done(int err, const char *msg, void *arg);

static void
batch_send(struct admit *a, struct abatch *b)
{
	struct nftnl_set **add = xcalloc(b->nt + 1, sizeof(*add));
	struct nftnl_set **del = xcalloc(b->nt + 1, sizeof(*del));
	size_t nadd = 0, ndel = 0;
	struct nft_batch *nb = nft_batch_new(a->nft);
	uint64_t now = util_now_ms();

	for (size_t i = 0; i < b->nt; i++) {
		const struct touch *t = &b->t[i];
		char sn[SET_NAME_MAX];
		struct nftnl_set_elem *el;
		struct nftnl_udata_buf *ud;
		uint64_t left = t->value > now ? t->value - now : 1000;

		ruleset_set_name(sn, sizeof(sn), t->vs->name,
			(enum set_kind)t->e->k.kind, t->e->k.family);
		if (a->deladd && t->extend && !b->retried) {
			el = nftnl_set_elem_alloc();
			elem_key(el, &t->e->k, false);
			if (t->e->k.kind == SET_PORTS)
				elem_key(el, &t->e->k, true);
			nftnl_set_elem_add(set_for(del, &ndel, a->table, sn), el);
		}
		el = nftnl_set_elem_alloc();
		elem_key(el, &t->e->k, false);
		if (t->e->k.kind == SET_PORTS)
			elem_key(el, &t->e->k, true);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, left);
		/* The kernel refreshes an existing element only when the
		 * timeout differs or an expiration is given: give it. */
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, left);
		/* The name that admitted it, for whoever reads the set. */
		ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
		nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_ELEM_COMMENT, t->name);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_USERDATA,
			nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
		nftnl_udata_buf_free(ud);
		nftnl_set_elem_add(set_for(add, &nadd, a->table, sn), el);
	}
	/* Old kernels ignore the timeout of a re-added element: delete and
	 * add in the same transaction, so the element is never missing. */
	add_msgs(nb, del, ndel, NFT_MSG_DELSETELEM);
	add_msgs(nb, add, nadd, NFT_MSG_NEWSETELEM);
	free(add);
	free(del);
	a->st.batches++;
	a->st.elements += b->nt;
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
batch_done(int err, const char *msg, void *arg)
{
	struct abatch *b = arg;
	struct admit *a = b->a;

	/* An element that expired between our look and the delete makes
	 * the delete fail: add it again, without deletes. */
	if (err == ENOENT && a->deladd && !b->retried) {
		b->retried = true;
		batch_send(a, b);
		return;
	}
	for (size_t i = 0; i < b->nt; i++) {
		struct entry *e = b->t[i].e;

		if (err == 0) {
			if (b->t[i].value > e->committed)
				e->committed = b->t[i].value;
		}
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
		log_warnx("admitting addresses failed: %s", msg);
	}
	for (size_t i = 0; i < b->nw; i++)
		req_finish_one(b->w[i], err, msg);
	batch_free(b);
}

static void
flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct admit *a = arg;
	struct abatch *b = a->open;

	a->open = NULL;
	if (b != NULL)
		batch_send(a, b);
}

/* ---- shadow maintenance ------------------------------------------------- */

void
admit_sweep(struct admit *a)
{
	uint64_t now = util_now_ms();

	for (struct vmset *vs = a->vms; vs; vs = vs->next) {
		for (size_t b = 0; b < NBUCKETS; b++) {
			struct entry **pp = &vs->buckets[b];

			while (*pp) {
				struct entry *e = *pp;

				if (e->pending == NULL && e->expiry < now) {
					*pp = e->next;
					vs->count[set_index(&e->k)]--;
					entry_free(e);
				} else {
					pp = &e->next;
				}
			}
		}
	}
}

void
admit_retain(struct admit *a, const struct config *c)
{
	struct vmset **pp = &a->vms;

	while (*pp) {
		struct vmset *vs = *pp;
		bool keep = false;

		for (size_t i = 0; i < c->nvms && !keep; i++)
			keep = strcmp(c->vms[i].name, vs->name) == 0;
		/* Entries waiting on a batch stay until it completes. */
		for (size_t b = 0; !keep && b < NBUCKETS; b++)
			for (struct entry *e = vs->buckets[b]; e && !keep;
			     e = e->next)
				keep = e->pending != NULL;
		if (keep) {
			pp = &vs->next;
			continue;
		}
		*pp = vs->next;
		vmset_free(vs);
	}
}

static int
comment_cb(const struct nftnl_udata *attr, void *data)
{
	const char **out = data;

	if (nftnl_udata_type(attr) == NFTNL_UDATA_SET_ELEM_COMMENT &&
	    nftnl_udata_len(attr) > 0 &&
	    ((const char *)nftnl_udata_get(attr))[nftnl_udata_len(attr) - 1] ==
		    '\0')
		*out = nftnl_udata_get(attr);
	return 0;
}

/* The name in the element's comment, if we wrote one. */
static void
adopt_name(struct entry *e, struct nftnl_set_elem *el)
{
	const char *name = NULL;
	char norm[NAME_MAX_LEN + 1];
	uint32_t len;
	const void *ud = nftnl_set_elem_get(el, NFTNL_SET_ELEM_USERDATA, &len);

	if (ud == NULL)
		return;
	nftnl_udata_parse(ud, len, comment_cb, &name);
	if (name && policy_normalise_name(name, norm, sizeof(norm)) == 0)
		entry_name(e, norm);
}

static void
adopt_set(struct admit *a, struct vmset *vs, enum set_kind kind, int family)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *el;
	char sn[SET_NAME_MAX];
	uint64_t now = util_now_ms();
	size_t alen = family == AF_INET ? 4 : 16;

	nftnl_set_set_str(s, NFTNL_SET_TABLE, a->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME,
		ruleset_set_name(sn, sizeof(sn), vs->name, kind, family));
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (nft_dump_elems(s) < 0) {
		nftnl_set_free(s);
		return;
	}
	it = nftnl_set_elems_iter_create(s);
	while ((el = nftnl_set_elems_iter_next(it)) != NULL) {
		struct ekey k = {.family = (uint8_t)family, .kind = kind};
		uint32_t klen = 0, elen = 0;
		const uint8_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY,
			&klen);
		struct entry *e;

		if (key == NULL || klen < alen ||
		    !nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_EXPIRATION))
			continue;
		memcpy(k.addr, key, alen);
		if (kind == SET_PORTS) {
			const uint8_t *end = nftnl_set_elem_get(el,
				NFTNL_SET_ELEM_KEY_END, &elen);

			if (klen != alen + 8 || end == NULL || elen != klen)
				continue;
			k.proto = key[alen];
			k.lo = (uint16_t)(key[alen + 4] << 8 | key[alen + 5]);
			k.hi = (uint16_t)(end[alen + 4] << 8 | end[alen + 5]);
		}
		e = entry_get(vs, &k, true);
		e->committed = e->expiry = now +
			nftnl_set_elem_get_u64(el, NFTNL_SET_ELEM_EXPIRATION);
		adopt_name(e, el);
	}
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
}

int
admit_adopt(struct admit *a, const struct config *c)
{
	for (size_t i = 0; i < c->nvms; i++) {
		struct vmset *vs = vmset_get(a, c->vms[i].name, true);

		for (int k = 0; k < SET_KINDS; k++) {
			adopt_set(a, vs, (enum set_kind)k, AF_INET);
			adopt_set(a, vs, (enum set_kind)k, AF_INET6);
		}
	}
	return 0;
}

/* ---- kernel feature probe ------------------------------------------------ */

static void
probe_done(int err, const char *msg, void *arg)
{
	*(int *)arg = err;
}

static int
probe_run(struct admit *a, const char *table, int step)
{
	struct nft_batch *nb = nft_batch_new(a->nft);
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elem *el;
	struct nlmsghdr *nlh;
	uint32_t key = htonl(0xC0000201);
	int rc = -1;

	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, "p");
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (step == 0) {
		struct nftnl_table *t = nftnl_table_alloc();

		nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
		nlh = nft_batch_msg(nb, NFT_MSG_NEWTABLE, NFPROTO_INET,
			NLM_F_CREATE, 512, "probe table");
		nftnl_table_nlmsg_build_payload(nlh, t);
		nftnl_table_free(t);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, 7);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
		nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
		nlh = nft_batch_msg(nb, NFT_MSG_NEWSET, NFPROTO_INET,
			NLM_F_CREATE, 1024, "probe set");
		nftnl_set_nlmsg_build_payload(nlh, s);
	}
	if (step <= 1) {
		el = nftnl_set_elem_alloc();
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, &key, 4);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT,
			step == 0 ? 10000 : 20000);
		nftnl_set_elem_add(s, el);
		nlh = nft_batch_msg(nb, NFT_MSG_NEWSETELEM, NFPROTO_INET,
			NLM_F_CREATE, 1024, "probe element");
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
	} else {
		struct nftnl_table *t = nftnl_table_alloc();

		nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
		nlh = nft_batch_msg(nb, NFT_MSG_DELTABLE, NFPROTO_INET, 0, 512,
			"probe table");
		nftnl_table_nlmsg_build_payload(nlh, t);
		nftnl_table_free(t);
	}
	nftnl_set_free(s);
	nft_batch_send(nb, probe_done, &rc);
	nft_wait(a->nft, 5000);
	return rc;
}

void
admit_probe(struct admit *a)
{
	char table[64];
	struct nftnl_set *s;
	const char *force = getenv("DNSFENCE_FORCE_DELADD");

	snprintf(table, sizeof(table), "%s-probe", a->table);
	if (force != NULL && strcmp(force, "1") == 0) {
		a->deladd = true;
		log_info("element timeouts: delete + add (forced)");
		return;
	}
	a->deladd = true; /* the safe choice if the probe fails */
	if (probe_run(a, table, 0) == 0 && probe_run(a, table, 1) == 0) {
		s = nftnl_set_alloc();
		nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
		nftnl_set_set_str(s, NFTNL_SET_NAME, "p");
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
		if (nft_dump_elems(s) == 0) {
			struct nftnl_set_elems_iter *it =
				nftnl_set_elems_iter_create(s);
			struct nftnl_set_elem *el = nftnl_set_elems_iter_next(it);

			if (el && nftnl_set_elem_get_u64(el,
					  NFTNL_SET_ELEM_TIMEOUT) == 20000)
				a->deladd = false;
			nftnl_set_elems_iter_destroy(it);
		}
		nftnl_set_free(s);
	}
	probe_run(a, table, 2);
	log_info("element timeouts: %s", a->deladd
		? "delete + add (this kernel keeps the old timeout on re-add)"
		: "updated in place on re-add");
}

/* ---- reload ---------------------------------------------------------------- */

struct admit_prune {
	struct entry **e;
	size_t n;
};

/* Does the new policy still admit this element for one of its names? */
static bool
still_admitted(const struct vm *vm, const struct entry *e)
{
	if (e->many || e->names[0] == NULL)
		return true;
	for (int i = 0; i < MAX_NAMES && e->names[i]; i++) {
		struct verdict v;
		bool keep = false;

		policy_decide(vm, e->names[i], &v);
		if (v.allowed && v.ports.any)
			keep = true;
		else if (v.allowed && e->k.kind == SET_ICMP)
			keep = v.ports.icmp;
		else if (v.allowed && e->k.kind == SET_PORTS)
			for (size_t j = 0; j < v.ports.n && !keep; j++)
				keep = v.ports.v[j].proto == e->k.proto &&
				       v.ports.v[j].lo <= e->k.lo &&
				       e->k.hi <= v.ports.v[j].hi;
		verdict_finish(&v);
		if (keep)
			return true;
	}
	return false;
}

struct admit_prune *
admit_prune(struct admit *a, const struct config *c, struct nft_batch *b)
{
	struct admit_prune *p = xcalloc(1, sizeof(*p));
	struct nftnl_set **del = NULL;
	size_t ndel = 0;
	uint64_t soon = util_now_ms() + 2000;

	for (size_t v = 0; v < c->nvms; v++) {
		struct vmset *vs = vmset_get(a, c->vms[v].name, false);

		for (size_t bk = 0; vs && bk < NBUCKETS; bk++) {
			for (struct entry *e = vs->buckets[bk]; e; e = e->next) {
				struct nftnl_set_elem *el;
				char sn[SET_NAME_MAX];

				/* One that may expire before the kernel sees
				 * the batch would fail it (ENOENT): it goes
				 * on its own within seconds anyway. */
				if (e->pending || e->committed < soon ||
				    still_admitted(&c->vms[v], e))
					continue;
				del = xreallocarray(del, ndel + 1, sizeof(*del));
				ruleset_set_name(sn, sizeof(sn), vs->name,
					(enum set_kind)e->k.kind, e->k.family);
				el = nftnl_set_elem_alloc();
				elem_key(el, &e->k, false);
				if (e->k.kind == SET_PORTS)
					elem_key(el, &e->k, true);
				nftnl_set_elem_add(set_for(del, &ndel, a->table,
							   sn), el);
				p->e = xreallocarray(p->e, p->n + 1,
					sizeof(*p->e));
				p->e[p->n++] = e;
			}
		}
	}
	add_msgs(b, del, ndel, NFT_MSG_DELSETELEM);
	free(del);
	return p;
}

void
admit_prune_done(struct admit *a, struct admit_prune *p, bool ok)
{
	if (p == NULL)
		return;
	for (size_t i = 0; ok && i < p->n; i++) {
		struct entry *e = p->e[i];

		/* Forget it: expiry 0 lets the next sweep remove it, and
		 * the next answer that needs it adds it again. */
		e->expiry = e->committed = 0;
	}
	free(p->e);
	free(p);
}
