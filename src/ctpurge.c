#include "ctpurge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "elems.h"
#include "judge.h"
#include "nft.h"
#include "privproto.h"
#include "util.h"

/* ---- which sources ----------------------------------------------------- */

static bool
vm_same(const struct vm *a, const struct vm *b)
{
	if (a->naddrs != b->naddrs ||
		(a->iface == NULL) != (b->iface == NULL) ||
		(a->iface != NULL && strcmp(a->iface, b->iface) != 0))
		return false;
	for (size_t i = 0; i < a->naddrs; i++)
		if (a->addrs[i].family != b->addrs[i].family ||
			memcmp(a->addrs[i].b, b->addrs[i].b, 16) != 0)
			return false;
	return policy_vm_same_rules(a, b);
}

static void
add_addrs(const struct vm *vm, struct ipaddr **out, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < vm->naddrs; i++) {
		if (*n == *cap) {
			*cap = *cap ? 2 * *cap : 16;
			*out = xreallocarray(*out, *cap, sizeof(**out));
		}
		(*out)[(*n)++] = vm->addrs[i];
	}
}

size_t
ctpurge_sources(const struct config *old, const struct config *new,
	struct ipaddr **out)
{
	size_t n = 0, cap = 0;

	*out = NULL;
	for (size_t i = 0; i < old->nvms; i++) {
		const struct vm *o = &old->vms[i], *w;

		w = config_vm(new, o->name);
		if (w == NULL || !vm_same(o, w))
			add_addrs(o, out, &n, &cap);
	}
	for (size_t i = 0; i < new->nvms; i++) {
		const struct vm *w = &new->vms[i], *o;

		o = config_vm(old, w->name);
		if (o == NULL || !vm_same(o, w))
			add_addrs(w, out, &n, &cap);
	}
	return n;
}

/* ---- reading the conntrack table ----------------------------------------- */

/* An entry to delete: its original tuple as the kernel gave it (the
 * nest's payload), its id (so that a new entry with the same tuple is
 * left alone) and zone. */
struct victim {
	int family;
	uint32_t id; /* network order, as received */
	uint16_t zone;
	bool has_zone;
	uint16_t len;
	unsigned char tuple[160];
};

/* Admitted elements, copied and sorted by VM and address: judging each
 * connection by a walk of the whole shadow made a purge cost (connections
 * judged) x (elements of every VM). A copy, not pointers into the shadow:
 * the one taken before a change outlives the shadow it was taken of. */
struct snap_elem {
	char vm[VM_NAME_MAX + 1];
	struct elem_key k;
	uint64_t left_ms;
};

struct snapshot {
	struct snap_elem *v;
	size_t n, cap;
};

static void
snap_add(const struct admit_elem *e, void *arg)
{
	struct snapshot *s = arg;
	struct snap_elem *x;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	x = &s->v[s->n++];
	memset(x, 0, sizeof(*x));
	snprintf(x->vm, sizeof(x->vm), "%s", e->vm);
	x->k = *e->k;
	x->left_ms = e->left_ms;
}

static int
snap_key_cmp(const char *vm, int family, const uint8_t *addr,
	const struct snap_elem *e)
{
	int c = strcmp(vm, e->vm);

	if (c != 0)
		return c;
	if (family != e->k.family)
		return family < e->k.family ? -1 : 1;
	return memcmp(addr, e->k.addr, family == AF_INET ? 4 : 16);
}

static int
snap_cmp(const void *a, const void *b)
{
	const struct snap_elem *x = a;

	return snap_key_cmp(x->vm, x->k.family, x->k.addr, b);
}

/* The elements of c's VMs that own one of srcs, as ad holds them now. */
static void
snap_take(struct snapshot *s, const struct config *c, const struct ipaddr *srcs,
	size_t nsrcs, const struct admit *ad)
{
	for (size_t i = 0; i < c->nvms; i++) {
		const struct vm *vm = &c->vms[i];
		bool mine = false;

		for (size_t j = 0; j < vm->naddrs && !mine; j++)
			for (size_t k = 0; k < nsrcs && !mine; k++)
				mine = policy_addr_cmp(&vm->addrs[j],
					       &srcs[k]) == 0;
		if (mine)
			admit_foreach(ad, vm->name, snap_add, s);
	}
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), snap_cmp);
}

