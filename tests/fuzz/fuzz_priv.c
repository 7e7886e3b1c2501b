/* libFuzzer target: the privileged process's parsers of what the engine
 * sends it (privproto.c), which a compromised engine writes at will, and
 * the engine's parsers of the privileged process's answers. The first
 * byte picks the parser (its low 3 bits), the rest is the payload:
 *
 *   0, 1, 2  PRIV_BATCH, checked against a fixed configuration, with no
 *            previous one, another one (a VM leaving), or itself
 *   3 PRIV_DUMP   4 PRIV_CT_DUMP   5 PRIV_CT_DEL   6 PRIV_DONE
 *   7 PRIV_RESULT; and every payload also as a frame header.
 *
 * Invariants (abort() when broken):
 * - a parsed batch has the head priv_batch_head reads; its messages
 *   cover its operations in order, each message of one kind; every
 *   operation is on a VM of the configuration (a deletion: or of the
 *   previous one, when the configuration has no such set), a set index
 *   below SET_COUNT whose kind and family are the key's, a key zeroed
 *   where unused; an addition passes privcheck_add again, with a timeout
 *   of 1 ms to ttl.max + grace + 1 s and a printable comment of at most
 *   PRIV_COMMENT_MAX bytes; a deletion has neither;
 * - priv_batch_emit into the engine's kind of batch, sent as the engine
 *   sends it, parses again into the same operations and head;
 * - a refused batch leaves no operations and says why;
 * - a parsed dump request, conntrack request, DONE or RESULT re-encodes
 *   to the input's bytes;
 * - a conntrack deletion is allowed exactly when conntrack-purge is on
 *   and its tuple's source (as an independent reader finds it) is an
 *   address of a VM;
 * - a frame header is accepted exactly when its reserved field is zero
 *   and its length at most PRIV_FRAME_MAX. */
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "elems.h"
#include "nft.h"
#include "privcheck.h"
#include "privproto.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", \
				__FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* Batches larger than this are not re-emitted: the socketpair's buffer
 * would have to hold the whole frame. */
#define REEMIT_MAX (256u * 1024)

/* C: VMs work, red and six, conntrack-purge on. PREV: VMs work and old.
 * OFF: C's VMs, conntrack-purge off. */
static struct config *C, *PREV, *OFF;
static const char *TABLE;
static int peer = -1; /* the privileged process's end of the channel */

static const char *const files[][2] = {
	{"dnsfence.yaml",
		"listen: [10.139.1.1, \"fd00::1\"]\npolicies: vms\n"
		"control: ctl.sock\nttl: {min: 10, max: 3600, grace: 5}\n"
		"nftables:\n  conntrack-purge: true\n"
		"resolver:\n  trust-anchor-file: root.key\n"},
	{"prev.yaml",
		"listen: [10.139.1.1]\npolicies: vms-prev\ncontrol: ctl.sock\n"
		"ttl: {min: 10, max: 600, grace: 0}\n"
		"resolver:\n  trust-anchor-file: root.key\n"},
	{"off.yaml",
		"listen: [10.139.1.1, \"fd00::1\"]\npolicies: vms\n"
		"control: ctl.sock\nttl: {min: 10, max: 3600, grace: 5}\n"
		"resolver:\n  trust-anchor-file: root.key\n"},
	{"root.key",
		". IN DS 20326 8 2 "
		"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8"
		"EC8D\n"},
	{"vms/work.yaml",
		"addresses: [10.137.1.10, \"2001:db8:a:1::10\"]\n"
		"allow:\n"
		"  - name: \"*.example.com\"\n"
		"    ports: [tcp/443, tcp/8000-8080]\n"
		"  - name: ping.example.com\n    ports: [icmp]\n"
		"  - name: nas.corp.example\n    ports: [tcp/22]\n"
		"    allow-private: true\n"
		"  - net: 198.51.100.0/24\n    ports: [udp/53]\n"},
	{"vms/red.yaml", "addresses: [10.137.2.10]\ndefault: allow\n"},
	{"vms/six.yaml",
		"addresses: [\"2001:db8:b::10\"]\n"
		"allow:\n"
		"  - name: \"*.example.org\"\n"
		"    ports: [udp/443, tcp/1-1024]\n"
		"  - name: any.example.org\n"},
	{"vms-prev/work.yaml", "addresses: [10.137.1.10]\ndefault: allow\n"},
	{"vms-prev/old.yaml", "addresses: [10.137.3.10]\ndefault: allow\n"},
};

