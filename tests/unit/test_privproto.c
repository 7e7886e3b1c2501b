/* privproto: the privileged process takes from the engine only a batch
 * shaped exactly as nft_batch builds one, of element changes its own
 * configuration admits, and writes them anew; anything else is refused
 * whole. Also the dump, conntrack, DONE and RESULT frames.
 *
 * The batches are the engine's own: nft_use_priv() makes nft_open()
 * return a struct nft that sends its batches as PRIV_BATCH frames over a
 * socketpair, read here from the other end. */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "elems.h"
#include "nft.h"
#include "privproto.h"
#include "util.h"

static char dir[] = "/tmp/df-privproto-XXXXXX";

/* C: VMs work and red, conntrack-purge on. PREV: VMs work and old.
 * OFF: C's VMs, conntrack-purge off. */
static struct config *C, *PREV, *OFF;
static const char *TABLE;
static struct nft *N;
static int peer = -1; /* the privileged process's end of the channel */

#define MAX_MS ((uint64_t)(3600 + 5 + 1) * 1000)
#define END_LEN 20 /* a BATCH_END message: header and nfgenmsg */

static void
write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
	free(path);
}

static void
make_dir(const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);

	mkdir(path, 0755);
	free(path);
}

static struct config *
load(const char *name)
{
	struct diag d = {0};
	char *path = xasprintf("%s/%s", dir, name);
	struct config *c = config_load(path, &d);

	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	diag_finish(&d);
	free(path);
	return c;
}

static void
configs(void)
{
	static const char main_head[] =
		"listen: [10.139.1.1]\ncontrol: ctl.sock\n"
		"ttl: {min: 10, max: 3600, grace: 5}\n"
		"resolver:\n  trust-anchor-file: root.key\n";
	static const char work[] =
		"addresses: [10.137.1.10, \"2001:db8:a:1::10\"]\n"
		"allow:\n"
		"  - name: \"*.example.com\"\n"
		"    ports: [tcp/443, tcp/8000-8080]\n"
		"  - name: ping.example.com\n    ports: [icmp]\n"
		"  - name: nas.corp.example\n    ports: [tcp/22]\n"
		"    allow-private: true\n"
		"  - net: 198.51.100.0/24\n    ports: [udp/53]\n";
	char *text;

	make_dir("vms");
	make_dir("vms-prev");
	write_file("root.key",
		". IN DS 20326 8 2 "
		"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8"
		"EC8D\n");
	text = xasprintf("%spolicies: vms\nnftables:\n  conntrack-purge: "
			 "true\n",
		main_head);
	write_file("dnsfence.yaml", text);
	free(text);
	text = xasprintf("%spolicies: vms-prev\n", main_head);
	write_file("prev.yaml", text);
	free(text);
	text = xasprintf("%spolicies: vms\n", main_head);
	write_file("off.yaml", text);
	free(text);
	write_file("vms/work.yaml", work);
	write_file("vms/red.yaml",
		"addresses: [10.137.2.10]\ndefault: allow\n");
	write_file("vms-prev/work.yaml", work);
	write_file("vms-prev/old.yaml",
		"addresses: [10.137.3.10]\ndefault: allow\n");
	C = load("dnsfence.yaml");
	PREV = load("prev.yaml");
	OFF = load("off.yaml");
}

static struct elem_key
key(const char *addr, int kind, int proto, int lo, int hi)
{
	struct elem_key k;

	memset(&k, 0, sizeof(k));
	k.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	inet_pton(k.family, addr, k.addr);
	k.kind = (uint8_t)kind;
	k.proto = (uint8_t)proto;
	k.lo = (uint16_t)lo;
	k.hi = (uint16_t)hi;
	return k;
}

static struct elem_key
tcp(const char *addr, int lo, int hi)
{
	return key(addr, lo == hi ? SET_PORTS : SET_RANGES, IPPROTO_TCP, lo,
		hi);
}

static struct elem_key
any(const char *addr)
{
	return key(addr, SET_ANY, 0, 0, 0);
}

/* ---- the engine's side ------------------------------------------------- */

static void
done_cb(int err, const char *msg, void *arg)
{
	(void)msg;
	*(int *)arg = err;
}

/* Send b as the engine does, and take the PRIV_BATCH frame from the other
 * end: its payload (malloc'd), or NULL when nothing was sent. The batch
 * is then answered with a PRIV_DONE, as the privileged process does. */
static uint8_t *
sent(struct nft_batch *b, size_t *len)
{
	uint8_t hdr[PRIV_HDR], *p, *done;
	uint32_t plen = 0, seq;
	uint16_t type = 0;
	size_t dlen;
	int err = -1;

	*len = 0;
	nft_batch_send(b, done_cb, &err);
	if (err != -1)
		return NULL; /* completed at once: nothing to send */
	CHECK(recv(peer, hdr, sizeof(hdr), MSG_WAITALL) == sizeof(hdr));
	CHECK(priv_header(hdr, &plen, &type) == 0);
	CHECK(type == PRIV_BATCH);
	CHECK(plen >= PRIV_BATCH_FIXED);
	p = xcalloc(1, (size_t)plen + 1);
	CHECK(recv(peer, p, plen, MSG_WAITALL) == (ssize_t)plen);
	*len = plen;
	memcpy(&seq, p, 4);
	done = priv_done_build(seq, 0, NULL, &dlen);
	CHECK(write(peer, done, dlen) == (ssize_t)dlen);
	free(done);
	CHECK(nft_dispatch(N) == 0);
	CHECK(err == 0);
	return p;
}

static uint8_t *
engine(struct elems_msgs *m, size_t *len)
{
	struct nft_batch *b = nft_batch_new(N);

	elems_msgs_emit(m, b);
	return sent(b, len);
}

/* One element message built by hand, for set s (taken). */
static uint8_t *
hand_set(uint16_t type, uint16_t family, struct nftnl_set *s, size_t *len)
{
	struct nft_batch *b = nft_batch_new(N);
	struct nlmsghdr *nlh = nft_batch_msg(b, type, family,
		type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, 4096, "by hand");

	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	return sent(b, len);
}

static struct nftnl_set *
set_of(const char *table, const char *name, struct nftnl_set_elem *el)
{
	struct nftnl_set *s = nftnl_set_alloc();

	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	if (el != NULL)
		nftnl_set_elem_add(s, el);
	return s;
}

/* A batch of one element el (taken) for set `name` of our table. */
static uint8_t *
hand(uint16_t type, const char *name, struct nftnl_set_elem *el, size_t *len)
{
	return hand_set(type, NFPROTO_INET, set_of(TABLE, name, el), len);
}

/* An element as elems_msgs_add writes it (ms 0: no timeout at all). */
static struct nftnl_set_elem *
elem(const struct elem_key *k, uint64_t ms)
{
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();

	elems_key_put(el, k);
	if (ms != 0) {
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, ms);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, ms);
	}
	return el;
}

/* The bytes elems_key_put writes for one end of k. */
static uint32_t
key_bytes(const struct elem_key *k, bool end, uint8_t buf[24])
{
	struct nftnl_set_elem *el = nftnl_set_elem_alloc();
	uint32_t len = 0;
	const void *v;

	elems_key_put(el, k);
	v = nftnl_set_elem_get(el,
		end ? NFTNL_SET_ELEM_KEY_END : NFTNL_SET_ELEM_KEY, &len);
	memset(buf, 0, 24);
	if (v != NULL)
		memcpy(buf, v, len);
	nftnl_set_elem_free(el);
	return len;
}