/* judge_elems_fn: the elements of vm at dst, by binary search. */
static void
snap_elems(const void *src, const char *vm, const struct ipaddr *dst,
	admit_elem_cb cb, void *arg)
{
	const struct snapshot *s = src;
	uint8_t addr[16] = {0};
	size_t lo = 0, hi = s->n;

	memcpy(addr, dst->b, dst->family == AF_INET ? 4 : 16);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (snap_key_cmp(vm, dst->family, addr, &s->v[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < s->n && snap_key_cmp(vm, dst->family, addr, &s->v[lo]) == 0;
		lo++) {
		struct admit_elem e = {.vm = s->v[lo].vm,
			.k = &s->v[lo].k,
			.left_ms = s->v[lo].left_ms};

		cb(&e, arg);
	}
}

struct ctpurge_before {
	struct config *cf; /* a copy of the old configuration */
	struct snapshot snap;
	struct ipaddr *srcs;
	size_t nsrcs;
};

struct ctpurge_before *
ctpurge_before(const struct config *old, const struct config *new,
	const struct admit *ad)
{
	struct ctpurge_before *b = xcalloc(1, sizeof(*b));

	b->nsrcs = ctpurge_sources(old, new, &b->srcs);
	if (b->nsrcs == 0) {
		ctpurge_before_free(b);
		return NULL;
	}
	b->cf = config_at(old, 0);
	snap_take(&b->snap, old, b->srcs, b->nsrcs, ad);
	return b;
}

void
ctpurge_before_free(struct ctpurge_before *b)
{
	if (b == NULL)
		return;
	config_free(b->cf);
	free(b->snap.v);
	free(b->srcs);
	free(b);
}

struct purge {
	const struct ctpurge_before *before;
	const struct config *cf;
	const struct snapshot *snap;
	const struct ipaddr *local; /* this host's addresses */
	size_t nlocal;
	int family;
	struct victim *v;
	size_t n, cap;
	size_t over; /* no longer admitted, past this round's cap */
	bool first;  /* the first round: the one that counts */
	struct ctpurge_stats *st;
};

/* The parts of an original tuple the judgement needs. */
struct tuple {
	struct ipaddr src, dst;
	bool has_src, has_dst, has_proto, has_port;
	uint8_t proto;
	uint16_t sport, dport;
};

static int
attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	/* Every attribute type used here is below 32. */
	if (type >= 0 && type < 32)
		tb[type] = a;
	return MNL_CB_OK;
}

static bool
get_addr(const struct nlattr *a, int family, size_t len, struct ipaddr *out)
{
	if (a == NULL || mnl_attr_get_payload_len(a) != len)
		return false;
	memset(out, 0, sizeof(*out));
	out->family = family;
	memcpy(out->b, mnl_attr_get_payload(a), len);
	return true;
}

static void
parse_tuple(const struct nlattr *nest, struct tuple *t)
{
	const struct nlattr *tb[32] = {0}, *ip[32] = {0}, *pr[32] = {0};

	memset(t, 0, sizeof(*t));
	if (mnl_attr_parse_nested(nest, attr_cb, tb) < 0)
		return;
	if (tb[CTA_TUPLE_IP] != NULL &&
		mnl_attr_parse_nested(tb[CTA_TUPLE_IP], attr_cb, ip) >= 0) {
		t->has_src = get_addr(ip[CTA_IP_V4_SRC], AF_INET, 4, &t->src) ||
			get_addr(ip[CTA_IP_V6_SRC], AF_INET6, 16, &t->src);
		t->has_dst = get_addr(ip[CTA_IP_V4_DST], AF_INET, 4, &t->dst) ||
			get_addr(ip[CTA_IP_V6_DST], AF_INET6, 16, &t->dst);
	}
	if (tb[CTA_TUPLE_PROTO] == NULL ||
		mnl_attr_parse_nested(tb[CTA_TUPLE_PROTO], attr_cb, pr) < 0)
		return;
	if (pr[CTA_PROTO_NUM] != NULL &&
		mnl_attr_validate(pr[CTA_PROTO_NUM], MNL_TYPE_U8) == 0) {
		t->has_proto = true;
		t->proto = mnl_attr_get_u8(pr[CTA_PROTO_NUM]);
	}
	if (pr[CTA_PROTO_SRC_PORT] != NULL &&
		mnl_attr_validate(pr[CTA_PROTO_SRC_PORT], MNL_TYPE_U16) == 0)
		t->sport = ntohs(mnl_attr_get_u16(pr[CTA_PROTO_SRC_PORT]));
	if (pr[CTA_PROTO_DST_PORT] != NULL &&
		mnl_attr_validate(pr[CTA_PROTO_DST_PORT], MNL_TYPE_U16) == 0) {
		t->has_port = true;
		t->dport = ntohs(mnl_attr_get_u16(pr[CTA_PROTO_DST_PORT]));
	}
}

static bool
addr_in(const struct ipaddr *a, const struct ipaddr *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].family == a->family &&
			memcmp(v[i].b, a->b, a->family == AF_INET ? 4 : 16) ==
				0)
			return true;
	return false;
}

