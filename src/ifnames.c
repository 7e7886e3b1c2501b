#include "ifnames.h"

#include <errno.h>
#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define IFNAMES_SLOTS 64	 /* at first; at most half of them used */
#define IFNAMES_BUF 65536	 /* a dump's chunks are at most 32 KiB */
#define IFNAMES_RCVBUF (1 << 20) /* as far as net.core.rmem_max allows */
#define DUMP_WAIT_MS 2000
#define DUMP_TRIES 5
#define RETRY_S 1

struct ifslot {
	uint32_t index; /* 0: empty (no link has index 0) */
	char name[IF_NAMESIZE];
};

/* Open addressing with linear probing, the index itself as the hash. The
 * kernel hands indexes out in increasing order (cyclically since 6.6), so
 * the live ones are mostly a run of consecutive numbers: each finds its
 * own slot, and a lookup is one probe. At most half full. */
struct ifnames {
	struct ifslot *slot;
	uint32_t mask; /* slots - 1 */
	size_t count;
	/* following the kernel (ifnames_follow) */
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;	  /* of the last dump asked for */
	bool dumping;	  /* its NLMSG_DONE not read yet */
	bool interrupted; /* the kernel says it was not consistent */
	struct event *ev; /* the socket readable */
	struct event *retry;
	uint8_t *buf;
};

/* ---- the table ------------------------------------------------------------ */

static size_t
find(const struct ifnames *m, uint32_t index)
{
	size_t i = index & m->mask;

	while (m->slot[i].index != 0 && m->slot[i].index != index)
		i = (i + 1) & m->mask;
	return i;
}

static void
resize(struct ifnames *m, size_t slots)
{
	struct ifslot *old = m->slot;
	size_t n = (size_t)m->mask + 1;

	m->slot = xcalloc(slots, sizeof(*m->slot));
	m->mask = (uint32_t)(slots - 1);
	for (size_t i = 0; i < n; i++)
		if (old[i].index != 0)
			m->slot[find(m, old[i].index)] = old[i];
	free(old);
}

static void
set_name(struct ifnames *m, uint32_t index, const char *name)
{
	size_t i;

	if ((m->count + 1) * 2 > (size_t)m->mask + 1)
		resize(m, ((size_t)m->mask + 1) * 2);
	i = find(m, index);
	if (m->slot[i].index == 0)
		m->count++;
	m->slot[i].index = index;
	snprintf(m->slot[i].name, sizeof(m->slot[i].name), "%s", name);
}

/* Backward-shift deletion: every entry after the hole that may move into
 * it does, so lookups never need tombstones. */
static void
del_index(struct ifnames *m, uint32_t index)
{
	size_t i = find(m, index), j = i;

	if (m->slot[i].index != index)
		return;
	m->slot[i].index = 0;
	m->count--;
	for (;;) {
		j = (j + 1) & m->mask;
		if (m->slot[j].index == 0)
			return;
		/* It may move to i unless its own slot lies after i. */
		if (((j - (m->slot[j].index & m->mask)) & m->mask) >=
			((j - i) & m->mask)) {
			m->slot[i] = m->slot[j];
			m->slot[j].index = 0;
			i = j;
		}
	}
}

static void
clear(struct ifnames *m)
{
	memset(m->slot, 0, ((size_t)m->mask + 1) * sizeof(*m->slot));
	m->count = 0;
}

struct ifnames *
ifnames_new(void)
{
	struct ifnames *m = xcalloc(1, sizeof(*m));

	m->slot = xcalloc(IFNAMES_SLOTS, sizeof(*m->slot));
	m->mask = IFNAMES_SLOTS - 1;
	return m;
}

const char *
ifnames_name(const struct ifnames *m, uint32_t index)
{
	const struct ifslot *s;

	if (index == 0)
		return NULL;
	s = &m->slot[find(m, index)];
	return s->index == index ? s->name : NULL;
}

size_t
ifnames_count(const struct ifnames *m)
{
	return m->count;
}

