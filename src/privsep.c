#include "privsep.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build-config.h"
#include "cfgfs.h"
#include "config.h"
#include "elems.h"
#include "log.h"
#include "nft.h"
#include "privproto.h"
#include "resolver.h"
#include "ruleset.h"
#include "util.h"

#define NFT_TIMEOUT_MS 10000
#define GENS_KEPT 4
/* How far the engine's `at` of an install may be from our clock: it
 * decides which `until` rules are in force. */
#define AT_SLACK_S 5

struct gen {
	uint32_t gen;
	struct config *c; /* as loaded (not config_at) */
};

struct privd {
	struct event_base *base;
	const char *conf_path;
	char table[64];
	struct nft *nft;
	struct nft_ct *ct;
	struct bufferevent *bb, *sb; /* batch, sync channels */
	pid_t child;
	char root[64];
	struct gen gens[GENS_KEPT];
	size_t ngens;
	uint32_t next_gen;
	struct config *installed; /* config_at of the last install done */
	struct config *pending;	  /* ... of the install in flight */
	bool ready, stopping;
	bool broken; /* the engine broke the protocol */
	void (*on_ready)(void);
	struct event *ev_nft, *ev_timo, *ev_kill;
	struct event *ev_sig[3];
	uint64_t refused; /* batches refused, for the log */
};

/* A build with AddressSanitizer (LeakSanitizer) reads /proc/PID/task at
 * exit: its engine cannot be chrooted. Every other drop stays. */
#if defined(__SANITIZE_ADDRESS__)
#define CHROOTED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHROOTED 0
#endif
#endif
#ifndef CHROOTED
#define CHROOTED 1
#endif

/* The engine's identity, looked up before the fork (the chroot has no
 * /etc). */
static uid_t eng_uid;
static gid_t eng_gid;
static char eng_root[64];

/* ---- the engine's root ------------------------------------------------- */

static int
copy_file(const char *from, const char *to)
{
	struct cfgfs *fs = cfgfs_real();
	char *buf = NULL;
	size_t len = 0;
	int err = cfgfs_read(fs, from, 16u << 20, &buf, &len), fd, rc = -1;

	cfgfs_free(fs);
	if (err != 0) {
		errno = err;
		return -1;
	}
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		0644);
	if (fd >= 0 && write(fd, buf, len) == (ssize_t)len)
		rc = 0;
	if (fd >= 0 && close(fd) < 0)
		rc = -1;
	free(buf);
	return rc;
}

/* The files libunbound reads for generation g: copies in the engine's
 * root, /g<gen>/. */
static int
gen_files(const char *root, const struct config *c)
{
	char dir[128], path[192];

	snprintf(dir, sizeof(dir), "%s/g%u", root, c->gen);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, PRIV_TA_COPY);
	if (copy_file(c->trust_anchor, path) < 0) {
		log_warn("copying %s into the engine's root", c->trust_anchor);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, PRIV_HINTS_COPY);
	if (c->root_hints && copy_file(c->root_hints, path) < 0) {
		log_warn("copying %s into the engine's root", c->root_hints);
		return -1;
	}
	return 0;
}

static void
gen_files_remove(const char *root, uint32_t gen)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/g%u/%s", root, gen, PRIV_TA_COPY);
	unlink(path);
	snprintf(path, sizeof(path), "%s/g%u/%s", root, gen, PRIV_HINTS_COPY);
	unlink(path);
	snprintf(path, sizeof(path), "%s/g%u", root, gen);
	rmdir(path);
}

static void
root_remove(struct privd *p)
{
	for (size_t i = 0; i < p->ngens; i++)
		gen_files_remove(p->root, p->gens[i].gen);
	rmdir(p->root);
}

/* ---- generations -------------------------------------------------------- */

static const struct config *
gen_find(const struct privd *p, uint32_t gen)
{
	for (size_t i = 0; i < p->ngens; i++)
		if (p->gens[i].gen == gen)
			return p->gens[i].c;
	return NULL;
}

