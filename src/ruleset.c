#include "ruleset.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Our base chains run just before the usual filter chains (Qubes' own
 * tables hook at priority 0): a drop here is final whatever comes later,
 * and our counters see every packet a VM sends. See doc/nftables.md. */
#define CHAIN_PRIO (-10) /* NF_IP_PRI_FILTER - 10 */
/* capture: before any dstnat chain (Qubes' dnat-dns hooks at dstnat):
 * the first NAT binding of a connection wins. */
#define CAPTURE_PRIO (-110) /* NF_IP_PRI_NAT_DST - 10 */
#define CAPTURE_CHAIN "capture"

#define REG(i) (NFT_REG32_00 + (i))

struct builder {
	struct nft_batch *b;
	const struct config *c;
	const struct config *old; /* what the kernel holds, or NULL */
	bool *keep_vm;		  /* per VM of c: its chain and sets stay */
	bool keep_front;    /* forward, input, vms_to_listen, capture stay */
	char **kept_chains; /* sorted: the chains of the VMs in keep_vm */
	size_t nkept_chains;
	char **have_chains;
	size_t nhave_chains;
	const char *table;
	uint32_t set_id;
	/* sorted, for lookups that stay cheap with thousands of VMs */
	char **want_sets, **want_chains;
	size_t nwant_sets, nwant_chains;
	struct nftnl_set **have_sets;
	size_t nhave_sets;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
in_sorted(char **v, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, v, n, sizeof(*v), cmp_str) != NULL;
}

static void
free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- expressions ------------------------------------------------------ */

static void
add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
	nftnl_rule_add_expr(r, e);
}

static struct nftnl_expr *
expr(const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e == NULL)
		fatal("nftnl_expr_alloc %s", name);
	return e;
}

static void
e_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = expr("meta");

	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	add_expr(r, e);
}

static void
e_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data,
	uint32_t len)
{
	struct nftnl_expr *e = expr("cmp");

	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	add_expr(r, e);
}

static void
e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len,
	uint32_t dreg)
{
	struct nftnl_expr *e = expr("payload");

	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	add_expr(r, e);
}

static void
e_bitwise(struct nftnl_rule *r, uint32_t reg, const void *mask, uint32_t len)
{
	struct nftnl_expr *e = expr("bitwise");
	static const uint8_t zero[16];

	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	add_expr(r, e);
}

static void
e_lookup(struct nftnl_rule *r, const char *set, uint32_t sreg)
{
	struct nftnl_expr *e = expr("lookup");

	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	add_expr(r, e);
}

static void
e_immediate(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = expr("immediate");

	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
	add_expr(r, e);
}

/* update @set { key in sreg.. }: adds the key, or refreshes its timeout
 * (the set's own). A full set makes the rule stop here, so such rules
 * carry no verdict. */
static void
e_dynset_update(struct nftnl_rule *r, const char *set, uint32_t sreg)
{
	struct nftnl_expr *e = expr("dynset");

	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
	nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set);
	add_expr(r, e);
}

static void
e_verdict(struct nftnl_rule *r, int verdict, const char *chain)
{
	struct nftnl_expr *e = expr("immediate");

	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	if (chain)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	add_expr(r, e);
}

static void
e_counter(struct nftnl_rule *r)
{
	add_expr(r, expr("counter"));
}

static void
e_ct_state(struct nftnl_rule *r, uint32_t bits)
{
	struct nftnl_expr *e = expr("ct");
	uint32_t zero = 0;

	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, REG(0));
	add_expr(r, e);
	e_bitwise(r, REG(0), &bits, sizeof(bits));
	e_cmp(r, REG(0), NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* reject with icmpx admin-prohibited: ICMP type 3 code 13 for IPv4,
 * ICMPv6 type 1 code 1 for IPv6 (as qubes-firewall rejects). */
static void
e_reject(struct nftnl_rule *r)
{
	struct nftnl_expr *e = expr("reject");

	nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
	nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
		NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
	add_expr(r, e);
}

/* redirect to :port (the port in network order, from a register). */
static void
e_redirect(struct nftnl_rule *r, uint16_t port)
{
	struct nftnl_expr *e = expr("redir");
	uint16_t p = htons(port);

	e_immediate(r, REG(0), &p, sizeof(p));
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, REG(0));
	add_expr(r, e);
}

static void
e_log_limited(struct nftnl_rule *r, uint32_t rate, const char *prefix)
{
	struct nftnl_expr *e = expr("limit");

	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, rate);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
	add_expr(r, e);
	e = expr("log");
	nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, prefix);
	add_expr(r, e);
}

/* ---- matches ------------------------------------------------------------ */

static void
m_nfproto(struct nftnl_rule *r, int family)
{
	uint8_t p = family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6;

	e_meta(r, NFT_META_NFPROTO, REG(0));
	e_cmp(r, REG(0), NFT_CMP_EQ, &p, sizeof(p));
}

static uint32_t
addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* Load the source or destination address into REG(0). */
static void
m_load_addr(struct nftnl_rule *r, int family, bool dst)
{
	uint32_t off = family == AF_INET ? (dst ? 16 : 12) : (dst ? 24 : 8);

	e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, addr_len(family), REG(0));
}

static void
m_addr(struct nftnl_rule *r, const struct ipaddr *a, bool dst)
{
	m_nfproto(r, a->family);
	m_load_addr(r, a->family, dst);
	e_cmp(r, REG(0), NFT_CMP_EQ, a->b, addr_len(a->family));
}

static void
m_prefix(struct nftnl_rule *r, const struct prefix *p, bool dst)
{
	uint8_t mask[16] = {0};
	uint32_t len = addr_len(p->addr.family);

	m_nfproto(r, p->addr.family);
	m_load_addr(r, p->addr.family, dst);
	if ((uint32_t)p->len != len * 8) {
		for (int i = 0; i < p->len; i++)
			mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
		e_bitwise(r, REG(0), mask, len);
	}
	e_cmp(r, REG(0), NFT_CMP_EQ, p->addr.b, len);
}

static void
m_iifname(struct nftnl_rule *r, const char *ifname)
{
	char name[IFNAMSIZ] = {0};

	strncpy(name, ifname, sizeof(name) - 1);
	e_meta(r, NFT_META_IIFNAME, REG(0));
	e_cmp(r, REG(0), NFT_CMP_EQ, name, sizeof(name));
}

static void
m_iifgroup(struct nftnl_rule *r, uint32_t group, uint32_t op)
{
	e_meta(r, NFT_META_IIFGROUP, REG(0));
	e_cmp(r, REG(0), op, &group, sizeof(group));
}

static void
m_l4proto(struct nftnl_rule *r, uint8_t proto)
{
	e_meta(r, NFT_META_L4PROTO, REG(0));
	e_cmp(r, REG(0), NFT_CMP_EQ, &proto, sizeof(proto));
}