static void
set_comment_raw(struct nftnl_set_elem *el, const void *ud, uint32_t len)
{
	nftnl_set_elem_set(el, NFTNL_SET_ELEM_USERDATA, ud, len);
}

static void
set_comment(struct nftnl_set_elem *el, const char *comment)
{
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);

	nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_ELEM_COMMENT, comment);
	set_comment_raw(el, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
}

/* One element message written attribute by attribute: the element
 * first, then the set's name, then the table's (the message's last). */
enum raw {
	RAW_OK,
	RAW_SET_NO_NUL,	  /* the set's name without its NUL */
	RAW_TABLE_NO_NUL, /* the table's */
	RAW_KEY_VERDICT,  /* the key a verdict: a jump to a chain */
	RAW_KEY_FLAT,	  /* the key not a nest */
	RAW_TIMEOUT_U32,  /* a timeout of 32 bits */
	RAW_LIST_FLAT,	  /* the list of elements not a nest */
};

static uint8_t *
raw(const struct elem_key *k, enum raw how, size_t *len)
{
	struct nft_batch *b = nft_batch_new(N);
	struct nlmsghdr *nlh = nft_batch_msg(b, NFT_MSG_NEWSETELEM,
		NFPROTO_INET, NLM_F_CREATE, 4096, "by hand");
	struct nftnl_set_elem *el = elem(k, 1000);
	struct nlattr *list, *one, *kn, *vn;
	const char *set = "work_v4_ports";

	if (how == RAW_LIST_FLAT) {
		mnl_attr_put_u16(nlh, NFTA_SET_ELEM_LIST_ELEMENTS, 0);
	} else {
		list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
		one = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
		if (how == RAW_KEY_VERDICT) {
			nftnl_set_elem_unset(el, NFTNL_SET_ELEM_KEY);
			kn = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
			vn = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
			mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE,
				htonl((uint32_t)NFT_JUMP));
			mnl_attr_put_strz(nlh, NFTA_VERDICT_CHAIN, "forward");
			mnl_attr_nest_end(nlh, vn);
			mnl_attr_nest_end(nlh, kn);
		}
		if (how == RAW_KEY_FLAT) {
			nftnl_set_elem_unset(el, NFTNL_SET_ELEM_KEY);
			mnl_attr_put_u16(nlh, NFTA_SET_ELEM_KEY, 0);
		}
		if (how == RAW_TIMEOUT_U32) {
			nftnl_set_elem_unset(el, NFTNL_SET_ELEM_TIMEOUT);
			mnl_attr_put_u32(nlh, NFTA_SET_ELEM_TIMEOUT, 1000);
		}
		nftnl_set_elem_nlmsg_build_payload(nlh, el);
		mnl_attr_nest_end(nlh, one);
		mnl_attr_nest_end(nlh, list);
	}
	nftnl_set_elem_free(el);
	if (how == RAW_SET_NO_NUL)
		mnl_attr_put(nlh, NFTA_SET_ELEM_LIST_SET, strlen(set), set);
	else
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	if (how == RAW_TABLE_NO_NUL)
		mnl_attr_put(nlh, NFTA_SET_ELEM_LIST_TABLE, strlen(TABLE),
			TABLE);
	else
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, TABLE);
	return sent(b, len);
}

/* ---- the privileged process's side ---------------------------------------- */

/* 0 accepted (out filled when not NULL), -1 refused, with a reason. */
static int
parse(const uint8_t *p, size_t len, const struct config *c,
	const struct config *prev, struct priv_batch *out)
{
	struct priv_batch pb;
	char why[512] = "";
	int rc = priv_batch_parse(p, len, TABLE, c, prev, out ? out : &pb, why,
		sizeof(why));

	if (rc < 0) {
		CHECK(why[0] != '\0');
		if (getenv("VERBOSE"))
			fprintf(stderr, "refused: %s\n", why);
	} else if (out == NULL) {
		priv_batch_free(&pb);
	}
	return rc;
}

/* Parse a batch built by the caller (its length in *len: the callers
 * build it in the same call), free it: 0 accepted, -1 refused. */
static int
verdict(uint8_t *p, const size_t *len, const struct config *prev)
{
	int rc;

	CHECK(p != NULL);
	if (p == NULL)
		return -2;
	rc = parse(p, *len, C, prev, NULL);
	free(p);
	return rc;
}

static int
one_add(const char *vm, const struct elem_key *k, uint64_t ms,
	const char *comment)
{
	struct elems_msgs *m = elems_msgs_new(TABLE);
	size_t len;

	elems_msgs_add(m, vm, k, ms, comment);
	return verdict(engine(m, &len), &len, NULL);
}

static bool
same_ops(const struct priv_batch *a, const struct priv_batch *b)
{
	if (a->nops != b->nops)
		return false;
	for (size_t i = 0; i < a->nops; i++) {
		const struct priv_op *x = &a->ops[i], *y = &b->ops[i];

		if (x->del != y->del || x->idx != y->idx || x->vm != y->vm ||
			memcmp(&x->k, &y->k, sizeof(x->k)) != 0 ||
			x->timeout_ms != y->timeout_ms ||
			strcmp(x->comment, y->comment) != 0)
			return false;
	}
	return true;
}

/* Write pb anew into a batch of our own, as the privileged process does,
 * and parse that: the same operations. */
static void
reemit_same(const struct priv_batch *pb, const struct config *prev)
{
	struct nft_batch *b = nft_batch_new(N);
	struct priv_batch again;
	uint8_t *p;
	size_t len;

	priv_batch_emit(pb, TABLE, b);
	p = sent(b, &len);
	CHECK(p != NULL);
	if (p == NULL)
		return;
	CHECK(parse(p, len, C, prev, &again) == 0);
	CHECK(same_ops(pb, &again));
	priv_batch_free(&again);
	free(p);
}

/* The operation of pb on vm's element k, or NULL. */
static const struct priv_op *
find_op(const struct priv_batch *pb, bool del, const char *vm,
	const struct elem_key *k)
{
	for (size_t i = 0; i < pb->nops; i++)
		if (pb->ops[i].del == del &&
			strcmp(pb->ops[i].vm->name, vm) == 0 &&
			memcmp(&pb->ops[i].k, k, sizeof(*k)) == 0)
			return &pb->ops[i];
	return NULL;
}

static bool
vm_of(const struct config *c, const struct vm *v)
{
	return v >= c->vms && v < c->vms + c->nvms;
}

/* ---- the tests --------------------------------------------------------------- */

