#include "frontend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnswire.h"
#include "ifnames.h"
#include "log.h"

#define UDP_BUF 4096	 /* the largest query worth reading */
#define UDP_BATCH 32	 /* datagrams a recvmmsg reads */
#define UDP_WAKEUP 64	 /* datagrams a wakeup reads */
#define UDP_TX_SLOT 4096 /* answers larger go out at once */
#define FE_POOL 512	 /* clients kept for reuse */
/* Answers queued for a TCP client that does not read them: past this we
 * stop reading its queries until it catches up. */
#define TCP_OUT_MAX (256 * 1024)

struct fe_udp {
	int fd;
	struct event *ev;
};

/* The datagrams of one recvmmsg, and the answers made while they were
 * handed on (a cache hit is answered before ub_resolve_event returns),
 * sent with one sendmmsg. */
struct fe_batch {
	struct mmsghdr rx[UDP_BATCH];
	struct iovec rxiov[UDP_BATCH];
	struct sockaddr_storage peer[UDP_BATCH];
	union {
		size_t align; /* as a cmsghdr */
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
			CMSG_SPACE(sizeof(struct in_pktinfo))];
	} cbuf[UDP_BATCH];
	uint8_t rxbuf[UDP_BATCH][UDP_BUF];
	int txfd; /* the socket being read; -1 between batches */
	unsigned ntx;
	struct mmsghdr tx[UDP_BATCH];
	struct iovec txiov[UDP_BATCH];
	struct sockaddr_storage txpeer[UDP_BATCH];
	uint8_t txbuf[UDP_BATCH][UDP_TX_SLOT];
};

/* A DNS-over-TCP connection: several queries, answered in any order.
 * It lives until the client closes it or it idles out, and until every
 * query on it has been answered (or dropped). */
struct fe_tcp {
	struct frontend *fe;
	struct bufferevent *bev;
	struct ipaddr src;
	struct fe_tcp_owner *owner; /* its VM's count */
	int inflight;
	bool dead; /* closed; freed once no query on it is in flight */
	struct fe_tcp *prev, *next;
};

struct frontend {
	struct event_base *base;
	fe_query_cb cb;
	fe_owner_cb owner;
	void *arg;
	struct fe_udp *udp;
	size_t nudp;
	struct fe_batch *batch;
	struct ifnames *ifs; /* interface names by index */
	struct fe_client *pool;
	size_t npool;
	struct evconnlistener **tcp;
	size_t ntcp;
	struct fe_tcp *conns; /* newest first; closed ones included */
	size_t nconns;	      /* open */
	uint32_t max_conns, max_per_vm, idle;
	struct fe_stats st;
};

