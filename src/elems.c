#include "elems.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "policy.h"
#include "util.h"

/* ---- the family of sets --------------------------------------------------- */

int
set_index(enum set_kind kind, int family)
{
	return (int)kind * 2 + (family == AF_INET6);
}

enum set_kind
set_index_kind(int idx)
{
	return (enum set_kind)(idx / 2);
}

int
set_index_family(int idx)
{
	return idx % 2 ? AF_INET6 : AF_INET;
}

const char *
elems_set_name(char *buf, size_t len, const char *vm, int idx)
{
	static const char *const tail[SET_KINDS] = {"", "_ports", "_ranges"};

	snprintf(buf, len, "%s_v%c%s", vm,
		set_index_family(idx) == AF_INET ? '4' : '6',
		tail[set_index_kind(idx)]);
	return buf;
}

static uint32_t
addr_len(int idx)
{
	return set_index_family(idx) == AF_INET ? 4 : 16;
}

uint32_t
elems_key_type(int idx)
{
	uint32_t at =
		set_index_family(idx) == AF_INET ? TYPE_IPADDR : TYPE_IP6ADDR;

	if (set_index_kind(idx) == SET_ANY)
		return at;
	return ((at << TYPE_BITS | TYPE_INET_PROTO) << TYPE_BITS) |
		TYPE_INET_SERVICE;
}

/* addr . inet_proto . inet_service: each field padded to a 32-bit
 * register, the layout the rule's registers load. */
uint32_t
elems_key_len(int idx)
{
	return addr_len(idx) + (set_index_kind(idx) == SET_ANY ? 0 : 8);
}

/* The ports set is a hash (rhash: elements with timeouts); the ranges
 * set, an interval over a concatenation, is pipapo. */
uint32_t
elems_set_flags(int idx)
{
	switch (set_index_kind(idx)) {
	case SET_PORTS:
		return NFT_SET_TIMEOUT | NFT_SET_CONCAT;
	case SET_RANGES:
		return NFT_SET_TIMEOUT | NFT_SET_INTERVAL | NFT_SET_CONCAT;
	default:
		return NFT_SET_TIMEOUT;
	}
}

size_t
elems_concat(int idx, uint8_t fields[3])
{
	if (set_index_kind(idx) == SET_ANY)
		return 0;
	fields[0] = (uint8_t)addr_len(idx);
	fields[1] = 1;
	fields[2] = 2;
	return 3;
}

/* ---- keys ------------------------------------------------------------------ */

void
elems_echo_key(struct elem_key *k, int family)
{
	k->kind = SET_PORTS;
	k->proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	k->lo = k->hi = family == AF_INET ? ECHO_KEY_V4 : ECHO_KEY_V6;
}

void
elems_port_key(struct elem_key *k, uint8_t proto, uint16_t lo, uint16_t hi)
{
	k->kind = lo == hi ? SET_PORTS : SET_RANGES;
	k->proto = proto;
	k->lo = lo;
	k->hi = hi;
}

bool
elems_has_ports(const struct elem_key *k)
{
	return k->kind == SET_PORTS || k->kind == SET_RANGES;
}

bool
elems_key_canonical(const struct elem_key *k)
{
	switch (k->kind) {
	case SET_ANY:
		return k->proto == 0 && k->lo == 0 && k->hi == 0;
	case SET_PORTS:
		return k->lo == k->hi;
	case SET_RANGES:
		return k->lo < k->hi && !elems_is_echo(k);
	default:
		return false;
	}
}

bool
elems_vm_has_set(const struct portspec *atoms, size_t natoms, int idx)
{
	if (set_index_kind(idx) != SET_RANGES)
		return true;
	for (size_t i = 0; i < natoms; i++)
		if (atoms[i].lo < atoms[i].hi)
			return true;
	return false;
}

bool
elems_is_echo(const struct elem_key *k)
{
	return k->kind == SET_PORTS &&
		k->proto ==
		(k->family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
}

void
elems_ports(const struct elem_key *k, const char **proto, char *ports,
	size_t len)
{
	ports[0] = '\0';
	if (!elems_has_ports(k)) {
		*proto = NULL;
		return;
	}
	if (elems_is_echo(k)) {
		*proto = "icmp";
		return;
	}
	*proto = k->proto == IPPROTO_TCP ? "tcp" : "udp";
	if (k->lo == k->hi)
		snprintf(ports, len, "%u", k->lo);
	else
		snprintf(ports, len, "%u-%u", k->lo, k->hi);
}

static void
key_bytes(const struct elem_key *k, bool end, uint8_t buf[24], uint32_t *len)
{
	size_t alen = k->family == AF_INET ? 4 : 16;
	uint16_t port = end ? k->hi : k->lo;

	memset(buf, 0, 24);
	memcpy(buf, k->addr, alen);
	*len = (uint32_t)alen;
	if (!elems_has_ports(k))
		return;
	buf[alen] = k->proto;
	buf[alen + 4] = (uint8_t)(port >> 8);
	buf[alen + 5] = (uint8_t)port;
	*len = (uint32_t)alen + 8;
}

void
elems_key_put(struct nftnl_set_elem *el, const struct elem_key *k)
{
	uint8_t buf[24];
	uint32_t len;

	key_bytes(k, false, buf, &len);
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, buf, len);
	if (k->kind == SET_RANGES) {
		key_bytes(k, true, buf, &len);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, buf, len);
	}
}