static void
valid(void)
{
	struct elems_msgs *m = elems_msgs_new(TABLE);
	struct elem_key k[5] = {
		tcp("192.0.2.10", 443, 443),
		tcp("2001:db8::1", 8000, 8080),
		any("192.0.2.11"),
		key("192.0.2.12", 0, 0, 0, 0),
		tcp("192.0.2.13", 22, 22),
	};
	struct priv_batch pb;
	const struct priv_op *op;
	uint8_t *p;
	size_t len;
	uint32_t seq;

	elems_echo_key(&k[3], AF_INET);
	elems_msgs_add(m, "work", &k[0], 310000, "www.example.com");
	elems_msgs_add(m, "work", &k[1], 5000, NULL);
	elems_msgs_add(m, "red", &k[2], MAX_MS, "x");
	elems_msgs_add(m, "work", &k[3], 1, "ping.example.com");
	elems_msgs_del(m, "work", &k[4]);
	p = engine(m, &len);
	CHECK(p != NULL);
	if (p == NULL)
		return;
	CHECK(parse(p, len, C, NULL, &pb) == 0);
	memcpy(&seq, p, 4);
	CHECK(pb.seq == seq && pb.flags == 0 && pb.gen == 0);
	CHECK(pb.nops == 5);
	/* A message per set and kind of change: deletions first. */
	CHECK(pb.nmsgs == 4);
	CHECK(pb.nmsgs > 0 && pb.msgs[0].del && pb.msgs[0].n == 1);
	for (size_t i = 0, next = 0; i < pb.nmsgs; i++) {
		CHECK(pb.msgs[i].first == next && pb.msgs[i].n >= 1);
		for (size_t j = 0; j < pb.msgs[i].n; j++)
			CHECK(pb.ops[next + j].del == pb.msgs[i].del);
		next += pb.msgs[i].n;
	}
	for (size_t i = 0; i < pb.nops; i++) {
		CHECK(vm_of(C, pb.ops[i].vm));
		CHECK(pb.ops[i].idx == elem_set_index(&pb.ops[i].k));
	}
	op = find_op(&pb, false, "work", &k[0]);
	CHECK(op != NULL && op->timeout_ms == 310000 &&
		strcmp(op->comment, "www.example.com") == 0 &&
		op->idx == set_index(SET_PORTS, AF_INET));
	op = find_op(&pb, false, "work", &k[1]);
	CHECK(op != NULL && op->timeout_ms == 5000 && op->comment[0] == '\0' &&
		op->idx == set_index(SET_RANGES, AF_INET6));
	op = find_op(&pb, false, "red", &k[2]);
	CHECK(op != NULL && op->timeout_ms == MAX_MS &&
		strcmp(op->comment, "x") == 0 &&
		op->idx == set_index(SET_ANY, AF_INET));
	op = find_op(&pb, false, "work", &k[3]);
	CHECK(op != NULL && op->timeout_ms == 1 && elems_is_echo(&op->k));
	op = find_op(&pb, true, "work", &k[4]);
	CHECK(op != NULL && op->timeout_ms == 0 && op->comment[0] == '\0');
	reemit_same(&pb, NULL);
	priv_batch_free(&pb);
	CHECK(pb.ops == NULL && pb.nops == 0);
	free(p);

	/* The same element built by hand (as the later refusals are): the
	 * helpers build what the engine does. */
	CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports",
			      elem(&k[0], 1000), &len),
		      &len, NULL) == 0);
	CHECK(verdict(hand(NFT_MSG_DELSETELEM, "red_v4", elem(&k[2], 0), &len),
		      &len, NULL) == 0);
	/* The longest comment elems_msgs_add writes (a record in
	 * NFT_USERDATA_MAXLEN bytes: 2 + 253 + NUL), a DNS name's length. */
	{
		char cm[254];

		memset(cm, 'a', sizeof(cm) - 1);
		cm[sizeof(cm) - 1] = '\0';
		CHECK(sizeof(cm) - 1 <= PRIV_COMMENT_MAX);
		CHECK(one_add("work", &k[0], 1000, cm) == 0);
	}
}

/* Many elements: libnftnl numbers the element nests 1, 2, 3.., which its
 * own parser would not read; as many messages as the nests need. */
static void
many(void)
{
	enum { NV4 = 1200, NV6 = 50 };
	struct elems_msgs *m = elems_msgs_new(TABLE);
	static struct elem_key k[NV4 + NV6];
	struct priv_batch pb;
	size_t len, big = 0;
	uint8_t *p;

	for (int i = 0; i < NV4 + NV6; i++) {
		char a[64], cm[64];
		int port = i % 2 == 0 ? 443 : 22;

		if (i < NV4)
			snprintf(a, sizeof(a), "192.0.2.%d", 1 + i % 250);
		else
			snprintf(a, sizeof(a), "2001:db8:1::%x", i);
		k[i] = tcp(a, port, port);
		snprintf(cm, sizeof(cm), "host-%d.example.com", i);
		elems_msgs_add(m, "work", &k[i], 1000 + (uint64_t)i, cm);
	}
	p = engine(m, &len);
	CHECK(p != NULL);
	if (p == NULL)
		return;
	CHECK(parse(p, len, C, NULL, &pb) == 0);
	CHECK(pb.nops == NV4 + NV6);
	/* The v4 elements did not fit one message. */
	CHECK(pb.nmsgs >= 3);
	for (size_t i = 0; i < pb.nmsgs; i++)
		if (pb.msgs[i].n > big)
			big = pb.msgs[i].n;
	CHECK(big > 500);
	for (size_t i = 0; i < pb.nops && i < NV4 + NV6; i++) {
		char cm[64];

		snprintf(cm, sizeof(cm), "host-%zu.example.com", i);
		CHECK(memcmp(&pb.ops[i].k, &k[i], sizeof(k[i])) == 0);
		CHECK(pb.ops[i].timeout_ms == 1000 + i);
		CHECK_STR(pb.ops[i].comment, cm);
	}
	reemit_same(&pb, NULL);
	priv_batch_free(&pb);
	free(p);
}

