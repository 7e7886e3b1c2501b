#include "nft.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define NFT_RCVBUF (4 * 1024 * 1024)

struct nft_batch {
	struct nft *n;
	char *buf;
	size_t len, cap;
	size_t last;	/* offset of the message being built, or SIZE_MAX */
	size_t lastmsg; /* offset of the last message started */
	uint32_t first_seq, last_seq;
	char **what; /* per message, index = seq - first_seq */
	size_t nwhat;
	/* once sent */
	int err;
	char *errmsg;
	nft_done_cb cb;
	void *arg;
	uint64_t sent_ms;
	struct nft_batch *next;
};

struct nft {
	struct mnl_socket *nl;
	uint32_t seq;
	uint32_t portid;
	int sndbuf, rcvbuf;
	size_t inflight_msgs; /* messages of the pending batches */
	struct nft_batch *pending, **tail;
	size_t npending;
};

struct nft *
nft_open(void)
{
	struct nft *n = xcalloc(1, sizeof(*n));
	int one = 1, rcv = NFT_RCVBUF;

	n->nl = mnl_socket_open2(NETLINK_NETFILTER,
		SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (n->nl == NULL ||
		mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		log_warn("netlink socket");
		nft_close(n);
		return NULL;
	}
	/* Extended ACKs name the attribute the kernel disliked; CAP_ACK keeps
	 * ACKs small, since every message of a batch is acknowledged. */
	mnl_socket_setsockopt(n->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(n->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_RCVBUFFORCE,
		    &rcv, sizeof(rcv)) < 0)
		setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_RCVBUF,
			&rcv, sizeof(rcv));
	n->rcvbuf = rcv;
	n->portid = mnl_socket_get_portid(n->nl);
	n->seq = (uint32_t)time(NULL);
	n->tail = &n->pending;
	return n;
}

/* Per message of the batches in flight, what an error costs in socket
 * memory, with the extended ACK's text: generous, the kernel counts skb
 * overhead. */
#define ERR_COST 1024

static void
rcvbuf_fit(struct nft *n)
{
	size_t want = n->inflight_msgs * ERR_COST + 65536;
	int sz;

	if (want <= (size_t)n->rcvbuf || want > INT32_MAX / 2)
		return;
	sz = (int)(want * 2 > NFT_RCVBUF ? want * 2 : NFT_RCVBUF);
	if (setsockopt(nft_fd(n), SOL_SOCKET, SO_RCVBUFFORCE, &sz,
		    sizeof(sz)) == 0)
		n->rcvbuf = sz;
	else
		log_warn("netlink receive buffer of %d bytes", sz);
}

static void
complete(struct nft *n, struct nft_batch *b)
{
	b->cb(b->err, b->errmsg ? b->errmsg : "", b->arg);
	nft_batch_free(b);
	(void)n;
}

void
nft_close(struct nft *n)
{
	if (n == NULL)
		return;
	while (n->pending) {
		struct nft_batch *b = n->pending;

		n->pending = b->next;
		if (b->err == 0)
			b->err = ECANCELED;
		complete(n, b);
	}
	if (n->nl)
		mnl_socket_close(n->nl);
	free(n);
}

int
nft_fd(const struct nft *n)
{
	return mnl_socket_get_fd(n->nl);
}

static void
reserve(struct nft_batch *b, size_t room)
{
	if (b->len + room <= b->cap)
		return;
	size_t old = b->cap;

	while (b->cap < b->len + room)
		b->cap = b->cap ? b->cap * 2 : 65536;
	b->buf = xreallocarray(b->buf, 1, b->cap);
	/* Alignment padding between messages is never written: keep it
	 * zero rather than send whatever the heap held. */
	memset(b->buf + old, 0, b->cap - old);
}

/* Close the message being built: its length is only known afterwards. */
static void
seal(struct nft_batch *b)
{
	struct nlmsghdr *nlh;

	if (b->last == SIZE_MAX)
		return;
	nlh = (struct nlmsghdr *)(b->buf + b->last);
	b->len = b->last + NLMSG_ALIGN(nlh->nlmsg_len);
	b->last = SIZE_MAX;
}

