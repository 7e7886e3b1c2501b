#include "privproto.h"

#include <netinet/in.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "policy.h"
#include "privcheck.h"
#include "util.h"

int
priv_header(const uint8_t *hdr, uint32_t *len, uint16_t *type)
{
	uint16_t zero;

	memcpy(len, hdr, 4);
	memcpy(type, hdr + 4, 2);
	memcpy(&zero, hdr + 6, 2);
	return zero == 0 && *len <= PRIV_FRAME_MAX ? 0 : -1;
}

uint8_t *
priv_frame(uint16_t type, const void *a, size_t alen, const void *b,
	size_t blen, size_t *len)
{
	uint32_t l = (uint32_t)(alen + blen);
	uint8_t *buf;

	*len = PRIV_HDR + alen + blen;
	buf = xcalloc(1, *len);
	memcpy(buf, &l, 4);
	memcpy(buf + 4, &type, 2);
	if (alen > 0)
		memcpy(buf + PRIV_HDR, a, alen);
	if (blen > 0)
		memcpy(buf + PRIV_HDR + alen, b, blen);
	return buf;
}

/* A text for a log line: no control character (a line stays a line). */
static bool
text_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* ---- PRIV_BATCH -------------------------------------------------------- */

int
priv_batch_head(const uint8_t *p, size_t len, struct priv_batch *out)
{
	uint32_t zero;

	memset(out, 0, sizeof(*out));
	if (len < PRIV_BATCH_FIXED)
		return -1;
	memcpy(&out->seq, p, 4);
	memcpy(&out->flags, p + 4, 4);
	memcpy(&out->gen, p + 8, 4);
	memcpy(&zero, p + 12, 4);
	memcpy(&out->at, p + 16, 8);
	if (zero != 0 || (out->flags & ~(PRIV_F_INSTALL | PRIV_F_WITH_PREV)) ||
		((out->flags & PRIV_F_WITH_PREV) &&
			!(out->flags & PRIV_F_INSTALL)))
		return -1;
	return 0;
}

/* The VM and set a set name of ours stands for: "<vm>_v4" .. */
static const struct vm *
set_owner(const struct config *c, const char *name, int *idx)
{
	char buf[SET_NAME_MAX];

	if (c == NULL)
		return NULL;
	for (size_t v = 0; v < c->nvms; v++) {
		size_t nl = strlen(c->vms[v].name);

		if (strncmp(name, c->vms[v].name, nl) != 0 || name[nl] != '_')
			continue;
		for (int i = 0; i < SET_COUNT; i++)
			if (strcmp(elems_set_name(buf, sizeof(buf),
					   c->vms[v].name, i),
				    name) == 0) {
				*idx = i;
				return &c->vms[v];
			}
	}
	return NULL;
}

/* Exactly the bytes elems_key_put writes for k: a key end with another
 * address, or anything in the padding, would be a range of addresses. */
static bool
key_exact(struct nftnl_set_elem *el, const struct elem_key *k)
{
	struct nftnl_set_elem *re = nftnl_set_elem_alloc();
	static const uint16_t attrs[] = {NFTNL_SET_ELEM_KEY,
		NFTNL_SET_ELEM_KEY_END};
	bool ok = true;

	elems_key_put(re, k);
	for (size_t i = 0; i < 2 && ok; i++) {
		uint32_t la = 0, lb = 0;
		const void *a = nftnl_set_elem_get(el, attrs[i], &la);
		const void *b = nftnl_set_elem_get(re, attrs[i], &lb);

		ok = (a == NULL) == (b == NULL) &&
			(a == NULL || (la == lb && memcmp(a, b, la) == 0));
	}
	nftnl_set_elem_free(re);
	return ok;
}

/* The comment of an element, as elems_msgs_add writes it: one
 * NUL-terminated comment record, nothing else. */