/* Additions the configuration does not admit. */
static void
refused_adds(void)
{
	struct elem_key k = tcp("192.0.2.1", 443, 443);
	struct elems_msgs *m;
	size_t len;

	CHECK(one_add("work", &k, MAX_MS, "ok") == 0);
	/* No VM's set, or not one of ours. */
	CHECK(one_add("nosuch", &k, 1000, NULL) < 0);
	CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_seen", elem(&k, 1000),
			      &len),
		      &len, NULL) < 0);
	CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4", elem(&k, 1000), &len),
		      &len, NULL) < 0);
	CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v6_ports", elem(&k, 1000),
			      &len),
		      &len, NULL) < 0);
	CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work", elem(&k, 1000), &len),
		      &len, NULL) < 0);
	m = elems_msgs_new("other");
	elems_msgs_add(m, "work", &k, 1000, NULL);
	CHECK(verdict(engine(m, &len), &len, NULL) < 0);
	/* A port no name rule names: udp/53 is a net rule's. */
	k = tcp("192.0.2.1", 23, 23);
	CHECK(one_add("work", &k, 1000, NULL) < 0);
	k = tcp("192.0.2.1", 8000, 8000);
	CHECK(one_add("work", &k, 1000, NULL) < 0);
	k = key("192.0.2.1", SET_PORTS, IPPROTO_UDP, 53, 53);
	CHECK(one_add("work", &k, 1000, NULL) < 0);
	k = any("192.0.2.1");
	CHECK(one_add("work", &k, 1000, NULL) < 0);
	/* One bad element refuses the whole batch. */
	m = elems_msgs_new(TABLE);
	k = tcp("192.0.2.1", 443, 443);
	elems_msgs_add(m, "work", &k, 1000, NULL);
	k = tcp("192.0.2.1", 23, 23);
	elems_msgs_add(m, "work", &k, 1000, NULL);
	CHECK(verdict(engine(m, &len), &len, NULL) < 0);
	/* Timeouts: 1 ms to ttl.max + grace + 1 s. */
	k = tcp("192.0.2.1", 443, 443);
	CHECK(one_add("work", &k, MAX_MS + 1, NULL) < 0);
	CHECK(one_add("work", &k, UINT64_MAX, NULL) < 0);
	/* The rebinding guard: a VM's own address, a listen address,
	 * loopback, a private address without allow-private. */
	k = any("10.137.1.10");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = any("2001:db8:a:1::10");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = any("10.137.2.10");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = any("10.139.1.1");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = any("127.0.0.1");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = any("::1");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = any("192.168.1.1");
	CHECK(one_add("red", &k, 1000, NULL) < 0);
	k = tcp("192.168.1.1", 22, 22);
	CHECK(one_add("work", &k, 1000, NULL) == 0);
	/* An address range: a key end of another address. */
	{
		struct nftnl_set_elem *el;
		struct elem_key k2 = tcp("192.0.2.200", 8000, 8080);
		uint8_t b[24];
		uint32_t bl;

		k = tcp("192.0.2.1", 8000, 8080);
		el = elem(&k, 1000);
		bl = key_bytes(&k2, true, b);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, b, bl);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ranges", el,
				      &len),
			      &len, NULL) < 0);
		/* ... also in a deletion. */
		el = elem(&k, 0);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, b, bl);
		CHECK(verdict(hand(NFT_MSG_DELSETELEM, "work_v4_ranges", el,
				      &len),
			      &len, NULL) < 0);
		/* A key end in a set without ranges. */
		k = any("192.0.2.1");
		el = elem(&k, 1000);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, k.addr, 4);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "red_v4", el, &len),
			      &len, NULL) < 0);
		/* No key end where one is needed. */
		k = tcp("192.0.2.1", 8000, 8080);
		el = elem(&k, 1000);
		nftnl_set_elem_unset(el, NFTNL_SET_ELEM_KEY_END);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ranges", el,
				      &len),
			      &len, NULL) < 0);
		/* A key end in the hash of single ports, even its own. */
		k = tcp("192.0.2.1", 443, 443);
		el = elem(&k, 1000);
		bl = key_bytes(&k, false, b);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, b, bl);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		/* A range in the hash of single ports. */
		k = tcp("192.0.2.1", 8000, 8080);
		k.kind = SET_PORTS;
		el = elem(&k, 1000);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		/* Keys of the wrong length. */
		el = elem(&k, 1000);
		bl = key_bytes(&k, false, b);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, b, bl - 1);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
	}
	/* Non-zero padding, in the key or its end: each field is padded to
	 * a 32-bit register. A single port (the hash) has a key only. */
	{
		static const int pad[] = {5, 6, 7, 10, 11};
		static const char *const set[2] = {"work_v4_ports",
			"work_v4_ranges"};

		for (int r = 0; r < 2; r++) {
			k = r ? tcp("192.0.2.1", 8000, 8080)
			      : tcp("192.0.2.1", 443, 443);
			for (size_t i = 0; i < ARRAY_SIZE(pad); i++) {
				for (int end = 0; end <= r; end++) {
					struct nftnl_set_elem *el =
						elem(&k, 1000);
					uint8_t b[24];
					uint32_t bl = key_bytes(&k, end, b);

					b[pad[i]] = 1;
					nftnl_set_elem_set(el,
						end ? NFTNL_SET_ELEM_KEY_END
						    : NFTNL_SET_ELEM_KEY,
						b, bl);
					CHECK(verdict(hand(NFT_MSG_NEWSETELEM,
							      set[r], el, &len),
						      &len, NULL) < 0);
				}
			}
		}
		k = tcp("192.0.2.1", 8000, 8080);
		/* A key end of another protocol. */
		{
			struct nftnl_set_elem *el = elem(&k, 1000);
			uint8_t b[24];
			uint32_t bl = key_bytes(&k, true, b);

			b[4] = IPPROTO_UDP;
			nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, b, bl);
			CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ranges",
					      el, &len),
				      &len, NULL) < 0);
		}
		/* A range backwards. */
		{
			struct nftnl_set_elem *el = elem(&k, 1000);
			struct elem_key lo = tcp("192.0.2.1", 8080, 8080);
			struct elem_key hi = tcp("192.0.2.1", 8000, 8000);
			uint8_t b[24];
			uint32_t bl = key_bytes(&lo, false, b);

			nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, b, bl);
			bl = key_bytes(&hi, false, b);
			nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, b, bl);
			CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ranges",
					      el, &len),
				      &len, NULL) < 0);
		}
	}
	/* Attributes our elements never have. */
	{
		struct nftnl_set_elem *el;
		uint32_t data = 1;

		k = tcp("192.0.2.1", 443, 443);
		el = elem(&k, 1000);
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS,
			NFT_SET_ELEM_INTERVAL_END);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS, 0);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, &data,
			sizeof(data));
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, NF_ACCEPT);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 0);
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_FLAGS,
			NFT_SET_ELEM_INTERVAL_END);
		CHECK(verdict(hand(NFT_MSG_DELSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
	}
	/* Timeouts: both, and equal, in an addition; none in a deletion. */
	{
		struct nftnl_set_elem *el;

		k = tcp("192.0.2.1", 443, 443);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports",
				      elem(&k, 0), &len),
			      &len, NULL) < 0);
		el = elem(&k, 0);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, 1000);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 0);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, 1000);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, 999);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 0);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, 0);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, 0);
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		CHECK(verdict(hand(NFT_MSG_DELSETELEM, "work_v4_ports",
				      elem(&k, 1000), &len),
			      &len, NULL) < 0);
		el = elem(&k, 0);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION, 1000);
		CHECK(verdict(hand(NFT_MSG_DELSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 0);
		set_comment(el, "x");
		CHECK(verdict(hand(NFT_MSG_DELSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
	}
	/* Comments: one NUL-terminated record of printable text. */
	{
		static const uint8_t bad[][8] = {
			{NFTNL_UDATA_SET_ELEM_COMMENT, 3, 'a', 'b', 'c'},
			{NFTNL_UDATA_SET_ELEM_COMMENT, 1, 0},
			{NFTNL_UDATA_SET_ELEM_COMMENT + 1, 2, 'a', 0},
			{NFTNL_UDATA_SET_ELEM_COMMENT, 2, 'a', 0,
				NFTNL_UDATA_SET_ELEM_COMMENT, 2, 'b', 0},
			{NFTNL_UDATA_SET_ELEM_COMMENT, 2, 'a', 0, 0},
			{NFTNL_UDATA_SET_ELEM_COMMENT, 7, 'a', 0},
			{NFTNL_UDATA_SET_ELEM_COMMENT},
		};
		static const uint32_t blen[] = {5, 3, 4, 8, 5, 4, 1};
		struct nftnl_set_elem *el;

		k = tcp("192.0.2.1", 443, 443);
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			el = elem(&k, 1000);
			set_comment_raw(el, bad[i], blen[i]);
			CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports",
					      el, &len),
				      &len, NULL) < 0);
		}
		el = elem(&k, 1000);
		set_comment(el, "a\tb");
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		set_comment(el, "\x7f");
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		set_comment(el, "a b");
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) == 0);
	}
}

