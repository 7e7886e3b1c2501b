/* The control socket: accept, check the peer's credentials before reading
 * anything, read one bounded request within a deadline, hand it to the
 * command handler, and stream its output back as frames.
 *
 * A connection is freed only from its own event callbacks (or by ctl_end
 * when it has lost its peer), never inside ctl_out/ctl_end, so a handler
 * may end a request from within the command callback. */
#include "control.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "util.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59 /* Linux 4.13 */
#endif

#define CTL_CONNS_MAX 32
#define CTL_READ_TIMO 5	     /* seconds to send the whole request */
#define CTL_FLUSH_TIMO 30    /* seconds without progress once ended */
#define CTL_GROUPS_MAX 65536 /* NGROUPS_MAX on Linux */

enum conn_state {
	CS_READING, /* the request is being read */
	CS_ACTIVE,  /* handed to the handler: output is taken */
	CS_ENDING,  /* END queued: flushing, then closing */
};

struct ctl_conn {
	struct control *ctl; /* NULL once detached by control_free */
	struct ctl_conn *next, **prevp;
	int fd; /* -1 once the peer is gone */
	enum conn_state state;
	bool held; /* the handler has it: from dispatch to ctl_end */
	struct event *ev_read, *ev_write, *ev_timo;
	uint8_t req[CTL_REQ_MAX];
	size_t reqlen, reqwant;
	struct ctl_request rq;
	struct evbuffer *out; /* framed, ready to send */
	char *stage;	      /* output not yet framed (coalesced) */
	size_t nstage;
	enum ctl_kind stage_kind;
	uint64_t lost; /* follower lines dropped, not yet told */
	void (*close_fn)(struct ctl_conn *, void *);
	void *close_arg;
};

struct control {
	struct event_base *base;
	int fd;
	struct event *ev_accept, *ev_pause;
	char *path;
	gid_t gid;
	char group[64]; /* its name, for refusals */
	control_cmd_cb cb;
	void *arg;
	struct ctl_conn *conns;
	int nconns;
	uint64_t refused_log_ms; /* when a refusal was last logged */
	uint64_t refused_held;	 /* refusals not logged since */
};

/* Refused peers are anyone on the machine: at most one line a second. */
#define CTL_REFUSED_LOG_MS 1000

static void conn_write_cb(evutil_socket_t fd, short ev, void *arg);
static void conn_free(struct ctl_conn *cc);

/* ---- the listening socket ------------------------------------------ */

/* Is something answering on path? A stale socket refuses the connect. */
static bool
socket_in_use(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool used;

	if (fd < 0)
		return false;
	used = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return used;
}

static int
make_parent(const char *path, char **err)
{
	char *tmp = xstrdup(path), *dir = dirname(tmp);
	int rc = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		*err = xasprintf("cannot create %s: %s", dir, strerror(errno));
		rc = -1;
	}
	free(tmp);
	return rc;
}