static void
m_l4proto_not(struct nftnl_rule *r, uint8_t proto)
{
	e_meta(r, NFT_META_L4PROTO, REG(0));
	e_cmp(r, REG(0), NFT_CMP_NEQ, &proto, sizeof(proto));
}

static void
m_dport(struct nftnl_rule *r, uint16_t lo, uint16_t hi)
{
	uint16_t l = htons(lo), h = htons(hi);

	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG(0));
	if (lo == hi) {
		e_cmp(r, REG(0), NFT_CMP_EQ, &l, sizeof(l));
	} else {
		/* Network byte order compares like the number it holds. */
		e_cmp(r, REG(0), NFT_CMP_GTE, &l, sizeof(l));
		e_cmp(r, REG(0), NFT_CMP_LTE, &h, sizeof(h));
	}
}

static void
m_icmp_echo(struct nftnl_rule *r, int family)
{
	uint8_t type = family == AF_INET ? 8 : 128;

	m_l4proto(r, family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, REG(0));
	e_cmp(r, REG(0), NFT_CMP_EQ, &type, sizeof(type));
}

/* ---- batch messages ----------------------------------------------------- */

static struct nftnl_rule *
rule_new(struct builder *bd, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, bd->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static void
rule_commit(struct builder *bd, struct nftnl_rule *r, const char *comment)
{
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
	char what[256];
	struct nlmsghdr *nlh;

	if (comment != NULL) {
		char c[NFTNL_UDATA_COMMENT_MAXLEN];

		snprintf(c, sizeof(c), "%s", comment);
		nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, c);
		nftnl_rule_set_data(r, NFTNL_RULE_USERDATA,
			nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
	}
	snprintf(what, sizeof(what), "rule in chain %s (%s)",
		nftnl_rule_get_str(r, NFTNL_RULE_CHAIN),
		comment ? comment : "-");
	nlh = nft_batch_msg(bd->b, NFT_MSG_NEWRULE, NFPROTO_INET,
		NLM_F_APPEND | NLM_F_CREATE, 8192, what);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_udata_buf_free(ud);
	nftnl_rule_free(r);
}

static void
msg_table(struct builder *bd)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	char what[64];

	snprintf(what, sizeof(what), "table inet %s", bd->table);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, bd->table);
	/* Flags always, 0: a table someone made dormant is woken (without
	 * the attribute the kernel keeps the flags it has). */
	nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
	nlh = nft_batch_msg(bd->b, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE,
		1024, what);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
}

static void
msg_chain(struct builder *bd, const char *name, int hook, uint32_t policy,
	int32_t prio, const char *type)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	char what[128];

	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, bd->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	if (hook >= 0) {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, policy);
	}
	snprintf(what, sizeof(what), "chain %s", name);
	nlh = nft_batch_msg(bd->b, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE,
		1024, what);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
}

static void
msg_del(struct builder *bd, uint16_t type, const char *name)
{
	struct nlmsghdr *nlh;
	char what[128];

	snprintf(what, sizeof(what), "%s %s",
		type == NFT_MSG_DELSET		  ? "set"
			: type == NFT_MSG_DELRULE ? "flush chain"
						  : "chain",
		name);
	nlh = nft_batch_msg(bd->b, type, NFPROTO_INET, 0, 1024, what);
	if (type == NFT_MSG_DELSET) {
		struct nftnl_set *s = nftnl_set_alloc();

		nftnl_set_set_str(s, NFTNL_SET_TABLE, bd->table);
		nftnl_set_set_str(s, NFTNL_SET_NAME, name);
		nftnl_set_nlmsg_build_payload(nlh, s);
		nftnl_set_free(s);
	} else if (type == NFT_MSG_DELRULE) {
		struct nftnl_rule *r = nftnl_rule_alloc();

		nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, bd->table);
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, name);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
	} else {
		struct nftnl_chain *c = nftnl_chain_alloc();

		nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, bd->table);
		nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
		nftnl_chain_nlmsg_build_payload(nlh, c);
		nftnl_chain_free(c);
	}
}

/* ---- sets ---------------------------------------------------------------- */

/* The set as we want it; compared with what the kernel has. */
static struct nftnl_set *
set_want(struct builder *bd, const char *name, int idx)
{
	struct nftnl_set *s = nftnl_set_alloc();
	uint8_t fields[3];
	size_t nfields = elems_concat(idx, fields);

	nftnl_set_set_str(s, NFTNL_SET_TABLE, bd->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_ID, ++bd->set_id);
	/* Twice the limit dnsfenced enforces itself: expired elements count
	 * in the kernel until its garbage collection runs. */
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, bd->c->limits.set_size * 2);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, elems_key_type(idx));
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, elems_key_len(idx));
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, elems_set_flags(idx));
	/* Port sets: ranges over a concatenation (pipapo). */
	if (nfields > 0)
		nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields,
			(uint32_t)nfields);
	return s;
}

/* A learn set: dynamic, filled by the VM's chain (elems.h). */
static struct nftnl_set *
set_want_seen(struct builder *bd, const char *name, int family)
{
	struct nftnl_set *s = nftnl_set_alloc();
	int idx = set_index(SET_PORTS, family);

	nftnl_set_set_str(s, NFTNL_SET_TABLE, bd->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_ID, ++bd->set_id);
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, SEEN_SIZE);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, elems_key_type(idx));
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, elems_key_len(idx));
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, elems_seen_flags());
	nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, SEEN_TIMEOUT_MS);
	return s;
}

static struct nftnl_set *
want_set(struct builder *bd, const char *name, int idx, bool seen)
{
	return seen ? set_want_seen(bd, name, idx) : set_want(bd, name, idx);
}

/* The sets of vm: its family (the ranges sets only if its rules have a
 * range), then (mode: learn) its seen sets, indexed by family. */
static int
vm_nsets(const struct vm *vm)
{
	return SET_COUNT + (vm->learn ? 2 : 0);
}

/* The name of vm's set k, or NULL if vm has no such set. */
static const char *
vm_set_name(char *buf, size_t len, const struct vm *vm, int k, bool *seen,
	int *idx)
{
	*seen = k >= SET_COUNT;
	if (*seen) {
		*idx = k == SET_COUNT ? AF_INET : AF_INET6;
		return elems_seen_name(buf, len, vm->name, *idx);
	}
	*idx = k;
	if (!elems_vm_has_set(vm->atoms, vm->natoms, k))
		return NULL;
	return elems_set_name(buf, len, vm->name, k);
}

static bool
set_same(const struct nftnl_set *a, const struct nftnl_set *b)
{
	static const uint16_t attrs[] = {NFTNL_SET_KEY_TYPE, NFTNL_SET_KEY_LEN,
		NFTNL_SET_FLAGS, NFTNL_SET_DESC_SIZE};

	for (size_t i = 0; i < ARRAY_SIZE(attrs); i++) {
		if (!nftnl_set_is_set(b, attrs[i]) ||
			nftnl_set_get_u32(a, attrs[i]) !=
				nftnl_set_get_u32(b, attrs[i]))
			return false;
	}
	return true;
}