/* Keep c as a new generation; the oldest one not installed goes. */
static void
gen_add(struct privd *p, struct config *c)
{
	if (p->ngens == GENS_KEPT) {
		size_t v = 0;

		for (size_t i = 0; i < p->ngens; i++)
			if (p->installed == NULL ||
				p->gens[i].gen != p->installed->gen) {
				v = i;
				break;
			}
		if (p->pending == NULL || p->gens[v].gen != p->pending->gen) {
			gen_files_remove(p->root, p->gens[v].gen);
			config_free(p->gens[v].c);
			memmove(&p->gens[v], &p->gens[v + 1],
				(p->ngens - v - 1) * sizeof(p->gens[0]));
			p->ngens--;
		}
	}
	if (p->ngens == GENS_KEPT) {
		config_free(c);
		return;
	}
	p->gens[p->ngens++] = (struct gen){c->gen, c};
}

/* ---- channels ---------------------------------------------------------- */

static void
send_frame(struct bufferevent *be, const uint8_t *f, size_t len)
{
	if (be != NULL)
		bufferevent_write(be, f, len);
}

static void
send_result(struct privd *p, int err, const char *msg)
{
	size_t len;
	uint8_t *f = priv_result_build(err, msg, &len);

	send_frame(p->sb, f, len);
	free(f);
}

static void
send_data(struct privd *p, const uint8_t *buf, size_t n)
{
	size_t len;
	uint8_t *f = priv_frame(PRIV_DATA, buf, n, NULL, 0, &len);

	send_frame(p->sb, f, len);
	free(f);
}

static void
stop(struct privd *p, const char *why)
{
	if (!p->broken)
		log_warnx("%s; stopping the engine", why);
	p->broken = p->stopping = true;
	if (p->child > 0)
		kill(p->child, SIGKILL);
}

/* ---- transactions -------------------------------------------------------- */

struct txn {
	struct privd *p;
	uint32_t seq;
	struct config *inst; /* an install's configuration, else NULL */
};

static void
txn_done(int err, const char *msg, void *arg)
{
	struct txn *t = arg;
	struct privd *p = t->p;
	size_t len;
	uint8_t *f;

	if (t->inst != NULL) {
		if (err == 0) {
			config_free(p->installed);
			p->installed = t->inst;
		} else {
			config_free(t->inst);
		}
		p->pending = NULL;
	}
	f = priv_done_build(t->seq, err, err ? msg : NULL, &len);
	send_frame(p->bb, f, len);
	free(f);
	free(t);
}

static void
refuse(struct privd *p, uint32_t seq, int err, const char *why)
{
	size_t len;
	uint8_t *f;

	p->refused++;
	log_warnx("refused the engine's transaction: %s", why);
	f = priv_done_build(seq, err, why, &len);
	send_frame(p->bb, f, len);
	free(f);
}