static int
comment_cb(const struct nftnl_udata *attr, void *data)
{
	char *out = data;
	uint32_t len = nftnl_udata_len(attr);
	const uint8_t *v = nftnl_udata_get(attr);

	if (nftnl_udata_type(attr) != NFTNL_UDATA_SET_ELEM_COMMENT ||
		out[0] != '\0' || len < 2 || len > PRIV_COMMENT_MAX + 1 ||
		v[len - 1] != '\0' || !text_ok(v, len - 1))
		return -1;
	memcpy(out, v, len);
	return 0;
}

static int
elem_comment(struct nftnl_set_elem *el, char *out)
{
	uint32_t len = 0;
	const void *ud = nftnl_set_elem_get(el, NFTNL_SET_ELEM_USERDATA, &len);

	out[0] = '\0';
	if (ud == NULL)
		return 0;
	/* A record is type (8 bits), length (8 bits), value; and
	 * nftnl_udata_parse() believes every record's length: first check
	 * that the one record is exactly the whole userdata. */
	if (len < 2 || len != 2u + ((const uint8_t *)ud)[1] ||
		nftnl_udata_parse(ud, len, comment_cb, out) < 0 ||
		out[0] == '\0')
		return -1;
	return 0;
}

/* Attributes an element of ours never has: data, a verdict, an object,
 * expressions, flags (an interval end, a catch-all element). A second
 * layer: elems_canonical() refuses their netlink attributes before
 * libnftnl parses anything (so no test tells this one apart); it stays
 * in case a libnftnl update sets one of these from an attribute we let
 * through. */
static bool
elem_foreign(struct nftnl_set_elem *el)
{
	static const uint16_t no[] = {NFTNL_SET_ELEM_FLAGS,
		NFTNL_SET_ELEM_VERDICT, NFTNL_SET_ELEM_CHAIN,
		NFTNL_SET_ELEM_DATA, NFTNL_SET_ELEM_OBJREF, NFTNL_SET_ELEM_EXPR,
		NFTNL_SET_ELEM_EXPRESSIONS};

	for (size_t i = 0; i < ARRAY_SIZE(no); i++)
		if (nftnl_set_elem_is_set(el, no[i]))
			return true;
	return false;
}

struct parse {
	void *buf; /* the batch's messages, aligned */
	const char *table;
	const struct config *c, *prev;
	struct priv_batch *pb;
	size_t cap;
	char *why;
	size_t whylen;
};

__attribute__((format(printf, 2, 3))) static int
fail(struct parse *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->why, ps->whylen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
one_elem(struct parse *ps, struct nftnl_set_elem *el, bool del,
	const struct vm *vm, int idx)
{
	struct priv_op *op;
	char why[256];
	const char *bad;

	if (ps->pb->nops == PRIV_OPS_MAX)
		return fail(ps, "more than %d element operations",
			PRIV_OPS_MAX);
	if (ps->pb->nops == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 16;
		ps->pb->ops = xreallocarray(ps->pb->ops, ps->cap,
			sizeof(*ps->pb->ops));
	}
	op = &ps->pb->ops[ps->pb->nops];
	memset(op, 0, sizeof(*op));
	op->del = del;
	op->idx = idx;
	op->vm = vm;
	if (elem_foreign(el) || !elems_key_get(el, idx, &op->k) ||
		!key_exact(el, &op->k))
		return fail(ps, "set of %s: an element no VM set holds",
			vm->name);
	if (del) {
		/* A deletion: only the key. */
		if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_TIMEOUT) ||
			nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_EXPIRATION) ||
			nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_USERDATA))
			return fail(ps,
				"set of %s: a deletion with more than "
				"a key",
				vm->name);
	} else {
		uint64_t exp;

		if (!nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_TIMEOUT) ||
			!nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_EXPIRATION))
			return fail(ps,
				"set of %s: an element without its "
				"timeout",
				vm->name);
		op->timeout_ms =
			nftnl_set_elem_get_u64(el, NFTNL_SET_ELEM_TIMEOUT);
		exp = nftnl_set_elem_get_u64(el, NFTNL_SET_ELEM_EXPIRATION);
		if (exp != op->timeout_ms)
			return fail(ps,
				"set of %s: an expiration other than "
				"the timeout",
				vm->name);
		if (elem_comment(el, op->comment) < 0)
			return fail(ps, "set of %s: a comment that is not one",
				vm->name);
		if ((bad = privcheck_add(ps->c, vm->name, idx, &op->k,
			     op->timeout_ms, why, sizeof(why))) != NULL)
			return fail(ps, "%s", bad);
	}
	ps->pb->nops++;
	return 0;
}