struct nft_batch *
nft_batch_new(struct nft *n)
{
	struct nft_batch *b = xcalloc(1, sizeof(*b));

	b->n = n;
	b->last = SIZE_MAX;
	reserve(b, 4096);
	b->first_seq = n->seq;
	nftnl_batch_begin(b->buf, n->seq++);
	b->len = NLMSG_ALIGN(((struct nlmsghdr *)b->buf)->nlmsg_len);
	return b;
}

void
nft_batch_free(struct nft_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->nwhat; i++)
		free(b->what[i]);
	free(b->what);
	free(b->errmsg);
	free(b->buf);
	free(b);
}

struct nlmsghdr *
nft_batch_msg(struct nft_batch *b, uint16_t type, uint16_t family,
	uint16_t flags, size_t room, const char *what)
{
	struct nlmsghdr *nlh;

	seal(b);
	reserve(b, room + 256);
	b->last = b->lastmsg = b->len;
	/* Errors come back for every message that fails, matched to its
	 * object by seq; only the last message asks for an ACK, which tells
	 * the transaction is over (see nft_batch_send). */
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->len, type, family, flags,
		b->n->seq++);
	b->what = xreallocarray(b->what, b->nwhat + 1, sizeof(*b->what));
	b->what[b->nwhat++] = xstrdup(what);
	return nlh;
}

static void
fail_now(struct nft_batch *b, int err, const char *msg)
{
	b->err = err;
	b->errmsg = xstrdup(msg);
	complete(b->n, b);
}

void
nft_batch_send(struct nft_batch *b, nft_done_cb cb, void *arg)
{
	struct nft *n = b->n;
	ssize_t r;

	b->cb = cb;
	b->arg = arg;
	if (b->nwhat == 0) {
		complete(n, b);
		return;
	}
	seal(b);
	/* The kernel reports every error of a transaction before the ACK of
	 * a later message, aborted or not: one ACK, on the last message,
	 * completes the batch. An ACK per message would queue one skb per
	 * message on our socket: with thousands of rules that overruns any
	 * receive buffer (ENOBUFS), and then no outcome can be known. */
	((struct nlmsghdr *)(b->buf + b->lastmsg))->nlmsg_flags |= NLM_F_ACK;
	reserve(b, 256);
	nftnl_batch_end(b->buf + b->len, n->seq++);
	b->len +=
		NLMSG_ALIGN(((struct nlmsghdr *)(b->buf + b->len))->nlmsg_len);
	b->last_seq = b->first_seq + (uint32_t)b->nwhat;
	/* Every message may come back as an error (a few hundred bytes of
	 * socket memory each): make room for all of them, so that the
	 * outcome of every transaction is known. */
	n->inflight_msgs += b->nwhat;
	rcvbuf_fit(n);
	/* The whole batch goes in one datagram: the kernel handles one
	 * datagram as one transaction. Make room for big ones. */
	if (b->len > (size_t)n->sndbuf) {
		int sz = (int)(b->len + 65536);

		if (setsockopt(nft_fd(n), SOL_SOCKET, SO_SNDBUFFORCE, &sz,
			    sizeof(sz)) == 0)
			n->sndbuf = sz;
	}
	do
		r = mnl_socket_sendto(n->nl, b->buf, b->len);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		char msg[128];

		snprintf(msg, sizeof(msg), "netlink send: %s", strerror(errno));
		fail_now(b, errno, msg);
		return;
	}
	free(b->buf);
	b->buf = NULL;
	b->sent_ms = util_now_ms();
	*n->tail = b;
	n->tail = &b->next;
	n->npending++;
}

static void
unlink_batch(struct nft *n, struct nft_batch *b)
{
	struct nft_batch **pp;

	for (pp = &n->pending; *pp != b; pp = &(*pp)->next)
		;
	*pp = b->next;
	if (n->tail == &b->next)
		n->tail = pp;
	b->next = NULL;
	n->npending--;
	n->inflight_msgs -= b->nwhat;
}

static int
ext_ack_cb(const struct nlattr *attr, void *data)
{
	const char **msg = data;

	if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
		*msg = mnl_attr_get_str(attr);
	return MNL_CB_OK;
}