static void
on_batch(struct privd *p, const uint8_t *pl, size_t len)
{
	struct priv_batch pb;
	struct config *inst = NULL;
	const struct config *c;
	struct nft_batch *b;
	struct txn *t;
	char why[512];
	int64_t now = util_wall_s();

	if (priv_batch_head(pl, len, &pb) < 0) {
		stop(p, "the engine sent a malformed transaction");
		return;
	}
	if (pb.flags & PRIV_F_INSTALL) {
		const struct config *g = gen_find(p, pb.gen);

		if (g == NULL || p->pending != NULL ||
			strcmp(g->table, p->table) != 0) {
			refuse(p, pb.seq, EINVAL,
				g == NULL
					? "an install of an unknown generation"
					: p->pending
					? "an install while one is in flight"
					: "an install of another table");
			return;
		}
		/* Now, or (a repair) again what is installed. */
		if ((pb.at < now - AT_SLACK_S || pb.at > now + AT_SLACK_S) &&
			(p->installed == NULL || p->installed->gen != pb.gen ||
				p->installed->at != pb.at)) {
			refuse(p, pb.seq, EINVAL,
				"an install at a time other than now");
			return;
		}
		inst = config_at(g, pb.at);
		c = inst;
	} else if ((c = p->installed) == NULL) {
		refuse(p, pb.seq, EINVAL, "elements before any install");
		return;
	}
	if (priv_batch_parse(pl, len, p->table, c, p->installed, &pb, why,
		    sizeof(why)) < 0) {
		config_free(inst);
		refuse(p, pb.seq, EPERM, why);
		return;
	}
	/* While an install is in flight, the kernel applies it first: an
	 * element must be admitted by it too. */
	if (inst == NULL && p->pending != NULL) {
		struct priv_batch again;

		if (priv_batch_parse(pl, len, p->table, p->pending, NULL,
			    &again, why, sizeof(why)) < 0) {
			priv_batch_free(&pb);
			refuse(p, pb.seq, EPERM, why);
			return;
		}
		priv_batch_free(&again);
	}
	if (inst != NULL) {
		b = ruleset_build(p->nft, inst,
			(pb.flags & PRIV_F_WITH_PREV) ? p->installed : NULL);
		if (b == NULL) {
			priv_batch_free(&pb);
			config_free(inst);
			refuse(p, pb.seq, EIO, "reading our table failed");
			return;
		}
		p->pending = inst;
	} else {
		b = nft_batch_new(p->nft);
	}
	priv_batch_emit(&pb, p->table, b);
	priv_batch_free(&pb);
	t = xcalloc(1, sizeof(*t));
	t->p = p;
	t->seq = pb.seq;
	t->inst = inst;
	nft_batch_send(b, txn_done, t);
}

/* ---- sync requests --------------------------------------------------------- */

static void
on_dump(struct privd *p, const uint8_t *pl, size_t len)
{
	char set[SET_NAME_MAX];
	uint8_t *buf = NULL;
	size_t n = 0;
	int kind;

	if (priv_dump_parse(pl, len, &kind, set, sizeof(set)) < 0) {
		stop(p, "the engine sent a malformed dump request");
		return;
	}
	if (nft_dump_collect(kind, p->table, set, &buf, &n) < 0) {
		send_result(p, errno, NULL);
	} else {
		if (n > 0)
			send_data(p, buf, n);
		send_result(p, 0, NULL);
	}
	free(buf);
}

static void
on_ct_dump(struct privd *p, const uint8_t *pl, size_t len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int family;

	if (priv_ctdump_parse(pl, len, &family) < 0) {
		stop(p, "the engine sent a malformed conntrack request");
		return;
	}
	if (p->installed == NULL || !p->installed->ct_purge) {
		send_result(p, EPERM, "conntrack-purge is off");
		return;
	}
	if (p->ct == NULL && (p->ct = nft_ct_open()) == NULL) {
		send_result(p, errno, "conntrack socket");
		return;
	}
	if (nft_ct_collect(p->ct, family, &buf, &n) < 0) {
		send_result(p, errno, NULL);
	} else {
		if (n > 0)
			send_data(p, buf, n);
		send_result(p, 0, NULL);
	}
	free(buf);
}

static void
on_ct_del(struct privd *p, const uint8_t *pl, size_t len)
{
	struct priv_ctdel d;
	char why[256];
	const char *bad = NULL;

	if (priv_ctdel_parse(pl, len, &d) < 0) {
		stop(p, "the engine sent a malformed conntrack deletion");
		return;
	}
	if (p->installed == NULL ||
		(bad = priv_ctdel_check(p->installed, &d, why, sizeof(why))) !=
			NULL) {
		log_warnx("refused the engine's conntrack deletion: %s",
			p->installed ? bad : "nothing installed");
		send_result(p, EPERM, p->installed ? bad : NULL);
		return;
	}
	if (p->ct == NULL && (p->ct = nft_ct_open()) == NULL) {
		send_result(p, errno, "conntrack socket");
		return;
	}
	send_result(p, nft_ct_delete(p->ct, &d) < 0 ? errno : 0, NULL);
}