static int
cmp_set(const void *a, const void *b)
{
	return strcmp(nftnl_set_get_str(*(struct nftnl_set *const *)a,
			      NFTNL_SET_NAME),
		nftnl_set_get_str(*(struct nftnl_set *const *)b,
			NFTNL_SET_NAME));
}

static int
cmp_name_set(const void *key, const void *b)
{
	return strcmp(key,
		nftnl_set_get_str(*(struct nftnl_set *const *)b,
			NFTNL_SET_NAME));
}

static struct nftnl_set *
find_set(struct builder *bd, const char *name)
{
	struct nftnl_set **s;

	if (bd->nhave_sets == 0)
		return NULL;
	s = bsearch(name, bd->have_sets, bd->nhave_sets, sizeof(*s),
		cmp_name_set);
	return s ? *s : NULL;
}

/* The sets and chains the configuration wants, and the sets the kernel
 * has, sorted by name. */
static void
index_names(struct builder *bd, struct nftnl_set_list *have)
{
	const struct config *c = bd->c;
	char name[SET_NAME_MAX];

	bd->want_sets = xcalloc(c->nvms * (SET_COUNT + 2) + 1, sizeof(char *));
	bd->want_chains = xcalloc(c->nvms + 1, sizeof(char *));
	for (size_t v = 0; v < c->nvms; v++) {
		for (int k = 0; k < vm_nsets(&c->vms[v]); k++) {
			bool seen;
			int idx;

			if (vm_set_name(name, sizeof(name), &c->vms[v], k,
				    &seen, &idx) != NULL)
				bd->want_sets[bd->nwant_sets++] = xstrdup(name);
		}
		bd->want_chains[bd->nwant_chains++] =
			xasprintf("vm_%s", c->vms[v].name);
	}
	qsort(bd->want_sets, bd->nwant_sets, sizeof(char *), cmp_str);
	qsort(bd->want_chains, bd->nwant_chains, sizeof(char *), cmp_str);
	if (have != NULL) {
		struct nftnl_set_list_iter *it =
			nftnl_set_list_iter_create(have);
		struct nftnl_set *s;

		while ((s = nftnl_set_list_iter_next(it)) != NULL) {
			bd->have_sets = xreallocarray(bd->have_sets,
				bd->nhave_sets + 1, sizeof(*bd->have_sets));
			bd->have_sets[bd->nhave_sets++] = s;
		}
		nftnl_set_list_iter_destroy(it);
		if (bd->nhave_sets > 0)
			qsort(bd->have_sets, bd->nhave_sets,
				sizeof(*bd->have_sets), cmp_set);
	}
}

static void
msg_newset(struct builder *bd, struct nftnl_set *s)
{
	struct nlmsghdr *nlh;
	char what[128];

	snprintf(what, sizeof(what), "set %s",
		nftnl_set_get_str(s, NFTNL_SET_NAME));
	nlh = nft_batch_msg(bd->b, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE,
		2048, what);
	nftnl_set_nlmsg_build_payload(nlh, s);
}

static void
copy_attr(struct nftnl_set_elem *to, struct nftnl_set_elem *from, uint16_t attr)
{
	const void *p;
	uint32_t len;

	if (!nftnl_set_elem_is_set(from, attr))
		return;
	p = nftnl_set_elem_get(from, attr, &len);
	nftnl_set_elem_set(to, attr, p, len);
}

/* The same element, timing out when the old one would have; with its
 * key end only into an interval set. */
static struct nftnl_set_elem *
elem_carry(struct nftnl_set_elem *e, bool interval)
{
	struct nftnl_set_elem *n = nftnl_set_elem_alloc();

	copy_attr(n, e, NFTNL_SET_ELEM_KEY);
	if (interval)
		copy_attr(n, e, NFTNL_SET_ELEM_KEY_END);
	copy_attr(n, e, NFTNL_SET_ELEM_FLAGS);
	copy_attr(n, e, NFTNL_SET_ELEM_USERDATA);
	if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_EXPIRATION))
		nftnl_set_elem_set_u64(n, NFTNL_SET_ELEM_TIMEOUT,
			nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_EXPIRATION) +
				1);
	return n;
}

/* Is e a range: a key end other than its key? */
static bool
elem_is_range(struct nftnl_set_elem *e)
{
	uint32_t kl = 0, el = 0;
	const void *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &kl);
	const void *end = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &el);

	return k != NULL && end != NULL && (kl != el || memcmp(k, end, kl));
}

/* A set to carry elements into: the set as we want it, by name and ID. */
static struct nftnl_set *
carry_target(struct builder *bd, const struct nftnl_set *want)
{
	struct nftnl_set *add = nftnl_set_alloc();

	nftnl_set_set_str(add, NFTNL_SET_TABLE, bd->table);
	nftnl_set_set_str(add, NFTNL_SET_NAME,
		nftnl_set_get_str(want, NFTNL_SET_NAME));
	nftnl_set_set_u32(add, NFTNL_SET_ID,
		nftnl_set_get_u32(want, NFTNL_SET_ID));
	return add;
}

static void
carry_emit(struct builder *bd, struct nftnl_set *add)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(add);
	char what[128];
	int more = 1;

	snprintf(what, sizeof(what), "elements carried into set %s",
		nftnl_set_get_str(add, NFTNL_SET_NAME));
	while (nftnl_set_elems_iter_cur(it) != NULL && more > 0) {
		struct nlmsghdr *nlh = nft_batch_msg(bd->b, NFT_MSG_NEWSETELEM,
			NFPROTO_INET, NLM_F_CREATE, 70000, what);

		more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);
	}
	nftnl_set_elems_iter_destroy(it);
}

/* A set whose properties changed (its size, say) is made anew; its
 * elements move over with the time they have left, so nothing admitted
 * is lost. The ports set of a table written before single ports had a
 * hash set of their own was an interval set: its single ports move into
 * the new one and its ranges into ranges (NULL: the VM has no ranges any
 * more, and no rule would admit them). */
static void
carry_elements(struct builder *bd, struct nftnl_set *old,
	struct nftnl_set *want, struct nftnl_set *ranges)
{
	struct nftnl_set *dump = nftnl_set_alloc();
	struct nftnl_set *to = carry_target(bd, want);
	struct nftnl_set *to_r = ranges ? carry_target(bd, ranges) : NULL;
	bool interval =
		nftnl_set_get_u32(want, NFTNL_SET_FLAGS) & NFT_SET_INTERVAL;
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *e;