static socklen_t
sockaddr_from(const struct listen_addr *l, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (l->addr.family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(l->port);
		s->sin_addr = l->addr.v4;
		return sizeof(*s);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(l->port);
	s6->sin6_addr = l->addr.v6;
	return sizeof(*s6);
}

static void
ipaddr_from_sa(const struct sockaddr *sa, struct ipaddr *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		a->family = AF_INET;
		a->v4 = ((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *v6 =
			&((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* A v4-mapped source is the v4 address it maps. */
		if (IN6_IS_ADDR_V4MAPPED(v6)) {
			a->family = AF_INET;
			memcpy(&a->v4, v6->s6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			a->v6 = *v6;
		}
	}
}

/* With freebind, sockets may bind before the address exists (IP_FREEBIND):
 * the daemon can start before the interface that carries its listen
 * address is up (Qubes: the gateway address appears on a vif when a VM
 * connects). Without it, an address that is not local fails the start. */
static int
listen_socket(const struct listen_addr *l, int type, bool freebind)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_from(l, &ss);
	int fd, one = 1;

	fd = socket(l->addr.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->addr.family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (freebind)
			setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one,
				sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
			sizeof(one));
	} else {
		if (freebind)
			setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one,
				sizeof(one));
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
		(type == SOCK_STREAM && listen(fd, 64) < 0)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* ---- clients --------------------------------------------------------------- */

/* Every query holds a client until it is answered: those given back are
 * kept for the next ones, up to a bound (a flood of slow queries must not
 * pin its peak for good). */
static struct fe_client *
client_get(struct frontend *fe)
{
	struct fe_client *cl = fe->pool;

	if (cl == NULL)
		return xcalloc(1, sizeof(*cl));
	fe->pool = cl->pool_next;
	fe->npool--;
	memset(cl, 0, sizeof(*cl));
	return cl;
}

static void
client_put(struct frontend *fe, struct fe_client *cl)
{
	if (fe->npool >= FE_POOL) {
		free(cl);
		return;
	}
	cl->pool_next = fe->pool;
	fe->pool = cl;
	fe->npool++;
}

/* ---- UDP ------------------------------------------------------------------ */

static uint32_t
pktinfo_ifindex(struct msghdr *mh)
{
	uint32_t ifindex = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
		cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP &&
			cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			ifindex = (uint32_t)pi.ipi_ifindex;
		} else if (cm->cmsg_level == IPPROTO_IPV6 &&
			cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			ifindex = pi.ipi6_ifindex;
		}
	}
	return ifindex;
}

/* The interface a datagram came in on cannot be forged from another
 * link: it is what ties a VM to its vif. A link the map does not know
 * yet may have been created since it was last read: the kernel's news
 * are read once a wakeup before the datagram is taken as nobody's. */
static void
udp_ifname(struct frontend *fe, uint32_t ifindex, bool *synced,
	char name[IF_NAMESIZE])
{
	const char *n = ifnames_name(fe->ifs, ifindex);

	if (n == NULL && ifindex != 0 && !*synced) {
		*synced = true;
		if (ifnames_sync(fe->ifs))
			n = ifnames_name(fe->ifs, ifindex);
	}
	if (n != NULL)
		memcpy(name, n, IF_NAMESIZE);
	else
		snprintf(name, IF_NAMESIZE, "?");
}

static void
udp_query(struct frontend *fe, int fd, struct mmsghdr *mm, bool *synced)
{
	struct msghdr *mh = &mm->msg_hdr;
	struct fe_client *cl;

	if (mh->msg_flags & MSG_TRUNC)
		return; /* no query is that large */
	cl = client_get(fe);
	cl->fe = fe;
	cl->fd = fd;
	memcpy(&cl->peer, mh->msg_name, mh->msg_namelen);
	cl->peerlen = mh->msg_namelen;
	ipaddr_from_sa((struct sockaddr *)&cl->peer, &cl->src);
	udp_ifname(fe, pktinfo_ifindex(mh), synced, cl->ifname);
	fe->cb(cl, mh->msg_iov->iov_base, mm->msg_len, fe->arg);
}

/* The answers queued while the batch was read, in one sendmmsg. One the
 * kernel refuses is lost, as a sendto's would be. */
static void
udp_flush(struct frontend *fe)
{
	struct fe_batch *b = fe->batch;
	unsigned i = 0;

	while (i < b->ntx) {
		int r = sendmmsg(b->txfd, b->tx + i, b->ntx - i, 0);

		if (r < 0) {
			log_debug("udp reply: %s", strerror(errno));
			r = 1;
		}
		i += (unsigned)r;
	}
	b->ntx = 0;
	b->txfd = -1;
}

static void
udp_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct frontend *fe = arg;
	struct fe_batch *b = fe->batch;
	bool synced = false;

	/* A bounded number per wakeup, so TCP and the resolver get turns. */
	for (unsigned done = 0; done < UDP_WAKEUP;) {
		unsigned want = UDP_WAKEUP - done < UDP_BATCH
			? UDP_WAKEUP - done
			: UDP_BATCH;
		int n;

		for (unsigned i = 0; i < want; i++) {
			b->rx[i].msg_hdr.msg_namelen = sizeof(b->peer[i]);
			b->rx[i].msg_hdr.msg_controllen = sizeof(b->cbuf[i]);
			b->rx[i].msg_hdr.msg_flags = 0;
		}
		n = recvmmsg(fd, b->rx, want, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		b->txfd = fd;
		for (int i = 0; i < n; i++)
			udp_query(fe, fd, &b->rx[i], &synced);
		udp_flush(fe);
		if ((unsigned)n < want)
			return; /* nothing more queued */
		done += (unsigned)n;
	}
}

/* ---- TCP ------------------------------------------------------------------ */

static void
tcp_free(struct fe_tcp *c)
{
	struct frontend *fe = c->fe;

	if (c->prev)
		c->prev->next = c->next;
	else
		fe->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* The slot is free once the socket is: a connection whose queries are
 * still being answered holds memory, not a descriptor (and those queries
 * count against its VM's queries-per-vm). */
static void
tcp_close(struct fe_tcp *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (!c->dead) {
		c->fe->nconns--;
		c->owner->conns--;
	}
	c->dead = true;
	if (c->inflight == 0)
		tcp_free(c);
}

static void
tcp_read_cb(struct bufferevent *bev, void *arg)
{
	struct fe_tcp *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (!c->dead) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) >
			TCP_OUT_MAX) {
			bufferevent_disable(bev, EV_READ);
			return; /* tcp_write_cb resumes */
		}
		uint8_t lenb[2], *msg;
		size_t len;
		struct fe_client *cl;

		if (evbuffer_copyout(in, lenb, 2) < 2)
			return;
		len = (size_t)(lenb[0] << 8 | lenb[1]);
		if (evbuffer_get_length(in) < len + 2)
			return;
		evbuffer_drain(in, 2);
		msg = xcalloc(1, len ? len : 1);
		evbuffer_remove(in, msg, len);
		cl = client_get(c->fe);
		cl->fe = c->fe;
		cl->tcp = true;
		cl->conn = c;
		cl->src = c->src;
		c->inflight++;
		c->fe->cb(cl, msg, len, c->fe->arg);
		free(msg);
	}
}

/* The client has read what we queued: read its queries again. */
static void
tcp_write_cb(struct bufferevent *bev, void *arg)
{
	struct fe_tcp *c = arg;

	if (c->dead || (bufferevent_get_enabled(bev) & EV_READ))
		return;
	bufferevent_enable(bev, EV_READ);
	tcp_read_cb(bev, c);
}

static void
tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	/* EOF, error or idle timeout: answers still being worked on are
	 * dropped when they complete. */
	tcp_close(arg);
}