/* Only element messages, of family inet, naming their set by name, with
 * at least one element. */
static void
other_messages(void)
{
	struct elem_key k = tcp("192.0.2.1", 443, 443);
	struct nft_batch *b;
	struct nlmsghdr *nlh;
	struct nftnl_set *s;
	size_t len;

	b = nft_batch_new(N);
	{
		struct nftnl_table *t = nftnl_table_alloc();

		nftnl_table_set_str(t, NFTNL_TABLE_NAME, TABLE);
		nlh = nft_batch_msg(b, NFT_MSG_NEWTABLE, NFPROTO_INET,
			NLM_F_CREATE, 512, "table");
		nftnl_table_nlmsg_build_payload(nlh, t);
		nftnl_table_free(t);
	}
	CHECK(verdict(sent(b, &len), &len, NULL) < 0);

	b = nft_batch_new(N);
	{
		struct nftnl_rule *r = nftnl_rule_alloc();

		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "forward");
		nlh = nft_batch_msg(b, NFT_MSG_NEWRULE, NFPROTO_INET,
			NLM_F_CREATE | NLM_F_APPEND, 512, "rule");
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
	}
	CHECK(verdict(sent(b, &len), &len, NULL) < 0);

	/* A good element message, then a rule: refused whole. */
	b = nft_batch_new(N);
	s = set_of(TABLE, "work_v4_ports", elem(&k, 1000));
	nlh = nft_batch_msg(b, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE,
		4096, "elements");
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	{
		struct nftnl_rule *r = nftnl_rule_alloc();

		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "forward");
		nlh = nft_batch_msg(b, NFT_MSG_DELRULE, NFPROTO_INET, 0, 512,
			"rule");
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
	}
	CHECK(verdict(sent(b, &len), &len, NULL) < 0);

	/* Element messages of other kinds, families, subsystems. */
	CHECK(verdict(hand_set(NFT_MSG_GETSETELEM, NFPROTO_INET,
			      set_of(TABLE, "work_v4_ports", elem(&k, 1000)),
			      &len),
		      &len, NULL) < 0);
	CHECK(verdict(hand_set(NFT_MSG_NEWSETELEM, NFPROTO_IPV4,
			      set_of(TABLE, "work_v4_ports", elem(&k, 1000)),
			      &len),
		      &len, NULL) < 0);
	CHECK(verdict(hand_set(NFT_MSG_NEWSET, NFPROTO_INET,
			      set_of(TABLE, "work_v4_ports", elem(&k, 1000)),
			      &len),
		      &len, NULL) < 0);
	b = nft_batch_new(N);
	nlh = nft_batch_msg(b, 0, NFPROTO_INET, 0, 512, "conntrack");
	nlh->nlmsg_type = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE;
	CHECK(verdict(sent(b, &len), &len, NULL) < 0);
	/* Names that do not end within their attribute (the table's is the
	 * message's last: libnftnl would read past it); a key that is a
	 * jump to a chain; attributes of other types than libnftnl expects
	 * (it would exit() the process). */
	CHECK(verdict(raw(&k, RAW_OK, &len), &len, NULL) == 0);
	for (enum raw how = RAW_SET_NO_NUL; how <= RAW_LIST_FLAT; how++)
		CHECK(verdict(raw(&k, how, &len), &len, NULL) < 0);
	/* Elements with an object reference, or a jump. */
	{
		struct nftnl_set_elem *el = elem(&k, 1000);

		nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_OBJREF, "counter");
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
		el = elem(&k, 1000);
		nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, NFT_JUMP);
		nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, "forward");
		CHECK(verdict(hand(NFT_MSG_NEWSETELEM, "work_v4_ports", el,
				      &len),
			      &len, NULL) < 0);
	}
	/* A set named by its id, and a message of no element. */
	s = set_of(TABLE, "work_v4_ports", elem(&k, 1000));
	nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
	CHECK(verdict(hand_set(NFT_MSG_NEWSETELEM, NFPROTO_INET, s, &len), &len,
		      NULL) < 0);
	CHECK(verdict(hand_set(NFT_MSG_NEWSETELEM, NFPROTO_INET,
			      set_of(TABLE, "work_v4_ports", NULL), &len),
		      &len, NULL) < 0);
}