	nftnl_set_set_str(dump, NFTNL_SET_TABLE, bd->table);
	nftnl_set_set_str(dump, NFTNL_SET_NAME,
		nftnl_set_get_str(old, NFTNL_SET_NAME));
	nftnl_set_set_u32(dump, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (nft_dump_elems(dump) < 0)
		log_warn("reading set %s",
			nftnl_set_get_str(old, NFTNL_SET_NAME));
	it = nftnl_set_elems_iter_create(dump);
	while ((e = nftnl_set_elems_iter_next(it)) != NULL) {
		if (interval || !elem_is_range(e))
			nftnl_set_elem_add(to, elem_carry(e, interval));
		else if (to_r != NULL)
			nftnl_set_elem_add(to_r, elem_carry(e, true));
	}
	nftnl_set_elems_iter_destroy(it);
	carry_emit(bd, to);
	if (to_r != NULL)
		carry_emit(bd, to_r);
	nftnl_set_free(dump);
	nftnl_set_free(to);
	if (to_r != NULL)
		nftnl_set_free(to_r);
}

/* Can old's elements move into want? The same key; an interval set's
 * into another, or (the ports set of an older table) a concatenation's
 * into a hash and a ranges set. */
static bool
set_carries(const struct nftnl_set *want, const struct nftnl_set *old)
{
	uint32_t wf = nftnl_set_get_u32(want, NFTNL_SET_FLAGS),
		 of = nftnl_set_get_u32(old, NFTNL_SET_FLAGS);

	if (nftnl_set_get_u32(want, NFTNL_SET_KEY_TYPE) !=
			nftnl_set_get_u32(old, NFTNL_SET_KEY_TYPE) ||
		nftnl_set_get_u32(want, NFTNL_SET_KEY_LEN) !=
			nftnl_set_get_u32(old, NFTNL_SET_KEY_LEN))
		return false;
	return (wf & NFT_SET_INTERVAL) == (of & NFT_SET_INTERVAL) ||
		(wf & NFT_SET_CONCAT);
}

static void
sets_sync_vm(struct builder *bd, const struct vm *vm)
{
	struct nftnl_set *want[SET_COUNT + 2] = {NULL}, *carry[SET_COUNT + 2];
	char name[SET_NAME_MAX];
	int n = vm_nsets(vm);

	for (int k = 0; k < n; k++) {
		bool seen;
		int idx;

		carry[k] = NULL;
		if (vm_set_name(name, sizeof(name), vm, k, &seen, &idx) == NULL)
			continue;
		want[k] = want_set(bd, name, idx, seen);
		carry[k] = find_set(bd, name);
		if (carry[k] != NULL && !set_same(want[k], carry[k])) {
			msg_del(bd, NFT_MSG_DELSET, name);
			if (!set_carries(want[k], carry[k]))
				carry[k] = NULL;
		} else {
			carry[k] = NULL;
		}
		msg_newset(bd, want[k]);
	}
	/* Once every set of the VM exists: an element may move from one set
	 * into another. */
	for (int k = 0; k < n; k++) {
		if (carry[k] != NULL) {
			int r = k < SET_COUNT && set_index_kind(k) == SET_PORTS
				? set_index(SET_RANGES, set_index_family(k))
				: -1;

			carry_elements(bd, carry[k], want[k],
				r >= 0 ? want[r] : NULL);
		}
	}
	for (int k = 0; k < n; k++)
		if (want[k] != NULL)
			nftnl_set_free(want[k]);
}

static void
sets_sync(struct builder *bd, struct nftnl_set_list *have)
{
	(void)have;
	/* Sets nobody wants any more go first. Rules referring to them were
	 * flushed earlier in the same transaction. */
	for (size_t i = 0; i < bd->nhave_sets; i++) {
		const char *sn =
			nftnl_set_get_str(bd->have_sets[i], NFTNL_SET_NAME);

		if (!in_sorted(bd->want_sets, bd->nwant_sets, sn))
			msg_del(bd, NFT_MSG_DELSET, sn);
	}
	for (size_t v = 0; v < bd->c->nvms; v++)
		if (!bd->keep_vm[v])
			sets_sync_vm(bd, &bd->c->vms[v]);
}

/* ---- chains and rules -------------------------------------------------- */

static const char *
vm_chain(char *buf, size_t len, const struct vm *vm)
{
	snprintf(buf, len, "vm_%s", vm->name);
	return buf;
}

static bool
chain_wanted(struct builder *bd, const struct nftnl_chain *ch)
{
	const char *name = nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME);
	bool base = nftnl_chain_is_set(ch, NFTNL_CHAIN_HOOKNUM);

	if (strcmp(name, "forward") == 0 || strcmp(name, "input") == 0) {
		/* A base chain is kept only if it hooks where we want it:
		 * the kernel cannot move a chain to another hook or
		 * priority (nftables: priority moves forward's). */
		bool fwd = strcmp(name, "forward") == 0;

		return base &&
			nftnl_chain_get_u32(ch, NFTNL_CHAIN_HOOKNUM) ==
			(fwd ? NF_INET_FORWARD : NF_INET_LOCAL_IN) &&
			nftnl_chain_get_s32(ch, NFTNL_CHAIN_PRIO) ==
			(fwd ? bd->c->priority : CHAIN_PRIO);
	}
	if (strcmp(name, CAPTURE_CHAIN) == 0) {
		const char *type = nftnl_chain_get_str(ch, NFTNL_CHAIN_TYPE);

		return bd->c->capture.on && base &&
			nftnl_chain_get_u32(ch, NFTNL_CHAIN_HOOKNUM) ==
			NF_INET_PRE_ROUTING &&
			nftnl_chain_get_s32(ch, NFTNL_CHAIN_PRIO) ==
			CAPTURE_PRIO &&
			type != NULL && strcmp(type, "nat") == 0;
	}
	if (base)
		return false;
	if (strcmp(name, "vms_to_listen") == 0)
		return true;
	return in_sorted(bd->want_chains, bd->nwant_chains, name);
}

static bool
is_front(const char *name)
{
	return strcmp(name, "forward") == 0 || strcmp(name, "input") == 0 ||
		strcmp(name, "vms_to_listen") == 0 ||
		strcmp(name, CAPTURE_CHAIN) == 0;
}

/* A chain that this transaction leaves as it is, rules and all. */
static bool
chain_kept(struct builder *bd, const struct nftnl_chain *ch)
{
	const char *name = nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME);

	if (!chain_wanted(bd, ch))
		return false;
	if (is_front(name))
		return bd->keep_front;
	return in_sorted(bd->kept_chains, bd->nkept_chains, name);
}

static void
chains_flush(struct builder *bd, struct nftnl_chain_list *have)
{
	struct nftnl_chain_list_iter *it;
	struct nftnl_chain *ch;

	if (have == NULL)
		return;
	/* Rules first (they hold references to chains and sets), then the
	 * chains nobody wants; all of it in the transaction that rebuilds
	 * the rest, so no packet ever sees a half-built table. Base chains
	 * stay hooked throughout: deleting and re-adding one would open a
	 * moment where its policy alone decides. */
	it = nftnl_chain_list_iter_create(have);
	while ((ch = nftnl_chain_list_iter_next(it)) != NULL)
		if (!chain_kept(bd, ch))
			msg_del(bd, NFT_MSG_DELRULE,
				nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME));
	nftnl_chain_list_iter_destroy(it);
	it = nftnl_chain_list_iter_create(have);
	while ((ch = nftnl_chain_list_iter_next(it)) != NULL)
		if (!chain_wanted(bd, ch))
			msg_del(bd, NFT_MSG_DELCHAIN,
				nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME));
	nftnl_chain_list_iter_destroy(it);
}