static int
remove_stale(const char *path, const struct sockaddr_un *sun, char **err)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		*err = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		*err = xasprintf("%s exists and is not a socket", path);
		return -1;
	}
	if (socket_in_use(sun)) {
		*err = xasprintf("%s is in use by another daemon", path);
		return -1;
	}
	if (unlink(path) < 0) {
		*err = xasprintf("cannot remove the stale socket %s: %s", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Bind with a umask that leaves only the owner in, then hand the socket to
 * the group: it is never open to anyone else, not even briefly. */
static int
listen_on(const char *path, gid_t gid, char **err)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		*err = xasprintf("%s: socket path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (make_parent(path, err) < 0 || remove_stale(path, &sun, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0) {
		*err = xasprintf("bind %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0660) < 0 ||
		listen(fd, 16) < 0) {
		const char *why = strerror(errno);

		/* sun_path, not path: a sanitizer build's null checks on
		 * chown's argument made gcc think path could be NULL. */
		*err = xasprintf("bind %s: %s", sun.sun_path, why ? why : "?");
		unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- output ---------------------------------------------------------- */

static bool
conn_live(const struct ctl_conn *cc)
{
	return cc->fd >= 0 && cc->ctl != NULL;
}

/* Move the staged bytes into frames on the output queue. */
static void
stage_flush(struct ctl_conn *cc)
{
	uint8_t hdr[CTL_FRAME_HDR];

	if (cc->nstage == 0)
		return;
	ctl_frame_encode(hdr, cc->stage_kind, 0, cc->nstage);
	evbuffer_add(cc->out, hdr, sizeof(hdr));
	evbuffer_add(cc->out, cc->stage, cc->nstage);
	cc->nstage = 0;
}

/* Append to the staged frame of that kind, framing as it fills. */
static void
stage_add(struct ctl_conn *cc, enum ctl_kind kind, const char *p, size_t n)
{
	size_t k;

	if (cc->stage_kind != kind)
		stage_flush(cc);
	cc->stage_kind = kind;
	while (n > 0) {
		if (cc->stage == NULL)
			cc->stage = xcalloc(1, CTL_FRAME_MAX);
		k = CTL_FRAME_MAX - cc->nstage;
		if (k > n)
			k = n;
		memcpy(cc->stage + cc->nstage, p, k);
		cc->nstage += k;
		p += k;
		n -= k;
		if (cc->nstage == CTL_FRAME_MAX)
			stage_flush(cc);
	}
	event_add(cc->ev_write, NULL);
}

static void
queue_end(struct ctl_conn *cc, int status)
{
	uint8_t hdr[CTL_FRAME_HDR];

	stage_flush(cc);
	ctl_frame_encode(hdr, CTL_FRAME_END, status, 0);
	evbuffer_add(cc->out, hdr, sizeof(hdr));
	cc->state = CS_ENDING;
	event_del(cc->ev_read);
	event_del(cc->ev_timo);
	event_add(cc->ev_write, NULL);
}

/* Over CTL_OUT_MAX: a follower loses the text (counted); anyone else is
 * cut off with status 1. */
static bool
over_limit(struct ctl_conn *cc, size_t n)
{
	static const char cut[] =
		"dnsfencectl: output cut: the client reads too slowly\n";

	if (ctl_pending(cc) + n <= CTL_OUT_MAX)
		return false;
	if (cc->rq.flags & CTL_F_FOLLOW) {
		cc->lost++;
		return true;
	}
	stage_add(cc, CTL_FRAME_ERR, cut, sizeof(cut) - 1);
	queue_end(cc, 1);
	return true;
}

/* A follower is told how many lines it lost once there is room again. */
static void
tell_lost(struct ctl_conn *cc)
{
	char msg[96];
	int n;

	if (cc->lost == 0)
		return;
	n = snprintf(msg, sizeof(msg),
		"dnsfencectl: %llu lines lost: the client reads too slowly\n",
		(unsigned long long)cc->lost);
	if (ctl_pending(cc) + (size_t)n > CTL_OUT_MAX / 2)
		return;
	stage_add(cc, CTL_FRAME_ERR, msg, (size_t)n);
	cc->lost = 0;
}

static void
conn_emit(struct ctl_conn *cc, enum ctl_kind kind, const void *buf, size_t len)
{
	if (!conn_live(cc) || cc->state != CS_ACTIVE)
		return;
	tell_lost(cc);
	if (over_limit(cc, len))
		return;
	stage_add(cc, kind, buf, len);
}

static void conn_vemit(struct ctl_conn *cc, enum ctl_kind kind, const char *fmt,
	va_list ap) __attribute__((format(printf, 3, 0)));

static void
conn_vemit(struct ctl_conn *cc, enum ctl_kind kind, const char *fmt, va_list ap)
{
	char small[512], *p = small;
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(small, sizeof(small), fmt, aq);
	va_end(aq);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(small)) {
		p = xcalloc(1, (size_t)n + 1);
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	}
	conn_emit(cc, kind, p, (size_t)n);
	if (p != small)
		free(p);
}

void
ctl_write(struct ctl_conn *cc, const void *buf, size_t len)
{
	conn_emit(cc, CTL_FRAME_OUT, buf, len);
}

void
ctl_vout(struct ctl_conn *cc, const char *fmt, va_list ap)
{
	conn_vemit(cc, CTL_FRAME_OUT, fmt, ap);
}

void
ctl_out(struct ctl_conn *cc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vemit(cc, CTL_FRAME_OUT, fmt, ap);
	va_end(ap);
}

void
ctl_err(struct ctl_conn *cc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vemit(cc, CTL_FRAME_ERR, fmt, ap);
	va_end(ap);
}

size_t
ctl_pending(const struct ctl_conn *cc)
{
	return evbuffer_get_length(cc->out) + cc->nstage;
}

void
ctl_end(struct ctl_conn *cc, int status)
{
	cc->held = false;
	if (!conn_live(cc)) {
		/* The peer (or the daemon's control socket) went away while
		 * the handler held cc without a close callback. */
		conn_free(cc);
		return;
	}
	if (cc->state != CS_ACTIVE)
		return; /* already cut with status 1, and flushing */
	if (status < 0 || status > CTL_STATUS_MAX) {
		log_warnx("control: %s ended with status %d, sent as 1",
			ctl_cmd_name(cc->rq.cmd), status);
		status = 1;
	}
	if (cc->lost > 0) {
		char msg[96];
		int n = snprintf(msg, sizeof(msg),
			"dnsfencectl: %llu lines lost: the client reads too "
			"slowly\n",
			(unsigned long long)cc->lost);

		stage_add(cc, CTL_FRAME_ERR, msg, (size_t)n);
	}
	queue_end(cc, status);
}

void
ctl_on_close(struct ctl_conn *cc, void (*fn)(struct ctl_conn *, void *),
	void *arg)
{
	cc->close_fn = fn;
	cc->close_arg = arg;
}

/* ---- connections ----------------------------------------------------- */

static void
conn_free(struct ctl_conn *cc)
{
	if (cc->ctl != NULL) {
		*cc->prevp = cc->next;
		if (cc->next != NULL)
			cc->next->prevp = cc->prevp;
		cc->ctl->nconns--;
	}
	if (cc->fd >= 0)
		close(cc->fd);
	event_free(cc->ev_read);
	event_free(cc->ev_write);
	event_free(cc->ev_timo);
	evbuffer_free(cc->out);
	free(cc->stage);
	free(cc);
}

/* The connection is over: flushed after its END, or the peer is gone (or
 * broke the protocol). A handler still holding cc is told by its close
 * callback; without one, cc stays (closed) until it calls ctl_end. */
static void
conn_done(struct ctl_conn *cc)
{
	if (cc->held && cc->close_fn != NULL) {
		cc->held = false;
		cc->close_fn(cc, cc->close_arg);
	} else if (cc->held) {
		event_del(cc->ev_read);
		event_del(cc->ev_write);
		event_del(cc->ev_timo);
		if (cc->fd >= 0)
			close(cc->fd);
		cc->fd = -1;
		return;
	}
	conn_free(cc);
}

/* Send what is queued; MSG_NOSIGNAL so a vanished peer is an error, not a
 * signal. 0 when all was sent, 1 when more remains, -1 on error. */
static int
conn_send(struct ctl_conn *cc)
{
	struct evbuffer_iovec v[8];
	struct msghdr mh = {0};
	ssize_t n;
	int nv;

	stage_flush(cc);
	while (evbuffer_get_length(cc->out) > 0) {
		nv = evbuffer_peek(cc->out, -1, NULL, v, 8);
		mh.msg_iov = (struct iovec *)v;
		mh.msg_iovlen = (size_t)(nv > 8 ? 8 : nv);
		n = sendmsg(cc->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 1;
		if (n < 0)
			return -1;
		evbuffer_drain(cc->out, (size_t)n);
	}
	return 0;
}

static void
conn_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ctl_conn *cc = arg;
	int rc = conn_send(cc);

	if (rc < 0) {
		conn_done(cc);
		return;
	}
	if (rc > 0) {
		event_add(cc->ev_write, NULL);
		if (cc->state == CS_ENDING) {
			struct timeval tv = {CTL_FLUSH_TIMO, 0};

			event_add(cc->ev_timo, &tv);
		}
		return;
	}
	if (cc->state == CS_ENDING)
		conn_done(cc);
}

/* A connection that will not be read: an error and END, sent at once
 * (a fresh socket's buffer holds them), then closed. */
static void refuse_fd(int fd, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
refuse_fd(int fd, int status, const char *fmt, ...)
{
	uint8_t buf[CTL_FRAME_HDR * 2 + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf((char *)buf + CTL_FRAME_HDR, 256, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > 255)
		n = 255;
	ctl_frame_encode(buf, CTL_FRAME_ERR, 0, (size_t)n);
	ctl_frame_encode(buf + CTL_FRAME_HDR + n, CTL_FRAME_END, status, 0);
	if (send(fd, buf, (size_t)n + 2 * CTL_FRAME_HDR,
		    MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control: refusal not sent: %s", strerror(errno));
	close(fd);
}

/* A bad request: told why (usage status 2) and closed without reading
 * further. */
static void
conn_reject(struct ctl_conn *cc, const char *why)
{
	static const char pre[] = "dnsfencectl: bad request: ";

	log_info("control: bad request: %s", why);
	stage_add(cc, CTL_FRAME_ERR, pre, sizeof(pre) - 1);
	stage_add(cc, CTL_FRAME_ERR, why, strlen(why));
	stage_add(cc, CTL_FRAME_ERR, "\n", 1);
	queue_end(cc, 2);
}

static void
conn_dispatch(struct ctl_conn *cc)
{
	const char *why;

	if (ctl_request_parse(&cc->rq, cc->req, cc->reqlen, &why) < 0) {
		conn_reject(cc, why);
		return;
	}
	event_del(cc->ev_timo);
	cc->state = CS_ACTIVE;
	cc->held = true;
	log_debug("control: %s", ctl_cmd_name(cc->rq.cmd));
	cc->ctl->cb(cc, &cc->rq, cc->ctl->arg);
}

/* While held, nothing more may come from the peer: a read of 0 is its
 * hangup, and any byte is a protocol violation treated the same. */
static void
conn_held_read(struct ctl_conn *cc)
{
	char b;
	ssize_t n = recv(cc->fd, &b, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	conn_done(cc);
}

static void
conn_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ctl_conn *cc = arg;
	const char *why;
	ssize_t n;
	int want;

	if (cc->state != CS_READING) {
		conn_held_read(cc);
		return;
	}
	n = recv(fd, cc->req + cc->reqlen, cc->reqwant - cc->reqlen,
		MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(cc);
		return;
	}
	cc->reqlen += (size_t)n;
	if (cc->reqlen < cc->reqwant)
		return;
	if (cc->reqwant == CTL_REQ_HDR) {
		if ((want = ctl_request_len(cc->req, &why)) < 0) {
			conn_reject(cc, why);
			return;
		}
		cc->reqwant = (size_t)want;
		if (cc->reqlen < cc->reqwant)
			return;
	}
	/* One request per connection: bytes already there after it make
	 * the whole a bad request, as the parser would judge it. */
	{
		char extra;

		if (recv(fd, &extra, 1, MSG_DONTWAIT | MSG_PEEK) == 1) {
			conn_reject(cc, "bytes after the request");
			return;
		}
	}
	conn_dispatch(cc);
}

static void
conn_timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ctl_conn *cc = arg;

	if (cc->state == CS_READING) {
		log_info("control: no complete request in %d s", CTL_READ_TIMO);
		conn_reject(cc, "incomplete request (timed out)");
		return;
	}
	/* Ended, and the peer has read nothing for CTL_FLUSH_TIMO. */
	conn_done(cc);
}

/* ---- credentials ----------------------------------------------------- */

static bool
in_peer_groups(int fd, gid_t gid)
{
	gid_t small[64], *g = small;
	socklen_t len = sizeof(small);
	bool found = false;
	int tries = 0;

	/* ERANGE tells the size needed; the groups may change meanwhile, so
	 * the retries are bounded too. */
	while (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		if (errno != ERANGE || len > CTL_GROUPS_MAX * sizeof(gid_t) ||
			len <= sizeof(small) || ++tries > 3) {
			if (errno != ENOPROTOOPT)
				log_warn("control: SO_PEERGROUPS");
			goto out;
		}
		if (g != small)
			free(g);
		g = xcalloc(1, len);
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		found |= g[i] == gid;
out:
	if (g != small)
		free(g);
	return found;
}

/* Root, or a member of the control group (primary or supplementary). */
static bool
peer_allowed(int fd, gid_t gid, struct ucred *uc)
{
	socklen_t len = sizeof(*uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, uc, &len) < 0) {
		log_warn("control: SO_PEERCRED");
		uc->uid = (uid_t)-1;
		return false;
	}
	return uc->uid == 0 || uc->gid == gid || in_peer_groups(fd, gid);
}

/* ---- accepting ------------------------------------------------------- */

static void
accept_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct control *ctl = arg;

	event_add(ctl->ev_accept, NULL);
}

static void
conn_new(struct control *ctl, int fd)
{
	struct ctl_conn *cc = xcalloc(1, sizeof(*cc));
	struct timeval tv = {CTL_READ_TIMO, 0};

	cc->ctl = ctl;
	cc->fd = fd;
	cc->reqwant = CTL_REQ_HDR;
	cc->out = evbuffer_new();
	cc->ev_read = event_new(ctl->base, fd, EV_READ | EV_PERSIST,
		conn_read_cb, cc);
	cc->ev_write = event_new(ctl->base, fd, EV_WRITE, conn_write_cb, cc);
	cc->ev_timo = evtimer_new(ctl->base, conn_timo_cb, cc);
	if (cc->out == NULL || cc->ev_read == NULL || cc->ev_write == NULL ||
		cc->ev_timo == NULL)
		fatalx("control: out of memory");
	cc->next = ctl->conns;
	if (cc->next != NULL)
		cc->next->prevp = &cc->next;
	cc->prevp = &ctl->conns;
	ctl->conns = cc;
	ctl->nconns++;
	event_add(cc->ev_read, NULL);
	event_add(cc->ev_timo, &tv);
}

static void
accept_cb(evutil_socket_t lfd, short ev, void *arg)
{
	struct control *ctl = arg;
	struct timeval pause = {1, 0};
	struct ucred uc;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			errno == ENOMEM) {
			/* Out of descriptors: stop accepting for a moment
			 * rather than spin on a ready listening socket. */
			log_warn("control: accept");
			event_del(ctl->ev_accept);
			evtimer_add(ctl->ev_pause, &pause);
		}
		return;
	}
	if (!peer_allowed(fd, ctl->gid, &uc)) {
		uint64_t now = util_now_ms();

		if (ctl->refused_log_ms == 0 ||
			now - ctl->refused_log_ms >= CTL_REFUSED_LOG_MS) {
			if (ctl->refused_held > 0)
				log_info("control: %llu more connections "
					 "refused, not logged (at most one "
					 "line a second)",
					(unsigned long long)ctl->refused_held);
			log_info("control: refused uid %ld (not root nor in "
				 "group %s)",
				(long)(int)uc.uid, ctl->group);
			ctl->refused_log_ms = now;
			ctl->refused_held = 0;
		} else {
			ctl->refused_held++;
		}
		refuse_fd(fd, 1,
			"dnsfencectl: permission denied: uid %ld is not root "
			"nor in group %s\n",
			(long)(int)uc.uid, ctl->group);
		return;
	}
	if (ctl->nconns >= CTL_CONNS_MAX) {
		log_warnx("control: %d connections already, one refused",
			ctl->nconns);
		refuse_fd(fd, 1,
			"dnsfencectl: dnsfenced is busy (%d control "
			"connections), try again\n",
			ctl->nconns);
		return;
	}
	conn_new(ctl, fd);
}

struct control *
control_new(struct event_base *base, const char *path, gid_t gid,
	control_cmd_cb cb, void *arg, char **err)
{
	struct control *ctl;
	struct group *gr;
	int fd;

	if ((fd = listen_on(path, gid, err)) < 0)
		return NULL;
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->base = base;
	ctl->fd = fd;
	ctl->path = xstrdup(path);
	ctl->gid = gid;
	ctl->cb = cb;
	ctl->arg = arg;
	if ((gr = getgrgid(gid)) != NULL)
		snprintf(ctl->group, sizeof(ctl->group), "%s", gr->gr_name);
	else
		snprintf(ctl->group, sizeof(ctl->group), "%lu",
			(unsigned long)gid);
	ctl->ev_accept =
		event_new(base, fd, EV_READ | EV_PERSIST, accept_cb, ctl);
	ctl->ev_pause = evtimer_new(base, accept_resume_cb, ctl);
	if (ctl->ev_accept == NULL || ctl->ev_pause == NULL ||
		event_add(ctl->ev_accept, NULL) < 0) {
		*err = xasprintf("%s: cannot add the event", path);
		control_free(ctl);
		return NULL;
	}
	return ctl;
}

/* At exit: a held request is told so; what cannot be sent at once is
 * lost. */
static void
conn_shutdown(struct ctl_conn *cc)
{
	static const char bye[] = "dnsfencectl: dnsfenced is exiting\n";

	if (cc->state == CS_ACTIVE && conn_live(cc)) {
		stage_add(cc, CTL_FRAME_ERR, bye, sizeof(bye) - 1);
		queue_end(cc, 1);
	}
	if (cc->fd >= 0)
		(void)conn_send(cc);
	if (cc->held && cc->close_fn != NULL) {
		cc->held = false;
		cc->close_fn(cc, cc->close_arg);
	} else if (cc->held) {
		/* The handler still holds it: ctl_end frees it. */
		*cc->prevp = cc->next;
		if (cc->next != NULL)
			cc->next->prevp = cc->prevp;
		cc->ctl->nconns--;
		cc->ctl = NULL;
		event_del(cc->ev_read);
		event_del(cc->ev_write);
		event_del(cc->ev_timo);
		if (cc->fd >= 0)
			close(cc->fd);
		cc->fd = -1;
		return;
	}
	conn_free(cc);
}

void
control_free(struct control *ctl)
{
	if (ctl == NULL)
		return;
	while (ctl->conns != NULL)
		conn_shutdown(ctl->conns);
	if (ctl->ev_accept != NULL)
		event_free(ctl->ev_accept);
	if (ctl->ev_pause != NULL)
		event_free(ctl->ev_pause);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