bool
elems_key_get(struct nftnl_set_elem *el, int idx, struct elem_key *k)
{
	uint32_t klen = 0, elen = 0, alen = addr_len(idx);
	const uint8_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
	const uint8_t *end;

	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)set_index_family(idx);
	k->kind = (uint8_t)set_index_kind(idx);
	if (key == NULL || klen != elems_key_len(idx))
		return false;
	memcpy(k->addr, key, alen);
	if (k->kind == SET_ANY)
		return true;
	k->proto = key[alen];
	k->lo = k->hi = (uint16_t)(key[alen + 4] << 8 | key[alen + 5]);
	end = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY_END, &elen);
	if (end == NULL)
		return k->kind == SET_PORTS;
	if (elen != klen || end[alen] != key[alen])
		return false;
	k->hi = (uint16_t)(end[alen + 4] << 8 | end[alen + 5]);
	/* The ports set of a table written before ranges had a set of their
	 * own was an interval set: a range read from it is one of the
	 * ranges set, where the install carries it (ruleset.c). */
	if (k->lo < k->hi)
		k->kind = SET_RANGES;
	return k->lo <= k->hi;
}

/* ---- element messages -------------------------------------------------------- */

struct msgset {
	char name[SET_NAME_MAX];
	struct nftnl_set *add, *del;
};

struct elems_msgs {
	char table[64];
	struct msgset *v;
	size_t n;
	/* open addressing over v, by set name */
	uint32_t *slot;
	size_t nslot;
};

struct elems_msgs *
elems_msgs_new(const char *table)
{
	struct elems_msgs *m = xcalloc(1, sizeof(*m));

	snprintf(m->table, sizeof(m->table), "%s", table);
	return m;
}

static uint32_t
str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void
rehash(struct elems_msgs *m)
{
	free(m->slot);
	m->nslot = m->nslot ? m->nslot * 2 : 64;
	m->slot = xcalloc(m->nslot, sizeof(*m->slot));
	for (size_t i = 0; i < m->n; i++) {
		size_t s = str_hash(m->v[i].name) & (m->nslot - 1);

		while (m->slot[s])
			s = (s + 1) & (m->nslot - 1);
		m->slot[s] = (uint32_t)i + 1;
	}
}

static struct nftnl_set *
set_alloc(const struct elems_msgs *m, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	nftnl_set_set_str(s, NFTNL_SET_TABLE, m->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	return s;
}

static struct msgset *
msgset(struct elems_msgs *m, const char *name)
{
	size_t s;

	if (m->n * 2 >= m->nslot)
		rehash(m);
	for (s = str_hash(name) & (m->nslot - 1); m->slot[s];
		s = (s + 1) & (m->nslot - 1))
		if (strcmp(m->v[m->slot[s] - 1].name, name) == 0)
			return &m->v[m->slot[s] - 1];
	m->v = xreallocarray(m->v, m->n + 1, sizeof(*m->v));
	memset(&m->v[m->n], 0, sizeof(m->v[m->n]));
	snprintf(m->v[m->n].name, sizeof(m->v[m->n].name), "%s", name);
	m->slot[s] = (uint32_t)++m->n;
	return &m->v[m->n - 1];
}

void
elems_msgs_add(struct elems_msgs *m, const char *vm, const struct elem_key *k,
	uint64_t timeout_ms, const char *comment)
{
	char sn[SET_NAME_MAX];
	struct msgset *ms = msgset(m,
		elems_set_name(sn, sizeof(sn), vm, elem_set_index(k)));
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();

	if (ms->add == NULL)
		ms->add = set_alloc(m, ms->name);
	elems_key_put(el, k);
	nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
	/* The kernel refreshes an existing element only when the timeout
	 * differs or an expiration is given: give it. */
	nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, timeout_ms);
	if (comment != NULL && comment[0] != '\0') {
		struct nftnl_udata_buf *ud =
			nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);

		nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_ELEM_COMMENT, comment);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_USERDATA,
			nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
		nftnl_udata_buf_free(ud);
	}
	nftnl_set_elem_add(ms->add, el);
}