/* The batch as a whole: its head, its begin and its end. */
static void
structure(void)
{
	struct elem_key k = tcp("192.0.2.1", 443, 443);
	struct elems_msgs *m = elems_msgs_new(TABLE);
	const struct nlmsghdr *last;
	struct priv_batch pb;
	uint8_t *p, *q;
	size_t len, qlen;
	uint32_t v;

	elems_msgs_add(m, "work", &k, 1000, "a.example.com");
	p = engine(m, &len);
	CHECK(p != NULL && len > PRIV_BATCH_FIXED + 2 * END_LEN);
	if (p == NULL)
		return;
	CHECK(parse(p, len, C, NULL, NULL) == 0);
	last = (const void *)(p + len - END_LEN);
	CHECK(last->nlmsg_type == NFNL_MSG_BATCH_END &&
		last->nlmsg_len == END_LEN);

	/* Cut anywhere, or without its end. */
	for (size_t cut = 0; cut < len; cut++)
		CHECK(parse(p, cut, C, NULL, NULL) < 0);
	q = xcalloc(1, 3 * len);
	/* Bytes after the end: zeroes, another end, the message again. */
	memcpy(q, p, len);
	CHECK(parse(q, len + 4, C, NULL, NULL) < 0);
	CHECK(parse(q, len + 16, C, NULL, NULL) < 0);
	memcpy(q + len, p + len - END_LEN, END_LEN);
	CHECK(parse(q, len + END_LEN, C, NULL, NULL) < 0);
	qlen = len - END_LEN - (PRIV_BATCH_FIXED + END_LEN);
	memcpy(q + len, p + PRIV_BATCH_FIXED + END_LEN, qlen);
	CHECK(parse(q, len + qlen, C, NULL, NULL) < 0);
	/* Two element messages are fine before the end. */
	memcpy(q + len - END_LEN, p + PRIV_BATCH_FIXED + END_LEN, qlen);
	memcpy(q + len - END_LEN + qlen, p + len - END_LEN, END_LEN);
	CHECK(parse(q, len + qlen, C, NULL, &pb) == 0);
	CHECK(pb.nmsgs == 2 && pb.nops == 2);
	priv_batch_free(&pb);
	/* Without a begin, or with a second one. */
	memcpy(q, p, PRIV_BATCH_FIXED);
	memcpy(q + PRIV_BATCH_FIXED, p + PRIV_BATCH_FIXED + END_LEN,
		len - PRIV_BATCH_FIXED - END_LEN);
	CHECK(parse(q, len - END_LEN, C, NULL, NULL) < 0);
	memcpy(q, p, PRIV_BATCH_FIXED + END_LEN);
	memcpy(q + PRIV_BATCH_FIXED + END_LEN, p + PRIV_BATCH_FIXED,
		len - PRIV_BATCH_FIXED);
	CHECK(parse(q, len + END_LEN, C, NULL, NULL) < 0);
	/* A begin of another subsystem. */
	memcpy(q, p, len);
	q[PRIV_BATCH_FIXED + 16 + 2] = 0;
	q[PRIV_BATCH_FIXED + 16 + 3] = NFNL_SUBSYS_CTNETLINK;
	CHECK(parse(q, len, C, NULL, NULL) < 0);
	/* An element message's length beyond the batch. */
	memcpy(q, p, len);
	((struct nlmsghdr *)(q + PRIV_BATCH_FIXED + END_LEN))->nlmsg_len +=
		(uint32_t)(len - PRIV_BATCH_FIXED - END_LEN);
	CHECK(parse(q, len, C, NULL, NULL) < 0);

	/* Lengths of 2 GiB and more (libmnl's mnl_nlmsg_ok() compares
	 * them as an int), in the begin and in an element message. */
	for (size_t at = PRIV_BATCH_FIXED; at <= PRIV_BATCH_FIXED + END_LEN;
		at += END_LEN) {
		memcpy(q, p, len);
		((struct nlmsghdr *)(q + at))->nlmsg_len += 0x80000000u;
		CHECK(parse(q, len, C, NULL, NULL) < 0);
		((struct nlmsghdr *)(q + at))->nlmsg_len += 0x75000000u;
		CHECK(parse(q, len, C, NULL, NULL) < 0);
	}
	/* A message whose length is not aligned: its last attribute would
	 * end in the alignment padding, past the message. */
	for (uint32_t less = 1; less < 4; less++) {
		memcpy(q, p, len);
		((struct nlmsghdr *)(q + PRIV_BATCH_FIXED + END_LEN))
			->nlmsg_len -= less;
		CHECK(parse(q, len, C, NULL, NULL) < 0);
	}

	/* The head: flags INSTALL, INSTALL | WITH_PREV; nothing else. */
	memcpy(q, p, len);
	for (uint32_t f = 0; f < 16; f++) {
		int want = f == 0 || f == PRIV_F_INSTALL ||
				f == (PRIV_F_INSTALL | PRIV_F_WITH_PREV)
			? 0
			: -1;

		memcpy(q + 4, &f, 4);
		CHECK(parse(q, len, C, NULL, NULL) == want);
	}
	v = 1u << 31;
	memcpy(q + 4, &v, 4);
	CHECK(parse(q, len, C, NULL, NULL) < 0);
	memcpy(q, p, len);
	v = 1;
	memcpy(q + 12, &v, 4);
	CHECK(parse(q, len, C, NULL, NULL) < 0);
	CHECK(priv_batch_head(p, PRIV_BATCH_FIXED - 1, &pb) < 0);
	CHECK(priv_batch_head(p, PRIV_BATCH_FIXED, &pb) == 0);
	free(q);
	free(p);

	/* An install: its head carries the generation and time; an install
	 * of no element is sent all the same. */
	{
		struct nft_batch *b = nft_batch_new(N);

		nft_batch_install(b, 7, 1700000000, true);
		p = sent(b, &len);
		CHECK(p != NULL);
		if (p != NULL) {
			CHECK(parse(p, len, C, NULL, &pb) == 0);
			CHECK(pb.flags == (PRIV_F_INSTALL | PRIV_F_WITH_PREV) &&
				pb.gen == 7 && pb.at == 1700000000 &&
				pb.nmsgs == 0 && pb.nops == 0);
			priv_batch_free(&pb);
			free(p);
		}
		b = nft_batch_new(N);
		nft_batch_install(b, 8, 1, false);
		m = elems_msgs_new(TABLE);
		elems_msgs_add(m, "work", &k, 1000, NULL);
		elems_msgs_emit(m, b);
		p = sent(b, &len);
		CHECK(p != NULL);
		if (p != NULL) {
			CHECK(parse(p, len, C, NULL, &pb) == 0);
			CHECK(pb.flags == PRIV_F_INSTALL && pb.gen == 8 &&
				pb.at == 1 && pb.nops == 1);
			priv_batch_free(&pb);
			free(p);
		}
		/* Nothing at all is not even sent. */
		b = nft_batch_new(N);
		CHECK(sent(b, &len) == NULL);
	}
}

/* Deletions may name the sets of a VM that is leaving (in prev). */
static void
leaving(void)
{
	struct elem_key k = any("192.0.2.1");
	struct elems_msgs *m;
	struct priv_batch pb;
	uint8_t *p;
	size_t len;

	m = elems_msgs_new(TABLE);
	elems_msgs_del(m, "old", &k);
	p = engine(m, &len);
	CHECK(p != NULL);
	if (p == NULL)
		return;
	CHECK(parse(p, len, C, PREV, &pb) == 0);
	CHECK(pb.nops == 1 && pb.ops[0].del && vm_of(PREV, pb.ops[0].vm) &&
		strcmp(pb.ops[0].vm->name, "old") == 0);
	reemit_same(&pb, PREV);
	priv_batch_free(&pb);
	CHECK(parse(p, len, C, NULL, NULL) < 0);
	free(p);
	/* A VM of both: its sets are c's. */
	m = elems_msgs_new(TABLE);
	k = tcp("192.0.2.1", 443, 443);
	elems_msgs_del(m, "work", &k);
	p = engine(m, &len);
	CHECK(p != NULL);
	if (p != NULL && parse(p, len, C, PREV, &pb) == 0) {
		CHECK(pb.nops == 1 && vm_of(C, pb.ops[0].vm));
		priv_batch_free(&pb);
	} else {
		CHECK(!"a deletion for a VM of both refused");
	}
	free(p);
	/* Additions only ever for c's VMs. */
	m = elems_msgs_new(TABLE);
	k = any("192.0.2.1");
	elems_msgs_add(m, "old", &k, 1000, NULL);
	CHECK(verdict(engine(m, &len), &len, PREV) < 0);
}

/* ---- PRIV_DUMP, PRIV_CT_DUMP, PRIV_CT_DEL --------------------------------- */

static size_t
dump_req(uint8_t *buf, uint16_t kind, uint16_t fam, const char *set,
	uint16_t zero)
{
	uint16_t sl = (uint16_t)strlen(set);

	memcpy(buf, &kind, 2);
	memcpy(buf + 2, &fam, 2);
	memcpy(buf + 4, &sl, 2);
	memcpy(buf + 6, &zero, 2);
	memcpy(buf + 8, set, sl);
	return 8u + sl;
}

static int
dump(const uint8_t *buf, size_t len, char *set, size_t setlen)
{
	int kind = -1;

	if (priv_dump_parse(buf, len, &kind, set, setlen) < 0)
		return -1;
	return kind;
}