static int
name_attr_cb(const struct nlattr *a, void *arg)
{
	if (mnl_attr_get_type(a) == IFLA_IFNAME)
		*(const struct nlattr **)arg = a;
	return MNL_CB_OK;
}

/* A link's name, or NULL when it has none we can read (not one string of
 * at most IF_NAMESIZE bytes with its NUL). */
static const char *
link_name(const struct nlmsghdr *nlh, const struct ifinfomsg *ifi)
{
	const struct nlattr *a = NULL;

	if (mnl_attr_parse(nlh, sizeof(*ifi), name_attr_cb, &a) < 0 ||
		a == NULL || mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0 ||
		mnl_attr_get_payload_len(a) > IF_NAMESIZE)
		return NULL;
	return mnl_attr_get_str(a);
}

void
ifnames_apply(struct ifnames *m, const struct nlmsghdr *nlh)
{
	const struct ifinfomsg *ifi;
	const char *name = NULL, *had;
	uint32_t index;

	if ((nlh->nlmsg_type != RTM_NEWLINK &&
		    nlh->nlmsg_type != RTM_DELLINK) ||
		nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifi)))
		return;
	ifi = mnl_nlmsg_get_payload(nlh);
	if (ifi->ifi_family != AF_UNSPEC || ifi->ifi_index <= 0)
		return;
	index = (uint32_t)ifi->ifi_index;
	had = ifnames_name(m, index);
	/* A link whose name we cannot read is one we do not know: its
	 * datagrams are nobody's ("?"), never those of its old name. */
	if (nlh->nlmsg_type == RTM_NEWLINK)
		name = link_name(nlh, ifi);
	if (name == NULL) {
		if (had != NULL)
			log_debug("interfaces: %u (%s) is gone", index, had);
		del_index(m, index);
	} else if (had == NULL || strcmp(had, name) != 0) {
		log_debug("interfaces: %u is %s", index, name);
		set_name(m, index, name);
	}
}

/* ---- following the kernel ------------------------------------------------- */

/* One datagram from the socket: its link messages applied in order
 * (notifications and dump replies alike: the socket's queue is in the
 * order the kernel made them). Our dump's end or error noted. */
static void
take(struct ifnames *m, const uint8_t *buf, size_t len)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	int left = (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
		bool ours = m->dumping && nlh->nlmsg_seq == m->seq &&
			nlh->nlmsg_pid == m->portid;

		if (ours && (nlh->nlmsg_flags & NLM_F_DUMP_INTR))
			m->interrupted = true;
		if (ours && nlh->nlmsg_type == NLMSG_DONE) {
			/* Its payload, when there is one, is the dump's
			 * outcome: negative if it was cut short. */
			const int *rc = mnl_nlmsg_get_payload(nlh);

			m->dumping = false;
			if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(*rc)) &&
				*rc < 0)
				m->interrupted = true;
		} else if (ours && nlh->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

			m->dumping = false;
			m->interrupted = true;
			if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(*e)))
				log_warnx("interfaces: the link dump failed: "
					  "%s",
					strerror(-e->error));
		} else {
			ifnames_apply(m, nlh);
		}
	}
}

/* One recvmsg: its length, 0 when nothing is queued, -1 with errno
 * (ENOBUFS: notifications were lost). Only the kernel's messages count:
 * another process may send to our port, but not as the kernel. */
static ssize_t
recv_one(struct ifnames *m)
{
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = {m->buf, IFNAMES_BUF};
		struct msghdr mh = {
			.msg_name = &from,
			.msg_namelen = sizeof(from),
			.msg_iov = &iov,
			.msg_iovlen = 1,
		};
		ssize_t r = recvmsg(mnl_socket_get_fd(m->nl), &mh, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		if (mh.msg_flags & MSG_TRUNC) {
			errno = ENOBUFS; /* part of it lost: as an overflow */
			return -1;
		}
		if (mh.msg_namelen == sizeof(from) && from.nl_pid == 0)
			return r;
	}
}