/* Are the attributes of an element nest only those elems_msgs_add
 * writes, each key a single value, each of the type libnftnl expects?
 * libnftnl's parser reads more (a verdict's chain, an object reference,
 * expressions) and strdup()s the strings among them without looking for
 * their end; and it exit()s the process ("nf_tables kernel ABI is
 * broken") on an attribute of another type. */
static bool
elem_attrs_ours(const struct nlattr *e)
{
	const struct nlattr *x, *v;

	mnl_attr_for_each_nested(x, e)
	{
		switch (mnl_attr_get_type(x)) {
		case NFTA_SET_ELEM_KEY:
		case NFTA_SET_ELEM_KEY_END:
			if (mnl_attr_validate(x, MNL_TYPE_NESTED) < 0)
				return false;
			mnl_attr_for_each_nested(v, x)
			{
				if (mnl_attr_get_type(v) != NFTA_DATA_VALUE)
					return false;
			}
			break;
		case NFTA_SET_ELEM_TIMEOUT:
		case NFTA_SET_ELEM_EXPIRATION:
			if (mnl_attr_validate(x, MNL_TYPE_U64) < 0)
				return false;
			break;
		case NFTA_SET_ELEM_USERDATA:
			break;
		default:
			return false;
		}
	}
	return true;
}

/* libnftnl numbers the element nests it builds 1, 2, 3.. (the kernel
 * does not look), but parses only NFTA_LIST_ELEM ones: a copy with every
 * element nest's type made NFTA_LIST_ELEM. NULL when the message has an
 * attribute libnftnl should not parse: one nft_batch never writes, one
 * of another type than libnftnl expects, or a table or set name that
 * does not end (libnftnl would strdup() past it). */
static struct nlmsghdr *
elems_canonical(const struct nlmsghdr *in)
{
	struct nlmsghdr *nlh = xcalloc(1, in->nlmsg_len);
	struct nlattr *a, *e;

	memcpy(nlh, in, in->nlmsg_len);
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		switch (mnl_attr_get_type(a)) {
		case NFTA_SET_ELEM_LIST_TABLE:
		case NFTA_SET_ELEM_LIST_SET:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
				goto bad;
			continue;
		case NFTA_SET_ELEM_LIST_ELEMENTS:
			if (mnl_attr_validate(a, MNL_TYPE_NESTED) < 0)
				goto bad;
			break;
		default:
			goto bad;
		}
		mnl_attr_for_each_nested(e, a)
		{
			e->nla_type =
				(uint16_t)((e->nla_type & ~NLA_TYPE_MASK) |
					NFTA_LIST_ELEM);
			if (!elem_attrs_ours(e))
				goto bad;
		}
	}
	return nlh;
bad:
	free(nlh);
	return NULL;
}