static struct config *
load(const char *dir, const char *name)
{
	struct diag d = {0};
	char *path = xasprintf("%s/%s", dir, name);
	struct config *c = config_load(path, &d);

	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	INVARIANT(c != NULL);
	diag_finish(&d);
	free(path);
	return c;
}

/* Once: the configurations, from files in a directory of their own (gone
 * again once loaded), and the engine's end of a batch channel. */
static void
init(void)
{
	char dir[] = "/tmp/df-fuzz-priv-XXXXXX";
	int sp[2], big = 1 << 20;
	struct timeval tv = {.tv_sec = 5};

	INVARIANT(mkdtemp(dir) != NULL);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *path = xasprintf("%s/%s", dir, files[i][0]);
		char *slash = strrchr(path, '/');
		FILE *f;

		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
		f = fopen(path, "w");
		INVARIANT(f != NULL && fputs(files[i][1], f) != EOF &&
			fclose(f) == 0);
		free(path);
	}
	C = load(dir, "dnsfence.yaml");
	PREV = load(dir, "prev.yaml");
	OFF = load(dir, "off.yaml");
	INVARIANT(C->ct_purge && !OFF->ct_purge);
	TABLE = C->table;
	for (size_t i = ARRAY_SIZE(files); i-- > 0;) {
		char *path = xasprintf("%s/%s", dir, files[i][0]);

		unlink(path);
		free(path);
	}
	{
		char *path = xasprintf("%s/vms", dir);

		rmdir(path);
		free(path);
		path = xasprintf("%s/vms-prev", dir);
		rmdir(path);
		free(path);
		rmdir(dir);
	}
	INVARIANT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	peer = sp[1];
	nft_use_priv(sp[0], sp[0], -1, 0);
}

static void
text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	INVARIANT(n <= max);
	for (size_t i = 0; i < n; i++)
		INVARIANT((unsigned char)s[i] >= 0x20 &&
			(unsigned char)s[i] != 0x7f);
}

static bool
vm_of(const struct config *c, const struct vm *v)
{
	return c != NULL && v >= c->vms && v < c->vms + c->nvms;
}

/* ---- PRIV_BATCH -------------------------------------------------------- */

static void
done_cb(int err, const char *msg, void *arg)
{
	(void)msg;
	*(int *)arg = err;
}

/* Send b as the engine does; the PRIV_BATCH payload from the other end
 * (malloc'd), or NULL when the batch was empty and nothing was sent. The
 * batch completes (ECANCELED) only at nft_close(). */
static uint8_t *
sent(struct nft_batch *b, size_t *len)
{
	static int err;
	uint8_t hdr[PRIV_HDR], *p;
	uint32_t plen;
	uint16_t type;

	err = -1;
	nft_batch_send(b, done_cb, &err);
	if (err != -1) {
		INVARIANT(err == 0);
		return NULL;
	}
	INVARIANT(recv(peer, hdr, sizeof(hdr), MSG_WAITALL) == sizeof(hdr));
	INVARIANT(priv_header(hdr, &plen, &type) == 0 && type == PRIV_BATCH);
	p = xcalloc(1, (size_t)plen + 1);
	INVARIANT(recv(peer, p, plen, MSG_WAITALL) == (ssize_t)plen);
	*len = plen;
	return p;
}