static bool
is_listen(const struct config *cf, const struct ipaddr *a)
{
	for (size_t i = 0; i < cf->nlisten; i++)
		if (addr_in(a, &cf->listen[i].addr, 1))
			return true;
	return false;
}

/* Would the forward chain start this connection, under the policy cf and
 * the elements snap? */
static bool
admitted(const struct config *cf, const struct snapshot *snap,
	const struct tuple *t)
{
	const struct vm *vm;
	struct portspec ps = {0};
	const struct portspec *want = NULL;
	struct judgement j;

	vm = policy_find_vm(cf->vms, cf->nvms, &t->src, NULL);
	if (vm == NULL)
		return false; /* an unknown source: rejected */
	if (t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP) {
		if (!t->has_port)
			return true; /* cannot tell: left alone */
		ps.proto = t->proto;
		ps.lo = ps.hi = t->dport;
		want = &ps;
	} else if (t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6) {
		ps.proto = IPPROTO_ICMP;
		want = &ps;
	}
	return judge_forward_from(vm, snap_elems, snap, &t->dst, want, &j) !=
		JUDGED_DROP;
}

/* t's destination (and port) become where the DNAT sent it: the reply
 * tuple's source. False when the reply tuple cannot be read. */
static bool
dnat_target(const struct nlattr *reply, struct tuple *t)
{
	struct tuple r;

	if (reply == NULL)
		return false;
	parse_tuple(reply, &r);
	if (!r.has_src || r.src.family != t->dst.family)
		return false;
	t->dst = r.src;
	if (t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP) {
		if (!r.has_proto || r.proto != t->proto)
			return false;
		t->dport = r.sport;
	}
	return true;
}

/* This host's addresses (a redirect goes to one of them), or none. */
static size_t
local_addrs(struct ipaddr **out)
{
	struct ifaddrs *ifa, *i;
	size_t n = 0, cap = 0;

	*out = NULL;
	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;
		struct ipaddr a = {0};

		if (sa == NULL)
			continue;
		if (sa->sa_family == AF_INET) {
			a.family = AF_INET;
			memcpy(a.b,
				&((const struct sockaddr_in *)(const void *)sa)
					 ->sin_addr,
				4);
		} else if (sa->sa_family == AF_INET6) {
			a.family = AF_INET6;
			memcpy(a.b,
				&((const struct sockaddr_in6 *)(const void *)sa)
					 ->sin6_addr,
				16);
		} else {
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			*out = xreallocarray(*out, cap, sizeof(**out));
		}
		(*out)[n++] = a;
	}
	freeifaddrs(ifa);
	return n;
}