/* One NEWSETELEM or DELSETELEM message. */
static int
elem_msg(struct parse *ps, const struct nlmsghdr *orig, bool del)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh = elems_canonical(orig);
	struct nftnl_set_elems_iter *it = NULL;
	struct nftnl_set_elem *el;
	const struct nfgenmsg *g;
	const struct vm *vm;
	const char *table, *name;
	struct priv_msg *m;
	int idx = -1, rc = -1;

	if (nlh == NULL) {
		fail(ps, "%s", "an element message with attributes not ours");
		goto out;
	}
	g = mnl_nlmsg_get_payload(nlh);
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*g)) ||
		g->nfgen_family != NFPROTO_INET || g->version != NFNETLINK_V0) {
		fail(ps, "%s", "an element message not of family inet");
		goto out;
	}
	if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0 ||
		!nftnl_set_is_set(s, NFTNL_SET_TABLE) ||
		!nftnl_set_is_set(s, NFTNL_SET_NAME) ||
		nftnl_set_is_set(s, NFTNL_SET_ID)) {
		fail(ps, "%s", "an element message that does not parse");
		goto out;
	}
	table = nftnl_set_get_str(s, NFTNL_SET_TABLE);
	name = nftnl_set_get_str(s, NFTNL_SET_NAME);
	if (strcmp(table, ps->table) != 0) {
		fail(ps, "elements for table %s: not ours", table);
		goto out;
	}
	vm = set_owner(ps->c, name, &idx);
	if (vm == NULL && del)
		vm = set_owner(ps->prev, name, &idx);
	if (vm == NULL) {
		fail(ps, "elements for set %s: no set of a VM", name);
		goto out;
	}
	m = ARRAY_PUSH(ps->pb->msgs, ps->pb->nmsgs);
	m->del = del;
	m->first = ps->pb->nops;
	it = nftnl_set_elems_iter_create(s);
	while ((el = nftnl_set_elems_iter_next(it)) != NULL)
		if (one_elem(ps, el, del, vm, idx) < 0)
			goto out;
	m->n = ps->pb->nops - m->first;
	if (m->n == 0) {
		fail(ps, "elements for set %s: none", name);
		goto out;
	}
	rc = 0;
out:
	if (it)
		nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
	free(nlh);
	return rc;
}

int
priv_batch_parse(const uint8_t *p, size_t len, const char *table,
	const struct config *c, const struct config *prev,
	struct priv_batch *out, char *why, size_t whylen)
{
	struct parse ps = {.table = table,
		.c = c,
		.prev = prev,
		.pb = out,
		.why = why,
		.whylen = whylen};
	const struct nlmsghdr *nlh;
	int left, n = 0;
	bool ended = false;

	if (priv_batch_head(p, len, out) < 0) {
		snprintf(why, whylen, "a batch with a bad header");
		return -1;
	}
	if (len - PRIV_BATCH_FIXED > INT32_MAX) {
		snprintf(why, whylen, "a batch too large");
		return -1;
	}
	/* The messages, copied where they are aligned as netlink wants
	 * them (the frame's payload need not be). */
	left = (int)(len - PRIV_BATCH_FIXED);
	ps.buf = xcalloc(1, (size_t)left + 4);
	memcpy(ps.buf, p + PRIV_BATCH_FIXED, (size_t)left);
	for (nlh = (const void *)ps.buf; left > 0;
		nlh = mnl_nlmsg_next(nlh, &left), n++) {
		uint16_t sub, type;

		/* Not mnl_nlmsg_ok(): it compares the length as an int, so
		 * takes one of 2 GiB or more for one that fits. libmnl and
		 * libnftnl read a message up to its aligned length: an
		 * unaligned one would end before its last attribute does
		 * (nft_batch never writes one). */
		if (left < (int)sizeof(*nlh) || nlh->nlmsg_len < sizeof(*nlh) ||
			nlh->nlmsg_len > (uint32_t)left || ended ||
			nlh->nlmsg_len != MNL_ALIGN(nlh->nlmsg_len)) {
			snprintf(why, whylen,
				"a batch cut or with bytes "
				"after its end");
			goto bad;
		}
		if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN ||
			nlh->nlmsg_type == NFNL_MSG_BATCH_END) {
			const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);

			if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*g)) ||
				ntohs(g->res_id) != NFNL_SUBSYS_NFTABLES ||
				(nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN) !=
					(n == 0)) {
				snprintf(why, whylen,
					"a batch begin or end "
					"out of place");
				goto bad;
			}
			ended = nlh->nlmsg_type == NFNL_MSG_BATCH_END;
			continue;
		}
		sub = NFNL_SUBSYS_ID(nlh->nlmsg_type);
		type = NFNL_MSG_TYPE(nlh->nlmsg_type);
		if (n == 0 || sub != NFNL_SUBSYS_NFTABLES ||
			(type != NFT_MSG_NEWSETELEM &&
				type != NFT_MSG_DELSETELEM)) {
			snprintf(why, whylen,
				"a message of type %u:%u: only elements are "
				"accepted",
				sub, type);
			goto bad;
		}
		if (elem_msg(&ps, nlh, type == NFT_MSG_DELSETELEM) < 0)
			goto bad;
	}
	if (!ended) {
		snprintf(why, whylen, "a batch without its end");
		goto bad;
	}
	free(ps.buf);
	return 0;