static void
rule_net(struct builder *bd, const char *chain, const struct vm *vm,
	const struct rule *ru)
{
	char cmt[128], pfx[64];
	struct nftnl_rule *r;

	snprintf(cmt, sizeof(cmt), "%s: net %s", vm->name,
		policy_prefix_str(&ru->net, pfx, sizeof(pfx)));
	if (ru->ports.any) {
		r = rule_new(bd, chain);
		m_prefix(r, &ru->net, true);
		e_verdict(r, NF_ACCEPT, NULL);
		rule_commit(bd, r, cmt);
		return;
	}
	if (ru->ports.icmp) {
		r = rule_new(bd, chain);
		m_prefix(r, &ru->net, true);
		m_icmp_echo(r, ru->net.addr.family);
		e_verdict(r, NF_ACCEPT, NULL);
		rule_commit(bd, r, cmt);
	}
	for (size_t i = 0; i < ru->ports.n; i++) {
		const struct portspec *p = &ru->ports.v[i];

		r = rule_new(bd, chain);
		m_prefix(r, &ru->net, true);
		m_l4proto(r, p->proto);
		m_dport(r, p->lo, p->hi);
		e_verdict(r, NF_ACCEPT, NULL);
		rule_commit(bd, r, cmt);
	}
}

/* What the VM's name rules can admit: rules to look up only those, and
 * only for the families the VM has addresses in (packets of another
 * family never reach its chain). Every set lookup the kernel resolves by
 * name costs a walk over the table's sets at install time. */
struct kinds {
	bool any, ports, ranges, echo;
};

/* Which of its sets vm's chain looks up: single ports and ranges as its
 * name rules cut them (policy_vm_atoms). */
static struct kinds
vm_kinds(const struct vm *vm)
{
	struct kinds k = {false, false, false, false};

	for (size_t i = 0; i < vm->nallow; i++) {
		const struct rule *ru = &vm->allow[i];

		if (ru->is_net)
			continue;
		k.any |= ru->ports.any;
		k.echo |= ru->ports.icmp;
	}
	for (size_t i = 0; i < vm->natoms; i++) {
		k.ports |= vm->atoms[i].lo == vm->atoms[i].hi;
		k.ranges |= vm->atoms[i].lo < vm->atoms[i].hi;
	}
	return k;
}

static bool
vm_has_family(const struct vm *vm, int family)
{
	for (size_t i = 0; i < vm->naddrs; i++)
		if (vm->addrs[i].family == family)
			return true;
	return false;
}

/* A lookup of daddr . l4proto . dport in set idx (the ports or the
 * ranges set). */
static void
rule_ports(struct builder *bd, const char *chain, const struct vm *vm, int idx,
	const char *cmt)
{
	int family = set_index_family(idx);
	char set[SET_NAME_MAX];
	struct nftnl_rule *r;
	uint32_t alen = addr_len(family);
	uint8_t icmp = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;

	/* daddr . l4proto . dport, each in its own 32-bit register. meta
	 * l4proto stores one byte and zeroes the rest of its register, and
	 * a 2-byte payload load zeroes the padding, as the set key expects.
	 * Not for ICMP: there the bytes at the port's offset are the
	 * checksum, which must never match an echo request's element. */
	r = rule_new(bd, chain);
	m_nfproto(r, family);
	m_l4proto_not(r, icmp);
	m_load_addr(r, family, true);
	e_meta(r, NFT_META_L4PROTO, REG(alen / 4));
	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG(alen / 4 + 1));
	e_lookup(r, elems_set_name(set, sizeof(set), vm->name, idx), REG(0));
	e_verdict(r, NF_ACCEPT, NULL);
	rule_commit(bd, r, cmt);
}

static void
rule_echo(struct builder *bd, const char *chain, const struct vm *vm,
	int family, const char *cmt)
{
	char set[SET_NAME_MAX];
	struct nftnl_rule *r;
	uint32_t alen = addr_len(family);
	uint8_t icmp = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;

	/* Echo requests: daddr . icmp . type,code in the same set. */
	r = rule_new(bd, chain);
	m_nfproto(r, family);
	m_l4proto(r, icmp);
	m_load_addr(r, family, true);
	e_meta(r, NFT_META_L4PROTO, REG(alen / 4));
	e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, REG(alen / 4 + 1));
	e_lookup(r,
		elems_set_name(set, sizeof(set), vm->name,
			set_index(SET_PORTS, family)),
		REG(0));
	e_verdict(r, NF_ACCEPT, NULL);
	rule_commit(bd, r, cmt);
}

static void
rules_sets(struct builder *bd, const char *chain, const struct vm *vm,
	int family)
{
	struct kinds kinds = vm_kinds(vm);
	char set[SET_NAME_MAX], cmt[128];
	struct nftnl_rule *r;

	if (!vm_has_family(vm, family))
		return;
	snprintf(cmt, sizeof(cmt), "%s: names it resolved", vm->name);
	if (kinds.any) {
		r = rule_new(bd, chain);
		m_nfproto(r, family);
		m_load_addr(r, family, true);
		e_lookup(r,
			elems_set_name(set, sizeof(set), vm->name,
				set_index(SET_ANY, family)),
			REG(0));
		e_verdict(r, NF_ACCEPT, NULL);
		rule_commit(bd, r, cmt);
	}
	if (kinds.ports)
		rule_ports(bd, chain, vm, set_index(SET_PORTS, family), cmt);
	if (kinds.ranges)
		rule_ports(bd, chain, vm, set_index(SET_RANGES, family), cmt);
	if (kinds.echo)
		rule_echo(bd, chain, vm, family, cmt);
}

/* The counted end of a chain for new connections not admitted: a drop,
 * or with nftables: reject (and may_reject), a reject with
 * admin-prohibited, so the VM learns at once. */
static void
rule_drop(struct builder *bd, const char *chain, const char *who,
	const char *cmt, bool may_reject)
{
	bool reject = may_reject && bd->c->reject;
	struct nftnl_rule *r;

	if (bd->c->log_drops > 0) {
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "dnsfence %s %s: ", who,
			reject ? "reject" : "drop");
		r = rule_new(bd, chain);
		e_log_limited(r, bd->c->log_drops, prefix);
		rule_commit(bd, r, cmt);
	}
	r = rule_new(bd, chain);
	e_counter(r);
	if (reject)
		e_reject(r);
	else
		e_verdict(r, NF_DROP, NULL);
	rule_commit(bd, r, cmt);
}