void
elems_msgs_del(struct elems_msgs *m, const char *vm, const struct elem_key *k)
{
	char sn[SET_NAME_MAX];
	struct msgset *ms = msgset(m,
		elems_set_name(sn, sizeof(sn), vm, elem_set_index(k)));
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();

	if (ms->del == NULL)
		ms->del = set_alloc(m, ms->name);
	elems_key_put(el, k);
	nftnl_set_elem_add(ms->del, el);
}

/* As many elements per message as its attribute nest holds. */
static void
emit_set(struct nft_batch *b, struct nftnl_set *s, uint16_t type)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	char what[128];
	int more = 1;

	snprintf(what, sizeof(what), "%s set %s",
		type == NFT_MSG_NEWSETELEM ? "elements of" : "old elements of",
		nftnl_set_get_str(s, NFTNL_SET_NAME));
	while (nftnl_set_elems_iter_cur(it) != NULL && more > 0) {
		struct nlmsghdr *nlh = nft_batch_msg(b, type, NFPROTO_INET,
			type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, 70000,
			what);

		more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);
	}
	nftnl_set_elems_iter_destroy(it);
}

void
elems_msgs_emit(struct elems_msgs *m, struct nft_batch *b)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].del != NULL)
			emit_set(b, m->v[i].del, NFT_MSG_DELSETELEM);
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].add != NULL)
			emit_set(b, m->v[i].add, NFT_MSG_NEWSETELEM);
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].add)
			nftnl_set_free(m->v[i].add);
		if (m->v[i].del)
			nftnl_set_free(m->v[i].del);
	}
	free(m->v);
	free(m->slot);
	free(m);
}

/* ---- dumps ------------------------------------------------------------------- */

static int
comment_cb(const struct nftnl_udata *attr, void *data)
{
	const char **out = data;

	if (nftnl_udata_type(attr) == NFTNL_UDATA_SET_ELEM_COMMENT &&
		nftnl_udata_len(attr) > 0 &&
		((const char *)nftnl_udata_get(
			attr))[nftnl_udata_len(attr) - 1] == '\0')
		*out = nftnl_udata_get(attr);
	return 0;
}

static const char *
elem_comment(struct nftnl_set_elem *el)
{
	const char *name = NULL;
	uint32_t len;
	const void *ud = nftnl_set_elem_get(el, NFTNL_SET_ELEM_USERDATA, &len);

	if (ud != NULL)
		nftnl_udata_parse(ud, len, comment_cb, &name);
	return name;
}

/* The elements of set `name` of inet table, read from the kernel: NULL
 * (errno kept) if the dump failed. */
static struct nftnl_set *
set_read(const char *table, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (nft_dump_elems(s) < 0) {
		int err = errno;

		nftnl_set_free(s);
		errno = err;
		return NULL;
	}
	return s;
}

/* ms left of an element, or dflt when it has no timeout. */
static uint64_t
elem_left(struct nftnl_set_elem *el, uint64_t dflt)
{
	return nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_EXPIRATION)
		? nftnl_set_elem_get_u64(el, NFTNL_SET_ELEM_EXPIRATION)
		: dflt;
}

int
elems_dump(const char *table, const char *vm, int idx, elems_dump_cb cb,
	void *arg)
{
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *el;
	char sn[SET_NAME_MAX];
	struct nftnl_set *s =
		set_read(table, elems_set_name(sn, sizeof(sn), vm, idx));

	if (s == NULL)
		return -1;
	it = nftnl_set_elems_iter_create(s);
	while ((el = nftnl_set_elems_iter_next(it)) != NULL) {
		struct elem_key k;

		if (elems_key_get(el, idx, &k))
			cb(&k, elem_left(el, ELEMS_FOREVER), elem_comment(el),
				arg);
	}
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
	return 0;
}

/* ---- the learn sets -------------------------------------------------------- */

const char *
elems_seen_name(char *buf, size_t len, const char *vm, int family)
{
	snprintf(buf, len, "%s_v%c_seen", vm, family == AF_INET ? '4' : '6');
	return buf;
}

uint32_t
elems_seen_flags(void)
{
	/* NFT_SET_EVAL is `flags dynamic`: the packet path adds to it. */
	return NFT_SET_TIMEOUT | NFT_SET_EVAL;
}

