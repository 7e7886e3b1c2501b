#include "nft.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "privproto.h"
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
	/* through the privileged process: PRIV_F_*, and of what */
	uint32_t pflags, pgen;
	int64_t pat;
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
	/* the engine: everything goes through the privileged process */
	bool priv, gone;
	uint8_t *in; /* frames read, not yet whole */
	size_t inlen, incap;
};

/* The engine's three socketpairs to the privileged process (privproto.h);
 * -1 in the privileged process and when there is no split. */
static struct {
	int batch, sync, mon;
	uint32_t portid; /* the privileged process's transactions */
} priv = {-1, -1, -1, 0};

void
nft_use_priv(int batch_fd, int sync_fd, int mon_fd, uint32_t portid)
{
	priv.batch = batch_fd;
	priv.sync = sync_fd;
	priv.mon = mon_fd;
	priv.portid = portid;
}

bool
nft_priv_active(void)
{
	return priv.batch >= 0;
}

/* Blocking I/O on a socketpair, bounded by PRIV_IO_MS. */
#define PRIV_IO_MS 30000

static int
io_wait(int fd, short ev, uint64_t end)
{
	struct pollfd pfd = {.fd = fd, .events = ev};
	uint64_t t = util_now_ms();
	int r;

	if (t >= end) {
		errno = ETIMEDOUT;
		return -1;
	}
	r = poll(&pfd, 1, (int)(end - t));
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 || (r < 0 && errno == EINTR) ? 0 : -1;
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	uint64_t end = util_now_ms() + PRIV_IO_MS;

	while (len > 0) {
		ssize_t r = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (io_wait(fd, POLLOUT, end) < 0)
				return -1;
			continue;
		}
		if (r < 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int
read_all(int fd, uint8_t *p, size_t len, uint64_t end)
{
	while (len > 0) {
		ssize_t r = recv(fd, p, len, MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (io_wait(fd, POLLIN, end) < 0)
				return -1;
			continue;
		}
		if (r == 0)
			errno = EPIPE;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* One whole frame from a blocking exchange; *payload malloc'd. */
static int
read_frame(int fd, uint16_t *type, uint8_t **payload, uint32_t *len)
{
	uint64_t end = util_now_ms() + PRIV_IO_MS;
	uint8_t hdr[PRIV_HDR];

	if (read_all(fd, hdr, sizeof(hdr), end) < 0)
		return -1;
	if (priv_header(hdr, len, type) < 0) {
		errno = EPROTO;
		return -1;
	}
	*payload = xcalloc(1, (size_t)*len + 1);
	if (read_all(fd, *payload, *len, end) < 0) {
		free(*payload);
		return -1;
	}
	return 0;
}

int
nft_priv_send(int type, const void *p, size_t len)
{
	size_t flen;
	uint8_t *f = priv_frame((uint16_t)type, p, len, NULL, 0, &flen);
	int rc = write_all(priv.batch, f, flen);

	free(f);
	return rc;
}

/* A request on the sync channel; PRIV_DATA frames go to data (if any),
 * and the exchange ends with a PRIV_RESULT (0 or -1 with errno and the
 * text in msg) or, when want_config, a PRIV_CONFIG (its payload in
 * *cfg). */
/* A request or its answer lost half-way (or an answer late beyond
 * PRIV_IO_MS): the stream is out of step for good, the next answer read
 * would be this one's. Nothing can be trusted on it any more: the engine
 * ends (fail closed: the table stays, systemd starts both again). */
_Noreturn static void
sync_lost(void)
{
	fatal("the privileged process's answers are lost");
}

static int
sync_call(int type, const void *p, size_t len,
	int (*data)(const uint8_t *, size_t, void *), void *arg, uint8_t **cfg,
	uint32_t *cfglen)
{
	size_t flen;
	uint8_t *f = priv_frame((uint16_t)type, p, len, NULL, 0, &flen);
	int rc = write_all(priv.sync, f, flen);

	free(f);
	if (rc < 0)
		sync_lost();
	for (;;) {
		uint16_t t;
		uint8_t *pl;
		uint32_t pll;
		char msg[PRIV_MSG_MAX + 1];
		int err;

		if (read_frame(priv.sync, &t, &pl, &pll) < 0)
			sync_lost();
		if (t == PRIV_DATA) {
			rc = data != NULL && data(pl, pll, arg) < 0 ? -1 : rc;
			free(pl);
			continue;
		}
		if (t == PRIV_CONFIG && cfg != NULL) {
			*cfg = pl;
			*cfglen = pll;
			return rc;
		}
		if (t != PRIV_RESULT ||
			priv_result_parse(pl, pll, &err, msg, sizeof(msg)) <
				0) {
			free(pl);
			errno = EPROTO;
			return -1;
		}
		free(pl);
		if (err != 0) {
			if (msg[0] != '\0')
				log_warnx("privileged process: %s", msg);
			errno = err;
			return -1;
		}
		if (rc < 0)
			errno = EPROTO;
		return rc;
	}
}

int
nft_priv_load(uint8_t **rec, uint32_t *len)
{
	return sync_call(PRIV_LOAD, NULL, 0, NULL, NULL, rec, len);
}

struct nft *
nft_open(void)
{
	struct nft *n = xcalloc(1, sizeof(*n));
	int one = 1, rcv = NFT_RCVBUF;

	if (nft_priv_active()) {
		n->priv = true;
		n->seq = (uint32_t)time(NULL);
		n->tail = &n->pending;
		return n;
	}
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
	free(n->in);
	free(n);
}

int
nft_fd(const struct nft *n)
{
	return n->priv ? priv.batch : mnl_socket_get_fd(n->nl);
}

bool
nft_is_priv(const struct nft *n)
{
	return n->priv;
}

bool
nft_gone(const struct nft *n)
{
	return n->gone;
}

void
nft_batch_install(struct nft_batch *b, uint32_t gen, int64_t at, bool with_prev)
{
	b->pflags = PRIV_F_INSTALL | (with_prev ? PRIV_F_WITH_PREV : 0);
	b->pgen = gen;
	b->pat = at;
}

/* The batch goes to the privileged process, which checks it and sends
 * what it admits to the kernel itself; PRIV_DONE comes back. */
static int
priv_send_batch(struct nft_batch *b)
{
	uint8_t head[PRIV_BATCH_FIXED] = {0};
	size_t flen;
	uint8_t *f;
	int rc;

	memcpy(head, &b->first_seq, 4);
	memcpy(head + 4, &b->pflags, 4);
	memcpy(head + 8, &b->pgen, 4);
	memcpy(head + 16, &b->pat, 8);
	f = priv_frame(PRIV_BATCH, head, sizeof(head), b->buf, b->len, &flen);
	rc = write_all(priv.batch, f, flen);
	free(f);
	return rc;
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
	if (b->nwhat == 0 && !(b->pflags & PRIV_F_INSTALL)) {
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
	if (n->priv) {
		if (n->gone || priv_send_batch(b) < 0) {
			char msg[128];
			int err = n->gone ? EPIPE : errno;

			snprintf(msg, sizeof(msg), "the privileged process: %s",
				strerror(err));
			n->inflight_msgs -= b->nwhat;
			fail_now(b, err, msg);
			return;
		}
		goto sent;
	}
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
		n->inflight_msgs -= b->nwhat;
		fail_now(b, errno, msg);
		return;
	}
sent:
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

/* Every pending batch fails with err (the kernel's answers, or the
 * privileged process, are lost). */
static void
fail_pending(struct nft *n, int err, const char *what)
{
	while (n->pending) {
		struct nft_batch *b = n->pending;

		unlink_batch(n, b);
		if (b->err == 0) {
			b->err = err;
			b->errmsg = xasprintf("%s: %s", what, strerror(err));
		}
		complete(n, b);
	}
}

static void
priv_done(struct nft *n, const uint8_t *p, size_t len)
{
	char msg[PRIV_MSG_MAX + 1];
	struct nft_batch *b;
	uint32_t seq;
	int err;

	if (priv_done_parse(p, len, &seq, &err, msg, sizeof(msg)) < 0) {
		log_warnx("the privileged process sent a bad answer");
		return;
	}
	for (b = n->pending; b; b = b->next)
		if (b->first_seq == seq)
			break;
	if (b == NULL)
		return; /* a batch we gave up on already */
	unlink_batch(n, b);
	b->err = err;
	b->errmsg = err ? xstrdup(msg) : NULL;
	complete(n, b);
}

/* The engine: PRIV_DONE frames from the privileged process. -1 once it
 * is gone (every pending batch failed). */
static int
priv_dispatch(struct nft *n)
{
	for (;;) {
		ssize_t r;
		size_t off = 0;

		if (n->incap - n->inlen < 65536) {
			n->incap = n->incap ? n->incap * 2 : 65536 * 2;
			n->in = xreallocarray(n->in, 1, n->incap);
		}
		r = recv(priv.batch, n->in + n->inlen, n->incap - n->inlen,
			MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0) {
			n->gone = true;
			fail_pending(n, EPIPE, "the privileged process");
			return -1;
		}
		n->inlen += (size_t)r;
		for (;;) {
			uint32_t len;
			uint16_t type;

			if (n->inlen - off < PRIV_HDR)
				break;
			if (priv_header(n->in + off, &len, &type) < 0 ||
				type != PRIV_DONE) {
				n->gone = true;
				fail_pending(n, EPROTO,
					"the privileged process");
				return -1;
			}
			if (n->inlen - off - PRIV_HDR < len)
				break;
			priv_done(n, n->in + off + PRIV_HDR, len);
			off += PRIV_HDR + len;
		}
		memmove(n->in, n->in + off, n->inlen - off);
		n->inlen -= off;
	}
}

int
nft_dispatch(struct nft *n)
{
	static char buf[65536];

	if (n->priv)
		return priv_dispatch(n);

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
			fail_pending(n, err, "netlink receive");
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
struct relay {
	mnl_cb_t cb;
	void *data;
};

/* Messages the privileged process relayed, as the kernel sent them. */
static int
relay_data(const uint8_t *p, size_t len, void *arg)
{
	struct relay *rl = arg;
	const struct nlmsghdr *nlh = (const void *)p;
	int left = len > INT32_MAX ? 0 : (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		if (rl->cb(nlh, rl->data) < MNL_CB_OK)
			return -1;
	return 0;
}

/* The engine: the privileged process makes the request of our table. */
static int
priv_dump(int kind, const char *set, mnl_cb_t cb, void *data)
{
	uint8_t req[8 + SET_NAME_MAX] = {0};
	uint16_t k = (uint16_t)kind, fam = NFPROTO_INET;
	uint16_t sl = (uint16_t)(set ? strnlen(set, SET_NAME_MAX - 1) : 0);
	struct relay rl = {cb, data};

	memcpy(req, &k, 2);
	memcpy(req + 2, &fam, 2);
	memcpy(req + 4, &sl, 2);
	if (sl > 0)
		memcpy(req + 8, set, sl);
	return sync_call(PRIV_DUMP, req, 8u + sl, relay_data, &rl, NULL, NULL);
}

static int
dump(int kind, struct nlmsghdr *(*build)(char *, uint32_t, void *), void *bctx,
	mnl_cb_t cb, void *data)
{
	static char buf[65536];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL), portid;
	ssize_t r;
	int ret = 0;

	if (nft_priv_active())
		return priv_dump(kind,
			kind == PRIV_DUMP_ELEMS
				? nftnl_set_get_str(bctx, NFTNL_SET_NAME)
				: NULL,
			cb, data);
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
	if (dump(PRIV_DUMP_SETS, build_getset, (void *)table, set_cb, &sd) <
		0) {
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
	if (dump(PRIV_DUMP_CHAINS, build_getchain, (void *)table, chain_cb,
		    &cd) < 0) {
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
	if (dump(PRIV_DUMP_RULES, build_getrule, (void *)table, rule_cb, &rd) <
		0) {
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
	return dump(PRIV_DUMP_ELEMS, build_getelems, s, elem_cb, s);
}

struct collect {
	uint8_t *buf;
	size_t len, cap;
};

static int
collect_cb(const struct nlmsghdr *nlh, void *data)
{
	struct collect *c = data;

	if (c->len + nlh->nlmsg_len > PRIV_FRAME_MAX / 2)
		return MNL_CB_ERROR;
	while (c->cap < c->len + NLMSG_ALIGN(nlh->nlmsg_len)) {
		c->cap = c->cap ? c->cap * 2 : 65536;
		c->buf = xreallocarray(c->buf, 1, c->cap);
	}
	memcpy(c->buf + c->len, nlh, nlh->nlmsg_len);
	memset(c->buf + c->len + nlh->nlmsg_len, 0,
		NLMSG_ALIGN(nlh->nlmsg_len) - nlh->nlmsg_len);
	c->len += NLMSG_ALIGN(nlh->nlmsg_len);
	return MNL_CB_OK;
}

int
nft_dump_collect(int kind, const char *table, const char *set, uint8_t **out,
	size_t *len)
{
	struct collect c = {0};
	struct nftnl_set *s = NULL;
	int rc;

	switch (kind) {
	case PRIV_DUMP_SETS:
		rc = dump(kind, build_getset, (void *)table, collect_cb, &c);
		break;
	case PRIV_DUMP_CHAINS:
		rc = dump(kind, build_getchain, (void *)table, collect_cb, &c);
		break;
	case PRIV_DUMP_RULES:
		rc = dump(kind, build_getrule, (void *)table, collect_cb, &c);
		break;
	default:
		s = nftnl_set_alloc();
		nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
		nftnl_set_set_str(s, NFTNL_SET_NAME, set);
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
		rc = dump(kind, build_getelems, s, collect_cb, &c);
		nftnl_set_free(s);
	}
	*out = c.buf;
	*len = c.len;
	return rc;
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

int
nft_mon_socket(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK,
		.nl_groups = 1u << (NFNLGRP_NFTABLES - 1)};
	int rcv = MON_RCVBUF, fd;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		NETLINK_NETFILTER);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_warn("netlink notification socket");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* A flush of a big table is one notification per element. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	return fd;
}

struct nft_mon *
nft_mon_open(const char *table, uint32_t own_portid, nft_mon_cb cb, void *arg)
{
	struct nft_mon *m = xcalloc(1, sizeof(*m));
	int fd;

	snprintf(m->table, sizeof(m->table), "%s", table);
	m->own = own_portid;
	m->cb = cb;
	m->arg = arg;
	/* The engine reads the notifications itself, on the socket the
	 * privileged process subscribed before the fork: reading needs no
	 * capability (a request on it would), and a change committed before
	 * an answer is seen exactly as without the split. */
	if (nft_priv_active()) {
		fd = priv.mon;
		m->own = priv.portid;
	} else {
		fd = nft_mon_socket();
	}
	if (fd < 0 || (m->nl = mnl_socket_fdopen(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		nft_mon_close(m);
		return NULL;
	}
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

/* ---- conntrack ------------------------------------------------------------ */

struct nft_ct {
	struct mnl_socket *nl; /* NULL in the engine */
	uint32_t seq;
};

struct nft_ct *
nft_ct_open(void)
{
	struct nft_ct *ct = xcalloc(1, sizeof(*ct));
	int saved;

	ct->seq = (uint32_t)time(NULL);
	if (nft_priv_active())
		return ct;
	if ((ct->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC)) ==
			NULL ||
		mnl_socket_bind(ct->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		saved = errno;
		nft_ct_close(ct);
		errno = saved;
		return NULL;
	}
	return ct;
}

void
nft_ct_close(struct nft_ct *ct)
{
	if (ct == NULL)
		return;
	if (ct->nl)
		mnl_socket_close(ct->nl);
	free(ct);
}

static struct nlmsghdr *
ct_msg(char *buf, uint16_t type, uint16_t flags, int family, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *g;

	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = (uint8_t)family;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	return nlh;
}

int
nft_ct_dump(struct nft_ct *ct, int family, mnl_cb_t cb, void *data)
{
	static char buf[65536];
	struct nlmsghdr *nlh;
	uint32_t portid, seq;
	ssize_t r;
	int ret = MNL_CB_OK;

	if (ct->nl == NULL) {
		uint32_t f = (uint32_t)family;
		struct relay rl = {cb, data};

		return sync_call(PRIV_CT_DUMP, &f, sizeof(f), relay_data, &rl,
			NULL, NULL);
	}
	portid = mnl_socket_get_portid(ct->nl);
	seq = ++ct->seq;
	nlh = ct_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, seq);
	if (mnl_socket_sendto(ct->nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	while ((r = mnl_socket_recvfrom(ct->nl, buf, sizeof(buf))) > 0) {
		ret = mnl_cb_run(buf, (size_t)r, seq, portid, cb, data);
		if (ret <= MNL_CB_STOP)
			break;
	}
	return r < 0 || ret < 0 ? -1 : 0;
}

int
nft_ct_collect(struct nft_ct *ct, int family, uint8_t **out, size_t *len)
{
	struct collect c = {0};
	int rc = nft_ct_dump(ct, family, collect_cb, &c);

	*out = c.buf;
	*len = c.len;
	return rc;
}

struct ctdel_status {
	uint8_t *st;
	size_t n;
	bool got;
};

static int
ctdel_status(const uint8_t *p, size_t len, void *arg)
{
	struct ctdel_status *cs = arg;

	if (cs->got || len != cs->n)
		return -1;
	memcpy(cs->st, p, len);
	cs->got = true;
	return 0;
}

int
nft_ct_delete_many(struct nft_ct *ct, const struct priv_ctdel *d, size_t n,
	uint8_t *st)
{
	uint8_t *req;
	size_t done = 0;

	if (ct->nl != NULL) {
		for (size_t i = 0; i < n; i++)
			st[i] = nft_ct_delete(ct, &d[i]) < 0
				? (uint8_t)(errno ? errno : EIO)
				: 0;
		return 0;
	}
	/* One round trip per frame of entries, not per entry: a purge may
	 * end tens of thousands of connections. */
	req = xcalloc(PRIV_CTDEL_MAX, 2 + 8 + PRIV_TUPLE_MAX);
	while (done < n) {
		size_t k =
			n - done < PRIV_CTDEL_MAX ? n - done : PRIV_CTDEL_MAX;
		size_t len = 0;
		struct ctdel_status cs = {st + done, k, false};

		for (size_t i = 0; i < k; i++)
			len += priv_ctdel_put(req + len, &d[done + i]);
		if (sync_call(PRIV_CT_DEL, req, len, ctdel_status, &cs, NULL,
			    NULL) < 0 ||
			!cs.got) {
			int err = errno ? errno : EPROTO;

			for (size_t i = 0; i < k; i++)
				st[done + i] = (uint8_t)err;
		}
		done += k;
	}
	free(req);
	return 0;
}

int
nft_ct_delete(struct nft_ct *ct, const struct priv_ctdel *d)
{
	char buf[8192];
	struct nlmsghdr *nlh;
	ssize_t r;

	if (ct->nl == NULL) {
		uint8_t st = 0;

		nft_ct_delete_many(ct, d, 1, &st);
		errno = st;
		return st ? -1 : 0;
	}
	nlh = ct_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, d->family,
		++ct->seq);
	mnl_attr_put(nlh, CTA_TUPLE_ORIG | NLA_F_NESTED, d->len, d->tuple);
	mnl_attr_put_u32(nlh, CTA_ID, d->id);
	if (d->has_zone)
		mnl_attr_put_u16(nlh, CTA_ZONE, d->zone);
	if (mnl_socket_sendto(ct->nl, nlh, nlh->nlmsg_len) < 0)
		return -1;
	if ((r = mnl_socket_recvfrom(ct->nl, buf, sizeof(buf))) < 0)
		return -1;
	if (mnl_cb_run(buf, (size_t)r, ct->seq, mnl_socket_get_portid(ct->nl),
		    NULL, NULL) < 0)
		return errno == ENOENT ? 0 : -1;
	return 0;
}