/* mode: learn: record daddr . l4proto . dport of each new connection
 * (the forward chain accepts established and related traffic before
 * jumping here) in <vm>_vX_seen, in the ports set's key layout. */
static void
rule_seen(struct builder *bd, const char *chain, const struct vm *vm,
	int family, uint8_t proto)
{
	char set[SET_NAME_MAX], cmt[128];
	struct nftnl_rule *r = rule_new(bd, chain);
	uint32_t alen = addr_len(family);
	bool echo = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;

	snprintf(cmt, sizeof(cmt), "%s: learn what it uses", vm->name);
	m_nfproto(r, family);
	if (echo)
		m_icmp_echo(r, family);
	else
		m_l4proto(r, proto);
	m_load_addr(r, family, true);
	e_meta(r, NFT_META_L4PROTO, REG(alen / 4));
	if (echo) {
		/* A constant, not the header's bytes: an echo request's
		 * code is 0 by definition, and ECHO_KEY is what `icmp` in
		 * a policy admits. Never th dport: for ICMP those bytes are
		 * the checksum. */
		uint16_t key =
			htons(family == AF_INET ? ECHO_KEY_V4 : ECHO_KEY_V6);

		e_immediate(r, REG(alen / 4 + 1), &key, sizeof(key));
	} else {
		e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2,
			REG(alen / 4 + 1));
	}
	e_dynset_update(r, elems_seen_name(set, sizeof(set), vm->name, family),
		REG(0));
	rule_commit(bd, r, cmt);
}

static void
rules_learn(struct builder *bd, const char *chain, const struct vm *vm)
{
	static const int fams[2] = {AF_INET, AF_INET6};

	for (int f = 0; f < 2; f++) {
		if (!vm_has_family(vm, fams[f]))
			continue;
		rule_seen(bd, chain, vm, fams[f], IPPROTO_TCP);
		rule_seen(bd, chain, vm, fams[f], IPPROTO_UDP);
		rule_seen(bd, chain, vm, fams[f],
			fams[f] == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	}
}

static void
vm_rules(struct builder *bd, const struct vm *vm)
{
	char chain[64], cmt[128];
	struct nftnl_rule *r;

	vm_chain(chain, sizeof(chain), vm);
	if (vm->learn)
		rules_learn(bd, chain, vm);
	if (vm->default_allow || vm->learn) {
		snprintf(cmt, sizeof(cmt), "%s: %s", vm->name,
			vm->learn ? "mode learn" : "default allow");
		r = rule_new(bd, chain);
		e_counter(r);
		e_verdict(r, NF_ACCEPT, NULL);
		rule_commit(bd, r, cmt);
		return;
	}
	for (size_t i = 0; i < vm->nallow; i++)
		if (vm->allow[i].is_net)
			rule_net(bd, chain, vm, &vm->allow[i]);
	rules_sets(bd, chain, vm, AF_INET);
	rules_sets(bd, chain, vm, AF_INET6);
	snprintf(cmt, sizeof(cmt), "%s: not admitted", vm->name);
	rule_drop(bd, chain, vm->name, cmt, true);
}

/* [iifname "<if>"] ip saddr <address> goto vm_<vm>, per address. */
static void
forward_goto(struct builder *bd, const struct vm *vm)
{
	char chain[64];

	vm_chain(chain, sizeof(chain), vm);
	for (size_t i = 0; i < vm->naddrs; i++) {
		struct nftnl_rule *r = rule_new(bd, "forward");

		if (vm->iface)
			m_iifname(r, vm->iface);
		m_addr(r, &vm->addrs[i], false);
		e_verdict(r, NFT_GOTO, chain);
		rule_commit(bd, r, vm->name);
	}
}

/* After the gotos of every VM that claims ifname: anything else from it
 * carries a source address that is none of theirs, of either family.
 * Counted for the VM when one claims it (vm), else for the interface
 * ("interface <if>: ", which no VM name can be). Never rejected: no ICMP
 * towards a spoofed address. */
static void
forward_spoofed(struct builder *bd, const char *ifname, const char *vm)
{
	struct nftnl_rule *r = rule_new(bd, "forward");
	char cmt[128];

	if (vm != NULL)
		snprintf(cmt, sizeof(cmt), "%s: spoofed source", vm);
	else
		snprintf(cmt, sizeof(cmt), "interface %s: spoofed source",
			ifname);
	m_iifname(r, ifname);
	e_counter(r);
	e_verdict(r, NF_DROP, NULL);
	rule_commit(bd, r, cmt);
}

/* The rules of one interface: the VMs of order[i..] that claim it, then
 * its drop. Returns where the next interface's VMs begin. */
static size_t
forward_iface(struct builder *bd, const size_t *order, size_t i, size_t n)
{
	const struct vm *vms = bd->c->vms;
	const char *ifname = vms[order[i]].iface;
	size_t j = i;

	while (j < n && strcmp(vms[order[j]].iface, ifname) == 0)
		forward_goto(bd, &vms[order[j++]]);
	forward_spoofed(bd, ifname, j - i == 1 ? vms[order[i]].name : NULL);
	return j;
}

static void
forward_rules(struct builder *bd)
{
	const struct config *c = bd->c;
	struct nftnl_rule *r;
	char cmt[128];
	size_t *order, niface;

	if (c->has_from_group) {
		/* Only the VMs' interfaces are ours to judge; the rest goes
		 * on to the other tables' chains. */
		snprintf(cmt, sizeof(cmt), "not from group %u: not ours",
			c->from_group);
		r = rule_new(bd, "forward");
		m_iifgroup(r, c->from_group, NFT_CMP_NEQ);
		e_verdict(r, NF_ACCEPT, NULL);
		rule_commit(bd, r, cmt);
	}
	r = rule_new(bd, "forward");
	e_ct_state(r,
		NF_CT_STATE_BIT(IP_CT_ESTABLISHED) |
			NF_CT_STATE_BIT(IP_CT_RELATED));
	e_verdict(r, NF_ACCEPT, NULL);
	rule_commit(bd, r, "replies and related traffic");

	r = rule_new(bd, "forward");
	e_ct_state(r, NF_CT_STATE_INVALID_BIT);
	e_counter(r);
	e_verdict(r, NF_DROP, NULL);
	rule_commit(bd, r, "invalid");

	/* Interfaces first, then addresses alone: in any order of the
	 * files, a packet that came in on an interface some VM claims meets
	 * only the rules of that interface, and never the dispatch of a VM
	 * without interface: whose address it borrowed. */
	order = xcalloc(c->nvms + 1, sizeof(*order));
	niface = policy_dispatch_order(c->vms, c->nvms, order);
	for (size_t i = 0; i < niface;)
		i = forward_iface(bd, order, i, niface);
	for (size_t i = niface; i < c->nvms; i++)
		forward_goto(bd, &c->vms[order[i]]);
	free(order);
	rule_drop(bd, "forward", "forward",
		"unknown source, or a new connection towards a VM", true);
}

static void
input_rules(struct builder *bd)
{
	const struct config *c = bd->c;
	struct nftnl_rule *r;
	char cmt[128], a[INET6_ADDRSTRLEN];
	static const uint8_t protos[2] = {IPPROTO_UDP, IPPROTO_TCP};

	for (size_t i = 0; i < c->nlisten; i++) {
		const struct listen_addr *l = &c->listen[i];

		snprintf(cmt, sizeof(cmt), "DNS at %s",
			policy_addr_str(&l->addr, a, sizeof(a)));
		for (int p = 0; p < 2; p++) {
			r = rule_new(bd, "input");
			m_addr(r, &l->addr, true);
			m_l4proto(r, protos[p]);
			m_dport(r, l->port, l->port);
			e_verdict(r, NF_ACCEPT, NULL);
			rule_commit(bd, r, cmt);
		}
	}
	/* From a VM, a listen address is for DNS and nothing else. */
	for (size_t v = 0; v < c->nvms; v++) {
		for (size_t i = 0; i < c->vms[v].naddrs; i++) {
			r = rule_new(bd, "input");
			m_addr(r, &c->vms[v].addrs[i], false);
			e_verdict(r, NFT_GOTO, "vms_to_listen");
			rule_commit(bd, r, c->vms[v].name);
		}
	}
	for (size_t i = 0; i < c->nlisten; i++) {
		snprintf(cmt, sizeof(cmt), "only DNS at %s",
			policy_addr_str(&c->listen[i].addr, a, sizeof(a)));
		r = rule_new(bd, "vms_to_listen");
		m_addr(r, &c->listen[i].addr, true);
		e_counter(r);
		e_verdict(r, NF_DROP, NULL);
		rule_commit(bd, r, cmt);
	}
}

/* DNS (udp and tcp port 53) from the capture group, to one address (a)
 * or to any (family only), redirected to our listen port. */
static void
capture_rule(struct builder *bd, int family, const struct ipaddr *a,
	uint8_t proto, const char *cmt)
{
	const struct capture *cp = &bd->c->capture;
	struct nftnl_rule *r = rule_new(bd, CAPTURE_CHAIN);

	if (cp->has_group)
		m_iifgroup(r, cp->group, NFT_CMP_EQ);
	if (a != NULL)
		m_addr(r, a, true);
	else
		m_nfproto(r, family);
	m_l4proto(r, proto);
	m_dport(r, 53, 53);
	e_counter(r);
	e_redirect(r, config_capture_port(bd->c, family));
	rule_commit(bd, r, cmt);
}

static void
capture_rules(struct builder *bd)
{
	const struct capture *cp = &bd->c->capture;
	static const uint8_t protos[2] = {IPPROTO_UDP, IPPROTO_TCP};
	static const int fams[2] = {AF_INET, AF_INET6};
	char cmt[128], a[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < cp->nto; i++) {
		snprintf(cmt, sizeof(cmt), "capture DNS to %s",
			policy_addr_str(&cp->to[i], a, sizeof(a)));
		for (int p = 0; p < 2; p++)
			capture_rule(bd, cp->to[i].family, &cp->to[i],
				protos[p], cmt);
	}
	if (!cp->any)
		return;
	/* Hard capture: every DNS packet of a family we listen in. */
	for (int f = 0; f < 2; f++) {
		if (config_capture_port(bd->c, fams[f]) == 0)
			continue;
		snprintf(cmt, sizeof(cmt), "capture all DNS (IPv%d)",
			fams[f] == AF_INET ? 4 : 6);
		for (int p = 0; p < 2; p++)
			capture_rule(bd, fams[f], NULL, protos[p], cmt);
	}
}

static bool
addrs_same(const struct ipaddr *a, const struct ipaddr *b)
{
	return a->family == b->family &&
		memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16) == 0;
}