static void
dumps(void)
{
	uint8_t buf[256];
	char set[SET_NAME_MAX], name[SET_NAME_MAX + 1];
	size_t len;

	for (int kind = PRIV_DUMP_SETS; kind < PRIV_DUMP_ELEMS; kind++) {
		len = dump_req(buf, (uint16_t)kind, NFPROTO_INET, "", 0);
		CHECK(dump(buf, len, set, sizeof(set)) == kind);
		CHECK_STR(set, "");
		/* A set name only with ELEMS. */
		len = dump_req(buf, (uint16_t)kind, NFPROTO_INET, "work_v4", 0);
		CHECK(dump(buf, len, set, sizeof(set)) < 0);
	}
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, "work_v4_ports", 0);
	CHECK(dump(buf, len, set, sizeof(set)) == PRIV_DUMP_ELEMS);
	CHECK_STR(set, "work_v4_ports");
	/* Cut, or a byte more. */
	for (size_t cut = 0; cut < len; cut++)
		CHECK(dump(buf, cut, set, sizeof(set)) < 0);
	CHECK(dump(buf, len + 1, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, "", 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, 0, NFPROTO_INET, "", 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_ELEMS + 1, NFPROTO_INET, "x", 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_SETS, NFPROTO_IPV4, "", 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_SETS, NFPROTO_INET, "", 1);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, "work v4", 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, "work\nv4", 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, "work_v4", 0);
	buf[8 + 4] = '\0';
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	/* Names: shorter than SET_NAME_MAX, and than the caller's buffer. */
	memset(name, 'a', sizeof(name));
	name[SET_NAME_MAX - 1] = '\0';
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, name, 0);
	CHECK(dump(buf, len, set, sizeof(set)) == PRIV_DUMP_ELEMS);
	CHECK(strlen(set) == SET_NAME_MAX - 1);
	CHECK(dump(buf, len, set, SET_NAME_MAX - 1) < 0);
	name[SET_NAME_MAX - 1] = 'a';
	name[SET_NAME_MAX] = '\0';
	len = dump_req(buf, PRIV_DUMP_ELEMS, NFPROTO_INET, name, 0);
	CHECK(dump(buf, len, set, sizeof(set)) < 0);
	{
		char big[SET_NAME_MAX * 2];

		CHECK(priv_dump_parse(buf, len, &(int){0}, big, sizeof(big)) <
			0);
	}
}

/* A PRIV_CT_DEL payload for a connection from src (to a documentation
 * address of its family), as ctpurge.c sends it. */
static size_t
ctdel_req(uint8_t *out, uint8_t family, uint8_t has_zone, const char *src)
{
	union {
		struct nlmsghdr h;
		uint8_t b[512];
	} u;
	struct nlmsghdr *nlh;
	struct nlattr *nest;
	uint8_t a[16], dst[16];
	int af = strchr(src, ':') ? AF_INET6 : AF_INET;
	size_t alen = af == AF_INET ? 4 : 16;
	uint16_t zone = 3;
	uint32_t id = 77;

	memset(&u, 0, sizeof(u));
	inet_pton(af, src, a);
	inet_pton(af, af == AF_INET ? "192.0.2.1" : "2001:db8::1", dst);
	nlh = mnl_nlmsg_put_header(u.b);
	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put(nlh, af == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, alen,
		a);
	mnl_attr_put(nlh, af == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST, alen,
		dst);
	mnl_attr_nest_end(nlh, nest);
	nest = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_TCP);
	mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(40000));
	mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(443));
	mnl_attr_nest_end(nlh, nest);
	out[0] = family;
	out[1] = has_zone;
	memcpy(out + 2, &zone, 2);
	memcpy(out + 4, &id, 4);
	memcpy(out + 8, mnl_nlmsg_get_payload(nlh),
		mnl_nlmsg_get_payload_len(nlh));
	return 8 + mnl_nlmsg_get_payload_len(nlh);
}

/* 1 the deletion may be made, 0 refused, -1 malformed. */
static int
ctdel(const uint8_t *buf, size_t len, const struct config *c)
{
	struct priv_ctdel d;
	char why[256];
	const char *bad;

	if (priv_ctdel_parse(buf, len, &d) < 0)
		return -1;
	bad = priv_ctdel_check(c, &d, why, sizeof(why));
	if (bad != NULL && getenv("VERBOSE"))
		fprintf(stderr, "refused: %s\n", bad);
	return bad == NULL;
}

static void
conntrack(void)
{
	uint8_t buf[512];
	struct priv_ctdel d;
	size_t len;
	int fam;
	uint32_t f;

	f = AF_INET;
	CHECK(priv_ctdump_parse((uint8_t *)&f, 4, &fam) == 0 && fam == AF_INET);
	f = AF_INET6;
	CHECK(priv_ctdump_parse((uint8_t *)&f, 4, &fam) == 0 &&
		fam == AF_INET6);
	f = AF_UNIX;
	CHECK(priv_ctdump_parse((uint8_t *)&f, 4, &fam) < 0);
	f = AF_INET;
	CHECK(priv_ctdump_parse((uint8_t *)&f, 3, &fam) < 0);
	memset(buf, 0, 8);
	memcpy(buf, &f, 4);
	CHECK(priv_ctdump_parse(buf, 5, &fam) < 0);

	/* A VM's connection, conntrack-purge on. */
	len = ctdel_req(buf, AF_INET, 1, "10.137.1.10");
	CHECK(priv_ctdel_parse(buf, len, &d) == 0);
	CHECK(d.family == AF_INET && d.has_zone && d.zone == 3 && d.id == 77 &&
		d.len == len - 8 && memcmp(d.tuple, buf + 8, d.len) == 0);
	CHECK(ctdel(buf, len, C) == 1);
	CHECK(ctdel(buf, len, OFF) == 0);
	len = ctdel_req(buf, AF_INET, 0, "10.137.2.10");
	CHECK(ctdel(buf, len, C) == 1);
	len = ctdel_req(buf, AF_INET6, 0, "2001:db8:a:1::10");
	CHECK(ctdel(buf, len, C) == 1);
	CHECK(ctdel(buf, len, OFF) == 0);
	/* No VM's: another source, a listen address, a VM of prev only. */
	len = ctdel_req(buf, AF_INET, 0, "192.0.2.7");
	CHECK(ctdel(buf, len, C) == 0);
	len = ctdel_req(buf, AF_INET, 0, "10.139.1.1");
	CHECK(ctdel(buf, len, C) == 0);
	len = ctdel_req(buf, AF_INET, 0, "10.137.3.10");
	CHECK(ctdel(buf, len, C) == 0);
	CHECK(ctdel(buf, len, PREV) == 0); /* its purge is off */
	/* The family says where the source is: a v4 tuple said to be v6. */
	len = ctdel_req(buf, AF_INET6, 0, "10.137.1.10");
	CHECK(ctdel(buf, len, C) == 0);
	/* A tuple without its addresses, or not attributes at all. */
	len = ctdel_req(buf, AF_INET, 0, "10.137.1.10");
	{
		uint8_t t[PRIV_TUPLE_MAX + 16];
		const struct nlattr *ip = (const void *)(buf + 8);
		size_t iplen = MNL_ALIGN(ip->nla_len);

		CHECK(mnl_attr_get_type(ip) == CTA_TUPLE_IP);
		memcpy(t, buf, 8);
		memcpy(t + 8, buf + 8 + iplen, len - 8 - iplen);
		CHECK(ctdel(t, len - iplen, C) == 0);
		memset(t + 8, 0xff, 16);
		CHECK(ctdel(t, 8 + 16, C) == 0);
		/* CTA_TUPLE_IP not a nest. */
		memcpy(t, buf, len);
		((struct nlattr *)(t + 8))->nla_len = 6;
		CHECK(ctdel(t, len, C) == 0);
	}
	/* Malformed: family, has_zone, no tuple, one too long. */
	len = ctdel_req(buf, AF_UNIX, 0, "10.137.1.10");
	CHECK(ctdel(buf, len, C) < 0);
	len = ctdel_req(buf, AF_INET, 2, "10.137.1.10");
	CHECK(ctdel(buf, len, C) < 0);
	len = ctdel_req(buf, AF_INET, 0, "10.137.1.10");
	CHECK(ctdel(buf, 8, C) < 0);
	CHECK(ctdel(buf, 7, C) < 0);
	memset(buf + len, 0, sizeof(buf) - len);
	CHECK(ctdel(buf, 8 + PRIV_TUPLE_MAX, C) == 1);
	CHECK(ctdel(buf, 8 + PRIV_TUPLE_MAX + 1, C) < 0);
}