/* Read the files again, recording every byte: the engine loads the same
 * configuration from the record. A generation number only for files
 * without problems (the engine finds the same problems). */
static void
on_load(struct privd *p, size_t len)
{
	struct cfgfs *fs;
	struct diag diag = {0};
	struct config *c;
	uint8_t head[8] = {0}, *rec = NULL, *f;
	size_t rlen = 0, flen;
	uint32_t gen = 0;

	if (len != 0) {
		stop(p, "the engine sent a malformed load request");
		return;
	}
	fs = cfgfs_real();
	c = config_load_fs(fs, p->conf_path, &diag);
	diag_finish(&diag);
	if (c != NULL) {
		c->gen = gen = ++p->next_gen;
		if (gen_files(p->root, c) < 0) {
			config_free(c);
			c = NULL;
			gen = 0;
		} else {
			gen_add(p, c);
		}
	}
	if (cfgfs_serialize(fs, &rec, &rlen) < 0) {
		cfgfs_free(fs);
		send_result(p, EIO, "recording the configuration");
		return;
	}
	cfgfs_free(fs);
	memcpy(head, &gen, 4);
	f = priv_frame(PRIV_CONFIG, head, sizeof(head), rec, rlen, &flen);
	send_frame(p->sb, f, flen);
	free(f);
	free(rec);
}

/* Whole frames from a channel's input; the handler per type. */
static void
channel_read(struct bufferevent *be, void *arg)
{
	struct privd *p = arg;
	struct evbuffer *in = bufferevent_get_input(be);

	while (!p->broken) {
		uint8_t hdr[PRIV_HDR], *pl;
		uint32_t len;
		uint16_t type;

		if (evbuffer_copyout(in, hdr, sizeof(hdr)) <
			(ev_ssize_t)PRIV_HDR)
			return;
		if (priv_header(hdr, &len, &type) < 0) {
			stop(p, "the engine sent a malformed frame");
			return;
		}
		if (evbuffer_get_length(in) < PRIV_HDR + (size_t)len)
			return;
		evbuffer_drain(in, PRIV_HDR);
		pl = xcalloc(1, (size_t)len + 1);
		evbuffer_remove(in, pl, len);
		if (be == p->bb && type == PRIV_BATCH) {
			on_batch(p, pl, len);
		} else if (be == p->bb && type == PRIV_READY && len == 0 &&
			!p->ready) {
			p->ready = true;
			if (p->on_ready)
				p->on_ready();
		} else if (be == p->sb && type == PRIV_DUMP) {
			on_dump(p, pl, len);
		} else if (be == p->sb && type == PRIV_CT_DUMP) {
			on_ct_dump(p, pl, len);
		} else if (be == p->sb && type == PRIV_CT_DEL) {
			on_ct_del(p, pl, len);
		} else if (be == p->sb && type == PRIV_LOAD) {
			on_load(p, len);
		} else {
			stop(p, "the engine sent a frame it may not send");
		}
		free(pl);
	}
}

/* The engine closed a channel: it has ended. */
static void
channel_event(struct bufferevent *be, short what, void *arg)
{
	struct privd *p = arg;

	(void)be;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		event_base_loopbreak(p->base);
}

static void
nft_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct privd *p = arg;

	(void)fd;
	(void)ev;
	if (nft_dispatch(p->nft) < 0)
		log_warn("netlink");
}

static void
timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct privd *p = arg;

	(void)fd;
	(void)ev;
	nft_expire(p->nft, NFT_TIMEOUT_MS);
}

static void
kill_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct privd *p = arg;

	(void)fd;
	(void)ev;
	log_warnx("the engine did not exit in time: killing it");
	kill(p->child, SIGKILL);
}