bad:
	free(ps.buf);
	priv_batch_free(out);
	return -1;
}

void
priv_batch_free(struct priv_batch *pb)
{
	free(pb->msgs);
	free(pb->ops);
	pb->msgs = NULL;
	pb->ops = NULL;
	pb->nmsgs = pb->nops = 0;
}

void
priv_batch_emit(const struct priv_batch *pb, const char *table,
	struct nft_batch *b)
{
	for (size_t i = 0; i < pb->nmsgs; i++) {
		struct elems_msgs *m = elems_msgs_new(table);
		const struct priv_msg *pm = &pb->msgs[i];

		for (size_t j = pm->first; j < pm->first + pm->n; j++) {
			const struct priv_op *op = &pb->ops[j];

			if (op->del)
				elems_msgs_del(m, op->vm->name, &op->k);
			else
				elems_msgs_add(m, op->vm->name, &op->k,
					op->timeout_ms, op->comment);
		}
		elems_msgs_emit(m, b);
	}
}

/* ---- PRIV_DUMP, PRIV_CT_DUMP, PRIV_CT_DEL ------------------------------ */

int
priv_dump_parse(const uint8_t *p, size_t len, int *kind, char *set,
	size_t setlen)
{
	uint16_t k, fam, sl, zero;

	if (len < 8)
		return -1;
	memcpy(&k, p, 2);
	memcpy(&fam, p + 2, 2);
	memcpy(&sl, p + 4, 2);
	memcpy(&zero, p + 6, 2);
	if (zero != 0 || fam != NFPROTO_INET || k < PRIV_DUMP_SETS ||
		k > PRIV_DUMP_ELEMS || len != 8u + sl ||
		(k == PRIV_DUMP_ELEMS) != (sl > 0) || sl >= setlen ||
		sl >= SET_NAME_MAX || !text_ok(p + 8, sl) ||
		memchr(p + 8, ' ', sl) != NULL)
		return -1;
	*kind = k;
	memcpy(set, p + 8, sl);
	set[sl] = '\0';
	return 0;
}

int
priv_ctdump_parse(const uint8_t *p, size_t len, int *family)
{
	uint32_t f;

	if (len != 4)
		return -1;
	memcpy(&f, p, 4);
	if (f != AF_INET && f != AF_INET6)
		return -1;
	*family = (int)f;
	return 0;
}

int
priv_ctdel_parse(const uint8_t *p, size_t len, struct priv_ctdel *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 8 || len - 8 > PRIV_TUPLE_MAX || len == 8)
		return -1;
	out->family = p[0];
	if ((out->family != AF_INET && out->family != AF_INET6) || p[1] > 1)
		return -1;
	out->has_zone = p[1];
	memcpy(&out->zone, p + 2, 2);
	memcpy(&out->id, p + 4, 4);
	out->len = len - 8;
	memcpy(out->tuple, p + 8, out->len);
	return 0;
}

size_t
priv_ctdel_put(uint8_t *buf, const struct priv_ctdel *d)
{
	uint16_t el = (uint16_t)(8 + d->len);

	memcpy(buf, &el, 2);
	buf[2] = (uint8_t)d->family;
	buf[3] = d->has_zone;
	memcpy(buf + 4, &d->zone, 2);
	memcpy(buf + 6, &d->id, 4);
	memcpy(buf + 10, d->tuple, d->len);
	return 2u + el;
}

static int
nest_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	uint16_t t = mnl_attr_get_type(a);

	if (t <= CTA_TUPLE_MAX && t <= CTA_IP_MAX)
		tb[t] = a;
	return MNL_CB_OK;
}