static bool
str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
capture_same(const struct config *a, const struct config *b)
{
	const struct capture *x = &a->capture, *y = &b->capture;

	if (x->on != y->on || x->has_group != y->has_group ||
		(x->has_group && x->group != y->group) || x->any != y->any ||
		x->nto != y->nto)
		return false;
	for (size_t i = 0; i < x->nto; i++)
		if (!addrs_same(&x->to[i], &y->to[i]))
			return false;
	return true;
}

/* Do forward, input and vms_to_listen come out the same from a and b?
 * They hold the VMs' addresses and interfaces and the listen addresses. */
static bool
front_same(const struct config *a, const struct config *b)
{
	if (a->nvms != b->nvms || a->nlisten != b->nlisten ||
		a->log_drops != b->log_drops || a->priority != b->priority ||
		a->has_from_group != b->has_from_group ||
		(a->has_from_group && a->from_group != b->from_group) ||
		a->reject != b->reject || !capture_same(a, b))
		return false;
	for (size_t i = 0; i < a->nlisten; i++)
		if (!addrs_same(&a->listen[i].addr, &b->listen[i].addr) ||
			a->listen[i].port != b->listen[i].port)
			return false;
	for (size_t v = 0; v < a->nvms; v++) {
		const struct vm *x = &a->vms[v], *y = &b->vms[v];

		if (strcmp(x->name, y->name) != 0 || x->naddrs != y->naddrs ||
			!str_same(x->iface, y->iface))
			return false;
		for (size_t i = 0; i < x->naddrs; i++)
			if (!addrs_same(&x->addrs[i], &y->addrs[i]))
				return false;
	}
	return true;
}

static bool
have_chain(struct builder *bd, const char *name)
{
	return in_sorted(bd->have_chains, bd->nhave_chains, name);
}

/* A VM whose rules (and the settings its chain and sets depend on) did
 * not change keeps its chain and sets untouched, so that a reload costs
 * what changed: each set the kernel has to look up by name costs a walk
 * over every set of the table. */
static bool
vm_kept(struct builder *bd, const struct vm *vm)
{
	const struct config *c = bd->c, *old = bd->old;
	const struct vm *ovm;
	char name[SET_NAME_MAX];

	if (old == NULL || old->log_drops != c->log_drops ||
		old->reject != c->reject ||
		old->limits.set_size != c->limits.set_size)
		return false;
	ovm = config_vm(old, vm->name);
	/* The chain also depends on which families the VM has addresses
	 * in (see rules_sets). */
	if (ovm == NULL || !policy_vm_same_rules(ovm, vm) ||
		vm_has_family(ovm, AF_INET) != vm_has_family(vm, AF_INET) ||
		vm_has_family(ovm, AF_INET6) != vm_has_family(vm, AF_INET6) ||
		!have_chain(bd, vm_chain(name, sizeof(name), vm)))
		return false;
	for (int k = 0; k < vm_nsets(vm); k++) {
		struct nftnl_set *want, *have;
		bool same, seen;
		int idx;

		if (vm_set_name(name, sizeof(name), vm, k, &seen, &idx) == NULL)
			continue;
		if ((have = find_set(bd, name)) == NULL)
			return false;
		want = want_set(bd, name, idx, seen);
		same = set_same(want, have);
		nftnl_set_free(want);
		if (!same)
			return false;
	}
	return true;
}