/* SIGTERM, SIGINT: the engine ends first (it logs its figures); SIGHUP:
 * the engine reloads (and asks us for the files). */
static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct privd *p = arg;
	struct timeval tv = {.tv_sec = 10};

	(void)ev;
	kill(p->child, (int)sig);
	if (sig != SIGHUP && !p->stopping) {
		p->stopping = true;
		evtimer_add(p->ev_kill, &tv);
	}
}

static struct bufferevent *
channel(struct privd *p, int fd)
{
	struct bufferevent *be =
		bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (be == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(be, channel_read, NULL, channel_event, p);
	/* A frame larger than the bound is refused at its header; nothing
	 * more is buffered than one such frame. */
	bufferevent_setwatermark(be, EV_READ, 0, PRIV_HDR + PRIV_FRAME_MAX);
	bufferevent_enable(be, EV_READ);
	return be;
}

static void
parent_main(struct privd *p, int fds[2])
{
	struct timeval tv = {.tv_sec = 1};
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	int status = 0, rc;

	if ((p->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	p->bb = channel(p, fds[0]);
	p->sb = channel(p, fds[1]);
	p->ev_nft = event_new(p->base, nft_fd(p->nft), EV_READ | EV_PERSIST,
		nft_cb, p);
	p->ev_timo = event_new(p->base, -1, EV_PERSIST, timo_cb, p);
	p->ev_kill = evtimer_new(p->base, kill_cb, p);
	event_add(p->ev_nft, NULL);
	event_add(p->ev_timo, &tv);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		p->ev_sig[i] = evsignal_new(p->base, sigs[i], signal_cb, p);
		event_add(p->ev_sig[i], NULL);
	}
	event_base_dispatch(p->base);
	/* The engine has ended (or we stop it now). */
	if (!p->stopping)
		kill(p->child, SIGTERM);
	while ((rc = waitpid(p->child, &status, 0)) < 0 && errno == EINTR)
		;
	if (rc < 0)
		status = 1;
	nft_close(p->nft); /* transactions in flight: cancelled */
	nft_ct_close(p->ct);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_free(p->ev_sig[i]);
	event_free(p->ev_nft);
	event_free(p->ev_timo);
	event_free(p->ev_kill);
	bufferevent_free(p->bb);
	bufferevent_free(p->sb);
	event_base_free(p->base);
	root_remove(p);
	if (p->ready && p->installed && p->installed->control)
		unlink(p->installed->control);
	for (size_t i = 0; i < p->ngens; i++)
		config_free(p->gens[i].c);
	config_free(p->installed);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && p->stopping) {
		log_info("the engine has exited; table inet %s stays in place",
			p->table);
		exit(0);
	}
	if (WIFSIGNALED(status))
		log_warnx("the engine was killed by signal %d; table inet %s "
			  "stays in place, nothing new is admitted",
			WTERMSIG(status), p->table);
	else
		log_warnx("the engine exited with status %d; table inet %s "
			  "stays in place",
			WEXITSTATUS(status), p->table);
	exit(1);
}

/* ---- the split --------------------------------------------------------- */

/* The engine never holds CAP_NET_ADMIN, from the fork on: it is still
 * root until privsep_drop() (port 53, the control socket, chroot), but
 * can open no netfilter socket that works. */
static void
drop_net_admin(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	int i = CAP_TO_INDEX(CAP_NET_ADMIN);
	uint32_t m = CAP_TO_MASK(CAP_NET_ADMIN);

	if (syscall(SYS_capget, &h, d) < 0)
		fatal("capget");
	d[i].effective &= ~m;
	d[i].permitted &= ~m;
	d[i].inheritable &= ~m;
	if (syscall(SYS_capset, &h, d) < 0)
		fatal("capset");
	if (prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) < 0 &&
		errno != EINVAL)
		fatal("dropping CAP_NET_ADMIN from the bounding set");
}