static int
dump_send(struct ifnames *m)
{
	union {
		struct nlmsghdr align;
		char buf[256];
	} req;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req.buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	if (++m->seq == 0)
		m->seq = 1;
	nlh->nlmsg_seq = m->seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	m->dumping = true;
	m->interrupted = false;
	return mnl_socket_sendto(m->nl, nlh, nlh->nlmsg_len) < 0 ? -1 : 0;
}

/* Every link, read at once (the loop waits: a dump takes well under a
 * millisecond for a firewall VM's links). The map is rebuilt from nothing:
 * after lost notifications, an entry may name a link that is gone or was
 * renamed. */
static int
dump_once(struct ifnames *m)
{
	uint64_t end = util_now_ms() + DUMP_WAIT_MS;

	clear(m);
	if (dump_send(m) < 0)
		return -1;
	while (m->dumping) {
		struct pollfd p = {mnl_socket_get_fd(m->nl), POLLIN, 0};
		uint64_t now = util_now_ms();
		ssize_t r = recv_one(m);

		if (r < 0)
			return -1;
		if (r > 0) {
			take(m, m->buf, (size_t)r);
			continue;
		}
		if (now >= end) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&p, 1, (int)(end - now)) < 0 && errno != EINTR)
			return -1;
	}
	if (m->interrupted) {
		errno = EAGAIN;
		return -1;
	}
	return 0;
}

static int
dump(struct ifnames *m)
{
	for (int t = 0; t < DUMP_TRIES; t++) {
		if (dump_once(m) == 0) {
			log_debug("interfaces: %zu links", m->count);
			return 0;
		}
		if (errno != ENOBUFS && errno != EAGAIN)
			break;
	}
	m->dumping = false;
	log_warn("interfaces: reading the links");
	return -1;
}

static void
redump(struct ifnames *m)
{
	struct timeval tv = {.tv_sec = RETRY_S};

	if (dump(m) < 0) {
		log_warnx("interfaces: queries that came in on a link not "
			  "read yet are refused; reading them again in %d s",
			RETRY_S);
		evtimer_add(m->retry, &tv);
	}
}

bool
ifnames_sync(struct ifnames *m)
{
	bool any = false;

	if (m->nl == NULL)
		return false;
	for (;;) {
		ssize_t r = recv_one(m);

		if (r == 0)
			return any;
		any = true;
		if (r > 0) {
			take(m, m->buf, (size_t)r);
		} else if (errno == ENOBUFS) {
			/* Changes were lost, a rename or a deletion maybe:
			 * nothing in the map can be trusted any more. */
			log_info("interfaces: link notifications lost; "
				 "reading every link again");
			redump(m);
		} else {
			log_warn("interfaces: link notifications");
			return any;
		}
	}
}

static void
read_cb(evutil_socket_t fd, short ev, void *arg)
{
	ifnames_sync(arg);
}

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	redump(arg);
}

int
ifnames_follow(struct ifnames *m, struct event_base *base)
{
	int rcv = IFNAMES_RCVBUF;

	/* Subscribed before the dump: no change falls between the two. */
	m->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (m->nl == NULL ||
		mnl_socket_bind(m->nl, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
		log_warn("interfaces: rtnetlink socket");
		return -1;
	}
	setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF, &rcv,
		sizeof(rcv));
	m->portid = mnl_socket_get_portid(m->nl);
	m->seq = (uint32_t)time(NULL);
	m->buf = xcalloc(1, IFNAMES_BUF);
	if (dump(m) < 0)
		return -1;
	m->ev = event_new(base, mnl_socket_get_fd(m->nl), EV_READ | EV_PERSIST,
		read_cb, m);
	m->retry = evtimer_new(base, retry_cb, m);
	if (m->ev == NULL || m->retry == NULL || event_add(m->ev, NULL) < 0) {
		log_warnx("interfaces: out of memory for the events");
		return -1;
	}
	return 0;
}

void
ifnames_free(struct ifnames *m)
{
	if (m == NULL)
		return;
	if (m->ev)
		event_free(m->ev);
	if (m->retry)
		event_free(m->retry);
	if (m->nl)
		mnl_socket_close(m->nl);
	free(m->buf);
	free(m->slot);
	free(m);
}