const char *
priv_ctdel_check(const struct config *c, const struct priv_ctdel *d, char *why,
	size_t whylen)
{
	const struct nlattr *tt[CTA_TUPLE_MAX + CTA_IP_MAX + 2] = {0};
	const struct nlattr *ti[CTA_TUPLE_MAX + CTA_IP_MAX + 2] = {0};
	struct ipaddr src = {.family = (uint8_t)d->family};
	uint16_t srcattr = d->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC;
	size_t alen = d->family == AF_INET ? 4 : 16;
	char buf[64];

	if (!c->ct_purge) {
		snprintf(why, whylen, "conntrack-purge is off");
		return why;
	}
	if (mnl_attr_parse_payload(d->tuple, d->len, nest_cb, tt) < 0 ||
		tt[CTA_TUPLE_IP] == NULL ||
		mnl_attr_validate(tt[CTA_TUPLE_IP], MNL_TYPE_NESTED) < 0 ||
		mnl_attr_parse_nested(tt[CTA_TUPLE_IP], nest_cb, ti) < 0 ||
		ti[srcattr] == NULL ||
		mnl_attr_get_payload_len(ti[srcattr]) != alen) {
		snprintf(why, whylen, "a tuple without its source address");
		return why;
	}
	memcpy(src.b, mnl_attr_get_payload(ti[srcattr]), alen);
	for (size_t v = 0; v < c->nvms; v++)
		for (size_t i = 0; i < c->vms[v].naddrs; i++)
			if (policy_addr_cmp(&c->vms[v].addrs[i], &src) == 0)
				return NULL;
	snprintf(why, whylen, "%s is no VM's address",
		policy_addr_str(&src, buf, sizeof(buf)));
	return why;
}

/* ---- PRIV_DONE, PRIV_RESULT -------------------------------------------- */

static int
text_parse(const uint8_t *p, size_t len, char *msg, size_t msglen)
{
	if (len > PRIV_MSG_MAX || !text_ok(p, len) || msglen == 0)
		return -1;
	snprintf(msg, msglen, "%.*s", (int)len, (const char *)p);
	return 0;
}

int
priv_done_parse(const uint8_t *p, size_t len, uint32_t *seq, int *err,
	char *msg, size_t msglen)
{
	int32_t e;

	if (len < 8)
		return -1;
	memcpy(seq, p, 4);
	memcpy(&e, p + 4, 4);
	if (e < 0 || e > 4095)
		return -1;
	*err = e;
	return text_parse(p + 8, len - 8, msg, msglen);
}

/* The text, cut at PRIV_MSG_MAX, control characters made spaces. */
static uint8_t *
with_text(uint16_t type, const uint8_t *head, size_t hlen, const char *msg,
	size_t *len)
{
	size_t ml = msg ? strnlen(msg, PRIV_MSG_MAX) : 0;
	uint8_t *buf = priv_frame(type, head, hlen, msg, ml, len);

	for (size_t i = PRIV_HDR + hlen; i < *len; i++)
		if (buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = ' ';
	return buf;
}

uint8_t *
priv_done_build(uint32_t seq, int err, const char *msg, size_t *len)
{
	uint8_t head[8];
	int32_t e = err;

	memcpy(head, &seq, 4);
	memcpy(head + 4, &e, 4);
	return with_text(PRIV_DONE, head, sizeof(head), msg, len);
}

int
priv_result_parse(const uint8_t *p, size_t len, int *err, char *msg,
	size_t msglen)
{
	int32_t e;

	if (len < 4)
		return -1;
	memcpy(&e, p, 4);
	if (e < 0 || e > 4095)
		return -1;
	*err = e;
	return text_parse(p + 4, len - 4, msg, msglen);
}

uint8_t *
priv_result_build(int err, const char *msg, size_t *len)
{
	int32_t e = err;

	return with_text(PRIV_RESULT, (const uint8_t *)&e, sizeof(e), msg, len);
}