static bool
seen_key_get(struct nftnl_set_elem *el, int family, struct elem_key *k)
{
	int idx = set_index(SET_PORTS, family);
	uint32_t klen = 0, alen = addr_len(idx);
	const uint8_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);

	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)family;
	k->kind = SET_PORTS;
	if (key == NULL || klen != elems_key_len(idx))
		return false;
	memcpy(k->addr, key, alen);
	k->proto = key[alen];
	k->lo = k->hi = (uint16_t)(key[alen + 4] << 8 | key[alen + 5]);
	return true;
}

int
elems_dump_seen(const char *table, const char *vm, int family, elems_seen_cb cb,
	void *arg)
{
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *el;
	char sn[SET_NAME_MAX];
	struct nftnl_set *s =
		set_read(table, elems_seen_name(sn, sizeof(sn), vm, family));

	if (s == NULL)
		return -1;
	it = nftnl_set_elems_iter_create(s);
	while ((el = nftnl_set_elems_iter_next(it)) != NULL) {
		struct elem_key k;

		if (seen_key_get(el, family, &k))
			cb(&k, elem_left(el, 0), arg);
	}
	nftnl_set_elems_iter_destroy(it);
	nftnl_set_free(s);
	return 0;
}

/* ---- the kernel probe ----------------------------------------------------- */

static void
probe_done(int err, const char *msg, void *arg)
{
	(void)msg;
	*(int *)arg = err;
}

/* One transaction in the probe's namespace: the table and its set (first
 * time), and the element with the given timeout. */
static int
probe_add(struct nft *n, bool first, uint64_t timeout_ms)
{
	struct nft_batch *b = nft_batch_new(n);
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();
	struct nlmsghdr *nlh;
	uint32_t key = htonl(0xC0000201);
	int rc = -1;

	nftnl_set_set_str(s, NFTNL_SET_TABLE, "probe");
	nftnl_set_set_str(s, NFTNL_SET_NAME, "p");
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (first) {
		struct nftnl_table *t = nftnl_table_alloc();

		nftnl_table_set_str(t, NFTNL_TABLE_NAME, "probe");
		nlh = nft_batch_msg(b, NFT_MSG_NEWTABLE, NFPROTO_INET,
			NLM_F_CREATE, 512, "probe table");
		nftnl_table_nlmsg_build_payload(nlh, t);
		nftnl_table_free(t);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, TYPE_IPADDR);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
		nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
		nlh = nft_batch_msg(b, NFT_MSG_NEWSET, NFPROTO_INET,
			NLM_F_CREATE, 1024, "probe set");
		nftnl_set_nlmsg_build_payload(nlh, s);
	}
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, &key, 4);
	nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
	nftnl_set_elem_add(s, el);
	nlh = nft_batch_msg(b, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE,
		1024, "probe element");
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	nft_batch_send(b, probe_done, &rc);
	if (rc == -1)
		nft_wait(n, 5000);
	return rc;
}

/* In the child, inside its own network namespace. */
static int
probe_child(void)
{
	struct nft *n;
	struct nftnl_set *s;
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *el;
	int updated = -1;

	if (unshare(CLONE_NEWNET) < 0 &&
		unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
		return 3;
	if ((n = nft_open()) == NULL)
		return 2;
	if (probe_add(n, true, 10000) != 0 || probe_add(n, false, 20000) != 0) {
		nft_close(n);
		return 2;
	}
	nft_close(n);
	s = nftnl_set_alloc();
	nftnl_set_set_str(s, NFTNL_SET_TABLE, "probe");
	nftnl_set_set_str(s, NFTNL_SET_NAME, "p");
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (nft_dump_elems(s) == 0) {
		it = nftnl_set_elems_iter_create(s);
		el = nftnl_set_elems_iter_next(it);
		/* Re-added with 20 s right after 10 s: updated in place
		 * only if more than 10 s are left. */
		if (el != NULL &&
			nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_EXPIRATION))
			updated = nftnl_set_elem_get_u64(el,
					  NFTNL_SET_ELEM_EXPIRATION) > 10000;
		nftnl_set_elems_iter_destroy(it);
	}
	nftnl_set_free(s);
	return updated < 0 ? 2 : updated ? 0 : 1;
}

bool
elems_kernel_may_hold(uint64_t end_ms, uint64_t now_ms)
{
	return now_ms < end_ms || now_ms - end_ms < ELEMS_KERNEL_LAG_MS;
}

int
elems_probe_timeout_update(void)
{
	pid_t pid;
	int st;

	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0)
		_exit(probe_child());
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st))
		return -1;
	switch (WEXITSTATUS(st)) {
	case 0:
		return 1;
	case 1:
		return 0;
	case 3:
		log_warnx("probing element timeouts: cannot make a network "
			  "namespace of its own to probe in");
		return -1;
	default:
		log_warnx("probing element timeouts: the probe failed");
		return -1;
	}
}