/* Every slot is taken: the oldest connection of the VM holding the most
 * gives its slot up, if that VM holds at least two more than the
 * newcomer's would (else they would only trade places). So a VM that
 * fills the slots keeps them only until another VM wants one: the global
 * cap bounds descriptors without letting one VM shut the others out. */
static bool
tcp_make_room(struct frontend *fe, const struct fe_tcp_owner *o)
{
	struct fe_tcp *victim = NULL;

	for (struct fe_tcp *c = fe->conns; c; c = c->next)
		if (!c->dead &&
			(victim == NULL ||
				c->owner->conns >= victim->owner->conns))
			victim = c; /* the last of the most: the oldest */
	if (victim == NULL || victim->owner->conns < o->conns + 2)
		return false;
	victim->owner->evicted++;
	tcp_close(victim);
	return true;
}

/* Refused at accept: an address of no VM, a VM at its own cap, or every
 * slot taken by VMs holding no more than this one. */
static struct fe_tcp_owner *
tcp_admit(struct frontend *fe, const struct sockaddr *sa, struct ipaddr *src)
{
	struct fe_tcp_owner *o;
	char a[INET6_ADDRSTRLEN];

	ipaddr_from_sa(sa, src);
	if ((o = fe->owner(src, fe->arg)) == NULL) {
		fe->st.tcp_unknown++;
		log_debug("DNS over TCP from %s: no VM has that address",
			policy_addr_str(src, a, sizeof(a)));
		return NULL;
	}
	if (o->conns >= fe->max_per_vm) {
		o->refused++;
		log_debug("DNS over TCP from %s: its VM has %u connections "
			  "(limits: tcp-clients-per-vm)",
			policy_addr_str(src, a, sizeof(a)), o->conns);
		return NULL;
	}
	if (fe->nconns >= fe->max_conns && !tcp_make_room(fe, o)) {
		o->refused++;
		fe->st.tcp_full++;
		log_debug("DNS over TCP: %u connections (limits: "
			  "tcp-clients), refusing another",
			fe->max_conns);
		return NULL;
	}
	return o;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
	int salen, void *arg)
{
	struct frontend *fe = arg;
	struct timeval idle = {.tv_sec = fe->idle};
	struct fe_tcp_owner *o;
	struct ipaddr src;
	struct fe_tcp *c;

	if ((o = tcp_admit(fe, sa, &src)) == NULL) {
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->fe = fe;
	c->src = src;
	c->bev = bufferevent_socket_new(fe->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	c->owner = o;
	o->conns++;
	c->next = fe->conns;
	if (fe->conns)
		fe->conns->prev = c;
	fe->conns = c;
	fe->nconns++;
	bufferevent_setcb(c->bev, tcp_read_cb, tcp_write_cb, tcp_event_cb, c);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	/* A 2-byte length and at most 64 KiB: bound what one client holds. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 65537 * 2);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- replies ------------------------------------------------------------ */

/* Answers made while a batch is read wait for its end, and leave with
 * one sendmmsg; any other goes at once. */
static void
udp_send(struct frontend *fe, const struct fe_client *cl, const uint8_t *pkt,
	size_t len)
{
	struct fe_batch *b = fe->batch;

	if (cl->fd == b->txfd && b->ntx < UDP_BATCH && len <= UDP_TX_SLOT) {
		unsigned i = b->ntx++;

		memcpy(b->txbuf[i], pkt, len);
		memcpy(&b->txpeer[i], &cl->peer, cl->peerlen);
		b->txiov[i].iov_len = len;
		b->tx[i].msg_hdr.msg_namelen = cl->peerlen;
		return;
	}
	if (sendto(cl->fd, pkt, len, 0, (const struct sockaddr *)&cl->peer,
		    cl->peerlen) < 0)
		log_debug("udp reply: %s", strerror(errno));
}

void
frontend_reply(struct fe_client *cl, const uint8_t *pkt, size_t len)
{
	struct frontend *fe = cl->fe;

	if (!cl->tcp) {
		if (pkt != NULL)
			udp_send(fe, cl, pkt, len);
	} else {
		struct fe_tcp *c = cl->conn;

		if (pkt != NULL && !c->dead && c->bev != NULL) {
			uint8_t lenb[2] = {(uint8_t)(len >> 8), (uint8_t)len};

			bufferevent_write(c->bev, lenb, 2);
			bufferevent_write(c->bev, pkt, len);
		}
		if (--c->inflight == 0 && c->dead)
			tcp_free(c);
	}
	client_put(fe, cl);
}

/* ---- set-up ---------------------------------------------------------------- */

void
frontend_set_limits(struct frontend *fe, const struct config *c)
{
	fe->max_conns = c->limits.tcp_clients;
	fe->max_per_vm = c->limits.tcp_per_vm;
	fe->idle = c->limits.tcp_idle;
}

const struct fe_stats *
frontend_stats(const struct frontend *fe)
{
	return &fe->st;
}

static struct fe_batch *
batch_new(void)
{
	struct fe_batch *b = xcalloc(1, sizeof(*b));

	for (unsigned i = 0; i < UDP_BATCH; i++) {
		b->rxiov[i] = (struct iovec){b->rxbuf[i], UDP_BUF};
		b->rx[i].msg_hdr = (struct msghdr){
			.msg_name = &b->peer[i],
			.msg_iov = &b->rxiov[i],
			.msg_iovlen = 1,
			.msg_control = b->cbuf[i].buf,
		};
		b->txiov[i] = (struct iovec){b->txbuf[i], 0};
		b->tx[i].msg_hdr = (struct msghdr){
			.msg_name = &b->txpeer[i],
			.msg_iov = &b->txiov[i],
			.msg_iovlen = 1,
		};
	}
	b->txfd = -1;
	return b;
}

struct frontend *
frontend_new(struct event_base *base, const struct config *c, fe_query_cb cb,
	fe_owner_cb owner, void *arg)
{
	struct frontend *fe = xcalloc(1, sizeof(*fe));
	char a[INET6_ADDRSTRLEN];

	fe->base = base;
	fe->cb = cb;
	fe->owner = owner;
	fe->arg = arg;
	frontend_set_limits(fe, c);
	fe->batch = batch_new();
	fe->ifs = ifnames_new();
	if (ifnames_follow(fe->ifs, base) < 0) {
		frontend_free(fe);
		return NULL;
	}
	fe->udp = xcalloc(c->nlisten, sizeof(*fe->udp));
	fe->tcp = xcalloc(c->nlisten, sizeof(*fe->tcp));
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct listen_addr *l = &c->listen[i];
		int ufd = listen_socket(l, SOCK_DGRAM, c->freebind), tfd;

		if (ufd < 0 ||
			(tfd = listen_socket(l, SOCK_STREAM, c->freebind)) <
				0) {
			if (errno == EADDRNOTAVAIL && !c->freebind)
				log_warnx("cannot listen on %s port %u: not "
					  "a local address (set freebind: "
					  "true to bind it before it exists)",
					policy_addr_str(&l->addr, a, sizeof(a)),
					l->port);
			else
				log_warn("cannot listen on %s port %u",
					policy_addr_str(&l->addr, a, sizeof(a)),
					l->port);
			if (ufd >= 0)
				close(ufd);
			frontend_free(fe);
			return NULL;
		}
		fe->udp[fe->nudp].fd = ufd;
		fe->udp[fe->nudp].ev = event_new(base, ufd,
			EV_READ | EV_PERSIST, udp_read_cb, fe);
		event_add(fe->udp[fe->nudp++].ev, NULL);
		fe->tcp[fe->ntcp] = evconnlistener_new(base, accept_cb, fe,
			LEV_OPT_CLOSE_ON_FREE, -1, tfd);
		if (fe->tcp[fe->ntcp] == NULL) {
			close(tfd);
			frontend_free(fe);
			return NULL;
		}
		fe->ntcp++;
	}
	return fe;
}

void
frontend_free(struct frontend *fe)
{
	if (fe == NULL)
		return;
	for (size_t i = 0; i < fe->nudp; i++) {
		event_free(fe->udp[i].ev);
		close(fe->udp[i].fd);
	}
	for (size_t i = 0; i < fe->ntcp; i++)
		evconnlistener_free(fe->tcp[i]);
	while (fe->conns) {
		struct fe_tcp *c = fe->conns;

		if (c->bev)
			bufferevent_free(c->bev);
		c->bev = NULL;
		fe->conns = c->next;
		free(c); /* queries in flight were cancelled by the caller */
	}
	while (fe->pool) {
		struct fe_client *cl = fe->pool;

		fe->pool = cl->pool_next;
		free(cl);
	}
	ifnames_free(fe->ifs);
	free(fe->batch);
	free(fe->udp);
	free(fe->tcp);
	free(fe);
}