static int
entry_cb(const struct nlmsghdr *nlh, void *data)
{
	struct purge *p = data;
	const struct nlattr *tb[32] = {0};
	struct tuple t;
	struct victim *v;
	uint32_t status = 0;

	if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), attr_cb, tb) < 0 ||
		tb[CTA_TUPLE_ORIG] == NULL)
		return MNL_CB_OK;
	parse_tuple(tb[CTA_TUPLE_ORIG], &t);
	if (!t.has_src || !t.has_dst || !t.has_proto ||
		!addr_in(&t.src, p->before->srcs, p->before->nsrcs))
		return MNL_CB_OK;
	p->st->judged += p->first;
	if (tb[CTA_STATUS] != NULL &&
		mnl_attr_validate(tb[CTA_STATUS], MNL_TYPE_U32) == 0)
		status = ntohl(mnl_attr_get_u32(tb[CTA_STATUS]));
	/* A connection another table DNATed went on to where it was sent
	 * (the reply tuple's source): the forward chain judged that. */
	if ((status & IPS_DST_NAT) && !dnat_target(tb[CTA_TUPLE_REPLY], &t)) {
		p->st->kept += p->first; /* cannot tell: left alone */
		return MNL_CB_OK;
	}
	/* A connection to the firewall itself (DNS at a listen address, or
	 * redirected to this host by the capture chain) is the input
	 * chain's, not the forward chain's to end. Of the others, only what
	 * the change took away ends: admitted before it, not after. */
	if (is_listen(p->cf, &t.dst) || addr_in(&t.dst, p->local, p->nlocal) ||
		!admitted(p->before->cf, &p->before->snap, &t) ||
		admitted(p->cf, p->snap, &t)) {
		p->st->kept += p->first;
		return MNL_CB_OK;
	}
	if (p->n == CTPURGE_MAX) {
		p->over++;
		return MNL_CB_OK;
	}
	if (mnl_attr_get_payload_len(tb[CTA_TUPLE_ORIG]) > sizeof(v->tuple) ||
		tb[CTA_ID] == NULL ||
		mnl_attr_validate(tb[CTA_ID], MNL_TYPE_U32) < 0) {
		p->st->failed += p->first;
		return MNL_CB_OK;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->v = xreallocarray(p->v, p->cap, sizeof(*p->v));
	}
	v = &p->v[p->n++];
	memset(v, 0, sizeof(*v));
	v->family = p->family;
	v->id = mnl_attr_get_u32(tb[CTA_ID]);
	if (tb[CTA_ZONE] != NULL &&
		mnl_attr_validate(tb[CTA_ZONE], MNL_TYPE_U16) == 0) {
		v->has_zone = true;
		v->zone = mnl_attr_get_u16(tb[CTA_ZONE]);
	}
	v->len = (uint16_t)mnl_attr_get_payload_len(tb[CTA_TUPLE_ORIG]);
	memcpy(v->tuple, mnl_attr_get_payload(tb[CTA_TUPLE_ORIG]), v->len);
	return MNL_CB_OK;
}

/* Read one family's table. */
static int
read_family(struct nft_ct *ct, struct purge *p, int family)
{
	p->family = family;
	return nft_ct_dump(ct, family, entry_cb, p);
}

static void
victim_del(const struct victim *v, struct priv_ctdel *d)
{
	memset(d, 0, sizeof(*d));
	d->family = v->family;
	d->has_zone = v->has_zone;
	d->zone = v->zone;
	d->id = v->id;
	d->len = v->len;
	memcpy(d->tuple, v->tuple, v->len);
}

int
ctpurge_run(const struct ctpurge_before *b, const struct config *cf,
	const struct admit *ad, struct ctpurge_stats *st)
{
	struct snapshot snap = {0};
	struct ipaddr *local = NULL;
	struct purge p = {.before = b, .cf = cf, .snap = &snap, .st = st};
	struct nft_ct *ct;
	int ret = 0, saved;

	memset(st, 0, sizeof(*st));
	if (b == NULL)
		return 0;
	if ((ct = nft_ct_open()) == NULL)
		return -1;
	p.nlocal = local_addrs(&local);
	p.local = local;
	snap_take(&snap, cf, b->srcs, b->nsrcs, ad);
	/* The whole table first, then the deletes: no delete while a dump
	 * is being read on the same socket. At most CTPURGE_MAX deletes a
	 * round; while a round leaves some over, another reads the table
	 * again (else a VM could keep a connection by opening more than
	 * CTPURGE_MAX others that the change ends too). */
	saved = 0;
	for (int round = 0; round < CTPURGE_ROUNDS; round++) {
		size_t done = 0;

		p.n = 0;
		p.over = 0;
		p.first = round == 0;
		if (read_family(ct, &p, AF_INET) < 0 ||
			read_family(ct, &p, AF_INET6) < 0) {
			ret = -1;
			saved = errno;
		}
		if (p.n > 0) {
			struct priv_ctdel *d = xcalloc(p.n, sizeof(*d));
			uint8_t *res = xcalloc(p.n, 1);

			for (size_t i = 0; i < p.n; i++)
				victim_del(&p.v[i], &d[i]);
			nft_ct_delete_many(ct, d, p.n, res);
			for (size_t i = 0; i < p.n; i++) {
				if (res[i] == 0)
					done++;
				else
					st->failed++;
			}
			free(d);
			free(res);
		}
		st->deleted += done;
		if (p.over == 0 || ret < 0 || done == 0)
			break;
	}
	st->failed += p.over;
	nft_ct_close(ct);
	free(p.v);
	free(snap.v);
	free(local);
	errno = saved;
	return ret;
}