static void
on_error_msg(struct nft *n, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const char *ext = NULL;
	struct nft_batch *b;

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return;
	for (b = n->pending; b; b = b->next)
		if (nlh->nlmsg_seq - b->first_seq <= b->last_seq - b->first_seq)
			break;
	if (b == NULL)
		return; /* a batch we gave up on already */
	if (e->error != 0 && b->err == 0) {
		uint32_t idx = nlh->nlmsg_seq - b->first_seq;
		const char *what = idx >= 1 && idx <= b->nwhat
			? b->what[idx - 1]
			: "batch";
		char msg[512];

		if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
			/* TLVs follow the echoed request, which CAP_ACK
			 * trims to its header. */
			size_t off = sizeof(*e);

			if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
				off += e->msg.nlmsg_len - sizeof(e->msg);
			if (mnl_nlmsg_size(off) <= nlh->nlmsg_len)
				mnl_attr_parse(nlh, (unsigned)off, ext_ack_cb,
					&ext);
		}
		snprintf(msg, sizeof(msg), "%s: %s%s%s", what,
			strerror(-e->error), ext ? ": " : "", ext ? ext : "");
		b->err = -e->error;
		b->errmsg = xstrdup(msg);
	}
	/* The ACK of the last message comes after every error of the batch;
	 * an error on the begin marker means nothing else will come. */
	if (nlh->nlmsg_seq == b->last_seq ||
		(nlh->nlmsg_seq == b->first_seq && e->error != 0)) {
		unlink_batch(n, b);
		complete(n, b);
	}
}

int
nft_dispatch(struct nft *n)
{
	static char buf[65536];

	for (;;) {
		ssize_t r = mnl_socket_recvfrom(n->nl, buf, sizeof(buf));
		const struct nlmsghdr *nlh;
		int len;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r < 0) {
			/* ENOBUFS: ACKs were lost; nothing pending can be
			 * trusted to complete, so fail them all. */
			int err = errno;

			log_warn("netlink receive");
			while (n->pending) {
				struct nft_batch *b = n->pending;

				unlink_batch(n, b);
				if (b->err == 0) {
					b->err = err;
					b->errmsg = xasprintf("netlink receive:"
							      " %s",
						strerror(err));
				}
				complete(n, b);
			}
			return err == ENOBUFS ? 0 : -1;
		}
		len = (int)r;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
			nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_pid != n->portid)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR)
				on_error_msg(n, nlh);
		}
	}
}

int
nft_wait(struct nft *n, int timeout_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)timeout_ms;

	while (n->npending > 0) {
		struct pollfd pfd = {.fd = nft_fd(n), .events = POLLIN};
		uint64_t t = util_now_ms();

		if (t >= end) {
			nft_expire(n, 0);
			return -1;
		}
		if (poll(&pfd, 1, (int)(end - t)) < 0 && errno != EINTR)
			return -1;
		if (nft_dispatch(n) < 0)
			return -1;
	}
	return 0;
}

void
nft_expire(struct nft *n, int max_ms)
{
	uint64_t t = util_now_ms();

	while (n->pending && t - n->pending->sent_ms >= (uint64_t)max_ms) {
		struct nft_batch *b = n->pending;

		unlink_batch(n, b);
		if (b->err == 0) {
			b->err = ETIMEDOUT;
			b->errmsg = xstrdup("netlink: no acknowledgement from "
					    "the kernel");
		}
		complete(n, b);
	}
}

/* ---- dumps ------------------------------------------------------------ */

/* One dump request on a short-lived blocking socket: build writes the
 * request, cb takes each reply message. */
static int
dump(struct nlmsghdr *(*build)(char *, uint32_t, void *), void *bctx,
	mnl_cb_t cb, void *data)
{
	static char buf[65536];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL), portid;
	ssize_t r;
	int ret = 0;

	if ((nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC)) == NULL)
		return -1;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(nl);
		return -1;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = build(buf, seq, bctx);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		mnl_socket_close(nl);
		return -1;
	}
	while ((r = mnl_socket_recvfrom(nl, buf, sizeof(buf))) > 0) {
		ret = mnl_cb_run(buf, (size_t)r, seq, portid, cb, data);
		if (ret <= MNL_CB_STOP)
			break;
	}
	if (r < 0)
		ret = -1;
	mnl_socket_close(nl);
	return ret < 0 ? -1 : 0;
}

static struct nlmsghdr *
build_getset(char *buf, uint32_t seq, void *ctx)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET,
		NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
	struct nftnl_set *s = nftnl_set_alloc();

	nftnl_set_set_str(s, NFTNL_SET_TABLE, ctx);
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	return nlh;
}