/* ---- frames, PRIV_DONE, PRIV_RESULT ------------------------------------- */

static void
texts(void)
{
	char msg[PRIV_MSG_MAX + 1], longmsg[PRIV_MSG_MAX + 100];
	uint8_t *buf, raw[64];
	size_t len;
	uint32_t seq, plen;
	uint16_t type;
	int err;

	/* Frames. */
	buf = priv_frame(PRIV_READY, NULL, 0, NULL, 0, &len);
	CHECK(len == PRIV_HDR);
	CHECK(priv_header(buf, &plen, &type) == 0 && plen == 0 &&
		type == PRIV_READY);
	free(buf);
	buf = priv_frame(PRIV_DATA, "ab", 2, "cde", 3, &len);
	CHECK(len == PRIV_HDR + 5 && memcmp(buf + PRIV_HDR, "abcde", 5) == 0);
	CHECK(priv_header(buf, &plen, &type) == 0 && plen == 5 &&
		type == PRIV_DATA);
	buf[6] = 1;
	CHECK(priv_header(buf, &plen, &type) < 0);
	free(buf);
	plen = PRIV_FRAME_MAX;
	memset(raw, 0, sizeof(raw));
	memcpy(raw, &plen, 4);
	CHECK(priv_header(raw, &plen, &type) == 0);
	plen = PRIV_FRAME_MAX + 1;
	memcpy(raw, &plen, 4);
	CHECK(priv_header(raw, &plen, &type) < 0);

	/* DONE: round trip; control characters made spaces. */
	buf = priv_done_build(7, 17, "File exists\n(set)\x7f", &len);
	CHECK(priv_header(buf, &plen, &type) == 0 && type == PRIV_DONE &&
		plen == len - PRIV_HDR);
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      sizeof(msg)) == 0);
	CHECK(seq == 7 && err == 17);
	CHECK_STR(msg, "File exists (set) ");
	/* A shorter text is still one; a cut head is not. */
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR - 1, &seq, &err,
		      msg, sizeof(msg)) == 0);
	CHECK_STR(msg, "File exists (set)");
	CHECK(priv_done_parse(buf + PRIV_HDR, 7, &seq, &err, msg, sizeof(msg)) <
		0);
	/* The caller's buffer bounds the text. */
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      5) == 0);
	CHECK_STR(msg, "File");
	free(buf);
	buf = priv_done_build(0xffffffffu, 0, NULL, &len);
	CHECK(len == PRIV_HDR + 8);
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      sizeof(msg)) == 0);
	CHECK(seq == 0xffffffffu && err == 0);
	CHECK_STR(msg, "");
	free(buf);
	/* An errno value, nothing else. */
	buf = priv_done_build(1, 4096, "x", &len);
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      sizeof(msg)) < 0);
	free(buf);
	buf = priv_done_build(1, -1, "x", &len);
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      sizeof(msg)) < 0);
	free(buf);
	/* A text of at most PRIV_MSG_MAX bytes, cut so when built. */
	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	buf = priv_done_build(2, 5, longmsg, &len);
	CHECK(len == PRIV_HDR + 8 + PRIV_MSG_MAX);
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      sizeof(msg)) == 0);
	CHECK(strlen(msg) == PRIV_MSG_MAX);
	buf = realloc(buf, len + 1);
	buf[len] = 'x';
	CHECK(priv_done_parse(buf + PRIV_HDR, len + 1 - PRIV_HDR, &seq, &err,
		      msg, sizeof(msg)) < 0);
	free(buf);
	/* Control characters sent as they are: refused. */
	memset(raw, 0, sizeof(raw));
	memcpy(raw + 8, "a\nb", 3);
	CHECK(priv_done_parse(raw, 11, &seq, &err, msg, sizeof(msg)) < 0);
	raw[9] = '\0';
	CHECK(priv_done_parse(raw, 11, &seq, &err, msg, sizeof(msg)) < 0);
	raw[9] = ' ';
	CHECK(priv_done_parse(raw, 11, &seq, &err, msg, sizeof(msg)) == 0);
	CHECK_STR(msg, "a b");

	/* RESULT. */
	buf = priv_result_build(2, "No such\tfile", &len);
	CHECK(priv_header(buf, &plen, &type) == 0 && type == PRIV_RESULT &&
		plen == len - PRIV_HDR);
	CHECK(priv_result_parse(buf + PRIV_HDR, len - PRIV_HDR, &err, msg,
		      sizeof(msg)) == 0);
	CHECK(err == 2);
	CHECK_STR(msg, "No such file");
	CHECK(priv_result_parse(buf + PRIV_HDR, 3, &err, msg, sizeof(msg)) < 0);
	free(buf);
	buf = priv_result_build(0, NULL, &len);
	CHECK(len == PRIV_HDR + 4);
	CHECK(priv_result_parse(buf + PRIV_HDR, len - PRIV_HDR, &err, msg,
		      sizeof(msg)) == 0);
	CHECK(err == 0);
	CHECK_STR(msg, "");
	free(buf);
	buf = priv_result_build(-5, "x", &len);
	CHECK(priv_result_parse(buf + PRIV_HDR, len - PRIV_HDR, &err, msg,
		      sizeof(msg)) < 0);
	free(buf);
	buf = priv_result_build(1, longmsg, &len);
	CHECK(len == PRIV_HDR + 4 + PRIV_MSG_MAX);
	free(buf);
	memset(raw, 0, sizeof(raw));
	memcpy(raw + 4, "ok\r", 3);
	CHECK(priv_result_parse(raw, 7, &err, msg, sizeof(msg)) < 0);
	CHECK(priv_result_parse(raw, 6, &err, msg, sizeof(msg)) == 0);
	CHECK_STR(msg, "ok");
}

int
main(void)
{
	int sp[2], big = 1 << 20;
	struct timeval tv = {.tv_sec = 10};

	if (mkdtemp(dir) == NULL)
		return 2;
	configs();
	CHECK(C != NULL && PREV != NULL && OFF != NULL);
	if (C == NULL || PREV == NULL || OFF == NULL)
		return check_done("privproto");
	TABLE = C->table;
	CHECK(C->ct_purge && !OFF->ct_purge && !PREV->ct_purge);

	/* The engine's end, as privsep.c hands it over. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		perror("socketpair");
		return 2;
	}
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	peer = sp[1];
	nft_use_priv(sp[0], sp[0], -1, 0);
	N = nft_open();
	CHECK(N != NULL && nft_is_priv(N));
	if (N == NULL)
		return check_done("privproto");

	valid();
	many();
	refused_adds();
	other_messages();
	structure();
	leaving();
	dumps();
	conntrack();
	texts();

	nft_close(N);
	close(sp[0]);
	close(sp[1]);
	config_free(C);
	config_free(PREV);
	config_free(OFF);
	{
		char *cmd = xasprintf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		free(cmd);
	}
	return check_done("privproto");
}