static void
index_chains(struct builder *bd, struct nftnl_chain_list *have)
{
	struct nftnl_chain_list_iter *it;
	struct nftnl_chain *ch;
	size_t front = 0;

	if (have == NULL)
		return;
	it = nftnl_chain_list_iter_create(have);
	while ((ch = nftnl_chain_list_iter_next(it)) != NULL) {
		const char *name = nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME);

		bd->have_chains = xreallocarray(bd->have_chains,
			bd->nhave_chains + 1, sizeof(char *));
		bd->have_chains[bd->nhave_chains++] = xstrdup(name);
		if (is_front(name) && chain_wanted(bd, ch))
			front++;
	}
	nftnl_chain_list_iter_destroy(it);
	if (bd->nhave_chains > 0)
		qsort(bd->have_chains, bd->nhave_chains, sizeof(char *),
			cmp_str);
	bd->keep_front = front == 3 + (size_t)bd->c->capture.on &&
		bd->old != NULL && front_same(bd->old, bd->c);
}

struct nft_batch *
ruleset_build(struct nft *n, const struct config *c, const struct config *old)
{
	struct builder bd = {.c = c, .old = old, .table = c->table};
	struct nftnl_set_list *sets = NULL;
	struct nftnl_chain_list *chains = NULL;
	char chain[64];

	if (nft_is_priv(n)) {
		/* The privileged process builds the rules itself, from its
		 * own copy of the files (privproto.h). */
		struct nft_batch *b = nft_batch_new(n);

		nft_batch_install(b, c->gen, c->at, old != NULL);
		return b;
	}
	if (nft_dump_chains(c->table, &chains) < 0 ||
		nft_dump_sets(c->table, &sets) < 0) {
		log_warn("reading table inet %s", c->table);
		if (chains)
			nftnl_chain_list_free(chains);
		return NULL;
	}
	index_names(&bd, sets);
	index_chains(&bd, chains);
	bd.keep_vm = xcalloc(c->nvms + 1, sizeof(*bd.keep_vm));
	bd.kept_chains = xcalloc(c->nvms + 1, sizeof(char *));
	for (size_t v = 0; v < c->nvms; v++)
		if ((bd.keep_vm[v] = vm_kept(&bd, &c->vms[v])))
			bd.kept_chains[bd.nkept_chains++] =
				xasprintf("vm_%s", c->vms[v].name);
	if (bd.nkept_chains > 0)
		qsort(bd.kept_chains, bd.nkept_chains, sizeof(char *), cmp_str);
	bd.b = nft_batch_new(n);
	msg_table(&bd);
	chains_flush(&bd, chains);
	sets_sync(&bd, sets);
	if (!bd.keep_front) {
		msg_chain(&bd, "forward", NF_INET_FORWARD, NF_DROP, c->priority,
			"filter");
		msg_chain(&bd, "input", NF_INET_LOCAL_IN, NF_ACCEPT, CHAIN_PRIO,
			"filter");
		msg_chain(&bd, "vms_to_listen", -1, 0, 0, NULL);
		if (c->capture.on)
			msg_chain(&bd, CAPTURE_CHAIN, NF_INET_PRE_ROUTING,
				NF_ACCEPT, CAPTURE_PRIO, "nat");
	}
	for (size_t v = 0; v < c->nvms; v++)
		if (!bd.keep_vm[v])
			msg_chain(&bd,
				vm_chain(chain, sizeof(chain), &c->vms[v]), -1,
				0, 0, NULL);
	for (size_t v = 0; v < c->nvms; v++)
		if (!bd.keep_vm[v])
			vm_rules(&bd, &c->vms[v]);
	if (!bd.keep_front) {
		forward_rules(&bd);
		input_rules(&bd);
		if (c->capture.on)
			capture_rules(&bd);
	}
	if (chains)
		nftnl_chain_list_free(chains);
	if (sets)
		nftnl_set_list_free(sets);
	free_strs(bd.want_sets, bd.nwant_sets);
	free_strs(bd.want_chains, bd.nwant_chains);
	free_strs(bd.have_chains, bd.nhave_chains);
	free_strs(bd.kept_chains, bd.nkept_chains);
	free(bd.have_sets);
	free(bd.keep_vm);
	return bd.b;
}

/* ---- counters -------------------------------------------------------------- */

struct ctr_walk {
	uint64_t packets, bytes;
	bool found;
};

static int
ctr_expr_cb(struct nftnl_expr *e, void *data)
{
	struct ctr_walk *w = data;

	if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") != 0)
		return 0;
	w->packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
	w->bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
	w->found = true;
	return 0;
}

static int
comment_cb(const struct nftnl_udata *attr, void *data)
{
	const char **out = data;
	const char *v = nftnl_udata_get(attr);
	uint8_t len = nftnl_udata_len(attr);

	/* Ours end with their NUL; anything else is not read. */
	if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT && len > 0 &&
		v[len - 1] == '\0')
		*out = v;
	return 0;
}

int
ruleset_counters(const char *table,
	void (*cb)(const char *vm, const char *what, uint64_t packets,
		uint64_t bytes, void *arg),
	void *arg)
{
	struct nftnl_rule_list *l;
	struct nftnl_rule_list_iter *it;
	struct nftnl_rule *r;

	if (nft_dump_rules(table, &l) < 0)
		return -1;
	if (l == NULL)
		return 0;
	it = nftnl_rule_list_iter_create(l);
	while ((r = nftnl_rule_list_iter_next(it)) != NULL) {
		const char *chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
		struct ctr_walk w = {0};
		const char *cmt = NULL, *sep;
		uint32_t len = 0;
		const void *ud =
			nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
		char vm[VM_NAME_MAX + 1];

		/* capture counts redirected DNS, not drops */
		if (chain != NULL && strcmp(chain, CAPTURE_CHAIN) == 0)
			continue;
		nftnl_expr_foreach(r, ctr_expr_cb, &w);
		if (!w.found || ud == NULL ||
			nftnl_udata_parse(ud, len, comment_cb, &cmt) < 0 ||
			cmt == NULL)
			continue;
		sep = strstr(cmt, ": ");
		if (sep != NULL && (size_t)(sep - cmt) <= VM_NAME_MAX) {
			memcpy(vm, cmt, (size_t)(sep - cmt));
			vm[sep - cmt] = '\0';
			if (policy_vm_name_valid(vm)) {
				cb(vm, sep + 2, w.packets, w.bytes, arg);
				continue;
			}
		}
		cb(NULL, cmt, w.packets, w.bytes, arg);
	}
	nftnl_rule_list_iter_destroy(it);
	nftnl_rule_list_free(l);
	return 0;
}