struct set_dump {
	const char *table;
	struct nftnl_set_list *l;
};

/* The kernel filters set dumps by table; check all the same, as for
 * chains: nothing outside our table is ever touched. */
static int
set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct set_dump *sd = data;
	struct nftnl_set *s = nftnl_set_alloc();

	if (s == NULL || nftnl_set_nlmsg_parse(nlh, s) < 0) {
		nftnl_set_free(s);
		return MNL_CB_ERROR;
	}
	if (nftnl_set_get_u32(s, NFTNL_SET_FAMILY) != NFPROTO_INET ||
		strcmp(nftnl_set_get_str(s, NFTNL_SET_TABLE), sd->table) != 0) {
		nftnl_set_free(s);
		return MNL_CB_OK;
	}
	nftnl_set_list_add_tail(s, sd->l);
	return MNL_CB_OK;
}

int
nft_dump_sets(const char *table, struct nftnl_set_list **out)
{
	struct set_dump sd = {.table = table};

	*out = sd.l = nftnl_set_list_alloc();
	if (dump(build_getset, (void *)table, set_cb, &sd) < 0) {
		nftnl_set_list_free(*out);
		*out = NULL;
		return errno == ENOENT ? 0 : -1;
	}
	return 0;
}

static struct nlmsghdr *
build_getchain(char *buf, uint32_t seq, void *ctx)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN,
		NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
	struct nftnl_chain *c = nftnl_chain_alloc();

	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, ctx);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return nlh;
}

struct chain_dump {
	const char *table;
	struct nftnl_chain_list *l;
};

/* The kernel does not filter a chain dump by table (it does for sets):
 * every table's chains come, and only ours are kept. */
static int
chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct chain_dump *cd = data;
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (c == NULL || nftnl_chain_nlmsg_parse(nlh, c) < 0) {
		nftnl_chain_free(c);
		return MNL_CB_ERROR;
	}
	if (nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY) != NFPROTO_INET ||
		strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), cd->table) !=
			0) {
		nftnl_chain_free(c);
		return MNL_CB_OK;
	}
	nftnl_chain_list_add_tail(c, cd->l);
	return MNL_CB_OK;
}

int
nft_dump_chains(const char *table, struct nftnl_chain_list **out)
{
	struct chain_dump cd = {.table = table};

	*out = cd.l = nftnl_chain_list_alloc();
	if (dump(build_getchain, (void *)table, chain_cb, &cd) < 0) {
		nftnl_chain_list_free(*out);
		*out = NULL;
		return errno == ENOENT ? 0 : -1;
	}
	return 0;
}

static struct nlmsghdr *
build_getrule(char *buf, uint32_t seq, void *ctx)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE,
		NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);
	struct nftnl_rule *r = nftnl_rule_alloc();

	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, ctx);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	return nlh;
}

struct rule_dump {
	const char *table;
	struct nftnl_rule_list *l;
};

/* Filtered by table here too, whatever the kernel does. */
static int
rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rule_dump *rd = data;
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (r == NULL || nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		nftnl_rule_free(r);
		return MNL_CB_ERROR;
	}
	if (nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) != NFPROTO_INET ||
		strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), rd->table) !=
			0) {
		nftnl_rule_free(r);
		return MNL_CB_OK;
	}
	nftnl_rule_list_add_tail(r, rd->l);
	return MNL_CB_OK;
}

int
nft_dump_rules(const char *table, struct nftnl_rule_list **out)
{
	struct rule_dump rd = {.table = table};

	*out = rd.l = nftnl_rule_list_alloc();
	if (dump(build_getrule, (void *)table, rule_cb, &rd) < 0) {
		nftnl_rule_list_free(*out);
		*out = NULL;
		return errno == ENOENT ? 0 : -1;
	}
	return 0;
}

static struct nlmsghdr *
build_getelems(char *buf, uint32_t seq, void *ctx)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM,
		NFPROTO_INET, NLM_F_DUMP | NLM_F_ACK, seq);

	nftnl_set_elems_nlmsg_build_payload(nlh, ctx);
	return nlh;
}

static int
elem_cb(const struct nlmsghdr *nlh, void *data)
{
	return nftnl_set_elems_nlmsg_parse(nlh, data) < 0 ? MNL_CB_ERROR
							  : MNL_CB_OK;
}