static void
check_op(const struct priv_op *op, const struct config *prev)
{
	const uint64_t max = ((uint64_t)C->ttl.max + C->ttl.grace + 1) * 1000;
	size_t alen = op->k.family == AF_INET ? 4 : 16;
	char why[256];

	INVARIANT(op->idx >= 0 && op->idx < SET_COUNT);
	INVARIANT(op->k.kind == set_index_kind(op->idx));
	INVARIANT(op->k.family == set_index_family(op->idx));
	INVARIANT(elem_set_index(&op->k) == op->idx);
	for (size_t i = alen; i < sizeof(op->k.addr); i++)
		INVARIANT(op->k.addr[i] == 0);
	if (op->k.kind == SET_ANY)
		INVARIANT(op->k.proto == 0 && op->k.lo == 0 && op->k.hi == 0);
	else
		INVARIANT(op->k.lo <= op->k.hi);
	INVARIANT(elems_key_canonical(&op->k));
	text_ok(op->comment, PRIV_COMMENT_MAX);
	if (op->del) {
		const struct config *owner = vm_of(C, op->vm) ? C : prev;

		INVARIANT(vm_of(C, op->vm) || vm_of(prev, op->vm));
		INVARIANT(op->timeout_ms == 0 && op->comment[0] == '\0');
		INVARIANT(privcheck_del(owner, op->vm->name, op->idx, &op->k,
				  why, sizeof(why)) == NULL);
		if (owner != C) {
			/* Only when no set of C has that name. */
			char a[SET_NAME_MAX], b[SET_NAME_MAX];

			elems_set_name(a, sizeof(a), op->vm->name, op->idx);
			for (size_t v = 0; v < C->nvms; v++)
				for (int i = 0; i < SET_COUNT; i++)
					INVARIANT(
						strcmp(a,
							elems_set_name(b,
								sizeof(b),
								C->vms[v].name,
								i)) != 0);
		}
		return;
	}
	INVARIANT(vm_of(C, op->vm));
	INVARIANT(op->timeout_ms >= 1 && op->timeout_ms <= max);
	INVARIANT(privcheck_add(C, op->vm->name, op->idx, &op->k,
			  op->timeout_ms, why, sizeof(why)) == NULL);
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

/* Written anew as the privileged process does (into the engine's kind
 * of batch, whose frame is the input's format): the same batch. */
static void
reemit(const struct priv_batch *pb, const struct config *prev)
{
	struct nft *n = nft_open();
	struct nft_batch *b;
	struct priv_batch again;
	char why[512];
	uint8_t *p;
	size_t len = 0;

	INVARIANT(n != NULL && nft_is_priv(n));
	b = nft_batch_new(n);
	if (pb->flags & PRIV_F_INSTALL)
		nft_batch_install(b, pb->gen, pb->at,
			(pb->flags & PRIV_F_WITH_PREV) != 0);
	priv_batch_emit(pb, TABLE, b);
	p = sent(b, &len);
	if (p == NULL) {
		INVARIANT(pb->nmsgs == 0 && !(pb->flags & PRIV_F_INSTALL));
	} else {
		if (priv_batch_parse(p, len, TABLE, C, prev, &again, why,
			    sizeof(why)) < 0) {
			fprintf(stderr, "re-emitted batch refused: %s\n", why);
			INVARIANT(!"a re-emitted batch is accepted");
		}
		INVARIANT(same_ops(pb, &again));
		/* gen and at mean something only in an install. */
		INVARIANT(again.flags == pb->flags);
		INVARIANT(!(pb->flags & PRIV_F_INSTALL) ||
			(again.gen == pb->gen && again.at == pb->at));
		INVARIANT(again.nmsgs >= pb->nmsgs);
		priv_batch_free(&again);
		free(p);
	}
	nft_close(n);
}

static void
check_batch(const uint8_t *p, size_t len, const struct config *prev)
{
	struct priv_batch pb, head;
	char why[512] = "";
	size_t next = 0;

	if (priv_batch_parse(p, len, TABLE, C, prev, &pb, why, sizeof(why)) <
		0) {
		INVARIANT(why[0] != '\0');
		INVARIANT(pb.ops == NULL && pb.nops == 0 && pb.msgs == NULL &&
			pb.nmsgs == 0);
		return;
	}
	INVARIANT(priv_batch_head(p, len, &head) == 0);
	INVARIANT(head.seq == pb.seq && head.flags == pb.flags &&
		head.gen == pb.gen && head.at == pb.at);
	INVARIANT((pb.flags & ~(PRIV_F_INSTALL | PRIV_F_WITH_PREV)) == 0);
	INVARIANT(
		!(pb.flags & PRIV_F_WITH_PREV) || (pb.flags & PRIV_F_INSTALL));
	INVARIANT(pb.nops <= PRIV_OPS_MAX);
	for (size_t i = 0; i < pb.nmsgs; i++) {
		const struct priv_msg *m = &pb.msgs[i];

		INVARIANT(m->first == next && m->n >= 1);
		for (size_t j = m->first; j < m->first + m->n; j++) {
			INVARIANT(j < pb.nops);
			INVARIANT(pb.ops[j].del == m->del);
			/* One set per message. */
			INVARIANT(pb.ops[j].vm == pb.ops[m->first].vm &&
				pb.ops[j].idx == pb.ops[m->first].idx);
		}
		next += m->n;
	}
	INVARIANT(next == pb.nops);
	for (size_t i = 0; i < pb.nops; i++)
		check_op(&pb.ops[i], prev);
	if (len <= REEMIT_MAX)
		reemit(&pb, prev);
	priv_batch_free(&pb);
}

/* ---- PRIV_DUMP, PRIV_CT_DUMP, PRIV_CT_DEL ------------------------------ */

static void
check_dump(const uint8_t *p, size_t len)
{
	char set[SET_NAME_MAX];
	uint16_t h[4];
	size_t sl;
	int kind;

	if (priv_dump_parse(p, len, &kind, set, sizeof(set)) < 0)
		return;
	memcpy(h, p, sizeof(h));
	sl = strlen(set);
	INVARIANT(kind >= PRIV_DUMP_SETS && kind <= PRIV_DUMP_ELEMS);
	INVARIANT(h[0] == kind && h[1] == NFPROTO_INET && h[2] == sl &&
		h[3] == 0);
	INVARIANT((kind == PRIV_DUMP_ELEMS) == (sl > 0));
	INVARIANT(sl < SET_NAME_MAX && len == 8 + sl);
	INVARIANT(memcmp(p + 8, set, sl) == 0);
	text_ok(set, SET_NAME_MAX - 1);
	INVARIANT(strchr(set, ' ') == NULL);
}

static void
check_ctdump(const uint8_t *p, size_t len)
{
	uint32_t f;
	int family;

	if (priv_ctdump_parse(p, len, &family) < 0)
		return;
	INVARIANT(len == 4);
	memcpy(&f, p, 4);
	INVARIANT(
		(int)f == family && (family == AF_INET || family == AF_INET6));
}

/* The payload of the last attribute of type t (its flag bits aside) of
 * those in p[0 .. len), walked as libmnl walks them (up to the first
 * malformed one); NULL if there is none. */
static const uint8_t *
tlv_last(const uint8_t *p, size_t len, uint16_t t, size_t *plen)
{
	const uint8_t *found = NULL;
	size_t off = 0;

	while (off + 4 <= len) {
		uint16_t al, at;

		memcpy(&al, p + off, 2);
		memcpy(&at, p + off + 2, 2);
		if (al < 4 || al > len - off)
			break;
		if ((at & NLA_TYPE_MASK) == t) {
			found = p + off + 4;
			*plen = al - 4u;
		}
		off += (al + 3u) & ~3u;
	}
	return found;
}

/* Is the source of the tuple an address of a VM of c? */
static bool
ct_from_vm(const struct config *c, const struct priv_ctdel *d)
{
	size_t alen = d->family == AF_INET ? 4 : 16, iplen = 0, slen = 0;
	const uint8_t *ip = tlv_last(d->tuple, d->len, CTA_TUPLE_IP, &iplen);
	const uint8_t *src;

	if (ip == NULL)
		return false;
	src = tlv_last(ip, iplen,
		d->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, &slen);
	if (src == NULL || slen != alen)
		return false;
	for (size_t v = 0; v < c->nvms; v++)
		for (size_t i = 0; i < c->vms[v].naddrs; i++)
			if (c->vms[v].addrs[i].family == d->family &&
				memcmp(c->vms[v].addrs[i].b, src, alen) == 0)
				return true;
	return false;
}

static void
check_ctdel(const uint8_t *p, size_t len)
{
	struct priv_ctdel d;
	char why[256];
	const char *bad;

	if (priv_ctdel_parse(p, len, &d) < 0)
		return;
	INVARIANT(d.family == AF_INET || d.family == AF_INET6);
	INVARIANT(d.family == p[0] && d.has_zone == (p[1] == 1));
	INVARIANT(d.len >= 1 && d.len <= PRIV_TUPLE_MAX && d.len == len - 8);
	INVARIANT(memcmp(d.tuple, p + 8, d.len) == 0);
	bad = priv_ctdel_check(C, &d, why, sizeof(why));
	if (bad != NULL)
		text_ok(bad, sizeof(why) - 1);
	INVARIANT((bad == NULL) == ct_from_vm(C, &d));
	INVARIANT(priv_ctdel_check(OFF, &d, why, sizeof(why)) != NULL);
}

/* ---- PRIV_DONE, PRIV_RESULT, frame headers ------------------------------- */

static void
check_done(const uint8_t *p, size_t len)
{
	char msg[PRIV_MSG_MAX + 1];
	uint32_t seq;
	uint8_t *buf;
	size_t blen;
	int err;

	if (priv_done_parse(p, len, &seq, &err, msg, sizeof(msg)) < 0)
		return;
	INVARIANT(err >= 0 && err <= 4095);
	text_ok(msg, PRIV_MSG_MAX);
	buf = priv_done_build(seq, err, msg, &blen);
	INVARIANT(blen == PRIV_HDR + len);
	INVARIANT(memcmp(buf + PRIV_HDR, p, len) == 0);
	free(buf);
}

static void
check_result(const uint8_t *p, size_t len)
{
	char msg[PRIV_MSG_MAX + 1];
	uint8_t *buf;
	size_t blen;
	int err;

	if (priv_result_parse(p, len, &err, msg, sizeof(msg)) < 0)
		return;
	INVARIANT(err >= 0 && err <= 4095);
	text_ok(msg, PRIV_MSG_MAX);
	buf = priv_result_build(err, msg, &blen);
	INVARIANT(blen == PRIV_HDR + len);
	INVARIANT(memcmp(buf + PRIV_HDR, p, len) == 0);
	free(buf);
}

static void
check_header(const uint8_t *p, size_t len)
{
	uint32_t l, rl;
	uint16_t type, rt, zero;

	if (len < PRIV_HDR)
		return;
	memcpy(&rl, p, 4);
	memcpy(&rt, p + 4, 2);
	memcpy(&zero, p + 6, 2);
	if (priv_header(p, &l, &type) == 0)
		INVARIANT(zero == 0 && l == rl && type == rt &&
			l <= PRIV_FRAME_MAX);
	else
		INVARIANT(zero != 0 || rl > PRIV_FRAME_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 1;
	size_t len;

	if (C == NULL)
		init();
	if (size < 1)
		return 0;
	len = size - 1;
	check_header(p, len);
	switch (data[0] & 7) {
	case 0:
		check_batch(p, len, NULL);
		break;
	case 1:
		check_batch(p, len, PREV);
		break;
	case 2:
		check_batch(p, len, C);
		break;
	case 3:
		check_dump(p, len);
		break;
	case 4:
		check_ctdump(p, len);
		break;
	case 5:
		check_ctdel(p, len);
		break;
	case 6:
		check_done(p, len);
		break;
	case 7:
		check_result(p, len);
		break;
	}
	return 0;
}