int
privsep_start(const char *conf_path, struct config *loaded, void (*ready)(void))
{
	static struct privd p;
	struct passwd *pw;
	int sp[2][2], monfd;
	pid_t pid;

	if ((pw = getpwnam(DNSFENCE_USER)) == NULL || pw->pw_uid == 0) {
		log_warnx("user %s %s: create it (useradd --system "
			  "--no-create-home --shell /usr/sbin/nologin %s)",
			DNSFENCE_USER, pw ? "is root" : "does not exist",
			DNSFENCE_USER);
		return -1;
	}
	eng_uid = pw->pw_uid;
	eng_gid = pw->pw_gid;
	/* The engine's root: empty, but for the copies of the files
	 * libunbound reads, per generation. */
	if (mkdir(DNSFENCE_RUNDIR, 0755) < 0 && errno != EEXIST) {
		log_warn("%s", DNSFENCE_RUNDIR);
		return -1;
	}
	snprintf(p.root, sizeof(p.root), "%s/engine.XXXXXX", DNSFENCE_RUNDIR);
	if (mkdtemp(p.root) == NULL || chmod(p.root, 0755) < 0) {
		log_warn("%s", p.root);
		return -1;
	}
	snprintf(eng_root, sizeof(eng_root), "%s", p.root);
	loaded->gen = p.next_gen = 1;
	if (gen_files(p.root, loaded) < 0) {
		rmdir(p.root);
		return -1;
	}
	/* The parent's transactions, and the notification socket the
	 * engine reads (subscribing needs CAP_NET_ADMIN; reading does not),
	 * both opened before the fork. */
	if ((p.nft = nft_open()) == NULL || (monfd = nft_mon_socket()) < 0) {
		nft_close(p.nft);
		root_remove(&p);
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]) <
			0)
			fatal("socketpair");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid == 0) {
		uint32_t portid = nft_portid(p.nft);

		for (int i = 0; i < 2; i++)
			close(sp[i][0]);
		nft_close(p.nft);
		drop_net_admin();
		nft_use_priv(sp[0][1], sp[1][1], monfd, portid);
		resolver_use_copies(CHROOTED ? "" : p.root);
		return 0;
	}
	for (int i = 0; i < 2; i++)
		close(sp[i][1]);
	close(monfd);
	p.child = pid;
	p.conf_path = conf_path;
	p.on_ready = ready;
	snprintf(p.table, sizeof(p.table), "%s", loaded->table);
	/* Generation 1 is the engine's too (it has it from the fork). */
	p.gens[p.ngens++] = (struct gen){1, loaded};
	parent_main(&p, (int[2]){sp[0][0], sp[1][0]});
	return -1; /* not reached */
}

void
privsep_drop(void)
{
	pid_t parent = getppid();

	if (!CHROOTED) {
		if (chdir(eng_root) < 0)
			fatal("chdir %s", eng_root);
	} else if (chroot(eng_root) < 0 || chdir("/") < 0) {
		fatal("chroot %s", eng_root);
	}
	if (setgroups(1, &eng_gid) < 0 ||
		setresgid(eng_gid, eng_gid, eng_gid) < 0 ||
		setresuid(eng_uid, eng_uid, eng_uid) < 0)
		fatal("becoming user %s", DNSFENCE_USER);
	if (setuid(0) == 0)
		fatalx("could become root again");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fatal("no_new_privs");
	/* Changing credentials cleared it: the engine ends with the parent
	 * (EOF on the channels tells it too). */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 ||
		getppid() != parent)
		fatalx("the privileged process is gone");
	if (CHROOTED)
		log_info("engine: chrooted to %s, running as %s", eng_root,
			DNSFENCE_USER);
	else
		log_info("engine: not chrooted (a sanitizer build: "
			 "LeakSanitizer reads /proc at exit), running as %s",
			DNSFENCE_USER);
}