int
nft_dump_elems(struct nftnl_set *s)
{
	return dump(build_getelems, s, elem_cb, s);
}

uint32_t
nft_portid(const struct nft *n)
{
	return n->portid;
}

/* ---- notifications -------------------------------------------------------- */

#define MON_RCVBUF (16 * 1024 * 1024)

struct nft_mon {
	struct mnl_socket *nl;
	char table[64];
	uint32_t own;
	nft_mon_cb cb;
	void *arg;
};

struct nft_mon *
nft_mon_open(const char *table, uint32_t own_portid, nft_mon_cb cb, void *arg)
{
	struct nft_mon *m = xcalloc(1, sizeof(*m));
	int rcv = MON_RCVBUF;

	snprintf(m->table, sizeof(m->table), "%s", table);
	m->own = own_portid;
	m->cb = cb;
	m->arg = arg;
	m->nl = mnl_socket_open2(NETLINK_NETFILTER,
		SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (m->nl == NULL ||
		mnl_socket_bind(m->nl, 1u << (NFNLGRP_NFTABLES - 1),
			MNL_SOCKET_AUTOPID) < 0) {
		log_warn("netlink notification socket");
		nft_mon_close(m);
		return NULL;
	}
	/* A flush of a big table is one notification per element. */
	if (setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUFFORCE,
		    &rcv, sizeof(rcv)) < 0)
		setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF,
			&rcv, sizeof(rcv));
	return m;
}

int
nft_mon_fd(const struct nft_mon *m)
{
	return mnl_socket_get_fd(m->nl);
}

void
nft_mon_close(struct nft_mon *m)
{
	if (m == NULL)
		return;
	if (m->nl)
		mnl_socket_close(m->nl);
	free(m);
}

static const char *
event_name(uint16_t type)
{
	switch (type) {
	case NFT_MSG_NEWTABLE:
		return "table created";
	case NFT_MSG_DELTABLE:
		return "table deleted";
	case NFT_MSG_NEWCHAIN:
		return "chain added or changed";
	case NFT_MSG_DELCHAIN:
		return "chain deleted";
	case NFT_MSG_NEWRULE:
		return "rule added";
	case NFT_MSG_DELRULE:
		return "rule deleted";
	case NFT_MSG_NEWSET:
		return "set added or changed";
	case NFT_MSG_DELSET:
		return "set deleted";
	case NFT_MSG_NEWSETELEM:
		return "elements added";
	case NFT_MSG_DELSETELEM:
		return "elements deleted";
	default:
		return "changed";
	}
}

/* Does this notification concern our table? Every nf_tables object
 * message names its table in attribute 1 (NFTA_TABLE_NAME,
 * NFTA_CHAIN_TABLE, NFTA_SET_TABLE, NFTA_RULE_TABLE,
 * NFTA_SET_ELEM_LIST_TABLE, ...). */
static bool
event_ours(const struct nft_mon *m, const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *g;
	const struct nlattr *a;

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*g)))
		return false;
	g = mnl_nlmsg_get_payload(nlh);
	if (g->nfgen_family != NFPROTO_INET)
		return false;
	mnl_attr_for_each(a, nlh, sizeof(*g))
	{
		if (mnl_attr_get_type(a) != 1)
			continue;
		return mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 &&
			strcmp(mnl_attr_get_str(a), m->table) == 0;
	}
	return false;
}

void
nft_mon_dispatch(struct nft_mon *m)
{
	static char buf[65536];

	for (;;) {
		ssize_t r = mnl_socket_recvfrom(m->nl, buf, sizeof(buf));
		const struct nlmsghdr *nlh;
		int len;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r < 0) {
			/* Dropped notifications may have been about us. */
			if (errno == ENOBUFS)
				m->cb("lost notifications", m->arg);
			else
				log_warn("netlink notifications");
			return;
		}
		len = (int)r;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, len);
			nlh = mnl_nlmsg_next(nlh, &len)) {
			uint16_t type = NFNL_MSG_TYPE(nlh->nlmsg_type);

			if (NFNL_SUBSYS_ID(nlh->nlmsg_type) !=
					NFNL_SUBSYS_NFTABLES ||
				type == NFT_MSG_NEWGEN ||
				nlh->nlmsg_pid == m->own || !event_ours(m, nlh))
				continue;
			m->cb(event_name(type), m->arg);
		}
	}
}
